# usnb: `make demo` runs the main job, `make test` the tests. Both set up .venv/ themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-quick lab kernel figures clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" -c constraints.txt
	touch $(STAMP)

demo: install
	$(BIN)/usnb demo --out runs/demo --profile small

test: install
	$(BIN)/python -m pytest -q --durations=15 tests
	USNB_HEADLESS=1 $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

# while editing: the tests not marked slow (no notebook kernels, no paper-sized shapes), about a minute on 2 cores
test-quick: install
	$(BIN)/python -m pytest -q -m "not slow" --durations=5 tests

# JupyterLab at the repository root (README, docs/, data_cards/ reachable; links between them resolve), opened on
# notebooks/, served on this machine only, saving widget state with each notebook
lab: install kernel
	mkdir -p $(VENV)/share/jupyter/lab/settings
	echo '{"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": true}}' > $(VENV)/share/jupyter/lab/settings/overrides.json
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks

# a kernel named "Python (usnb)" for any Jupyter on this machine (another JupyterLab, VS Code): pick it there
kernel: install
	$(BIN)/python -m ipykernel install --user --name usnb --display-name "Python (usnb)"

figures: install
	$(BIN)/usnb figure --out docs/phantom_frames.png

clean:
	rm -rf runs .pytest_cache
