# Two commands set up a fresh machine: `make run` (the main job) and `make test` (the whole suite).
# Every pip call passes -c constraints.txt so torch stays the CPU wheel (FINDINGS.md).
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.zaoshu-installed
ARGS   ?=

.PHONY: run test install finetune-env bench smoke-real clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependencies change: a second `make test` does not touch pip.
$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --progress-bar off -c constraints.txt -e '.[test]'
	touch $@

install: $(STAMP)

run: install
	$(VENV)/bin/python -m recipes.wulewule $(ARGS)

# two pytest-xdist workers, each test file on one of them (its module fixtures, the Ray cluster among them,
# are made once); not loadgroup: pytest 9 ignores the xdist_group suffix it sets, and the groups were split
test: install
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

finetune-env: install
	$(VENV)/bin/zaoshu finetune setup

bench: install
	$(VENV)/bin/python -m benchmarks

# A few items per recipe against a real model (not CI): ZAOSHU_SMOKE_BASE_URL=http://127.0.0.1:8899/v1 make smoke-real
smoke-real: install
	$(VENV)/bin/python -m benchmarks.bench_real_model

clean:
	rm -rf $(VENV) .venv-xtuner .pytest_cache
