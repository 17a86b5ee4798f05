"""Find the final answer in the answer part of a completion.

``final_answer(text, fallback)`` reads the text a completion's answer is taken from
(``Parsed.answer_text()``: after ``</think>``, never inside reasoning) and returns an
``Extraction(value, rule, at)`` or None. The rules, in order -- the first that finds something
decides:

1. ``answer-block``: the last non-empty ``<answer>…</answer>`` block; a final-answer statement
   inside it (usually a ``\\boxed{}``) is unwrapped, otherwise the block is the answer.
2. The **last** of the explicit final-answer statements, wherever it stands, so a later
   statement corrects an earlier one:
   * ``boxed``: ``\\boxed{…}`` / ``\\fbox{…}`` (nested braces; ``\\boxed 5``; an unbalanced box
     is skipped);
   * ``final-answer``: "Final Answer: The final answer is $X$. I hope it is correct." (the
     Minerva / lm-evaluation-harness sentence), "The final answer is X", "**Final answer:** X"
     (the value may sit on the next line);
   * ``gsm8k``: a ``#### X`` line.
3. ``answer-is``: the last "the answer is X" / "Answer: X" whose X looks like an answer, not
   prose ("The answer is a sum of two numbers" is not an answer; see ``answer_like``).
4. ``fallback:<name>``: the task's declared fallback, e.g. ``number`` for numeric tasks (the
   value after the last ``=``, else the last number: "33 + 13 = 46" gives 46).
5. ``bare``: a short one-line answer part ("42", "x = 3") taken as it is.

Several boxes: the last one is the answer (rule 2), as in the MATH and lighteval graders;
whether *disagreeing* statements make the completion wrong is the judge's decision
(``ponder.tasks.judge``), which reads ``statements``.

Values are cleaned: surrounding ``$``, ``\\(…\\)``, ``\\[…\\]``, ``**`` and a final full stop
are removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from ponder.format.tags import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

MAX_BARE = 64  # a bare answer part longer than this is an explanation, not an answer
MAX_VALUE = 120  # a statement's value longer than this is prose


@dataclass(frozen=True)
class Extraction:
    """A final answer: its ``value``, the ``rule`` that found it and where (``at``, a character
    offset into the searched text)."""

    value: str
    rule: str
    at: int


# --------------------------------------------------------------------------- pieces

_BOX = re.compile(r"\\(?:boxed|fbox)\s*")


def boxes(text: str) -> list[tuple[int, int, str]]:
    """Every balanced ``\\boxed{…}`` / ``\\fbox{…}`` (and ``\\boxed 5``): ``(start, end, content)``."""
    out = []
    for m in _BOX.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                c = text[j]
                depth += 1 if c == "{" else -1 if c == "}" else 0
                if depth == 0:
                    out.append((m.start(), j + 1, text[i + 1 : j]))
                    break
        elif m.group(0).endswith(" "):
            tok = re.match(r"([^\s$}\\]+)", text[i:])
            if tok:
                out.append((m.start(), i + tok.end(), tok.group(1)))
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last balanced ``\\boxed{…}`` (or ``\\fbox{…}``, ``\\boxed 5``), or None."""
    found = boxes(text)
    return found[-1][2] if found else None


_BLOCK = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE), re.S)
_HASH = re.compile(r"^[ \t]*####[ \t]*([^\n]*)", re.M)
_MINERVA = re.compile(r"final answer:?\s*the final answer is\s*(.+?)\.?\s*I hope it is correct", re.I | re.S)
# "final answer is/was/:/= X", or a heading "**Final Answer**" / "Final answer:" ending its line
_FINAL = re.compile(r"final\s+answer(?:\s*\*\*)?\s*(?:(?:is|was|:|=)(?:\s*\*\*)?\s*:?[ \t]*|(?=[ \t]*(?:\n|$)))",
                    re.I)
