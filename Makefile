# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned to the CPU build that installs here; the constraint stops any package pulling a CUDA build.
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test test-fast lint typecheck bench clean install install-dev

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or run: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e ".[all]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	cd examples/telco-churn && ../../$(VENV)/bin/trainpipe run pipeline.yaml
	cd examples/telco-churn && ../../$(VENV)/bin/trainpipe run pipeline.yaml --set model.params.max_depth=4
	cd examples/telco-churn && ../../$(VENV)/bin/trainpipe runs list --limit 5

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	MLFLOW_DISABLE_TELEMETRY=true $(PY) -m pytest -q -ra

test-fast: $(VENV)/.installed-dev
	MLFLOW_DISABLE_TELEMETRY=true $(PY) -m pytest -q -m "not slow"

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) .trainpipe examples/*/.trainpipe .pytest_cache
