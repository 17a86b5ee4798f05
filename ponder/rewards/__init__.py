"""Rewards for GRPO: plain functions with TRL's reward signature, and one registry of them.

Use them as they are with TRL::

    from ponder.rewards import parse_reward_spec
    funcs, weights = parse_reward_spec("accuracy=1, format=0.5, cosine(max_len=2048)=1")
    GRPOTrainer(model, reward_funcs=funcs, args=GRPOConfig(reward_weights=weights, ...), ...)

A spec item is ``name[(key=value, ...)][=weight]``: the parentheses call the reward's factory
(``make_cosine(max_len=2048)``), and a missing weight is 1. ``docs/rewards.md`` has the formulas.
"""

from __future__ import annotations

import ast
from typing import Callable, Iterable, Mapping

from ponder.rewards._inputs import RewardInputError
from ponder.rewards.functions import (
    FACTORIES,
    accuracy,
    cosine,
    format_reward,
    language_consistency,
    length,
    make_cosine,
    make_format,
    make_language_consistency,
    make_overlong,
    make_tag_count,
    overlong,
    tag_count,
)

RewardFunc = Callable[..., list]

# The one name -> reward table. Parametrised rewards appear with their default parameters.
REWARDS: dict[str, RewardFunc] = {
    "accuracy": accuracy,
    "format": format_reward,
    "tag_count": tag_count,
    "language_consistency": language_consistency,
    "length": length,
    "overlong": overlong,
    "cosine": cosine,
}


class UnknownRewardError(KeyError, ValueError):
    """A reward name that is not in ``REWARDS``; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class RewardSpecError(ValueError):
    """A malformed reward spec string; the message quotes the offending part."""


def _literal(node: ast.expr) -> object:
    """A factory argument: a Python literal, or a bare word taken as a string (``script=cjk``)."""
    if isinstance(node, ast.Name):
        return node.id
    return ast.literal_eval(node)


def get_reward(name: str) -> RewardFunc:
    """The reward called ``name``, or built by its factory from ``name(key=value, ...)``."""
    text = name.strip()
    base = text.split("(", 1)[0].strip()
    if base not in REWARDS:
        raise UnknownRewardError(f"unknown reward {base!r}; known rewards: {', '.join(REWARDS)}")
    if "(" not in text:
        return REWARDS[base]
    if base not in FACTORIES:
        raise RewardSpecError(f"reward {base!r} takes no parameters (in {text!r})")
    try:
        call = ast.parse(text, mode="eval").body
        if not isinstance(call, ast.Call) or call.args:
            raise ValueError("parameters must be given as key=value")
        params = {kw.arg: _literal(kw.value) for kw in call.keywords}
        return FACTORIES[base](**params)
    except (SyntaxError, ValueError, TypeError) as e:
        raise RewardSpecError(f"bad parameters in reward spec {text!r}: {e}") from None


def _split_top_level(spec: str) -> list[str]:
    """Split at commas outside parentheses: "cosine(max_len=9, min_value_wrong=-1)=1, format"."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(spec):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0:
            raise RewardSpecError(f"unbalanced ')' in reward spec {spec!r}")
        if c == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    if depth:
        raise RewardSpecError(f"unbalanced '(' in reward spec {spec!r}")
    parts.append(spec[start:])
    return [p.strip() for p in parts]


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
        eq = part.find("=", close + 1)  # the weight's '=' comes after any parameter list
        name, weight = (part[:eq].strip(), part[eq + 1:].strip()) if eq >= 0 else (part, "1")
        try:
            value = float(weight)
        except ValueError:
            raise RewardSpecError(f"weight of {name!r} must be a number, got {weight!r}") from None
        items.append((name, value))
    return combine(items)


__all__ = [
    "REWARDS", "FACTORIES", "RewardFunc", "RewardInputError", "RewardSpecError", "UnknownRewardError",
    "get_reward", "combine", "parse_reward_spec", "accuracy", "format_reward", "tag_count",
    "language_consistency", "length", "overlong", "cosine", "make_format", "make_tag_count",
    "make_language_consistency", "make_overlong", "make_cosine",
]
