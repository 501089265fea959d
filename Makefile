# Fresh machine:  make demo   (install + segment a built-in phantom with the shipped model)
#                 make test   (install + run the test suite)
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision are installed first so a user can choose the build (CPU, CUDA) to use.
TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint format bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/lungseg demo --out demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) benchmarks/inference.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
