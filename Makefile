# One entry point for a fresh machine: every target builds its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Wheels are cached by pip outside the repo (~/.cache/pip); Kafka jars in ~/.cache/mesh-ingest.
STAMP := $(VENV)/.installed
# The native metric lane (native/) is built by cargo during the install; rustup puts cargo
# here. Its crates are cached by cargo outside the repo (~/.cargo/registry).
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE_SOURCES := native/Cargo.toml $(wildcard native/src/*.rs)

.PHONY: test demo lint typecheck bench venv clean services

$(STAMP): pyproject.toml $(NATIVE_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	@# The extension is optional for the package, not for this repo's checks: where cargo is,
	@# it must have been built (tests/unit/test_native.py runs against it).
	@if command -v cargo >/dev/null; then $(BIN)/python -c 'import ingest._native'; \
	else echo "note: no cargo, so no native metric lane; records take the Python lane"; fi
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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache native/target ingest/_native*.so
