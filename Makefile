# One entry point for a fresh machine: every target builds its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Wheels are cached by pip outside the repo (~/.cache/pip); Kafka jars in ~/.cache/mesh-ingest.
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck bench venv clean services

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check ingest tests bench
	$(BIN)/mypy ingest

demo: $(STAMP)
	$(BIN)/ingest demo

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/ingest bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
