# aqm-llm: one-command setup, build, demo and tests.
#   make demo   # fresh clone -> .venv, pinned deps, C++ build, the shipped policy's ONNX network,
#               # Wi-Fi comparison table
#   make test   # same setup, then C++ unit tests (ctest) and pytest
# A second call reuses the environment and the incremental CMake build in build/cmake.

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
BUILD  := build/cmake
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
export CMAKE_BUILD_PARALLEL_LEVEL := $(JOBS)

NATIVE_SOURCES := $(shell find ns3_module scenarios cmake examples python -type f \
	\( -name '*.cc' -o -name '*.h' -o -name 'CMakeLists.txt' -o -name '*.cmake' -o -name '*.in' \) 2>/dev/null)

.PHONY: all venv build agent demo test test-cpp test-py bench clean distclean

all: build agent

venv: $(VENV)/.deps-stamp
$(VENV)/.deps-stamp: requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(PIP) install --no-deps -r requirements-nodeps.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import torch, ns3, numpy" 2>/dev/null || $(PY) -c "import importlib.util as u; assert u.find_spec('torch') and u.find_spec('ns3'), 'dependency install failed'"
	touch $@

build: $(VENV)/.build-stamp
$(VENV)/.build-stamp: $(VENV)/.deps-stamp $(NATIVE_SOURCES) pyproject.toml CMakeLists.txt
	@mkdir -p build
	# flock: one build at a time in build/cmake (several shells may call make at once).
	flock build/.build-lock $(PIP) install --no-build-isolation --no-deps -e . 2>&1 | grep -v "is ignored: it is neither" ; test $${PIPESTATUS[0]} -eq 0
	$(PY) -c "import aqm_llm.native as n; n.check_installed()"
	touch $@

# The shipped checkpoint's ONNX network for the agent's fast path, built once into the cache
# (~/.cache/aqm-llm, or $$AQM_LLM_CACHE): runs then load it in about a second.
SHIPPED := $(wildcard models/l4s-llm/*.json models/l4s-llm/*.safetensors models/l4s-llm/adapter/*)
agent: $(VENV)/.agent-stamp
$(VENV)/.agent-stamp: $(VENV)/.build-stamp $(SHIPPED)
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/aqm-llm prepare-agent
	touch $@

demo: build agent
	@echo "demo: the Wi-Fi AP downlink (20 s simulated, 1 DCTCP + 1 Cubic flow) under the trained LLM policy (models/l4s-llm), dualpi2, fq-codel-l4s, pie-l4s and fifo; about 2 minutes"
	$(VENV)/bin/aqm-llm compare wifi --qdisc l4s-llm,dualpi2,fq-codel-l4s,pie-l4s,fifo --seed 1 -o demo-results

test-cpp: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-py: build agent
	$(PY) -m pytest -q tests

test: test-cpp agent
	$(PY) -m pytest -q tests

clean:
	rm -rf build demo-results

distclean: clean
	rm -rf $(VENV)
