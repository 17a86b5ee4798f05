"""LoRA adapters (PEFT): the ``--lora`` spec, adapter directories as models, merging.

**The spec.** ``--lora r=16,alpha=32,dropout=0,targets=all-linear`` on ``ponder train sft|grpo|
distill`` (and ``lora:`` in recipes) is parsed into ``LoraSpec``; a preset name may start it
(``default``, ``small``, ``attn``; ``small,r=4`` overrides one field). ``targets`` is PEFT's
``all-linear`` (every linear layer but the output head) or module names joined by ``+`` or ``,``
(``targets=q_proj,v_proj``: a piece without ``=`` continues ``targets``). ``""``/``none``/``off``
is no LoRA (full fine-tuning). ``lora_config`` maps the spec onto PEFT's ``LoraConfig``, which
TRL's trainers take as ``peft_config``.

**Adapter directories.** A LoRA stage saves ``final/`` in PEFT's format: ``adapter_config.json``
(``base_model_name_or_path`` is the base checkpoint's absolute path) and
``adapter_model.safetensors``, plus the tokenizer and ``ponder_adapter.json`` (ponder's model
settings such as ``ponder_thinking``, which PEFT's config has no place for). Every command that
takes MODEL accepts such a directory: ``ponder.models.build.load`` loads the base, applies the
adapter and merges it (inference then costs what the base costs). A relative base path is
resolved against the adapter directory first, then the working directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ponder.config import ConfigError, from_dict, option
from ponder.models.build import TOKENIZER_FILES, ModelLoadError, save
from ponder.models.build import check_checkpoint as check_plain
from ponder.models.build import load as load_plain

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PONDER_ADAPTER = "ponder_adapter.json"
OFF = ("", "none", "off", "false", "0")


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA adapter's shape: ``W' = W + (alpha / r) · B A`` with ``A`` [r, in], ``B`` [out, r]."""

    r: int = option(16, "Rank of the low-rank update (trainable parameters grow linearly with it).")
    alpha: float = option(32.0, "Scale numerator: the update is multiplied by alpha / r.")
    dropout: float = option(0.0, "Dropout on the adapter's input during training (0 = none).")
    targets: str = option("all-linear", "Modules to adapt: all-linear (every linear layer but lm_head) or names joined by + or ,.")

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora.r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise ConfigError(f"lora.alpha must be > 0, got {self.alpha:g}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout:g}")
        names = self.target_list()
        if not names or any(not n.replace("_", "").replace(".", "").replace("-", "").isalnum() for n in names):
            raise ConfigError(f"lora.targets {self.targets!r}: give all-linear or module names like q_proj+v_proj")

    def target_list(self) -> list[str]:
        return [t.strip() for t in self.targets.replace("+", ",").split(",") if t.strip()]

    def __str__(self) -> str:
        targets = "+".join(self.target_list())
        return f"r={self.r},alpha={self.alpha:g},dropout={self.dropout:g},targets={targets}"


#: named specs: ``--lora default`` (and ``--lora small,r=4`` to change one field)
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # r=16, alpha=32, all linear layers: the usual starting point (TRL's and open-r1's docs)
    "small": {"r": 8, "alpha": 16},
    "attn": {"targets": "q_proj+k_proj+v_proj+o_proj"},  # the original LoRA paper's choice: attention only
}

KEYS = tuple(f.name for f in fields(LoraSpec))


def parse_lora(spec: str | dict | LoraSpec | None) -> LoraSpec | None:
    """``spec`` (see the module docstring) as a ``LoraSpec``, or None for no LoRA.

    A YAML mapping ``{r: 8, alpha: 16}`` is accepted too. Errors are one-line ``ConfigError``s
    naming the bad key or value."""
    if spec is None or isinstance(spec, LoraSpec):
        return spec
    if isinstance(spec, dict):
        return from_dict(LoraSpec, dict(spec), where="lora")
    if not isinstance(spec, str):
        raise ConfigError(f"lora: expected a spec string like r=16,alpha=32, got {type(spec).__name__}")
    text = spec.strip()
    if text.lower() in OFF:
        return None
    values: dict[str, Any] = {}
    last = None
    for i, piece in enumerate(p.strip() for p in text.split(",")):
        if not piece:
            continue
        if "=" not in piece:
            if i == 0 and piece in PRESETS:
                values.update(PRESETS[piece])
                continue
            if last == "targets":  # targets=q_proj,v_proj
                values["targets"] += "," + piece
                continue
            what = "preset" if i == 0 else "piece"
            raise ConfigError(f"lora: unknown {what} {piece!r} (presets: {', '.join(PRESETS)}; "
                              f"or key=value with keys {', '.join(KEYS)})")
        key, value = (s.strip() for s in piece.split("=", 1))
        key = {"rank": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "target_modules": "targets"}.get(key, key)
        if key not in KEYS:
            raise ConfigError(f"lora: unknown key {key!r} in {text!r}; valid: {', '.join(KEYS)}")
        if value == "":
            raise ConfigError(f"lora: {key} has no value in {text!r}")
        values[key], last = value, key
    return from_dict(LoraSpec, values, where="lora")


