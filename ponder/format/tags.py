"""The tags of the reasoning format, and the one test of whether a prompt opened a think block."""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def ends_in_think(prompt: object) -> bool:
    """True when a rendered prompt string ends inside an open think block (``…<think>`` or
    ``…<think>\\n``): the completion then starts inside the reasoning.

    This is the only definition of "pre-filled" for a string prompt: what the prompt text really
    ends in, never a guess from the completion. A chat-message prompt (a list) is rendered by a
    server, so nothing is known about it here (False; see ``ponder.format.render``).
    """
    return isinstance(prompt, str) and prompt.rstrip().endswith(THINK_OPEN)
