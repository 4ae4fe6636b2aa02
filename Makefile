# Two commands do everything; each sets up .venv on first use.
#   make run   [ARGS="image.dcm ..."]   start the app (demo image when given none)
#   make test                           lint + the whole test suite (incl. the bundle build)
# Also: make test-fast (skips tests marked slow), make dist (PyInstaller bundle + tar.gz),
#       make benchmark (speed figures), make models (retrain what ships from $(DATA), skipping
#       steps whose inputs did not change; hours; `make models ARGS=--dry-run` shows the plan).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamp-installed
DATA   ?= ../shared/data

.PHONY: run test test-fast lint benchmark dist models clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m thyroid_desktop $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The bundle runs the models' ONNX graphs and carries no TensorFlow (build.spec excludes
# it), so it is built from the development environment, as tests/test_bundle.py builds it.
dist: $(STAMP)
	$(VENV)/bin/pyinstaller --noconfirm --clean build.spec
	QT_QPA_PLATFORM=offscreen dist/ThyroidReview/ThyroidReview --selftest
	sh packaging/make_archive.sh
	du -sh dist/ThyroidReview dist/*.tar.gz

benchmark: $(STAMP)
	$(PY) benchmarks/bench_predict.py
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/bench_launch.py

# Every retraining step in order (training/rebuild.py); stamps under runs/rebuild/.
models: $(STAMP)
	$(PY) -m training all --data $(DATA) $(ARGS)

clean:
	rm -rf $(VENV) $(DIST_VENV) build dist .pytest_cache .ruff_cache
