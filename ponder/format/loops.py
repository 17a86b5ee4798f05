"""Reasoning loops: a stretch of text (or tokens) that repeats one cycle over and over.

Reasoning models loop -- QwQ and R1-distills on hard problems write the same sentence, or the
same few tokens, until the length limit. A *loop* here is a cycle of ``period`` units (tokens, or
words of a text) repeated back to back, covering at least ``min_span`` units and at least
``min_repeats`` whole cycles:

    "so x = 2 so x = 2 so x = 2 so x = 2 ..."   period 4 words, repeated until the span is reached
    [17, 17, 17, ...]                          period 1 (a token stuck), needs min_span repeats

The thresholds keep ordinary text out: a period-1 run must cover ``min_span`` units (24 by
default: "1 1 1" or "very very" never counts), and longer cycles at least three whole repeats
(one repeated sentence is emphasis, three in a row with nothing between is a loop).

``find_loop`` looks anywhere in a sequence (for reports and training metrics); ``tail_loop`` only
at its end (for a decoder, which checks after each token whether it is stuck now). Both are
O(len × max_period) comparisons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Hashable, Sequence

#: defaults: at least this many units covered, this many whole cycles, cycles up to this long
MIN_SPAN, MIN_REPEATS, MAX_PERIOD = 24, 3, 64

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Loop:
    """A cycle of ``period`` units starting at unit ``start`` and covering ``span`` units."""

    start: int
    period: int
    span: int

    @property
    def repeats(self) -> float:
        return self.span / self.period


def _check(min_span: int, min_repeats: int, max_period: int) -> None:
    if min_span < 2 or min_repeats < 2 or max_period < 1:
        raise ValueError(f"loop thresholds: min_span >= 2, min_repeats >= 2, max_period >= 1 "
                         f"(got {min_span}, {min_repeats}, {max_period})")


def find_loop(units: Sequence[Hashable], min_span: int = MIN_SPAN, min_repeats: int = MIN_REPEATS,
              max_period: int = MAX_PERIOD) -> Loop | None:
    """The longest-covering loop anywhere in ``units`` (see the module docstring), or None."""
    _check(min_span, min_repeats, max_period)
    n = len(units)
    best: Loop | None = None
    for p in range(1, min(max_period, n // min_repeats) + 1):
        run = 0  # positions i with units[i] == units[i + p], back to back
        for i in range(n - p + 1):
            if i < n - p and units[i] == units[i + p]:
                run += 1
                continue
            span = run + p  # the segment of period p that just ended
            if run and span >= max(min_span, min_repeats * p) and (best is None or span > best.span):
                best = Loop(i - run, p, span)
            run = 0
    return best


def tail_loop(units: Sequence[Hashable], min_span: int = MIN_SPAN, min_repeats: int = MIN_REPEATS,
              max_period: int = MAX_PERIOD, start: int = 0) -> Loop | None:
    """A loop that ends at the end of ``units[start:]`` (the decoder is stuck right now), or
    None. ``start`` saves a copy: a decoder passes its whole id list and where the section it
    watches (the think block, the answer) began."""
    _check(min_span, min_repeats, max_period)
    n, avail = len(units), len(units) - start
    for p in range(1, min(max_period, avail // min_repeats) + 1):
        need = max(min_span, min_repeats * p)
        if need > avail:
            break  # need grows with p
        run = 0
        while run < avail - p and units[n - 1 - run] == units[n - 1 - run - p]:
            run += 1
        if run + p >= need:
            return Loop(n - run - p, p, run + p)
    return None


def words(text: str) -> list[str]:
    """The units of a text: its whitespace-separated words (tokenizer-independent)."""
    return _WORD.findall(text)


def looped(text: str, **thresholds) -> bool:
    """True when ``text`` (a completion's reasoning) holds a loop of words."""
    return find_loop(words(text), **thresholds) is not None