_SAID = re.compile(r"\b(?:the\s+)?answer\s*(?:is|:)\s*:?[ \t]*", re.I)
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z])|\.\s*$|\s+I hope\b|;")
_WRAP = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"), ("`", "`"))
_PROSE_START = frozenset("a an the this that these those to not because since we it there which so".split())
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")  # words, not LaTeX commands
# adverbs a model puts between "the answer is" and the value ("The answer is indeed 9.",
# SmolLM2's phrasing): not part of the answer, and left in they make "indeed 9" fail against 9
_HEDGE = re.compile(r"^(?:(?:indeed|actually|probably|likely|clearly|definitely|certainly|simply|just|"
                    r"exactly|therefore|thus|then|now|still|also|approximately|roughly|about|around)"
                    r",?\s+)+(?=\S)", re.I)


def clean(value: str) -> str:
    """A value without its wrapping (``$…$``, ``\\(…\\)``, ``**…**``) or final full stop."""
    v = value.strip()
    for _ in range(3):
        before = v
        v = v.rstrip(".").strip()
        for a, b in _WRAP:
            if len(v) >= len(a) + len(b) and v.startswith(a) and v.endswith(b):
                v = v[len(a) : len(v) - len(b)].strip()
        if v == before:
            break
    return v


def answer_like(value: str) -> bool:
    """True when ``value`` reads as an answer rather than prose: at most ``MAX_VALUE``
    characters, fewer than five words, not opening like a sentence ("a", "the", "because"…) and
    without a think tag. "18 dollars", "\\frac{1}{2}", "x = 3", "(B)", "Tuesday" pass; "a sum of
    two numbers" fails, and so does "5</think>7": a stray tag means two candidates, and which one a
    grader reads first is not a rule a reward should pay for."""
    v = value.strip()
    if not v or len(v) > MAX_VALUE or THINK_OPEN in v or THINK_CLOSE in v:
        return False
    words = _WORD.findall(v)
    if len(words) >= 5:
        return False
    return not (words and len(words) >= 2 and v.split()[0].lower().strip("*_") in _PROSE_START)


def _statement_value(text: str, start: int) -> str:
    """The value a statement introduces at ``start``: the rest of its line (or the next
    non-empty line when the line ends there), up to the end of the sentence."""
    line_end = text.find("\n", start)
    line = text[start : len(text) if line_end < 0 else line_end]
    if not line.strip() and line_end >= 0:
        for nxt in text[line_end + 1 :].split("\n"):
            if nxt.strip():
                line = nxt
                break
    m = _SENTENCE_END.search(line)
    return clean(_HEDGE.sub("", (line[: m.start()] if m else line).lstrip()))


def _in_box(region: str) -> str | None:
    found = boxes(region)
    return found[-1][2].strip() if found else None


def statements(text: str) -> list[Extraction]:
    """The explicit final-answer statements of ``text`` in order: ``<answer>`` blocks, boxes,
    final-answer sentences, ``####`` lines (a sentence that holds a box counts once, as the box)."""
    out: list[Extraction] = []
    blocks = list(_BLOCK.finditer(text))
    for m in blocks:
        inner = m.group(1)
        if inner.strip():
            found = final_answer(inner)
            out.append(Extraction(found.value if found else clean(inner), "answer-block", m.start()))
    inside = [(m.start(), m.end()) for m in blocks]

    def outside(pos: int) -> bool:
        return not any(a <= pos < b for a, b in inside)

    box_spans = [(a, b) for a, b, _ in boxes(text)]
    out += [Extraction(c.strip(), "boxed", a) for a, b, c in boxes(text) if outside(a) and c.strip()]
    for m in list(_MINERVA.finditer(text)) or []:
        if outside(m.start()) and not any(m.start() <= a < m.end() for a, _ in box_spans):
            value = clean(m.group(1))
            if answer_like(value):
                out.append(Extraction(value, "final-answer", m.start()))
    minerva = [(m.start(), m.end()) for m in _MINERVA.finditer(text)]
    for m in _FINAL.finditer(text):
        if not outside(m.start()) or any(a <= m.start() < b for a, b in minerva):
            continue
        value = _statement_value(text, m.end())
        if value and not _in_box(value) and answer_like(value):
            # a box on the same line is already a statement of its own
            line_end = text.find("\n", m.end())
            if not any(m.end() <= a < (len(text) if line_end < 0 else line_end) for a, _ in box_spans):
                out.append(Extraction(value, "final-answer", m.start()))
    out += [Extraction(clean(m.group(1)), "gsm8k", m.start()) for m in _HASH.finditer(text)
            if outside(m.start()) and clean(m.group(1))]
    return sorted(out, key=lambda e: e.at)


