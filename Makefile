# castoff: `make demo` runs a sample offload, `make test` runs every check. Both set themselves up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: all venv test check demo soak bench bench-smoke bench-scale bench-profile clean

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
	@$(BIN)/castoff demo

soak: $(STAMP)
	@$(BIN)/python -m pytest -q -p no:cacheprovider tests/faults tests/badinput tests/security tests/cli/test_cli_uploads.py

bench: $(STAMP)
	@bash bench/setup.sh
	@$(BIN)/python bench/run.py --workload all $(BENCH_ARGS)

bench-smoke: $(STAMP)
	@bash bench/setup.sh
	@$(BIN)/python bench/run.py --workload card --scale 0.01 --runs 1 --jobs local

# castoff alone: peak RSS and wall time against file count (1k-200k) and size (1 MiB-8 GiB), 1 and 4
# destinations, and the re-run of a verified 200k-file job. On disk: ~45 GiB and over an hour
# (bench/README.md has a shorter study).
bench-scale: $(STAMP)
	@bash bench/setup.sh
	@$(BIN)/python bench/run.py --scale-study --where disk $(BENCH_ARGS)

# py-spy flame graphs and ranked hot spots of castoff on card (local, S3) and many-small (local).
bench-profile: $(STAMP)
	@bash bench/setup.sh
	@$(BIN)/python bench/run.py --profile $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-out .mypy_cache .ruff_cache .pytest_cache