def normalise(spec: str | dict | LoraSpec | None) -> str:
    """The canonical spec string (what configs record): ``""`` for no LoRA."""
    parsed = parse_lora(spec)
    return "" if parsed is None else str(parsed)


def lora_config(spec: LoraSpec):
    """PEFT's ``LoraConfig`` for ``spec`` (causal LM, no bias training)."""
    from peft import LoraConfig

    targets = spec.target_list()
    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules="all-linear" if targets == ["all-linear"] else targets,
                      bias="none", task_type="CAUSAL_LM")


def matches(adapter_cfg: dict, spec: LoraSpec) -> list[str]:
    """Fields where an adapter's saved config differs from ``spec`` ("key: saved -> asked")."""
    saved = {"r": adapter_cfg.get("r"), "alpha": adapter_cfg.get("lora_alpha"),
             "dropout": adapter_cfg.get("lora_dropout")}
    asked = {"r": spec.r, "alpha": spec.alpha, "dropout": spec.dropout}
    diff = [f"{k}: {saved[k]} -> {asked[k]}" for k in saved if saved[k] is not None and float(saved[k]) != float(asked[k])]
    targets = spec.target_list()
    if targets != ["all-linear"]:
        have = adapter_cfg.get("target_modules") or []
        if sorted(set(have if isinstance(have, list) else [have])) != sorted(set(targets)):
            diff.append(f"targets: {have} -> {targets}")
    return diff


# --------------------------------------------------------------------------- adapter directories


def is_adapter(path: str | os.PathLike) -> bool:
    """``path`` is a PEFT adapter directory (an ``adapter_config.json`` and no ``config.json``)."""
    p = Path(path).expanduser()
    return (p / ADAPTER_CONFIG).is_file() and not (p / "config.json").is_file()


def adapter_config(path: str | os.PathLike) -> dict:
    f = Path(path).expanduser() / ADAPTER_CONFIG
    try:
        cfg = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelLoadError(f"{f}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{f}: not a JSON object")
    return cfg


