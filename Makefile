# usnb: `make demo` runs the main job, `make test` the tests. Both set up .venv/ themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lab figures clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/usnb demo --out runs/demo --profile small

test: install
	$(BIN)/python -m pytest -q tests
	USNB_HEADLESS=1 $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

lab: install
	$(BIN)/jupyter lab notebooks/

figures: install
	$(BIN)/usnb figure --out docs/phantom_frames.png

clean:
	rm -rf runs .pytest_cache
