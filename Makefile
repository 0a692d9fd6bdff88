# The two commands: `make demo` and `make test`. Each sets up .venv when it is missing or a
# requirements file changed (tracked by a stamp file), then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test venv clean

demo: $(STAMP)
	$(PY) -m experiments.tag_pipeline --preset=demo --run_dir=runs/demo --overwrite
	$(PY) -m serving.demo_query --run_dir=runs/demo
	@echo "Report: $(CURDIR)/runs/demo/report/index.html"

test: $(STAMP)
	$(PY) -m pytest tests -n 2 --dist loadfile

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
