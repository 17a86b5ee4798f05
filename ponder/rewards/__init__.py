"""Rewards for GRPO: plain functions with TRL's reward signature, and one registry of them.

Use them as they are with TRL::

    from ponder.rewards import parse_reward_spec
    funcs, weights = parse_reward_spec("accuracy=1, format=0.5, cosine(max_len=2048)=1")
    GRPOTrainer(model, reward_funcs=funcs, args=GRPOConfig(reward_weights=weights, ...), ...)

A spec item is ``name[(key=value, ...)][=weight]``: the parentheses build the reward with those
parameters (a registered class is its own factory: ``Cosine(max_len=2048)``), a missing weight
is 1, values are Python literals or bare words taken as strings (``template=r1-zero``). ``name``
is a registered reward (``ponder rewards list``), a dotted path to a user's own
(``mypkg.rewards:brevity``), or an ``http(s)://`` URL of a reward server (``ponder.rewards.remote``).
``docs/rewards.md`` has the formulas.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any, Callable, Iterable, Mapping

from ponder.registry import RegistryError
from ponder.rewards._inputs import RewardInputError
from ponder.rewards.functions import (
    REWARDS,
    Cosine,
    Format,
    LanguageConsistency,
    Overlong,
    TagCount,
    accuracy,
    correctness,
    length,
)

RewardFunc = Callable[..., list]


class UnknownRewardError(RegistryError):
    """A reward name that is neither registered nor a loadable dotted path."""


class RewardSpecError(ValueError):
    """A malformed reward spec string; the message quotes the offending part."""


def _split_top_level(spec: str) -> list[str]:
    """Split at commas outside parentheses and brackets: "cosine(max_len=9, x=[1, 2])=1, format"."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(spec):
        depth += 1 if c in "([{" else -1 if c in ")]}" else 0
        if depth < 0:
            raise RewardSpecError(f"unbalanced ')' in reward spec {spec!r}")
        if c == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    if depth:
        raise RewardSpecError(f"unbalanced '(' in reward spec {spec!r}")
    parts.append(spec[start:])
    return [p.strip() for p in parts]


def _value(text: str) -> Any:
    """A parameter value: a Python literal, else the text itself as a string (``r1-zero``)."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _params(name: str, inner: str) -> dict[str, Any]:
    params = {}
    for item in _split_top_level(inner) if inner.strip() else []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise RewardSpecError(f"bad parameters in reward spec {name}({inner}): {item!r} must be key=value")
        params[key.strip()] = _value(value)
    return params


def get_reward(spec: str) -> RewardFunc:
    """The reward named by ``spec`` (``name`` or ``name(key=value, ...)``; see the module docstring)."""
    text = spec.strip()
    base, paren, rest = text.partition("(")
    base = base.strip()
    if base.startswith(("http://", "https://")):
        from ponder.rewards.remote import RemoteReward

        return RemoteReward(base, **_params(base, rest.rstrip()[:-1] if paren else ""))
    try:
        obj = REWARDS.get(base)
    except RegistryError as e:
        raise UnknownRewardError(str(e).replace("unknown reward", "unknown reward")) from None
    if paren:
        if not rest.rstrip().endswith(")"):
            raise RewardSpecError(f"reward spec {text!r}: missing ')'")
        params = _params(base, rest.rstrip()[:-1])
        if not inspect.isclass(obj):
            raise RewardSpecError(f"reward {base!r} takes no parameters (in {text!r})")
        try:
            return obj(**params)
        except (TypeError, ValueError) as e:
            raise RewardSpecError(f"bad parameters in reward spec {text!r}: {e}") from None
    return obj() if inspect.isclass(obj) else obj


def combine(
    names_and_weights: Mapping[str, float] | Iterable[tuple[str, float]],
) -> tuple[list[RewardFunc], list[float]]:
    """``(funcs, weights)`` for ``GRPOTrainer(reward_funcs=funcs)`` and ``GRPOConfig(reward_weights=weights)``."""
    items = list(names_and_weights.items() if isinstance(names_and_weights, Mapping) else names_and_weights)
    if not items:
        raise RewardSpecError("no rewards given")
    funcs, weights, seen = [], [], set()
    for name, weight in items:
        key = name.replace(" ", "")
        if key in seen:
            raise RewardSpecError(f"reward {name!r} is listed twice")
        seen.add(key)
        funcs.append(get_reward(name))
        weights.append(float(weight))
    return funcs, weights


def parse_reward_spec(spec: str) -> tuple[list[RewardFunc], list[float]]:
    """Parse ``"accuracy=1,format=0.5,cosine(max_len=2048)"`` into ``(funcs, weights)``."""
    items = []
    for part in _split_top_level(spec):
        if not part:
            raise RewardSpecError(f"empty item in reward spec {spec!r}")
        close = part.rfind(")")
        scheme = part.find("://")  # a URL's "://" is not a weight's '='
        eq = part.find("=", max(close + 1, scheme + 3 if scheme >= 0 and close < 0 else 0))
        name, weight = (part[:eq].strip(), part[eq + 1:].strip()) if eq >= 0 else (part, "1")
        try:
            value = float(weight)
        except ValueError:
            raise RewardSpecError(f"weight of {name!r} must be a number, got {weight!r}") from None
        items.append((name, value))
    return combine(items)


def describe() -> list[dict[str, Any]]:
    """Every registered reward: name, parameters with defaults, the one-line formula."""
    out = []
    for name, obj in REWARDS.items():
        doc = inspect.getdoc(obj) or ""
        formula = next((ln.strip() for ln in doc.splitlines() if ln.strip().startswith("r =")), doc.splitlines()[0])
        params = {}
        if inspect.isclass(obj):
            for p in list(inspect.signature(obj.__init__).parameters.values())[1:]:
                if p.name != "name" and p.kind is p.POSITIONAL_OR_KEYWORD:
                    params[p.name] = p.default
        out.append({"name": name, "parameters": params, "formula": formula, "summary": doc.splitlines()[0]})
    return out


__all__ = [
    "REWARDS", "Cosine", "Format", "LanguageConsistency", "Overlong", "RewardFunc", "RewardInputError",
    "RewardSpecError", "TagCount", "UnknownRewardError", "accuracy", "combine", "correctness", "describe",
    "get_reward", "length", "parse_reward_spec",
]
