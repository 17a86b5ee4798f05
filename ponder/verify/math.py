"""Is a final answer mathematically equal to a gold answer? ``math_equal(gold, answer) -> bool``.

Two paths, cheapest first:

1. **Fast path** (pure Python, ~tens of µs). Both strings are normalised (``$…$``,
   ``\\boxed{}``, ``\\left``/``\\right``, ``\\dfrac``, spacing, ``\\text{}`` units, currency,
   degrees, percent, thousands separators, a leading ``x =``) and, when both parse in a small
   grammar — numbers, ``\\frac``, ``\\sqrt``, ``\\pi``, ``i``, ``^``, ``!``, ``\\binom``, ``±``,
   tuples, intervals, sets, unions, matrices, and single-letter variables — compared as values
   (``ponder.verify.latex_value``). Rationals are exact ``Fraction``; anything irrational is a
   float or complex number. Expressions with variables are evaluated at two fixed
   pseudo-random rational points (exact polynomial identity testing): ``(x+1)^2`` =
   ``x^2+2x+1``, while ``2k`` ≠ ``2j``.
2. **Fallback**: ``math_verify.parse`` / ``math_verify.verify`` (sympy) on the normalised
   strings, with math-verify's own signal-based timeouts disabled (they fail outside the main
   thread) and run instead in a persistent worker process that is killed and restarted when it
   overruns ``timeout`` (``ponder.verify.mv_worker``). math-verify must accept the pair in
   both directions, and a list it reads as a single value equals nothing. Safe to call from any
   thread; a timeout gives False, and ``math_equal_reason`` says why.

**Symmetric**: ``math_equal(a, b) == math_equal(b, a)``, decided by the same path (a timeout,
which depends on the machine's load, aside). Every fast-path rule looks at both sides alike and
the fallback asks math-verify both ways, so "gold" and "answer" only name the arguments, and
majority voting may compare two samples with it.

Policies (what counts as equal):

* **Numbers.** Two exact values (integers, fractions, terminating decimals) must be exactly
  equal: ``27.0`` = ``27``, ``0.15`` ≠ ``0.150001``. A relative tolerance of 1e-6 applies only
  when one side is written as a decimal and the other is not a terminating decimal
  (``\\frac13`` = ``0.333333`` but ≠ ``0.33333``; ``\\sqrt2`` = ``1.414214``). Two closed forms
  without decimals (``2\\sqrt3`` vs ``\\sqrt{12}``) are equal within 1e-12 relative, unequal
  beyond 1e-6; the rare case in between goes to math-verify.
* **Percent.** ``50\\%`` equals ``50`` and ``0.5``: a ``%`` on one side allows that side's
  number either as written or divided by 100. With no ``%`` anywhere nothing is scaled.
* **Units, currency, degrees are dropped**: ``10 \\text{ cm}`` = ``10``, ``\\$1,000`` = ``1000``,
  ``3^\\circ`` = ``3``. Units are not converted (``1 \\text{ m}`` = ``1 \\text{ cm}``) and
  degrees are not radians (``90^\\circ`` ≠ ``\\frac{\\pi}{2}``).
* **Assignments**: a leading single variable is dropped, ``x=3`` = ``3`` (also ``x \\in``);
  assignments to two different variables (``y = …`` vs ``z = …``) go to math-verify.
* **Sequences.** ``(1,2)`` is ordered (tuple or open interval: both read it in order), so
  ``(1,2)`` ≠ ``(2,1)``; brackets must match for intervals (``[1,2)`` ≠ ``(1,2)``); ``\\{…\\}``
  sets are unordered and ignore repeats; a vector equals the tuple of its entries.
* **Lists** (``1, -2``, ``19, 46, and 82``, ``1 and 2``: lists of solutions, as MATH asks for
  them, "separated by commas") are compared item by item in any order, repeats counted: the
  same number of items, each paired with an equal one. A single value never equals a list
  (``82`` ≠ ``19, 46, and 82``), nor does a list that only ends alike. A bare list equals a
  tuple of three or more items in the same order (``6, 31, -1`` = ``(6,31,-1)``) but never a
  pair, which may be an interval (``-2, 1`` ≠ ``(-2,1)``). Items that assign distinct
  variables (``x = 1, y = 2``) are matched by variable, or in written order against an
  unlabelled list; one variable throughout (``x = 1, x = 2``) is a list of solutions.
* **Commas in numbers.** A comma separates thousands only between groups of exactly three
  digits (``1,500``, ``12,345.5``; a first group of 1–3 digits not starting with 0); any other
  comma separates list items: ``1,5`` is the list 1, 5, never the decimal 1.5 (no decimal
  comma: the benchmarks are English, and math-verify reads it so too).
* **Mixed numbers**: ``1\\frac{4}{5}`` is 9/5 (as math-verify reads it too).
* **Words**: ``\\text{Evelyn}`` equals ``Evelyn`` / ``evelyn`` and nothing else; a choice
  ``\\text{(C)}`` equals ``C`` or ``(C)``. Base subscripts are dropped: ``52_8`` = ``52``.

Limits: functions (``\\sin``, ``\\log``), equations (``2x - y + 3 = 0``), subscripted or
multi-letter names, ``e``, and unbraced multi-digit exponents or roots (``2^10``, ``\\sqrt12``:
LaTeX and plain text disagree) go to math-verify, as does anything outside the grammar;
``%`` scaling is not applied on that path. ``i`` is always the imaginary unit. Results are
cached per (gold, answer, timeout, fallback) except timeouts and worker failures, which may be
transient.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from ponder.verify import mv_worker
from ponder.verify.latex_norm import Norm, comparison_key, lhs, normalise
from ponder.verify.latex_value import Bail, Num, Number, Seq, parse_value

#: Relative tolerance when a decimal meets a non-terminating value (see module docstring).
DECIMAL_RTOL = Fraction(1, 10**6)
#: Two decimal-free closed forms closer than this (relative) are equal.
CLOSED_FORM_RTOL = 1e-12


@dataclass(frozen=True)
class MathResult:
    """The outcome of one comparison.

    equal: the answer equals the gold answer.
    reason: a few words on why ("equal values", "not equal (math-verify)", "timeout after 5s …").
    method: which path decided: "input", "fast", "math-verify", "timeout" or "error".
    """

    equal: bool
    reason: str
    method: str

    def __bool__(self) -> bool:
        return self.equal


# --------------------------------------------------------------------------- comparison

def _terminating(x: Fraction) -> bool:
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def _num_equal(g: Num, a: Num) -> bool | None:
    """Equal at every variable point (one point when neither side has variables)."""
    n = max(len(g.values), len(a.values))
    gs = g.values * n if len(g.values) == 1 else g.values
    as_ = a.values * n if len(a.values) == 1 else a.values
    return _all([_value_equal(x, y, g.decimal or a.decimal) for x, y in zip(gs, as_)])


def _value_equal(x: Number, y: Number, decimal: bool) -> bool | None:
    """True / False when decided, None when only math-verify can tell (see module docstring)."""
    if isinstance(x, Fraction) and isinstance(y, Fraction):
        if x == y:
            return True
        if decimal and not (_terminating(x) and _terminating(y)):
            return abs(x - y) <= DECIMAL_RTOL * max(abs(x), abs(y))
        return False
    if any(isinstance(v, float) and math.isinf(v) for v in (x, y)):
        return x == y
    if any(isinstance(v, complex) and (math.isinf(v.real) or math.isinf(v.imag)) for v in (x, y)):
        raise Bail("complex infinity")
    d, scale = abs(complex(x) - complex(y)), max(abs(complex(x)), abs(complex(y)))
    if decimal:
        return d <= float(DECIMAL_RTOL) * scale
    if d <= CLOSED_FORM_RTOL * max(scale, 1.0):
        return True
    if d > float(DECIMAL_RTOL) * scale and d > 1e-9:
        return False
    return None


def _all(results: list[bool | None]) -> bool | None:
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


def _unordered(g: tuple, a: tuple) -> bool | None:
    """Set equality (each side's items all found on the other side; repeats do not count)."""
    def covered(xs: tuple, ys: tuple) -> bool | None:
        out: list[bool | None] = []
        for x in xs:
            rs = [_equal(x, y) for y in ys]
            out.append(True if True in rs else (None if None in rs else False))
        return _all(out)

    return _all([covered(g, a), covered(a, g)])


def _perfect_matching(ok: list[list[bool]]) -> bool:
    """Can every row be paired with a column of its own where ``ok`` is True (Kuhn's algorithm)?"""
    owner: list[int | None] = [None] * len(ok)

    def place(r: int, seen: set[int]) -> bool:
        for c, good in enumerate(ok[r]):
            if good and c not in seen:
                seen.add(c)
                if owner[c] is None or place(owner[c], seen):
                    owner[c] = r
                    return True
        return False

    return all(place(r, set()) for r in range(len(ok)))


def _multiset(g: tuple, a: tuple) -> bool | None:
    """Equal as lists in any order: as many items, each paired with an equal one of its own."""
    if len(g) != len(a):
        return False
    if all(_equal(x, y) is True for x, y in zip(g, a)):
        return True
    m = [[_equal(x, y) for y in a] for x in g]
    if _perfect_matching([[r is True for r in row] for row in m]):
        return True
    if _perfect_matching([[r is not False for r in row] for row in m]):
        return None
    return False


def _ordered(g: tuple, a: tuple) -> bool | None:
    if len(g) != len(a):
        return False
    return _all([_equal(x, y) for x, y in zip(g, a)])


def _named_equal(g: Seq, a: Seq) -> bool | None:
    """Bare lists of which at least one assigns distinct variables ("x = 1, y = 2").

    Both labelled: matched by variable, in any order; different variables go to math-verify (as
    for a single assignment). One side labelled: the other side's items are its values in the
    order written ("1, 2" = "x = 1, y = 2" but not "2, 1"), since nothing else can pair them;
    the other side may also be a tuple of three or more ("(1, 2, 3)" = "x = 1, y = 2, z = 3"),
    but not a pair, which may be an interval.
    """
    if g.names and a.names:
        if sorted(g.names) != sorted(a.names):
            return None
        theirs = dict(zip(a.names, a.items))
        return _all([_equal(x, theirs[n]) for n, x in zip(g.names, g.items)])
    other = a if g.names else g
    if other.brackets == "" or (other.brackets == "()" and len(other.items) > 2):
        return _ordered(g.items, a.items)
    return False


def _equal(g: Num | Seq, a: Num | Seq) -> bool | None:
    """Every rule here is symmetric in ``g`` and ``a``, as ``math_equal`` promises."""
    if isinstance(g, Num) and isinstance(a, Num):
        return _num_equal(g, a)
    if isinstance(g, Num) or isinstance(a, Num):
        return False  # a single value is never a list, set or tuple (nor one item of it)
    gb, ab = g.brackets, a.brackets
    if gb == "mat" or ab == "mat":
        return _matrix_equal(g, a)
    if g.names or a.names:
        return _named_equal(g, a)
    if gb == ab == "":
        # Two bare lists (lists of solutions): any order, but item by item, repeats included.
        return _multiset(g.items, a.items)
    unordered = {"{}", "", "cup"}
    if gb in unordered and ab in unordered and (gb == ab or {gb, ab} == {"{}", ""}):
        return _unordered(g.items, a.items)
    if gb == ab or ({gb, ab} == {"()", ""} and len(g.items) != 2):
        # A bare "6, 31, -1" may stand for the triple (6,31,-1); but "-2, 1" (two solutions)
        # is not the interval (-2,1), so pairs need their brackets.
        return _ordered(g.items, a.items)
    return False


def _matrix_equal(g: Seq, a: Seq) -> bool | None:
    def flat(s: Seq) -> tuple | None:
        """A vector's entries (n×1 or 1×n matrix, or a tuple), else None."""
        if s.brackets == "mat":
            if len(s.items) == 1:
                return s.items[0]
            if all(len(r) == 1 for r in s.items):
                return tuple(r[0] for r in s.items)
            return None
        return s.items if s.brackets in ("()", "[]", "") else None

    if g.brackets == a.brackets == "mat":
        if len(g.items) != len(a.items) or len(g.items[0]) != len(a.items[0]):
            return False
        return _all([_equal(x, y) for rg, ra in zip(g.items, a.items) for x, y in zip(rg, ra)])
    fg, fa = flat(g), flat(a)
    if fg is None or fa is None or len(fg) != len(fa):
        return False
    return _all([_equal(x, y) for x, y in zip(fg, fa)])


_CHOICE = re.compile(r"^\(?\s*([A-Ea-e])\s*\)?$")
_EMBEDDED_ASSIGN = re.compile(r"=[^()\[\]{}=]*[)\]}]\s*[-+*/^]")
_WORDS = re.compile(r"^[A-Za-z]{2,}(?:[ \-][A-Za-z]+)*$")
_PARSE_ERRORS = (Bail, ArithmeticError, ValueError, TypeError, OverflowError, RecursionError)


@dataclass(frozen=True)
class _Side:
    """What the fast path needs to know about one answer string, read once (see ``_read``)."""

    norm: Norm
    key: str  # ``comparison_key`` of the normalised text
    value: Num | Seq | None  # None: the grammar cannot read it (``why`` says what stopped it)
    why: str
    word: bool  # a word answer ("Evelyn", "east") given inside \text{}
    is_word: bool  # the text looks like words, with or without \text{}
    choice: str | None  # a multiple-choice letter, upper case: "(C)", \text{C}, \text{(C)}
    letter: str | None  # the text is a single letter A-E, perhaps in parentheses
    embedded_assign: bool  # "(x=5)+1": an assignment used inside an expression
    lhs: str | None  # the variable of a leading assignment


@lru_cache(maxsize=1 << 14)
def _read(s: str) -> _Side:
    """Normalise and parse one side. Cached: a gold is compared with many answers (a GRPO group,
    a benchmark's surface forms), and reading does not depend on the other side."""
    n = normalise(s)
    t = n.text
    value, why = None, ""
    try:
        value = parse_value(t)
    except _PARSE_ERRORS as exc:
        why = f"fast path cannot parse ({exc})"
    is_word = bool(_WORDS.match(t))
    c = _CHOICE.match(t)
    letter = c.group(1).upper() if c else None
    return _Side(
        norm=n, key=comparison_key(t), value=value, why=why,
        word=n.had_text_cmd and is_word, is_word=is_word,
        choice=letter if c and (n.had_text_cmd or t.startswith("(")) else None, letter=letter,
        embedded_assign=bool(_EMBEDDED_ASSIGN.search(t)), lhs=lhs(t),
    )


def _fast(g: _Side, a: _Side) -> tuple[bool | None, str]:
    """The fast path's verdict on two read answers, or (None, why) to fall back.

    Symmetric: each rule looks at both sides alike, so swapping gold and answer gives the same
    verdict (and the same fallback, which math-verify then decides in both directions).
    """
    if not g.norm.text or not a.norm.text:
        return False, "empty after normalisation"
    if g.key == a.key:
        return True, "equal after normalisation"
    if g.word or a.word:
        # A \text{} word is compared as a word, case aside, never as a product of letters.
        return g.is_word and a.is_word and a.norm.text.lower() == g.norm.text.lower(), "word answer"
    if g.embedded_assign != a.embedded_assign:
        # "(x=5)+1": math-verify extracts the 5 of the assignment and ignores the rest.
        return False, "not equal: an assignment used inside an expression"
    if g.lhs and a.lhs and g.lhs != a.lhs:
        return None, f"assignments to different variables ({g.lhs}, {a.lhs})"
    if g.choice or a.choice:
        return g.letter is not None and g.letter == a.letter, "choice letter"
    if g.value is None or a.value is None:
        return None, g.why or a.why
    gv, av = g.value, a.value
    try:
        eq = _equal(gv, av)
        one_percent = g.norm.percent != a.norm.percent
        if eq is not True and one_percent and isinstance(gv, Num) and isinstance(av, Num):
            # Percent policy: the side that wrote % may also mean its number / 100.
            if g.norm.percent:
                gv = gv.scaled(Fraction(1, 100))
            else:
                av = av.scaled(Fraction(1, 100))
            eq2 = _equal(gv, av)
            eq = True if eq2 is True else (None if None in (eq, eq2) else False)
    except _PARSE_ERRORS as exc:
        return None, f"fast path cannot compare ({exc})"
    if eq is None:
        return None, "too close to call numerically"
    return eq, "equal values" if eq else "different values"


# --------------------------------------------------------------------------- public API

class _Uncached(Exception):
    """Carries a result that must not be cached (timeouts, worker failures)."""

    def __init__(self, result: MathResult) -> None:
        super().__init__(result.reason)
        self.result = result


@lru_cache(maxsize=1 << 16)
def _judge(gold: str, answer: str, timeout: float, fallback: bool) -> MathResult:
    if not answer.strip():
        return MathResult(False, "empty answer", "input")
    if not gold.strip():
        return MathResult(False, "empty gold answer", "input")
    try:
        g, a = _read(gold), _read(answer)
        eq, why = _fast(g, a)
    except Exception as exc:  # noqa: BLE001 - the fast path must never raise
        eq, why, g, a = None, f"fast path error {type(exc).__name__}", None, None
    if eq is not None:
        return MathResult(eq, why, "fast")
    if not fallback:
        return MathResult(False, f"undecided: {why}", "fast")
    gt, at = (g.norm.text, a.norm.text) if g and a else (gold, answer)
    method, equal, reason = mv_worker.ask(gt, at, timeout)
    res = MathResult(equal, reason, method)
    if method in ("timeout", "error"):
        raise _Uncached(res)
    return res


def math_equal_reason(
    gold: object, answer: object, timeout: float = 5.0, fallback: bool = True
) -> MathResult:
    """Compare ``answer`` to ``gold`` and say why; never raises.

    ``timeout``: seconds allowed for the math-verify fallback (the worker is killed and the
    result is False with method "timeout" beyond it). ``fallback=False`` skips math-verify:
    undecided pairs are then False with method "fast".
    """
    if not isinstance(gold, str) or not isinstance(answer, str):
        return MathResult(False, "gold and answer must be strings", "input")
    try:
        return _judge(gold, answer, float(timeout), bool(fallback))
    except _Uncached as u:
        return u.result
    except Exception as exc:  # noqa: BLE001 - documented: never raises
        return MathResult(False, f"internal error {type(exc).__name__}: {exc}", "error")


def math_equal(gold: object, answer: object, timeout: float = 5.0) -> bool:
    """True when ``answer`` is mathematically equal to ``gold`` (policies in the module docstring).

    Symmetric in its two arguments. Never raises: non-strings, empty answers, timeouts and
    parse failures are all False.
    """
    return math_equal_reason(gold, answer, timeout).equal


@lru_cache(maxsize=4096)
def math_readable(text: str, timeout: float = 5.0) -> bool:
    """True when ``text`` reads as a mathematical answer: the fast path parses it, or math-verify
    extracts an expression from it (TRL gives a gold that math-verify cannot parse the reward
    None; ponder's rewards do the same through this). Never raises."""
    if not isinstance(text, str) or not text.strip():
        return False
    try:
        parse_value(normalise(text).text)
        return True
    except Exception:  # noqa: BLE001 - the fast path cannot read it: ask math-verify
        pass
    return bool(mv_worker.parses(text, timeout))


def clear_cache() -> None:
    """Forget cached results and readings (benchmarks call this so timings measure real work)."""
    _judge.cache_clear()
    _read.cache_clear()


def warm_up(timeout: float = 120.0) -> bool:
    """Start a math-verify worker now (about a second, once per worker) so that the first
    fallback is not slow; True when the worker answered."""
    return mv_worker.warm_up(timeout)
