# Two commands do everything on a fresh machine (Python 3.11, no GPU):
#   make demo   create .venv, install, run the main job
#   make test   create/update .venv, run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs benchmarks clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m zoo list
	$(PY) benchmarks/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

docs: $(STAMP)
	$(PY) docs/generate.py

benchmarks: $(STAMP)
	$(PY) benchmarks/training_throughput.py
	$(PY) benchmarks/inference.py

clean:
	rm -rf $(VENV) build *.egg-info
