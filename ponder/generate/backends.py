"""Pick a generation backend from one string, the ``MODEL`` argument of every ponder command.

Two kinds of spec::

    runs/sft/final                         a local Hugging Face checkpoint dir -> LocalEngine
    openai:<model>@<base_url>              an OpenAI-compatible server        -> OpenAIBackend
    openai:qwen3-0.6b@http://127.0.0.1:8000/v1

The model name may itself contain ``@`` (the split is on the last ``@`` followed by ``http://`` or
``https://``); the base URL must start with ``http://`` or ``https://``. The API key comes from
``api_key=...`` or the ``OPENAI_API_KEY`` environment variable (local servers accept any key,
so a placeholder is used when neither is set).

``load_backend`` is what eval, serve, strategies and the CLI import; it never contacts a model
hub (a local spec must be an existing directory with a ``config.json``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ponder.generate.types import Backend, GenerationError

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


def check_local_dir(path: Path) -> None:
    """Raise ``ModelSpecError`` unless ``path`` looks like a loadable HF checkpoint directory."""
    if not path.exists():
        raise ModelSpecError(
            f"model {str(path)!r} does not exist (give a local checkpoint directory "
            "or openai:<model>@<base_url>)"
        )
    if not path.is_dir():
        raise ModelSpecError(f"model {str(path)!r} is not a directory (expected a checkpoint directory)")
    if not (path / "config.json").is_file():
        raise ModelSpecError(f"model directory {str(path)!r} has no config.json: not a Hugging Face checkpoint")
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    if not has_weights:
        raise ModelSpecError(f"model directory {str(path)!r} has no weights (*.safetensors or *.bin)")
    has_tok = any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json"))
    if not has_tok:
        raise ModelSpecError(f"model directory {str(path)!r} has no tokenizer files (tokenizer.json)")


def load_backend(spec: str | ModelSpec, **kw) -> Backend:
    """A ready backend for ``spec``; ``kw`` goes to ``LocalEngine.from_path`` or ``OpenAIBackend``.

    Errors (missing or malformed directory, bad openai spec, unreadable checkpoint) are
    ``ModelSpecError``/``GenerationError`` (ValueError subclasses) naming the problem.
    """
    ms = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    if ms.kind == "openai":
        from ponder.generate.openai_backend import OpenAIBackend

        return OpenAIBackend(model=ms.model, base_url=ms.base_url, **kw)
    check_local_dir(ms.path)
    from ponder.generate.local import LocalEngine

    try:
        return LocalEngine.from_path(ms.path, **kw)
    except (GenerationError, TypeError):
        raise
    except (OSError, ValueError, KeyError) as e:  # malformed config / weights / tokenizer
        raise ModelSpecError(f"cannot load model from {str(ms.path)!r}: {e}") from e


def api_key_from(kw_key: str | None) -> str:
    """The API key: the explicit one, else ``OPENAI_API_KEY``, else a placeholder for local servers."""
    return kw_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
