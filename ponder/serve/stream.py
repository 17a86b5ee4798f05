"""Streaming one completion row: token ids so far -> reasoning and answer text deltas.

The engine reports each row's token ids after every step. ``RowStream`` decodes them, holds back
what could still become a stop string (the engine cuts the text before a stop string only at the
end) or a ``</think>`` that budget forcing may take back, splits reasoning from answer with
``ponder.format.ReasoningSplitter`` -- the parser the non-streamed message uses, so the deltas
concatenate exactly to its ``reasoning_content`` and ``content`` -- and applies the server's
reasoning mode:

* ``full``: reasoning deltas as they come, then answer deltas;
* ``summary``: nothing while the model thinks; when the answer starts (or the row ends), one
  reasoning delta with ``summarize`` of the whole reasoning;
* ``hidden``: answer deltas only.

``final(completion)`` sends whatever the engine's final text has beyond what was streamed.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ponder.format import THINK_CLOSE, ReasoningSplitter, Start, start_of
from ponder.format.parse import held_prefix
from ponder.generate.types import Completion
from ponder.serve.protocol import summarize


class RowStream:
    """Text deltas of one streamed row; ``decode`` None means the backend does not stream tokens."""

    def __init__(self, start: Start, decode: Callable[[list[int]], str] | None, eos_ids: frozenset[int],
                 stop: Sequence[str], mode: str):
        self.split = ReasoningSplitter(start)
        self.decode, self.eos_ids, self.stop, self.mode = decode, eos_ids, tuple(stop), mode
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.fed = ""  # text already given to the splitter
        self.stopped = False  # a stop string was seen: nothing more is streamed
        self.reasoning = ""
        self.summary_sent = False

    def feed(self, ids: list[int]) -> list[tuple[str, str]]:
        """Deltas ``("reasoning" | "answer", text)`` for the row's ids so far."""
        if self.stopped or self.decode is None:
            return []
        body = ids[:-1] if ids and ids[-1] in self.eos_ids else ids
        text = self.decode(body)
        if text.endswith("\ufffd"):
            return []  # an incomplete UTF-8 character: wait for its next byte token
        cuts = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if cuts:
            safe, self.stopped = text[: min(cuts)], True
        else:
            safe = text[: len(text) - max(self.hold, held_prefix(text, THINK_CLOSE))]
        if not safe.startswith(self.fed):
            return []  # budget forcing took back a piece of a split tag: wait for the text to settle
        delta, self.fed = safe[len(self.fed):], safe
        return self._emit(self.split.feed(delta)) if delta else []

    def final(self, c: Completion) -> list[tuple[str, str]]:
        """The rest of the row once the engine returned its completion ``c``."""
        if not self.fed:  # nothing streamed (a backend without token streaming): split as c starts
            self.split = ReasoningSplitter(start_of(c.prefilled))
        rest = c.text[len(self.fed):] if c.text.startswith(self.fed) else ""
        out = self._emit(self.split.feed(rest)) + self._emit(self.split.finish())
        if self.mode == "summary" and not self.summary_sent:
            out += self._summary()
        return out

    def _summary(self) -> list[tuple[str, str]]:
        self.summary_sent = True
        s = summarize(self.reasoning)
        return [("reasoning", s)] if s else []

    def _emit(self, pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for kind, text in pieces:
            if kind == "reasoning":
                self.reasoning += text
                if self.mode == "full":
                    out.append((kind, text))
            else:
                if self.mode == "summary" and not self.summary_sent:
                    out += self._summary()
                out.append((kind, text))
        return out
