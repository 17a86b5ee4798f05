"""Split a completion into reasoning and answer: one state machine for whole texts and streams.

``ReasoningSplitter(start).feed(chunk)`` returns ``("reasoning", s)`` / ``("answer", s)``
pieces as text arrives and ``finish()`` the rest; ``parse(text, start)`` is the same machine fed
the whole text at once. So for every text, every chunking and every start state the streamed
pieces concatenate to exactly the non-streamed split -- by construction, and checked by a
property test over random chunkings.

Where a completion starts (``start``), decided by whoever rendered the prompt
(``ponder.format.render``), never guessed from the completion:

* ``"inside"`` -- the prompt ended in ``<think>`` (pre-filled): the text is reasoning up to the
  first ``</think>``. A ``<think>`` the model writes anyway is dropped, not kept as reasoning.
* ``"plain"`` -- the prompt did not open a think block: a think block counts only when the text
  starts with ``<think>`` (after whitespace), as models write it; otherwise the whole text is the
  answer, a stray ``</think>`` included.
* ``"unknown"`` -- a server applied its own chat template, which may have opened the block
  (DeepSeek-R1-Distill templates do): a leading ``<think>`` opens it; otherwise the text is held
  back until a ``</think>`` shows that it was reasoning, or the end shows that it was all
  answer. Nothing is streamed before one of the two.

The shapes (R = reasoning, A = answer)::

    <think>R</think>A                 -> R | A            (any start)
    <think>R</think><answer>A</answer> -> R | <answer>A</answer>  (the tags stay: see extract)
    R</think>A                        -> R | A            (inside, unknown);  "" | R</think>A (plain)
    <think><think>R</think>A          -> R | A            (a model-written tag after a pre-fill)
    <think>R                          -> R | ""           (unterminated: think_closed False)
    A                                 -> "" | A (plain, unknown);  A | "" (inside)
    <think>R</think>A<think>B</think> -> R | A<think>B</think>  (text after the first </think>
                                                                 is the answer, tags and all)

Both parts are stripped of surrounding whitespace (a stream holds whitespace back until text
follows it). Text before a ``<think>`` that is not at the start is not a think block: it is
part of the answer (``plain``) or held (``unknown``). Never raises for a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ponder.format.tags import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

Start = Literal["inside", "plain", "unknown"]
STARTS = ("inside", "plain", "unknown")

_START, _THINK, _HOLD, _ANSWER = "start", "think", "hold", "answer"  # machine states


def start_of(prefilled: bool | None) -> Start:
    """The start state for a pre-fill flag: True inside, False plain, None unknown."""
    return "unknown" if prefilled is None else ("inside" if prefilled else "plain")


def held_prefix(buf: str, *tags: str) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of one of ``tags``."""
    for k in range(min(max(map(len, tags)) - 1, len(buf)), 0, -1):
        tail = buf[-k:]
        if any(len(t) > k and t.startswith(tail) for t in tags):
            return k
    return 0


class _Part:
    """One output part (reasoning or answer) with ``str.strip`` semantics over a stream:
    leading whitespace is dropped, trailing whitespace is held until more text follows it."""

    __slots__ = ("kind", "started", "ws")

    def __init__(self, kind: str):
        self.kind, self.started, self.ws = kind, False, ""

    def add(self, s: str, out: list) -> None:
        if not self.started:
            s = s.lstrip()
            if not s:
                return
            self.started = True
        body = s.rstrip()
        if not body:
            self.ws += s
            return
        out.append((self.kind, self.ws + body))
        self.ws = s[len(body):]


