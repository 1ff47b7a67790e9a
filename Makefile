# Two commands do everything on a fresh machine (Python 3.11, no GPU):
#   make demo   create .venv, install, run the main job
#   make test   create/update .venv, run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test docs benchmarks clean data

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps larq-zoo==2.4.0 zookeeper==1.4.0  # the reference (setup.cfg)
	$(PY) -m pip install --quiet "click>=7.0" "typeguard>=3.0"  # zookeeper's own requirements
	touch $(STAMP)

# Fashion-MNIST, offline, from Debian's package (needs root or sudo on Debian/Ubuntu).
data:
	@test -d $(FASHION_MNIST) || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "warning: install Debian's dataset-fashion-mnist for the Fashion-MNIST demo and tests" >&2

demo: $(STAMP) data
	$(PY) -m zoo list
	$(PY) benchmarks/demo.py

test: $(STAMP) data
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=10  # one worker per core; an idle one takes queued tests from the other

docs: $(STAMP)
	$(PY) docs/generate.py

benchmarks: $(STAMP)
	$(PY) benchmarks/training_throughput.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/training_precision.py
	$(PY) benchmarks/ubnas_shapes.py
	$(PY) benchmarks/evolution_latency.py

clean:
	rm -rf $(VENV) build *.egg-info
