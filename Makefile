# castoff: `make demo` runs a sample offload, `make test` runs every check. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: all venv test check demo soak bench bench-smoke clean

all: test

$(STAMP): pyproject.toml
	@bash scripts/bootstrap.sh "$(PY)" "$(VENV)"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	@bash scripts/check.sh

check: test

demo: $(STAMP)
	@$(BIN)/python scripts/demo.py

soak: $(STAMP)
	@$(BIN)/python -m pytest -q -p no:cacheprovider tests/faults tests/badinput tests/security tests/cli/test_cli_uploads.py

bench: $(STAMP)
	@bash bench/setup.sh
	@$(BIN)/python bench/run.py --workload all $(BENCH_ARGS)

bench-smoke: $(STAMP)
	@bash bench/setup.sh
	@$(BIN)/python bench/run.py --workload card --scale 0.01 --runs 1 --jobs local

clean:
	rm -rf $(VENV) demo-out .mypy_cache .ruff_cache .pytest_cache
