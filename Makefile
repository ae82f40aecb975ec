# Two commands do all set-up on a fresh machine (Python 3.11 and Java 17 present, nothing else):
#   make demo   - create/reuse .venv, install, run the whole pipeline on the bundled sample
#   make test   - create/reuse .venv, install test extras, run the test suite
PYTHON ?= python3.11
VENV ?= .venv
# the CPU build of torch; set TORCH_SPEC=torch (or another pin) on a GPU node
TORCH_SPEC ?= torch==2.13.0
PIP = $(VENV)/bin/pip
CONSTRAINTS = .ci/constraints.txt
PYTEST_ARGS ?=

.PHONY: demo test test-all check-java chromium-present lint bench clean help

help:
	@echo "make demo  - run the whole pipeline on data/sample (installs into $(VENV) first)"
	@echo "make test  - run the tests (installs into $(VENV) first); PYTEST_ARGS='-m slow' for heavy cases"
	@echo "make lint  - ruff and mypy"

check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17 or newer is required (Spark runs on the JVM) but 'java' is not on PATH" >&2; exit 1; }
	@java -version 2>&1 | head -1 | grep -Eq '"(1[7-9]|[2-9][0-9])' || { echo "error: Java 17 or newer is required; found: $$(java -version 2>&1 | head -1)" >&2; exit 1; }

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: $(VENV)/bin/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install -q -c $(CONSTRAINTS) "$(TORCH_SPEC)"
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[loader]"
	touch $@

$(VENV)/.test-installed: $(VENV)/.demo-installed pyproject.toml $(CONSTRAINTS)
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[loader,test,bench,dvc]"
	touch $@

# the HTML report test renders in Debian's headless Chromium
chromium-present:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); } || \
	  echo "warning: chromium is missing and could not be installed; the report rendering test will fail" >&2

demo: check-java $(VENV)/.demo-installed
	$(VENV)/bin/tokenmill demo

test: check-java $(VENV)/.test-installed chromium-present
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-all: check-java $(VENV)/.test-installed
	$(VENV)/bin/python -m pytest -m "" $(PYTEST_ARGS)

# mypy runs from the repository root: module names are paths from here (explicit_package_bases in
# pyproject.toml), which is how jobs/, a folder of spark-submit scripts with no __init__.py, is checked
lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy pipelines dedup sharding schemas benchmarks jobs examples

clean:
	rm -rf lake/demo .pytest_cache
