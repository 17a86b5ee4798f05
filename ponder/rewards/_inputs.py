"""Turn what TRL's GRPOTrainer passes a reward function into plain per-sample values.

TRL 1.16 calls every reward function as::

    reward(prompts=[...], completions=[...], completion_ids=[[int, ...], ...],
           <every dataset column except "prompt" as a list>, trainer_state=..., log_extra=...,
           log_metric=..., [environments=...])

All lists are flat: the G completions of one prompt sit next to each other and share the same
``prompts`` entry. ``completions`` are plain strings for a standard dataset and one-message
lists ``[{"role": "assistant", "content": ...}]`` for a conversational one; when the tokenizer has a
response schema the reasoning arrives split into ``reasoning_content`` (or ``thinking``). This
module accepts all of these and never guesses silently: malformed input raises
``RewardInputError`` naming the column and the problem.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Sequence

from ponder.format import THINK_CLOSE, ends_in_think

log = logging.getLogger("ponder.rewards")
#: the columns a gold answer may come in, in order (TRL and open-r1 datasets name it "solution")
GOLD_COLUMNS = ("gold", "solution")
_warned: set[str] = set()

# Keys under which a response parser (TRL's response schemas, vLLM) puts the split-off reasoning.
_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


class RewardInputError(ValueError):
    """A reward function got input it cannot use; the message names the column and the problem."""


def _message_text(msg: dict) -> tuple[str, bool]:
    """Text of one chat message; True when the reasoning came split off by a response parser."""
    content = msg.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):  # multimodal content parts: keep the text parts
        text = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    else:
        raise RewardInputError(f"completion message content must be a string, got {type(content).__name__}")
    for key in _REASONING_KEYS:
        if key in msg:
            # The parser already cut the think block out; put it back in the pre-filled shape
            # ("R</think>A") because where the opening tag was is no longer known.
            return f"{msg[key] or ''}{THINK_CLOSE}{text}", True
    return text, False


def completion_text(completion: Any) -> tuple[str, bool]:
    """``(text, split)`` for one completion, string or conversational.

    For a message list the last assistant message is used (with tool calls, earlier assistant
    turns are intermediate steps, and the final answer is in the last one). ``split`` is True
    when the reasoning came as a separate message field, which means the opening ``<think>``
    was consumed by the parser and must be treated as pre-filled.
    """
    if isinstance(completion, str):
        return completion, False
    if isinstance(completion, dict):
        return _message_text(completion)
    if isinstance(completion, (list, tuple)):
        msgs = [m for m in completion if isinstance(m, dict)]
        if len(msgs) != len(completion):
            raise RewardInputError("a conversational completion must be a list of message dicts")
        assistant = [m for m in msgs if m.get("role", "assistant") == "assistant"]
        if not assistant:
            return "", False
        return _message_text(assistant[-1])
    raise RewardInputError(
        f"a completion must be a string or a list of chat messages, got {type(completion).__name__}"
    )


def column(kwargs: dict, name: str, n: int) -> list:
    """Column ``name`` as a list of ``n`` values: a list is checked, a scalar is broadcast, absent -> Nones."""
    value = kwargs.get(name)
    if value is None:
        return [None] * n
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise RewardInputError(f"column {name!r} has {len(value)} values for {n} completions")
        return list(value)
    return [value] * n


def flags(kwargs: dict, name: str, n: int) -> list[bool | None]:
    """A boolean column; rejects strings such as "false" that ``bool()`` would turn into True."""
    out = column(kwargs, name, n)
    for v in out:
        if v is not None and not isinstance(v, bool):
            raise RewardInputError(f"column {name!r} must hold booleans (or None), got {v!r}")
    return out


def templates(kwargs: dict, default: str, n: int) -> list[str]:
    """The ``template`` column ("think", "r1-zero", "auto"), defaulting to ``default``."""
    out = [default if t is None else t for t in column(kwargs, "template", n)]
    for t in out:
        if t not in ("auto", "think", "r1-zero"):
            raise RewardInputError(f"column 'template' must be 'auto', 'think' or 'r1-zero', got {t!r}")
    return out


def prefilled(flag: bool | None, prompt: Any, split: bool) -> bool:
    """Whether the completion starts inside the reasoning: the prompt really ended in ``<think>``.

    Reasoning split off by a response parser means the opening tag was consumed (True). Else an
    explicit ``prefilled_think`` flag wins; else a string prompt that ends in ``<think>``
    (``ponder.format.ends_in_think``). Nothing is guessed from the completion: a completion that
    closes a think block nobody opened ("R</think>A" after a plain prompt) is not well formed.
    Chat templates that append ``<think>`` themselves (DeepSeek-R1-Distill, Qwen3) are invisible
    in conversational prompts: pass the flag for those.
    """
    if split:
        return True
    if flag is not None:
        return flag
    return ends_in_think(prompt)


def read(completions: Sequence, kwargs: dict) -> tuple[list[str], list[bool]]:
    """Texts of all completions and whether each starts inside the reasoning."""
    if not isinstance(completions, (list, tuple)):
        raise RewardInputError(f"completions must be a list, got {type(completions).__name__}")
    n = len(completions)
    prompts = column(kwargs, "prompts", n)
    flag_col = flags(kwargs, "prefilled_think", n)
    texts, pre = [], []
    for c, flag, prompt in zip(completions, flag_col, prompts):
        text, split = completion_text(c)
        texts.append(text)
        pre.append(prefilled(flag, prompt, split))
    return texts, pre


def golds(kwargs: dict, n: int) -> list:
    """The gold column: ``gold``, else ``solution``; says once which one is used, and warns once
    when neither is present (the correctness rewards then return None for every sample)."""
    for name in GOLD_COLUMNS:
        if kwargs.get(name) is not None:
            if name != "gold" and name not in _warned:
                _warned.add(name)
                log.info("rewards read the gold answers from column %r", name)
            return column(kwargs, name, n)
    if "missing" not in _warned:
        _warned.add("missing")
        log.warning("no gold column (gold or solution) in the reward inputs: accuracy-based rewards are None "
                    "for every sample, so they give no learning signal")
    return [None] * n


def lengths(texts: list[str], kwargs: dict) -> list[int]:
    """Completion lengths: tokens when TRL passed ``completion_ids``, else characters."""
    ids = kwargs.get("completion_ids")
    if ids is None:
        return [len(t) for t in texts]
    if len(ids) != len(texts):
        raise RewardInputError(f"completion_ids has {len(ids)} entries for {len(texts)} completions")
    return [len(x) for x in ids]


def group_keys(kwargs: dict, n: int) -> list[str]:
    """One key per completion; completions of the same prompt share it (TRL repeats the prompt G times)."""
    prompts = kwargs.get("prompts")
    if prompts is None:
        raise RewardInputError("this reward compares completions of the same prompt: pass `prompts`")
    return [p if isinstance(p, str) else json.dumps(p, sort_keys=True, default=str)
            for p in column(kwargs, "prompts", n)]


def meta_dict(value: Any, index: int) -> dict:
    """A ``meta`` cell as a dict: a dict, a JSON object string, or None (-> {})."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            out = json.loads(value)
        except json.JSONDecodeError as e:
            raise RewardInputError(f"meta of sample {index} is not valid JSON: {e}") from None
        if isinstance(out, dict):
            return out
    raise RewardInputError(f"meta of sample {index} must be a dict or a JSON object, got {value!r:.80}")
