# The two commands a fresh clone needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
MODEL  ?= mult-vae
DATA   ?= ml-100k

# Use the MovieLens copies beside the checkout when present (see README "Data").
ifneq ($(wildcard ../shared/data/ml-100k/u.data),)
export GENREC_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install run test lint format clean

$(BIN)/genrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(BIN)/genrec

## run: install, train the default model $(MODEL) (and biased-mf, the rating model the
## README's prediction call names) where the store has no production version, serve on
## $(HOST):$(PORT) with $(MODEL) as the model of requests that name none
run: install
	$(BIN)/genrec train --model $(MODEL) --data $(DATA) --promote --if-missing
	$(BIN)/genrec train --model biased-mf --data $(DATA) --promote --if-missing
	GENREC_DEFAULT_MODEL=$(MODEL) $(BIN)/genrec serve --host $(HOST) --port $(PORT)

## test: install and run the whole suite (unit + integration against Postgres and Redis) on
## $(TEST_WORKERS) processes (pytest-xdist; each takes a Postgres database of its own)
TEST_WORKERS ?= 2
test: install
	$(BIN)/pytest -n $(TEST_WORKERS)

## lint: ruff (style) and mypy (types; configured in pyproject.toml [tool.mypy])
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
