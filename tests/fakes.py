"""Test doubles shared by the test modules: scripted backends that implement the ``Backend``
protocol's attributes, so ponder's code reads them exactly as it reads a real backend's.

    class Scripted(FakeBackend):
        def generate(self, prompts, n=1, sampling=None, budget=None): ...

``FakeBackend(remote=True)`` (the default) behaves like an endpoint: prompts arrive as chat
messages (``question_of`` gives the last user turn) and completions are parsed from an unknown
start. ``remote=False`` is a local, token-level backend: prompts are rendered strings.
"""

from __future__ import annotations

import re

from ponder.format import Thinking, decide_thinking
from ponder.generate.types import DEFAULT_EFFORT_BUDGETS, Capabilities, estimate_tokens


def question_of(prompt) -> str:
    """The question of a prompt a backend received: the last user turn of a message list, or of
    a prompt rendered in ponder's plain layout ("User: Q\nAssistant: "), else the string itself."""
    if isinstance(prompt, str):
        turns = re.findall(r"User: (.*?)\nAssistant: ", prompt, re.S)
        return turns[-1] if turns else prompt
    return [m["content"] for m in prompt if m["role"] == "user"][-1]


class FakeBackend:
    """The ``Backend`` attributes with test defaults; subclasses write ``generate``."""

    name = "fake"
    tokenizer = None
    max_positions = None
    eos_ids: frozenset = frozenset()
    budget_honoured = True

    def __init__(self, remote: bool = True, thinking: str = "auto"):
        self.capabilities = Capabilities(local=not remote, token_level=not remote, streaming=False,
                                         concurrent=remote, logprobs=True, retries=False,
                                         budgets="server" if remote else "exact", forcing=not remote)
        # a local fake renders ponder's plain layout (no tokenizer) with the start of ponder's models
        self.thinking = decide_thinking(thinking, remote=True) if remote else Thinking("auto", "model", "a fake")
        self.effort_table = dict(DEFAULT_EFFORT_BUDGETS)

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids if i)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def refresh_weights(self) -> None:
        pass

    def stream(self, prompt, sampling=None, budget=None):
        c = self.generate([prompt], 1, sampling, budget)[0][0]
        if c.reasoning:
            yield "reasoning", c.reasoning
        if c.answer:
            yield "answer", c.answer
        yield "done", c
