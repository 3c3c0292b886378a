PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test bench lint clean example

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chatlog demo

test: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy chatlog
	$(BIN)/python -m pytest

# Run one example with the project's venv: `make example NAME=script` runs examples/script.py
# (ARGS="..." passes arguments). Without CHATLOG_URL its alerts go to a local fake bot and are printed.
example: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make example NAME=script   (examples: $$(cd examples && ls *.py | grep -v -e '^_' -e '\.conf\.py$$' -e '^gunicorn_app' | sed 's/\.py$$//' | tr '\n' ' '))" >&2; exit 2; }
	cd examples && PATH="$(abspath $(BIN)):$$PATH" "$(abspath $(BIN))/python" $(NAME).py $(ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
