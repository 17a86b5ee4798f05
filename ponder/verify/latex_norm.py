"""Normalise an answer string for the fast path (``ponder.verify.latex_value`` reads the result).

``normalise`` strips presentation (``$…$``, ``\\boxed{}``, ``\\left``, ``\\dfrac``, spacing,
``\\text{}`` units, currency, degrees, percent, thousands separators) and says what it removed
(``Norm``), so the comparison rules in ``ponder.verify.math`` can tell "50%" from "0.5".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ponder.format import last_boxed

_TEXT_CMDS = r"(?:text|textrm|textnormal|textit|textbf|textsf|mbox|mathrm|mathbf|mathit|operatorname)"
_UNIT_WORDS = (
    "cm|mm|km|meters?|metres?|centimeters?|centimetres?|millimeters?|kilometers?|inch|inches|"
    "ft|feet|foot|yards?|yd|miles?|mi|units?|sq|square|cubic|degrees?|deg|dollars?|cents?|"
    "hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|mph|kph|kg|grams?|"
    "pounds?|lbs?|ounces?|oz|liters?|litres?|ml|gallons?|people|students|points"
)
# A trailing unit: a \text{…} group (any words) or a bare unit word, with an optional ^2 / ^3.
_TRAILING_UNIT = re.compile(
    r"(?<=\S)\s*(?:\\" + _TEXT_CMDS + r"\s*\{\s*[A-Za-z][A-Za-z .]*\}|(?<=[\d}) ])(?:" + _UNIT_WORDS
    + r")\b\.?)\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*$"
)
_TEXT_WRAP = re.compile(r"\\" + _TEXT_CMDS + r"\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\\\|\\[,;:! ]|\\q?quad\b|~")
_MATH_DELIMS = re.compile(r"\\\\|\\[()\[\]]")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|[bB]igg?[lr]?)\s*(\\[{}|]|[()\[\]|.])")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\degree|°")
_PERCENT = re.compile(r"\\?%|\\text\{\s*percent\s*\}|\s*\bpercent\b")
ASSIGN = re.compile(r"^\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?\s*(?:=|\\in\b)\s*(?=\S)")
_BASE_SUB = re.compile(r"^(\d[0-9A-Z]*)_\{?(\d{1,2})\}?$")  # 52_8, 2516_8; not a_2 (a variable)
# A comma is a thousands separator only between groups of exactly three digits after a first
# group of one to three digits that does not start with 0 ("1,500", "12,345.5"); every other
# comma separates list items ("1,5" is the list 1, 5; "0,500" is 0, 500). Never a decimal comma.
_THOUSANDS = re.compile(r"^[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^[-+]?(?:\d+|[1-9]\d{0,2}(?:,\d{3})+)(?:\.\d+)?$")
_HAS_LETTER = re.compile(r"[A-Za-z]")
# "and" between two list items, with or without a serial comma before it.
_AND = re.compile(r"(?<=\S)\s*,?\s*\band\b\s*(?=\S)")
_SPACE_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_UNICODE = {"−": "-", "–": "-", "×": r"\times ", "÷": r"\div ", "π": r"\pi ", "∞": r"\infty ",
            "·": r"\cdot ", "€": "", "£": "", "¥": "", "≤": r"\le ", "≥": r"\ge "}


@dataclass(frozen=True)
class Norm:
    """A normalised answer: ``text`` (still LaTeX), and whether a percent sign was dropped."""

    text: str
    percent: bool
    had_text_cmd: bool


def normalise(s: str) -> Norm:
    """Strip presentation (delimiters, units, spacing, separators) but keep the mathematics."""
    s = s.strip()
    if _PLAIN_NUMBER.match(s):
        return Norm(s, False, False)  # "42", "1,234.5": nothing to strip (most GSM8K/AIME golds)
    if "\\boxed" in s or "\\fbox" in s:
        inner = last_boxed(s)
        if inner is not None:
            s = inner
    for k, v in _UNICODE.items():
        if k in s:
            s = s.replace(k, v)
    if "√" in s:
        s = re.sub(r"√\s*(\d+)", r"\\sqrt{\1}", s).replace("√", r"\sqrt")
    if "$" in s:
        s = s.replace(r"\$", "").replace("$", "")
    # Each rewrite below is skipped when its trigger text is absent: the checks are much cheaper
    # than the regular expressions, and most answers are short numbers.
    backslash = "\\" in s
    if backslash:
        s = _MATH_DELIMS.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else " ", s)
        s = _LEFT_RIGHT.sub(lambda m: "" if m.group(1) == "." else m.group(1), s)
        if "frac" in s:
            s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
        if "binom" in s:
            s = re.sub(r"\\[dt]binom(?![A-Za-z])", r"\\binom", s)
        s = s.replace(r"\displaystyle", "").replace(r"\lbrace", r"\{").replace(r"\rbrace", r"\}")
    # LaTeX thousands separators: "10,\!080", "1{,}000".
    if "{,}" in s:
        # Before a group of three digits it separates thousands; anywhere else it is a comma
        # (a list separator, as for math-verify: "1{,}5" is the list 1, 5).
        s = re.sub(r"(\d)\s*\{,\}\s*(?=\d{3}(?!\d))", r"\1", s).replace("{,}", ",")
    if ",\\!" in s:
        s = re.sub(r"(\d),\\!\s*(?=\d{3}(?!\d))", r"\1", s)
    if backslash or "~" in s:
        s = _SPACING.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else " ", s)
    if "circ" in s or "degree" in s or "°" in s:
        s = _DEGREES.sub("", s)
    percent = ("%" in s or "percent" in s) and bool(_PERCENT.search(s))
    if percent:
        s = _PERCENT.sub("", s)
    had_text = backslash and bool(_TEXT_WRAP.search(s))
    s = s.strip().rstrip(".")
    if _HAS_LETTER.search(s):
        for _ in range(3):  # "15 \text{ cm}^2", "5 square feet": strip trailing units repeatedly
            t = _TRAILING_UNIT.sub("", s).strip()
            if t == s or not t:
                break
            s = t
        if had_text:
            s = _TEXT_WRAP.sub(lambda m: m.group(1), s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if "and" in s:
        # "19, 46, and 82", "1 and 2", "1 \text{ and } 2": one list separator, so that the list
        # keeps all its items (given an empty item ",," math-verify reads only the last one).
        s = _AND.sub(", ", s)
    return Norm(s, percent, had_text)


def compact(s: str) -> str:
    """A comparison key: spaces dropped except between two word characters ("2 3" ≠ "23")."""
    return re.sub(r"\s*([^\w\s])\s*", r"\1", s)


def comparison_key(s: str) -> str:
    """``compact``, with a thousands-separated number written without its separators: "2,125"
    is the number 2125, while "2, 125" (a list) keeps its comma."""
    return compact(s.replace(",", "") if _THOUSANDS.match(s) else s)


def lhs(s: str) -> str | None:
    """The variable of a leading assignment (``y`` in ``y = 2x + 3``), or None."""
    m = ASSIGN.match(s)
    return re.sub(r"\s|=|\\in\b", "", m.group(0)) if m and "=" not in s[m.end():] else None


def strip_assignment(s: str) -> str:
    """``x = 3`` → ``3``, ``x \\in [1,2]`` → ``[1,2]``; equations with more than one ``=`` kept."""
    m = ASSIGN.match(s)
    if m and "=" not in s[m.end():] and not re.match(r"\\(?:frac|sqrt|pi|infty)", s.lstrip()):
        return s[m.end():].strip()
    return s


def clean_number_text(s: str) -> str:
    """Whole-string forms: thousands separators and base subscripts."""
    if _THOUSANDS.match(s):
        return s.replace(",", "")
    if _SPACE_THOUSANDS.match(s):
        return s.replace(" ", "")
    m = _BASE_SUB.match(s)
    if m and 2 <= int(m.group(2)) <= 36:
        return m.group(1)
    return s