# --------------------------------------------------------------------------- fallbacks

_NUMBER = re.compile(r"[-−]?\$?\d[\d,]*(?:\.\d+)?")


def _number_value(s: str) -> str:
    return s.replace("$", "").replace("−", "-").rstrip(",")


def last_number(text: str) -> str | None:
    """The last number in ``text`` ("1,234" keeps its separators; a sign and ``$`` are kept/dropped)."""
    found = _NUMBER.findall(text)
    return _number_value(found[-1]) if found else None


def after_equals(text: str) -> str | None:
    """The number right after the last ``=`` that is followed by one ("33 + 13 = 46" -> "46")."""
    found = re.findall(r"=\s*\$?\s*([-−]?\d[\d,]*(?:\.\d+)?)", text)
    return _number_value(found[-1]) if found else None


def number(text: str) -> str | None:
    """The numeric-task fallback: ``after_equals``, else ``last_number``."""
    return after_equals(text) or last_number(text)


#: Named fallbacks a task can declare (``Task.answer_fallback``).
FALLBACKS: dict[str, Callable[[str], str | None]] = {
    "number": number, "last_number": last_number, "after_equals": after_equals,
}

Fallback = Callable[[str], "str | None"]


def resolve_fallback(fallback: str | Fallback | None) -> Fallback | None:
    if fallback is None or callable(fallback):
        return fallback
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown answer fallback {fallback!r}; known: {', '.join(FALLBACKS)}")
    return FALLBACKS[fallback]


# --------------------------------------------------------------------------- the rules


def final_answer(text: str, fallback: str | Fallback | None = None) -> Extraction | None:
    """The final answer in ``text`` (an answer part; see the module docstring), or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    found = statements(text)
    blocks = [e for e in found if e.rule == "answer-block"]
    if blocks:
        return blocks[-1]
    if found:
        return found[-1]
    said = [m for m in _SAID.finditer(text)]
    for m in reversed(said):
        value = _statement_value(text, m.end())
        if answer_like(value):
            return Extraction(value, "answer-is", m.start())
    fb = resolve_fallback(fallback)
    if fb is not None:
        value = fb(text)
        if value:
            name = next((k for k, f in FALLBACKS.items() if f is fb), getattr(fb, "__name__", "custom"))
            return Extraction(value, f"fallback:{name}", text.rfind(value))
    bare = clean(text)
    if bare and len(bare) <= MAX_BARE and "\n" not in bare and answer_like(bare):
        return Extraction(bare, "bare", 0)
    return None


def canonical(value: str) -> str:
    """A spelling-insensitive form of a final answer, for counting distinct answers
    ("x=5", "5", "$5$", "\\dfrac{1}{2}" vs "\\frac{1}{2}" are one answer each)."""
    v = value.strip()
    inner = last_boxed(v)
    if inner is not None and v.startswith("\\"):
        v = inner
    v = re.sub(r"^#+\s*", "", v)
    v = re.sub(r"\\(?:left|right|displaystyle)|\\[,;:! ]|\s+|\$", "", v)
    v = v.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").rstrip(".")
    return re.sub(r"^[a-zA-Z]=(?=.)", "", v)


def canonical_groups(answers: Sequence[str | None], equal: Callable[[str, str], bool]) -> list[int | None]:
    """Group answers by an equivalence (e.g. ``math_equal``): ``1/2`` and ``0.5`` share a key.

    Returns one integer key per answer (None for no answer). O(n · groups) comparisons.
    """
    reps: list[str] = []
    keys: list[int | None] = []
    for a in answers:
        if a is None or not str(a).strip():
            keys.append(None)
            continue
        for i, r in enumerate(reps):
            if a == r or equal(r, a):
                keys.append(i)
                break
        else:
            reps.append(a)
            keys.append(len(reps) - 1)
    return keys
