# Two commands do all set-up on a fresh machine (Python 3.11 and Java 17 present, nothing else):
#   make demo   - create/reuse .venv, install, run the whole pipeline on the bundled sample
#   make test   - create/reuse .venv, install what the tests import, run the test suite
#   make bench  - a venv of its own (.venv-bench) with the benchmark anchors too; BENCH=loader runs one
PYTHON ?= python3.11
VENV ?= .venv
BENCH_VENV ?= .venv-bench
# torch: pip takes the build the package index offers for this pin. These machines carry the CPU
# wheel (torch-2.13.0+cpu) on local disk, so it installs from there; on plain PyPI the same pin is the
# CUDA build (nvidia-* and triton, several GB), which is what a GPU node wants. Elsewhere, for CPU only:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# TORCH_SPEC picks another torch (it must satisfy .ci/constraints.txt, or edit that pin too).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PIP = $(VENV)/bin/pip
CONSTRAINTS = .ci/constraints.txt
PYTEST_ARGS ?=
BENCH ?=
TORCH_INSTALL = -c $(CONSTRAINTS) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"

.PHONY: demo test test-all check-java chromium-present postgresql-present lint bench clean help

help:
	@echo "make demo  - run the whole pipeline on data/sample (installs into $(VENV) first)"
	@echo "make test  - run the tests (installs into $(VENV) first); PYTEST_ARGS='-m slow' for heavy cases"
	@echo "make lint  - ruff and mypy"
	@echo "make bench - install the benchmark anchors into $(BENCH_VENV); BENCH=loader runs benchmarks/loader.py"

check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17 or newer is required (Spark runs on the JVM) but 'java' is not on PATH" >&2; exit 1; }
	@java -version 2>&1 | head -1 | grep -Eq '"(1[7-9]|[2-9][0-9])' || { echo "error: Java 17 or newer is required; found: $$(java -version 2>&1 | head -1)" >&2; exit 1; }

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: $(VENV)/bin/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install -q $(TORCH_INSTALL)
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[loader]"
	touch $@

$(VENV)/.test-installed: $(VENV)/.demo-installed pyproject.toml $(CONSTRAINTS)
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[loader,test,dvc]"
	touch $@

# The benchmark anchors (mosaicml-streaming, litdata, rensa, ...) get a venv of their own: they pull
# about 250 packages (oci, azure, google-cloud, torchvision), and the torchvision wheel, a CUDA build,
# does not load beside the CPU torch, which breaks importing lightning and transformers' Trainer.
$(BENCH_VENV)/.bench-installed: pyproject.toml $(CONSTRAINTS)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q $(TORCH_INSTALL)
	$(BENCH_VENV)/bin/pip install -q -c $(CONSTRAINTS) -e ".[loader,test,bench]"
	touch $@

# tests/integration/test_report_chromium.py opens the HTML report in a headless browser and checks the
# page renders. This step installs Debian's chromium package (about 100 MB, with apt-get, as root) when
# no chromium is on PATH; without it that one test fails and says why.
chromium-present:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium package (apt-get) for the report rendering test" >&2; \
	  command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); } || \
	  echo "warning: chromium is missing and could not be installed; the report rendering test will fail" >&2

# tests/integration/test_lake_s3.py runs the catalog on PostgreSQL, started by the test from Debian's
# postgresql package (initdb, pg_ctl). This step installs that package (apt-get, as root) when it is missing.
postgresql-present:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql package (apt-get) for the PostgreSQL catalog test" >&2; \
	  command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null); } || \
	  echo "warning: postgresql is missing and could not be installed; the PostgreSQL catalog test will fail" >&2

demo: check-java $(VENV)/.demo-installed
	$(VENV)/bin/tokenmill demo

test: check-java $(VENV)/.test-installed chromium-present postgresql-present
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-all: check-java $(VENV)/.test-installed chromium-present postgresql-present
	$(VENV)/bin/python -m pytest -m "" $(PYTEST_ARGS)

# mypy runs from the repository root: module names are paths from here (explicit_package_bases in
# pyproject.toml), which is how jobs/, a folder of spark-submit scripts with no __init__.py, is checked
lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy pipelines dedup sharding schemas benchmarks jobs examples

bench: check-java $(BENCH_VENV)/.bench-installed
ifeq ($(BENCH),)
	@echo "anchors installed in $(BENCH_VENV); run one benchmark with make bench BENCH=<name>, one of:"
	@ls benchmarks/*.py | sed -e 's|benchmarks/||' -e 's|\.py$$||' | grep -v '^_' | tr '\n' ' '; echo
else
	$(BENCH_VENV)/bin/python -m benchmarks.$(BENCH)
endif

clean:
	rm -rf lake/demo .pytest_cache
