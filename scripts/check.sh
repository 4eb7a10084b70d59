#!/usr/bin/env bash
# Every check castoff must pass: format, lint, types, tests. `make test` and CI run exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo "== ruff format --check"
$BIN/ruff format --check src tests bench scripts
echo "== ruff check"
$BIN/ruff check src tests bench scripts
echo "== mypy --strict"
$BIN/mypy
echo "== pytest"
$BIN/python -m pytest -q -m "not soak" -p no:cacheprovider -n auto --maxprocesses 4 tests
