# The two commands of the set-up contract: `make demo` and `make test`.
# Each creates .venv if missing and installs the pinned dependencies (torch from the CPU wheel).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install sandbox-deps browser-deps clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	# torch first, pinned, so nothing later can pull a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	@$(BIN)/pip show torch 2>/dev/null | grep '^Version: 2.13.0' >/dev/null || (echo "torch is not 2.13.0: refusing to continue" && exit 1)
	touch $(STAMP)

install: $(STAMP) sandbox-deps browser-deps

# bubblewrap isolates the code sandbox; without it ponder still applies resource limits and says isolation is reduced.
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || ( (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null)) || echo "note: bubblewrap not installed; the sandbox will run with resource limits only" )

# headless Chromium and its WebDriver for the playground's end-to-end test (tests/test_playground.py skips without them).
browser-deps:
	@(command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1) || ( (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)) || echo "note: chromium/chromium-driver not installed; the playground browser test will be skipped" )

demo: install
	$(BIN)/ponder demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) runs .pytest_cache
