"""Typed configs: dataclasses with help text on every field, loaded from YAML, overridden from the CLI.

A config class is a plain ``@dataclass`` whose fields carry ``metadata={"help": …}`` (use
``option(default, "help")``). The same class is

* the CLI: ``ponder.cli.configcli.command`` turns every field into a typed ``--option`` with its help,
* the recipe format: a YAML mapping whose keys are field names (unknown keys are an error that
  names the key and lists the valid ones — a typo must never be silently ignored),
* the record: ``asdict(cfg)`` is saved beside every checkpoint as ``ponder_config.json``.

An option several commands declare with the same meaning takes its text from ``SHARED_HELP``
(``shared("threads", 0)``), so it reads the same in every command. Options that recur together
are groups here (``ModelOptions``, ``SamplingOptions``, ``PromptOptions``, ``RunOptions``,
``FineTuneOptions``) that a command's config inherits; a subclass takes its bases' options
first, in their order, and a field it declares again (a command's own default) keeps that place.
``check_range`` is the one "must be >= 1" check, ``check_given`` the one "no model given".
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml

C = TypeVar("C")


class ConfigError(ValueError):
    """A config value or recipe file is wrong; the message names the key."""


def option(default: Any, help: str, **kw) -> Any:
    """A dataclass field with a default and its help text (shown by ``--help``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


#: Help texts of options that several config classes declare with the same meaning, keyed by the
#: field name: each says its text once, so the commands' ``--help`` pages cannot drift apart.
SHARED_HELP: dict[str, str] = {
    "model": "Local checkpoint directory, a .gguf file (run by llama.cpp in-process), or openai:<model>@<base_url> "
             "for an OpenAI-compatible server.",
    "task": "Task spec (ponder tasks list), e.g. addition:digits=3, countdown, gsm8k or jsonl:path=f.jsonl.",
    "split": "Task split: train or test.",
    "limit": "Only the first LIMIT problems of the split.",
    "n": "Samples per problem.",
    "batch_prompts": "Problems per generation call.",
    "temperature": "Sampling temperature (0 = greedy).",
    "top_p": "Nucleus sampling threshold (1 = off).",
    "max_tokens": "Most generated tokens per sample (with a thinking budget: per answer).",
    "seed": "Random seed (sampling, data order, initial weights).",
    "thinking": "Thinking mode: auto (decided from the model), on (pre-fill <think>) or off.",
    "system": "System prompt ('' = none; r1, r1-zero: R1's prompts).",
    "template": "Answer format: think (<think>…</think>answer) or r1-zero (the answer in <answer> tags).",
    "extra_body": "Endpoints: a JSON object merged into every request (server-specific fields, e.g. '{\"top_k\": 0}').",
    "timeout": "Endpoints: seconds per request before it is abandoned.",
    "tokenizer": "Endpoints: the served model's tokenizer (a directory or .gguf file): ponder renders the prompt and "
                 "generates through /v1/completions, with exact thinking budgets and budget forcing.",
    "out": "Run directory: checkpoints, metrics.jsonl and final/ go here.",
    "save_every": "Checkpoint every N steps (a killed run resumes from the last one).",
    "warmup_steps": "Linear warm-up steps.",
    "threads": "torch CPU threads (0 = auto: torch's count, cut to the cores no other job is running on, re-checked every step).",
    "device": "cpu: the CPU flags (use_cpu, no bf16, no gradient checkpointing); auto: TRL's defaults (GPU).",
    "lora": "LoRA adapter instead of full fine-tuning: a preset (default, small, attn) and/or "
            "r=16,alpha=32,dropout=0,targets=all-linear; '' = full fine-tuning.",
}


def shared(name: str, default: Any) -> Any:
    """``option(default, SHARED_HELP[name])`` for the field ``name`` (the metadata records ``name``,
    so a field declared under another name than its text's is caught by the tests)."""
    return option(default, SHARED_HELP[name], shared=name)


# The groups of options that recur across commands, each field with one help text. A command's
# config inherits the groups it has; a field it declares again (``shared(name, its_default)``)
# takes the command's own default and keeps the group's place.


@dataclass
class ModelOptions:
    """The model to query: a checkpoint or an endpoint, and what an endpoint needs."""

    model: str = shared("model", "")
    extra_body: str = shared("extra_body", "")
    tokenizer: str = shared("tokenizer", "")


@dataclass
class SamplingOptions:
    """How each completion is sampled."""

    temperature: float = shared("temperature", 0.6)
    top_p: float = shared("top_p", 0.95)
    max_tokens: int = shared("max_tokens", 256)
    seed: int = shared("seed", 0)


@dataclass
class PromptOptions:
    """How each prompt is framed."""

    system: str = shared("system", "")
    thinking: str = shared("thinking", "auto")


@dataclass
class RunOptions:
    """Where a training run writes, how often it checkpoints, its threads and seed."""

    out: str = shared("out", "runs/train")
    save_every: int = shared("save_every", 50)
    threads: int = shared("threads", 0)
    seed: int = shared("seed", 0)


@dataclass
class FineTuneOptions(RunOptions):
    """What a run that trains an existing checkpoint adds: its start, device and LoRA."""

    model: str = option("", "Checkpoint directory to start from (a base model, or an earlier stage's final/).")
    device: str = shared("device", "cpu")
    lora: str = shared("lora", "")


#: What a user passes for a required option left empty (``check_given``).
_HOW_TO_GIVE = {
    "model": "pass a checkpoint directory or openai:<model>@<base_url>",
    "task": "pass --task (see `ponder tasks list`)",
}


def check_given(cfg: Any, names: Iterable[str], error: type[Exception] = ConfigError) -> None:
    """``error`` naming the first field of ``names`` left empty: "no model given: pass a checkpoint …"."""
    for name in names:
        if not getattr(cfg, name):
            raise error(f"no {name} given: {_HOW_TO_GIVE[name]}")


def check_range(cfg: Any, names: Iterable[str], low: float, high: float | None = None,
                error: type[Exception] = ConfigError) -> None:
    """``error`` naming the first field of ``names`` below ``low`` (or above ``high``), e.g. "n must
    be >= 1, got 0" or "min_thinking_frac must be in [0, 1], got 2"; an unset (None) field passes."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and (value < low or (high is not None and value > high)):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise error(f"{name} must be {bound}, got {value}")


def check_choice(cfg: Any, name: str, choices: tuple[str, ...], where: str = "",
                 error: type[Exception] = ConfigError) -> None:
    """``error`` unless field ``name`` is one of ``choices``: "<where>device must be cpu or auto, got 'gpu'"."""
    value = getattr(cfg, name)
    if value not in choices:
        listed = f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise error(f"{where}{name} must be {listed}, got {value!r}")


def _base_type(tp):
    """``int | None`` → int; ``list[str]`` stays; used to coerce strings from the command line."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    return tp


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a ``key=value`` string) to field type ``tp``."""
    if value is None:
        return None
    base = _base_type(tp)
    origin = typing.get_origin(base)
    try:
        if origin is list:
            (item,) = typing.get_args(base) or (str,)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return [coerce(v, item, key) for v in value]
        if origin is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping, got {value!r}")
            return dict(value)
        if base is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int:
            # accept "1e3" and 1000.0 from YAML/CLI, but never truncate 2.5 to 2
            number = float(value) if isinstance(value, (str, float)) else value
            if isinstance(value, bool) or int(number) != number:
                raise ValueError(value)
            return int(number)
        if base in (float, str):
            return base(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not a valid {getattr(base, '__name__', base)}") from None
    return value


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build ``cls`` from a mapping, coercing types; unknown keys are an error naming them."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of options, got {type(data).__name__}")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    hints = _hints(cls)
    kwargs = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    missing = [n for n, f in names.items() if n not in kwargs and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required option(s) {', '.join(missing)}")
    return cls(**kwargs)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to a nested mapping (values parsed as YAML scalars)."""
    out = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. grpo.steps=50)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if not isinstance(child, dict):
                child = {}
            node[p] = child = dict(child)
            node = child
        node[parts[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is a ConfigError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    return data


def help_of(cls, name: str) -> str:
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)


