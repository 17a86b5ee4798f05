"""Pick a generation backend from one string, the ``MODEL`` argument of every ponder command.

Three kinds of spec::

    runs/sft/final                         a local Hugging Face checkpoint dir -> LocalEngine
    models/SmolLM2-135M.Q4_1.gguf          a GGUF file (or a KNOWN_GGUF name)  -> GGUFBackend (llama.cpp)
    openai:<model>@<base_url>              an OpenAI-compatible server        -> OpenAIBackend
    openai:qwen3-0.6b@http://127.0.0.1:8000/v1

The model name may itself contain ``@`` (the split is on the last ``@`` followed by ``http://`` or
``https://``); the base URL must start with ``http://`` or ``https://``. The API key comes from
``api_key=...`` or the ``OPENAI_API_KEY`` environment variable (local servers accept any key,
so a placeholder is used when neither is set).

``load_backend`` is what eval, serve, strategies and the CLI import; it never contacts a model
hub (a local spec must be an existing checkpoint directory).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ponder.format import Prompt, render
from ponder.generate.types import Backend, GenerationError
from ponder.io import parse_object

OPENAI_PREFIX = "openai:"


class ModelSpecError(GenerationError):
    """A ``MODEL`` string that names no usable backend; the message says what is wrong."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``MODEL`` string: ``kind`` "local" (``path``) or "openai" (``model`` at ``base_url``)."""

    kind: Literal["local", "openai"]
    path: Path | None = None
    model: str | None = None
    base_url: str | None = None

    def __str__(self) -> str:
        return str(self.path) if self.kind == "local" else f"{OPENAI_PREFIX}{self.model}@{self.base_url}"


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``spec`` (see module docstring). Does not touch the disk or the network."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"model spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if not spec.startswith(OPENAI_PREFIX):
        return ModelSpec(kind="local", path=Path(spec).expanduser())
    rest = spec[len(OPENAI_PREFIX):]
    at = max(rest.rfind("@http://"), rest.rfind("@https://"))
    if at < 0:
        raise ModelSpecError(
            f"openai model spec {spec!r} needs the form openai:<model>@<base_url> "
            "with a base_url starting with http:// or https:// (e.g. openai:qwen@http://127.0.0.1:8000/v1)"
        )
    model, base_url = rest[:at].strip(), rest[at + 1:].strip()
    if not model:
        raise ModelSpecError(f"openai model spec {spec!r} has an empty model name before '@'")
    if base_url.rstrip("/") in ("http:", "https:") or base_url.split("://", 1)[1].strip("/") == "":
        raise ModelSpecError(f"openai model spec {spec!r} has no host in its base_url")
    return ModelSpec(kind="openai", model=model, base_url=base_url.rstrip("/"))


def parse_extra_body(text: str | dict | None) -> dict:
    """``--extra-body``: a JSON object merged into every request to an endpoint."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return text
    return parse_object(text, "--extra-body", ModelSpecError)


#: options that only an endpoint takes (ignored, with an error when set, for a local model)
REMOTE_ONLY = ("extra_body", "timeout", "concurrency", "max_retries", "tokenizer")
#: options that only a GGUF file takes (llama.cpp's threads and context length)
GGUF_ONLY = ("threads", "n_ctx")


def load_backend(spec: str | ModelSpec, thinking: str = "auto", **kw) -> Backend:
    """A ready backend for ``spec``; ``kw`` goes to ``LocalEngine`` or ``OpenAIBackend``.

    ``thinking``: the model's thinking mode, auto|on|off (``ponder.format.decide_thinking``).
    Endpoint-only options (``extra_body``, ``timeout``, ``concurrency``, ``max_retries``,
    ``tokenizer`` -- the served model's, for raw-completions mode) given as None are left at their
    defaults; ``extra_body`` or ``tokenizer`` for a local model is an error (nothing would read it).

    A ``.gguf`` file (or a ``ponder.models.gguf.KNOWN_GGUF`` name such as ``smollm2``) runs
    in-process on llama.cpp (``ponder.generate.gguf.GGUFBackend``; ``threads`` and ``n_ctx``
    go to it and are ignored for a checkpoint directory).

    Errors (missing or malformed directory, bad openai spec, unreadable checkpoint) are
    ``ModelSpecError`` / ``ponder.models.build.ModelLoadError`` (ValueError subclasses) naming
    the problem. ``quantize`` (int8, int8-dynamic: ``LocalEngine``) is for a checkpoint directory only.
    A local checkpoint is loaded by ``ponder.models.load`` (offline, float32); a LoRA
adapter directory loads its base and merges the adapter (``ponder.models.lora``).
    """
    ms = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    kw = {k: v for k, v in kw.items() if v is not None}
    if "extra_body" in kw:
        kw["extra_body"] = parse_extra_body(kw["extra_body"])
    if ms.kind != "openai":
        if kw.get("extra_body"):
            raise ModelSpecError("--extra-body is sent to an endpoint; a local model has no server to read it")
        if kw.get("tokenizer"):
            raise ModelSpecError("--tokenizer names an endpoint's tokenizer; a local model has its own")
        kw = {k: v for k, v in kw.items() if k not in REMOTE_ONLY}
    if kw.get("quantize") and ms.kind == "openai":
        raise ModelSpecError("--quantize applies to a local checkpoint; an endpoint's server decides its own weights")
    if ms.kind == "openai":
        from ponder.generate.openai_backend import OpenAIBackend

        kw = {k: v for k, v in kw.items() if k not in GGUF_ONLY}
        return OpenAIBackend(model=ms.model, base_url=ms.base_url, thinking=thinking, **kw)
    from ponder.models.gguf import KNOWN_GGUF, resolve_gguf

    path = resolve_gguf(str(ms.path)) if str(ms.path) in KNOWN_GGUF else ms.path
    if not path.exists():
        raise ModelSpecError(
            f"model {str(ms.path)!r} does not exist (give a local checkpoint directory, a .gguf file "
            "or openai:<model>@<base_url>)"
        )
    from ponder.generate.gguf import GGUFBackend, is_gguf

    if is_gguf(path):
        if kw.get("quantize"):
            raise ModelSpecError(f"--quantize applies to a local checkpoint; {path.name} is a GGUF file, whose "
                                 "weight format is fixed in the file")
        return GGUFBackend(path, thinking=thinking, **{k: v for k, v in kw.items() if k != "quantize"})
    kw = {k: v for k, v in kw.items() if k not in GGUF_ONLY}
    from ponder.generate.local import LocalEngine
    from ponder.models import load

    # checks the directory (a LoRA adapter directory is merged onto its base); ModelLoadError names the problem
    model, tokenizer = load(ms.path)
    return LocalEngine(model, tokenizer, thinking=thinking, name=str(ms.path), **kw)




def prompt(backend: Backend, messages, system: str | None = None) -> Prompt:
    """The prompt ``backend`` gets for ``messages`` (a question or a conversation): rendered by
    ``ponder.format.render`` with the backend's tokenizer and thinking decision. Pass
    ``Prompt.payload`` to ``backend.generate``."""
    return render(messages, backend.tokenizer, backend.thinking, system=system)
