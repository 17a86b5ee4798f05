# The two commands of the set-up contract: `make demo` and `make test`.
# Each creates .venv if missing and installs the pinned dependencies (torch as the CPU build)
# and, when it can, bubblewrap for the code sandbox. `.ci/run` calls `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The PyTorch CPU wheel index. PyPI's Linux torch wheel is the CUDA build (several GB of
# nvidia-* packages), so torch is installed with this index when its host resolves; otherwise
# (offline mirror, wheel directory in pip.conf) pip's configured indexes must provide it.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test install sandbox-deps browser-deps clean bench

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || (echo "$(PY) not found: install Python 3.11 or run make PY=/path/to/python3.11" && exit 1)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	# torch first, pinned, so nothing later can pull a CUDA build
	@if $(BIN)/python -c "import socket, urllib.parse as u; socket.getaddrinfo(u.urlparse('$(TORCH_INDEX)').hostname, 443)" 2>/dev/null; then \
		echo "$(BIN)/pip install torch==2.13.0 --extra-index-url $(TORCH_INDEX)"; \
		$(BIN)/pip install -q torch==2.13.0 --extra-index-url $(TORCH_INDEX); \
	else \
		echo "$(TORCH_INDEX) is not reachable: torch from pip's configured indexes"; \
		$(BIN)/pip install -q torch==2.13.0; \
	fi
	$(BIN)/pip install -q -e '.[test]'
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

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) runs .pytest_cache