def base_of(path: str | os.PathLike) -> Path:
    """The base checkpoint an adapter was trained on (``base_model_name_or_path``), resolved;
    a ``ModelLoadError`` naming both paths when it is missing."""
    p = Path(path).expanduser()
    cfg = adapter_config(p)
    if (cfg.get("peft_type") or "LORA").upper() != "LORA":
        raise ModelLoadError(f"{p}: a {cfg.get('peft_type')} adapter; ponder loads LoRA adapters only")
    if not any((p / w).is_file() for w in ADAPTER_WEIGHTS):
        raise ModelLoadError(f"{p}: adapter_config.json but no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ModelLoadError(f"{p}/{ADAPTER_CONFIG}: no base_model_name_or_path, so the base model is unknown")
    b = Path(base).expanduser()
    candidates = [b] if b.is_absolute() else [p / b, Path.cwd() / b]
    for c in candidates:
        if (c / "config.json").is_file():
            return c.resolve()
    raise ModelLoadError(f"{p}: the adapter's base model {base!r} is missing (looked at "
                         f"{', '.join(str(c) for c in candidates)}); restore it or fix base_model_name_or_path "
                         f"in {ADAPTER_CONFIG}")


def _tokenizer_dir(adapter: Path, base: Path) -> Path:
    return adapter if any((adapter / f).is_file() for f in TOKENIZER_FILES) else base


def load_peft(path: str | os.PathLike, device: str = "cpu", dtype=None, trainable: bool = False):
    """``(PeftModel, tokenizer)``: the base checkpoint with the adapter at ``path`` applied, unmerged.

    ``trainable``: the adapter's parameters require grad (to keep training it)."""
    import torch
    from peft import PeftModel

    p = Path(path).expanduser().resolve()
    base_dir = base_of(p)
    base, tok = load_plain(base_dir, device=device, dtype=dtype or torch.float32)
    if _tokenizer_dir(p, base_dir) == p:
        tok = load_tokenizer(p)
    try:
        model = PeftModel.from_pretrained(base, str(p), is_trainable=trainable)
    except Exception as e:  # PEFT raises KeyError/RuntimeError/ValueError on a mismatched adapter
        raise ModelLoadError(f"{p}: cannot apply the adapter to {base_dir} ({type(e).__name__}: {str(e)[:200]})") from None
    settings = read_settings(p)
    for k, v in settings.get("config", {}).items():
        setattr(model.get_base_model().config, k, v)
    if not trainable:
        model.eval()
    return model, tok


def load(path: str | os.PathLike, device: str = "cpu", dtype=None):
    """``(model, tokenizer)`` of a checkpoint directory or an adapter directory (merged onto its
    base), in eval mode; what ``ponder.models.load`` is. Errors are ``ModelLoadError``s."""
    import torch

    if is_adapter(path):
        return load_merged(path, device=device, dtype=dtype)
    return load_plain(path, device=device, dtype=dtype or torch.float32)


def check_checkpoint(path: str | os.PathLike) -> Path:
    """``build.check_checkpoint`` that also accepts an adapter directory whose base checks out."""
    if isinstance(path, (str, os.PathLike)) and is_adapter(path):
        check_plain(base_of(path))
        return Path(path).expanduser().resolve()
    return check_plain(path)


def load_merged(path: str | os.PathLike, device: str = "cpu", dtype=None):
    """``(model, tokenizer)``: base + adapter merged into plain weights (what inference loads)."""
    model, tok = load_peft(path, device=device, dtype=dtype)
    merged = model.merge_and_unload()
    merged.config._name_or_path = str(Path(path).expanduser().resolve())
    return merged.eval(), tok


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot load the tokenizer ({type(e).__name__}: {e})") from None


#: attributes ponder sets on a model's config (``ponder.train.common.record_thinking``, effort tables)
PONDER_CONFIG_KEYS = ("ponder_thinking", "ponder_effort_budgets")


def save_adapter(model, tokenizer, out: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """Save a ``PeftModel``'s adapter in PEFT's format with the tokenizer and ponder's settings.

    The recorded base is made absolute (a relative one would resolve against whatever directory
    a later command runs in)."""
    out = Path(out)
    inner = model.get_base_model()
    for cfg in model.peft_config.values():
        b = base or cfg.base_model_name_or_path
        if b and Path(b).expanduser().exists():
            cfg.base_model_name_or_path = str(Path(b).expanduser().resolve())
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    trainable, total = trainable_params(model)
    settings = {"config": {k: getattr(inner.config, k) for k in PONDER_CONFIG_KEYS if hasattr(inner.config, k)},
                "trainable_params": trainable, "total_params": total}
    (out / PONDER_ADAPTER).write_text(json.dumps(settings, indent=2, default=str))
    return out


def read_settings(path: Path) -> dict:
    try:
        return json.loads((path / PONDER_ADAPTER).read_text())
    except (OSError, ValueError):
        return {}


def trainable_params(model) -> tuple[int, int]:
    """(parameters that require grad, all parameters) of ``model``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def effective_weight(linear):
    """The weight ``linear`` applies: its own, or for a PEFT LoRA layer the base weight plus the
    active adapters' ``scale · B A`` (a new tensor; the layer is left unmerged)."""
    base = getattr(linear, "base_layer", None)
    if base is None or not hasattr(linear, "get_delta_weight"):
        return linear.weight
    w = base.weight
    if getattr(linear, "merged", False) or getattr(linear, "disable_adapters", False):
        return w
    for name in linear.active_adapters:
        if name in getattr(linear, "lora_A", {}):
            w = w + linear.get_delta_weight(name)
    return w


# --------------------------------------------------------------------------- merge


def merge(adapter: str | os.PathLike, out: str | os.PathLike, check: bool = True) -> dict[str, Any]:
    """Write base + adapter as a plain checkpoint (weights, tokenizer, chat template) into ``out``.

    With ``check`` the result is reloaded and its logits compared with the unmerged PEFT model's
    on a probe batch; returns ``{"out", "base", "max_abs_diff"?}``."""
    import torch

    src = Path(adapter).expanduser()
    if not is_adapter(src):
        raise ModelLoadError(f"{src}: not an adapter directory (no {ADAPTER_CONFIG}, or it has a config.json)")
    dst = Path(out).expanduser()
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ModelLoadError(f"{dst}: exists and is not an empty directory")
    peft_model, tok = load_peft(src)
    probe = None
    if check:
        ids = tok("What is 17 + 25? <think>", return_tensors="pt")["input_ids"]
        probe = torch.cat([ids, ids.flip(-1)])  # two rows
        with torch.no_grad():
            want = peft_model(input_ids=probe).logits
    base = str(base_of(src))
    merged = peft_model.merge_and_unload()
    merged.config._name_or_path = str(dst.resolve())
    save(merged, tok, dst)
    result: dict[str, Any] = {"out": str(dst), "base": base}
    if check:
        again, _ = load_plain(dst)
        with torch.no_grad():
            got = again(input_ids=probe).logits
        result["max_abs_diff"] = float((got - want).abs().max())
        result["probe_tokens"] = int(probe.numel())
    return result
