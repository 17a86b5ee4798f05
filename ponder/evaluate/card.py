"""Reproduction cards: everything an eval result depends on, in one small ``card.json``.

Published reasoning-model scores are hard to reproduce because of unrecorded differences in
prompt, chat template, pre-fill, sampling or extraction. ``run_eval`` writes ``card.json`` at the
end of every run (a ``--budgets`` sweep: one card at the top of the sweep) with:

* ``ponder``: version, git commit and whether the tree was dirty (null outside a git checkout);
  ``python``, ``libraries`` (torch, transformers, tokenizers, math-verify, trl; openai for an
  endpoint, llama-cpp-python when a GGUF is involved), ``machine`` (platform, cpu count, torch
  threads);
* ``model``: the spec; for a local checkpoint the sha256 of every weight file (``*.safetensors``,
  else ``*.bin``) and of ``config.json``; for an endpoint the model name, base URL and what the
  server's ``GET /v1/models`` says (``created`` dropped: servers stamp it per request);
* ``tokenizer`` (sha256 of ``tokenizer.json``, or of the ``--tokenizer`` GGUF) and
  ``chat_template_sha256`` (the template the loaded tokenizer renders with; null when the
  endpoint applies its own) and ``thinking`` (the thinking decision: ``start`` "prefill" means a
  pre-filled ``<think>``);
* ``config``: the whole ``EvalConfig`` (the protocol after overrides) and ``sampling``;
  ``protocol``: with ``--protocol``, its name, source, file sha256 and the overridden fields;
* ``seeds``: the rule (``request_seed``) and the seed of every problem's samples from the records;
* ``data``: sha256 of every file the task read (the examples' ``meta.source``, the task's
  ``path(split)``) and one hash over the examples themselves (id, prompt, gold, meta), which also
  covers generated tasks;
* ``prompts``: a hash of every rendered prompt, per problem id (16 hex digits) plus one over all;
* ``metrics``: the headline numbers.

Hashes are sha256 of the bytes, streamed in 1 MiB blocks. A file's hash is cached in
``$PONDER_HASH_CACHE`` (default ``~/.cache/ponder/sha256.json``) under its resolved path, size
and mtime, so a 540 MB checkpoint is hashed once, not on every run; rewriting the file changes
its mtime and so its key.

``inputs(...)`` is the part that ``ponder eval reproduce`` recomputes before it runs anything
(``ponder.evaluate.reproduce``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import threading
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from ponder.io import read_records, write_json_atomic

CARD = "card.json"
CARD_VERSION = 1
LIBRARIES = ("torch", "transformers", "tokenizers", "math-verify", "trl")
WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth")  # the first glob that matches wins
PROMPT_DIGITS = 16  # per-problem prompt hashes: 64 bits tell prompts apart and keep the card small
SEED_RULE = ("request_seed(seed, id of the first problem of the request, its first sample index): "
             "blake2b-32 of 'seed|id|sample'; a local model sends batch_size problems per request, "
             "an endpoint one problem each")
_cache_lock = threading.Lock()


class CardError(ValueError):
    """An unreadable or inconsistent card; the message names the problem."""


# ---------------------------------------------------------------------------- hashing


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def json_sha256(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys, no ASCII escaping)."""
    return text_sha256(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def cache_file() -> Path:
    env = os.environ.get("PONDER_HASH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ponder" / "sha256.json"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # no cache yet, or a damaged one: start afresh
        return {}


def file_sha256(path: str | os.PathLike, cache: bool = True) -> str:
    """sha256 of a file, streamed; cached under (resolved path, size, mtime) -- see the module docstring."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    where = cache_file()
    if cache:
        hit = _read_cache(where).get(key)
        if isinstance(hit, str):
            return hit
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if cache:
        with _cache_lock:
            data = _read_cache(where)
            data = {k: v for k, v in data.items() if not k.startswith(f"{p}|")}  # older versions of the file
            data[key] = digest
            try:
                write_json_atomic(where, data)
            except OSError:  # a read-only home: hashing still works, only slower next time
                pass
    return digest


# ---------------------------------------------------------------------------- environment


def versions(endpoint: bool = False, gguf: bool = False) -> dict[str, str | None]:
    """Installed versions of the libraries a result depends on (None: not installed)."""
    import ponder

    names = [*LIBRARIES, *(["openai"] if endpoint else []), *(["llama-cpp-python"] if gguf else [])]
    out: dict[str, str | None] = {"ponder": ponder.__version__}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict | None:
    """The commit of the ponder checkout in use and whether tracked files differ from it; None
    outside a git checkout (an installed wheel) or without git."""
    import ponder

    root = Path(ponder.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return None  # an installed ponder inside some other repository (a venv in a project)
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def machine() -> dict[str, Any]:
    threads = None
    if "torch" in sys.modules:  # an endpoint run never imports torch just to say so
        threads = sys.modules["torch"].get_num_threads()
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(), "torch_threads": threads}


# ---------------------------------------------------------------------------- model


def weight_files(directory: Path) -> list[Path]:
    for pattern in WEIGHT_GLOBS:
        found = sorted(directory.glob(pattern))
        if found:
            return found
    return []


def chat_template_file(directory: Path) -> str | None:
    """The chat template stored in a checkpoint or tokenizer directory (None: none)."""
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    cfg = directory / "tokenizer_config.json"
    if cfg.is_file():
        try:
            t = json.loads(cfg.read_text()).get("chat_template")
        except ValueError:
            return None
        return t if isinstance(t, str) or t is None else json.dumps(t, sort_keys=True)
    return None


def tokenizer_identity(source: str | os.PathLike | None) -> dict | None:
    """sha256 of a tokenizer: ``tokenizer.json`` of a directory, or a whole ``.gguf`` file."""
    if not source:
        return None
    p = Path(source).expanduser()
    if p.is_file():
        return {"source": str(p), "file": p.name, "sha256": file_sha256(p)}
    if (p / "tokenizer.json").is_file():
        return {"source": str(p), "file": "tokenizer.json", "sha256": file_sha256(p / "tokenizer.json")}
    return {"source": str(p), "file": None, "sha256": None}


def served_models(base_url: str, model: str, timeout: float = 5.0) -> dict:
    """What ``GET {base_url}/models`` says about the served models, without volatile fields; on
    failure ``{"error": …}`` (a server without the route still gets a card)."""
    import httpx

    key = os.environ.get("OPENAI_API_KEY") or "sk-no-key"
    try:
        r = httpx.get(f"{base_url.rstrip('/')}/models", headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
        r.raise_for_status()
        data = r.json().get("data") or []
    except Exception as e:  # noqa: BLE001 - any failure is recorded, never fatal
        return {"error": f"{type(e).__name__}: {e}"[:200]}
    entries = [{k: v for k, v in m.items() if k != "created"} for m in data if isinstance(m, dict)]
    ours = [m for m in entries if m.get("id") == model]
    return {"ids": [m.get("id") for m in entries][:20], "model": ours[0] if ours else None}


def model_identity(spec: str) -> dict:
    """The model of ``spec``: kind, hashes of a local checkpoint's files, or the endpoint's listing.
    ``kind`` "unknown": not a checkpoint directory or endpoint (a backend handed over in code)."""
    from ponder.generate.backends import ModelSpecError, parse_model_spec

    try:
        ms = parse_model_spec(spec)
    except ModelSpecError:
        return {"kind": "unknown", "spec": spec}
    if ms.kind == "openai":
        return {"kind": "openai", "spec": spec, "model": ms.model, "base_url": ms.base_url,
                "served": served_models(ms.base_url, ms.model)}
    if not ms.path.is_dir():
        return {"kind": "unknown", "spec": spec}
    files = weight_files(ms.path)
    weights = {f.name: file_sha256(f) for f in files}
    cfg = ms.path / "config.json"
    return {"kind": "local", "spec": spec, "path": str(ms.path.resolve()), "weights": weights,
            "weights_sha256": json_sha256(weights) if weights else None,
            "weights_bytes": sum(f.stat().st_size for f in files),
            "config_sha256": file_sha256(cfg) if cfg.is_file() else None}


def chat_template_sha256(backend, model: dict) -> str | None:
    """The template the backend's tokenizer renders with; a checkpoint's stored one otherwise;
    None when nobody here renders (an endpoint applies its own)."""
    template = getattr(getattr(backend, "tokenizer", None), "chat_template", None)
    if template is None and model.get("kind") == "local":
        template = chat_template_file(Path(model["path"]))
    if template is None:
        return None
    return text_sha256(template if isinstance(template, str) else json.dumps(template, sort_keys=True))


def thinking_decision(backend) -> dict | None:
    """The thinking decision prompts were rendered under: ``start`` "prefill" means a pre-filled ``<think>``."""
    th = getattr(backend, "thinking", None)
    if th is None:
        return None
    return {"mode": getattr(th, "mode", None), "start": getattr(th, "start", None), "reason": getattr(th, "reason", None)}


# ---------------------------------------------------------------------------- task and prompts


def data_identity(task, examples: list[dict], split: str, shots: int = 0) -> dict:
    """Hashes of the files the task read (with few-shot examples: its train file too) and of the
    examples it made from them."""
    paths: dict[str, None] = {}
    task = getattr(task, "base", task)  # a protocol's extraction wraps the task
    path_of = getattr(task, "path", None)
    if callable(path_of):
        for sp in dict.fromkeys([split] + (["train"] if shots else [])):
            try:
                paths[str(Path(path_of(sp)))] = None
            except (ValueError, OSError):  # a task whose default path does not apply
                pass
    for ex in examples:
        src = (ex.get("meta") or {}).get("source")
        if isinstance(src, str):
            paths.setdefault(src, None)
    files = []
    for p in paths:
        f = Path(p)
        if f.is_file():
            files.append({"path": str(f.resolve()), "bytes": f.stat().st_size, "sha256": file_sha256(f)})
    rows = [[e["id"], e["prompt"], e["gold"], {k: v for k, v in (e.get("meta") or {}).items()
                                               if k not in ("source", "line")}] for e in examples]
    return {"files": files, "examples": len(examples), "examples_sha256": json_sha256(rows)}


def prompt_hashes(cfg, task, backend, examples: list[dict]) -> dict:
    """A hash of every prompt the harness sends: the rendered text (local, raw completions) or the
    chat messages (endpoint) -- the same value a record's ``prompt`` field holds; rendered as the
    harness renders them (a protocol's wording, shots and raw text included)."""
    from ponder.evaluate.protocol import PromptBuilder
    from ponder.generate.backends import prompt

    built = PromptBuilder(cfg, getattr(task, "base", task), backend).prompts(examples)
    per: dict[str, str] = {}
    for i, ex in enumerate(examples):
        p = built[i] if built is not None else prompt(backend, ex["prompt"], cfg.system or None)
        per[ex["id"]] = json_sha256(p.text if p.text is not None else p.messages)[:PROMPT_DIGITS]
    return {"sha256": json_sha256(list(per.items())), "per_problem": per}


def inputs(cfg, task, examples: list[dict], backend) -> dict:
    """The hashable inputs of a run (what ``reproduce`` recomputes and compares)."""
    model = model_identity(cfg.model)
    tok_source = cfg.tokenizer or (model.get("path") if model["kind"] == "local" else None)
    gguf = any(str(s).endswith(".gguf") for s in (cfg.model, cfg.tokenizer))
    return {
        "ponder": {"version": versions()["ponder"], "git": git_state()},
        "python": platform.python_version(),
        "libraries": versions(endpoint=model["kind"] == "openai", gguf=gguf),
        "machine": machine(),
        "model": model,
        "tokenizer": tokenizer_identity(tok_source),
        "chat_template_sha256": chat_template_sha256(backend, model),
        "thinking": thinking_decision(backend),
        "data": data_identity(task, examples, cfg.split, getattr(cfg, "shots", 0)),
        "prompts": prompt_hashes(cfg, task, backend, examples),
    }


# ---------------------------------------------------------------------------- the card


def seeds(records: Iterable[dict], seed: int) -> dict:
    """The seed rule and, per problem, the seed of its samples (a list when they differ: a
    resumed run's new request got its own seed)."""
    by: dict[str, dict[int, Any]] = {}
    for r in records:
        by.setdefault(r["id"], {}).setdefault(r["sample"], r.get("seed"))
    per: dict[str, Any] = {}
    for pid in sorted(by):
        vals = [by[pid][j] for j in sorted(by[pid])]
        per[pid] = vals[0] if len(set(vals)) == 1 else vals
    return {"rule": SEED_RULE, "seed": seed, "per_problem": per}


def headline(metrics: dict) -> dict:
    """The numbers a card quotes: pass@1 (95% CI), pass@k, maj@k, strategy accuracy; per budget for a sweep."""
    if "sweep" in metrics:
        return {"sweep": [{k: row.get(k) for k in ("budget", "accuracy", "ci_low", "ci_high", "mean_reasoning_tokens")}
                          for row in metrics["sweep"]]}
    return {"pass@1": metrics["pass@1"], "pass@k": metrics["pass@k"], "maj@k": metrics["maj@k"],
            "strategy": {"name": metrics["strategy"]["name"], "accuracy": metrics["strategy"]["accuracy"]["mean"]},
            "complete_problems": metrics["complete_problems"], "n": metrics["n"],
            "failed_requests": metrics.get("failed_requests", 0)}


def sampling(cfg) -> dict:
    keys = ("temperature", "top_p", "max_tokens", "n", "seed", "thinking", "thinking_budget", "effort", "budgets",
            "min_thinking", "min_thinking_frac", "max_waits", "loop_guard", "extra_body", "stop")
    return {k: getattr(cfg, k) for k in keys}


def write_card(out: Path, cfg, task, examples: list[dict], backend, metrics: dict, samples: Path) -> Path:
    """Write ``out/card.json`` for a finished run whose sample records are in ``samples``."""
    from dataclasses import asdict

    from ponder.evaluate.protocol import record as protocol_record

    card = {
        "card_version": CARD_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **inputs(cfg, task, examples, backend),
        "config": asdict(cfg),
        "protocol": protocol_record(cfg),  # None without --protocol; else its source, file hash, overrides
        "sampling": sampling(cfg),
        "seeds": seeds(read_records(samples), cfg.seed),
        "metrics": headline(metrics),
    }
    write_json_atomic(out / CARD, card)
    return out / CARD


def load_card(path: str | os.PathLike) -> tuple[dict, Path]:
    """``(card, run directory)`` of a ``card.json`` or of a run directory holding one."""
    p = Path(path)
    f = p / CARD if p.is_dir() else p
    if not f.is_file():
        raise CardError(f"{path}: no such card (give a card.json or the eval run directory that holds it)")
    try:
        card = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CardError(f"{f}: not valid JSON ({getattr(e, 'msg', e)})") from None
    if not isinstance(card, dict):
        raise CardError(f"{f}: a card is a JSON object, got {type(card).__name__}")
    missing = [k for k in ("card_version", "config", "model", "prompts", "data", "metrics") if k not in card]
    if missing:
        raise CardError(f"{f}: not a ponder eval card (missing {', '.join(missing)})")
    if not isinstance(card["card_version"], int) or card["card_version"] > CARD_VERSION:
        raise CardError(f"{f}: card_version {card['card_version']!r} is newer than this ponder reads ({CARD_VERSION})")
    if not isinstance(card["config"], dict):
        raise CardError(f"{f}: config must be a JSON object")
    return card, f.parent