class ReasoningSplitter:
    """The streaming splitter (see the module docstring). ``closed``: a ``</think>`` ended the
    reasoning; ``opened``: the text itself wrote ``<think>``."""

    def __init__(self, start: Start | bool | None = "plain"):
        if not isinstance(start, str):
            start = start_of(start)
        if start not in STARTS:
            raise ValueError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
        self.start: Start = start
        self.state = _THINK if start == "inside" else _START
        self.buf = ""
        self.scanned = 0  # held text already searched for </think> (keeps a long hold linear)
        self.closed = self.opened = False
        self.reasoning, self.answer = _Part("reasoning"), _Part("answer")

    def feed(self, text: str) -> list[tuple[str, str]]:
        """Pieces that are certain after ``text`` arrived (possibly none)."""
        out: list[tuple[str, str]] = []
        self.buf += text
        while self.buf:
            if self.state == _ANSWER:
                self.answer.add(self.buf, out)
                self.buf = ""
            elif self.state == _START:
                head = self.buf.lstrip()
                if head.startswith(THINK_OPEN):
                    self.opened = True
                    self.state, self.buf = _THINK, head[len(THINK_OPEN):]
                elif not head or THINK_OPEN.startswith(head):
                    break  # whitespace, or the beginning of a <think>: wait for more
                else:
                    self.state = _HOLD if self.start == "unknown" else _ANSWER
            elif self.state == _HOLD:
                at = self.buf.find(THINK_CLOSE, max(0, self.scanned - len(THINK_CLOSE) + 1))
                if at < 0:
                    self.scanned = len(self.buf)
                    break  # held until a </think> or the end decides
                self.state = _THINK  # it was reasoning all along: replay the buffer as such
            else:  # _THINK
                close, again = self.buf.find(THINK_CLOSE), self.buf.find(THINK_OPEN)
                if again >= 0 and (close < 0 or again < close):
                    self.reasoning.add(self.buf[:again], out)  # drop a re-opened <think>
                    self.opened = True
                    self.buf = self.buf[again + len(THINK_OPEN):]
                    continue
                if close >= 0:
                    self.reasoning.add(self.buf[:close], out)
                    self.closed, self.state = True, _ANSWER
                    self.buf = self.buf[close + len(THINK_CLOSE):]
                    continue
                keep = held_prefix(self.buf, THINK_CLOSE, THINK_OPEN)
                self.reasoning.add(self.buf[: len(self.buf) - keep], out)
                self.buf = self.buf[len(self.buf) - keep:]
                break
        return out

    def finish(self) -> list[tuple[str, str]]:
        """The pieces still held back, once the text has ended."""
        out: list[tuple[str, str]] = []
        rest, self.buf = self.buf, ""
        if self.state == _THINK:
            self.reasoning.add(rest, out)
        else:  # start (a lone "<thi"), hold (no </think> came: all answer) or answer
            if self.state == _HOLD or self.state == _START:
                self.state = _ANSWER
            self.answer.add(rest, out)
        return out


@dataclass(frozen=True)
class Parsed:
    """A completion split into its parts (see the module docstring).

    reasoning, answer: the two parts, stripped. ``answer`` keeps any ``<answer>`` tags; the final
        answer inside them is ``ponder.format.final_answer``'s job.
    start: where the completion started (inside a pre-filled think block, plain or unknown).
    think_open: the text itself wrote ``<think>``.
    think_closed: a ``</think>`` ended the reasoning.
    """

    reasoning: str
    answer: str
    start: Start
    think_open: bool
    think_closed: bool

    @property
    def has_reasoning(self) -> bool:
        """True when there is (non-blank) reasoning."""
        return bool(self.reasoning)

    @property
    def thinking(self) -> bool:
        """True when the completion is or was inside a think block (pre-filled or opened)."""
        return self.think_closed or self.think_open or (self.start == "inside")

    @property
    def answer_tagged(self) -> bool:
        """The answer part holds an ``<answer>…</answer>`` block."""
        i = self.answer.find(ANSWER_OPEN)
        return i >= 0 and self.answer.find(ANSWER_CLOSE, i) >= 0

    @property
    def unclosed_prefill(self) -> bool:
        """Pre-filled ``<think>`` that the completion never closed and never wrote itself: the
        model ignored the pre-fill (a model that does not think) or ran out of tokens."""
        return self.start == "inside" and not self.think_closed and not self.think_open

    def answer_text(self, finish_reason: str | None = None) -> str:
        """The text a final answer is read from -- the documented rule, in order:

        1. the reasoning was closed by ``</think>``: the answer part;
        2. no think block at all: the whole text (it is the answer part);
        3. the model opened ``<think>`` itself and never closed it: "" (unterminated reasoning
           has no answer);
        4. ``<think>`` was pre-filled and never closed: "" when the token limit cut the text
           (``finish_reason == "length"``: reasoning cut short), else the whole text -- the model
           ignored the pre-fill and answered, which is not the model's fault to be scored as
           "no answer". ``think_closed`` stays False, so reports can count these.
        """
        if self.think_closed or not self.thinking:
            return self.answer
        if self.unclosed_prefill and finish_reason != "length":
            return self.reasoning
        return ""


def parse(completion: str, start: Start | bool | None = "plain") -> Parsed:
    """Split ``completion`` (see the module docstring); ``start`` also takes a pre-fill flag
    (True inside, False plain, None unknown). Never raises for a string."""
    if not isinstance(completion, str):
        completion = "" if completion is None else str(completion)
    sp = ReasoningSplitter(start)
    pieces = sp.feed(completion) + sp.finish()
    return Parsed(
        reasoning="".join(s for k, s in pieces if k == "reasoning"),
        answer="".join(s for k, s in pieces if k == "answer"),
        start=sp.start,
        think_open=sp.opened,
        think_closed=sp.closed,
    )
