"""The fast path's reader: evaluate a normalised answer string (``ponder.verify.latex_norm``) to
exact values.

``parse_value`` reads the result as a number (``Num``) or a sequence (``Seq``: tuple, interval,
set, union, matrix) with a small recursive-descent evaluator: rationals stay exact ``Fraction``; ``\\sqrt``, ``\\pi`` and
``i`` give floats or complex numbers; variables are evaluated at fixed pseudo-random rational
points (``POINTS``). Anything outside this grammar raises ``Bail`` so the caller can hand the
strings to math-verify. The comparison rules live in ``ponder.verify.math``.
"""

from __future__ import annotations

import cmath
import math
import random
import re
import string
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

from ponder.verify.latex_norm import ASSIGN, clean_number_text, strip_assignment

Number = Union[Fraction, float, complex]

#: Inputs longer than this are not read here (they go to math-verify): keeps the fast path cheap.
MAX_FAST_LEN = 1000
#: Bare lists with more items than this go to math-verify (matching items is quadratic).
MAX_LIST_ITEMS = 64


class Bail(Exception):
    """The fast path cannot read this string: hand it to math-verify."""


# --------------------------------------------------------------------------- scalar parser

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)|(?P<cmd>\\[A-Za-z]+|\\[{}])"
    r"|(?P<op>\*\*|[-+*/^()\[\]{}!,])|(?P<letter>[A-Za-z]{1,2}(?![A-Za-z]))|(?P<other>\S))"
)
_MULT_CMDS = {r"\cdot", r"\times", r"\ast"}
_GREEK = {"\\" + g for g in (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta kappa lambda mu nu xi rho "
    "sigma tau phi varphi chi psi omega Gamma Delta Theta Lambda Phi Psi Omega").split()}
_ATOM_CMDS = {r"\frac", r"\sqrt", r"\pi", r"\infty", r"\binom"} | _GREEK
_WORDISH = re.compile(r"(?<![A-Za-z\\])(?:or|and|is|of|to|in|at|by|on|no|so|as|if|it|an|be)(?![A-Za-z])")


def _variable_points(n: int) -> list[dict[str, Fraction]]:
    """``n`` fixed pseudo-random rational values for every variable name.

    Expressions with variables are compared by evaluating both sides at these points with exact
    arithmetic (polynomial identity testing): two different rational functions agree at a
    random rational point with negligible probability, and never at both points by accident
    of structure because the points differ per variable. Fixed seed: results are reproducible.
    """
    rng = random.Random("ponder.verify.math")
    names = [c for c in string.ascii_letters if c not in "ie"] + sorted(_GREEK)
    return [{v: Fraction(rng.choice((-1, 1)) * rng.randint(2, 97), rng.randint(2, 29)) for v in names}
            for _ in range(n)]


POINTS = _variable_points(2)


def _tokens(s: str) -> list[str]:
    if _WORDISH.search(s):
        raise Bail("words")  # "2 or 3", "x in ...": prose, not a product of variables
    out: list[str] = []
    pos = 0
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.group("other"):
            raise Bail("unknown symbol")
        tok = m.group(m.lastgroup)
        if m.lastgroup == "letter":
            out.extend(tok)  # "xy" is x times y; a run of 3+ letters is a word and bails above
        else:
            out.append("^" if tok == "**" else tok)
        pos = m.end()
    return out


def _exact_root(x: Fraction, n: int) -> Fraction | None:
    """The exact non-negative n-th root of a non-negative rational, or None."""
    def iroot(k: int) -> int | None:
        r = round(k ** (1.0 / n)) if k < 2**1000 else None
        if r is None:
            return None
        for c in (r - 1, r, r + 1):
            if c >= 0 and c**n == k:
                return c
        return None

    a, b = iroot(x.numerator), iroot(x.denominator)
    return Fraction(a, b) if a is not None and b is not None else None


def _root(x: Number, n: int) -> Number:
    if n < 1 or n > 100:
        raise Bail("root degree")
    if isinstance(x, Fraction):
        if x >= 0:
            r = _exact_root(x, n)
            return r if r is not None else float(x) ** (1.0 / n)
        if n % 2 == 1:
            return -_root(-x, n)
        if n == 2:
            return 1j * _root(-x, 2)
        raise Bail("even root of a negative number")
    if isinstance(x, float) and x >= 0:
        return x ** (1.0 / n)
    if n == 2:
        return cmath.sqrt(x)
    raise Bail("root of a complex number")


def _power(b: Number, e: Number) -> Number:
    if isinstance(e, Fraction) and e.denominator == 1:
        n = int(e)
        if abs(n) > 10_000:
            raise Bail("exponent too large")
        if isinstance(b, Fraction):
            if b == 0 and n < 0:
                raise Bail("division by zero")
            size = max(len(str(b.numerator)), len(str(b.denominator)))
            if size * abs(n) > 20_000:
                raise Bail("power too large")
        try:
            return b**n
        except (OverflowError, ZeroDivisionError) as exc:
            raise Bail("power") from exc
    if isinstance(e, Fraction) and isinstance(b, Fraction) and b >= 0 and e.denominator <= 100:
        r = _root(b, e.denominator)
        return _power(r, Fraction(e.numerator))
    if isinstance(b, (Fraction, float)) and b < 0:
        raise Bail("non-integer power of a negative number")
    try:
        r = complex(b) ** complex(e)
    except (OverflowError, ZeroDivisionError) as exc:
        raise Bail("power") from exc
    return r.real if abs(r.imag) <= 1e-15 * max(1.0, abs(r.real)) else r


class _Scalar:
    """Recursive-descent evaluator for one scalar LaTeX/plain expression.

    Grammar: expr := [±] term {± term}; term := unary {(* | / | \\cdot | implicit) unary};
    unary := [±] power; power := postfix [^ exponent]; postfix := atom {!};
    atom := number | (expr) | {expr} | \\frac A B | \\sqrt[n] A | \\binom A B | \\pi | \\infty | i.
    Any other letter (a variable) or command raises ``Bail``.
    """

    def __init__(self, text: str, point: int = 0) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.decimal = False  # a decimal literal was read
        self.variables = False  # a variable was read (then evaluate again at another point)
        self.env = POINTS[point]

    def parse(self) -> Number:
        v = self.expr()
        if self.i != len(self.toks):
            raise Bail("trailing input")
        return v

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        t = self.peek()
        if t is None or (want is not None and t != want):
            raise Bail(f"expected {want}")
        self.i += 1
        return t

    def expr(self) -> Number:
        v = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            r = self.term()
            v = v + r if op == "+" else v - r
        return v

    def term(self) -> Number:
        v = self.unary()
        while True:
            t = self.peek()
            if t in ("*", "/") or t in _MULT_CMDS or t == r"\div":
                self.take()
                r = self.unary()
                if t in ("/", r"\div"):
                    if r == 0:
                        raise Bail("division by zero")
                    v = v / r
                else:
                    v = v * r
            elif t is not None and self.starts_atom(t):
                if _is_num(t) and _is_num(self.toks[self.i - 1]):
                    raise Bail("two numbers side by side")
                v = v * self.power()
            else:
                return v

    @staticmethod
    def starts_atom(t: str) -> bool:
        return _is_num(t) or t in ("(", "{") or t in _ATOM_CMDS or (len(t) == 1 and t.isalpha())

    def unary(self) -> Number:
        t = self.peek()
        if t in ("-", "+"):
            self.take()
            v = self.unary()
            return -v if t == "-" else v
        return self.power()

    def power(self) -> Number:
        v = self.postfix()
        if self.peek() == "^":
            self.take()
            t = self.peek()
            if t == "{":
                e = self.braced()
            elif t in ("-", "+"):
                e = self.unary()
            elif t is not None and _is_num(t) and len(t) > 1:
                # "2^10": LaTeX reads 2^1·0, plain text 2^{10}; let math-verify decide.
                raise Bail("ambiguous exponent")
            else:
                e = self.arg()
            v = _power(v, e)
        return v

    def postfix(self) -> Number:
        v = self.atom()
        while self.peek() == "!":
            self.take()
            if not (isinstance(v, Fraction) and v.denominator == 1 and 0 <= v <= 1000):
                raise Bail("factorial")
            v = Fraction(math.factorial(int(v)))
        return v

    def braced(self) -> Number:
        self.take("{")
        v = self.expr()
        self.take("}")
        return v

    def arg(self) -> Number:
        """One macro argument: ``{expr}``, a single digit (``\\frac12``), or one atom."""
        t = self.peek()
        if t == "{":
            return self.braced()
        if t is not None and _is_num(t) and len(t) > 1 and t[0].isdigit():
            self.toks[self.i] = t[1:]  # LaTeX takes one character: \frac12 = \frac{1}{2}
            return Fraction(int(t[0]))
        return self.atom()

    def atom(self) -> Number:
        t = self.take()
        if _is_num(t):
            if "." in t or "e" in t or "E" in t:
                self.decimal = True
            return Fraction(t)
        if t == "(":
            v = self.expr()
            self.take(")")
            return v
        if t == "{":
            v = self.expr()
            self.take("}")
            return v
        if t == r"\frac":
            num, den = self.arg(), self.arg()
            if den == 0:
                raise Bail("division by zero")
            return num / den
        if t == r"\sqrt":
            n = 2
            if self.peek() == "[":
                self.take("[")
                k = self.expr()
                self.take("]")
                if not (isinstance(k, Fraction) and k.denominator == 1):
                    raise Bail("root degree")
                n = int(k)
            t = self.peek()
            if t is not None and _is_num(t) and len(t) > 1:
                raise Bail("ambiguous root")  # "\sqrt12": LaTeX √1·2, but meant √12
            return _root(self.arg(), n)
        if t == r"\binom":
            n, k = self.arg(), self.arg()
            integers = all(isinstance(x, Fraction) and x.denominator == 1 for x in (n, k))
            if not integers or not 0 <= n <= 10_000:
                raise Bail("binomial")
            return Fraction(math.comb(int(n), int(k)) if k >= 0 else 0)
        if t == r"\pi":
            return math.pi
        if t == r"\infty":
            return math.inf
        if t == "i":
            return 1j
        if t in self.env:
            self.variables = True
            return self.env[t]
        raise Bail(f"cannot evaluate {t}")


def _is_num(t: str) -> bool:
    return t[0].isdigit() or (t[0] == "." and len(t) > 1)


@dataclass(frozen=True)
class Num:
    """A scalar: its value, or with variables its values at each point of ``POINTS``."""

    values: tuple  # of Number; length 1 without variables
    decimal: bool  # written with a decimal point (or 1e-5): tolerance may apply

    def scaled(self, k: Fraction) -> "Num":
        return Num(tuple(v * k for v in self.values), self.decimal)


@dataclass(frozen=True)
class Seq:
    brackets: str  # "()", "[]", "(]", "[)", "{}" (set), "" (bare list), "mat"
    items: tuple
    # For a bare list whose items assign distinct variables ("x = 1, y = 2"): the variable of
    # each item, in order; None otherwise (labels all alike, "x = 1, x = 2", are dropped).
    names: tuple | None = None


_MIXED = re.compile(r"^([-+]?)\s*(\d+)\s*(?:\\frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}|\s(\d+)\s*/\s*(\d+))$")


_DIGIT_FRAC = re.compile(r"\d\s*\\d?frac")


def _scalar(s: str) -> Num:
    s = clean_number_text(strip_assignment(s.strip()))
    if not s:
        raise Bail("empty item")
    m = _MIXED.match(s)
    if m:  # a mixed number, 1\frac{4}{5} = 9/5
        whole = int(m.group(2))
        num, den = (int(m.group(3)), int(m.group(4))) if m.group(3) else (int(m.group(5)), int(m.group(6)))
        if den == 0:
            raise Bail("division by zero")
        v = whole + Fraction(num, den)
        return Num((-v if m.group(1) == "-" else v,), False)
    if _DIGIT_FRAC.search(s):
        # "1\frac{4}{5}+1": a mixed number inside an expression. Implicit multiplication would
        # read 1·4/5+1 = 9/5 (a false positive against 1\frac{4}{5}); math-verify reads 1+9/5+1.
        raise Bail("mixed number inside an expression")
    p = _Scalar(s)
    values = [p.parse()]
    if p.variables:
        values += [_Scalar(s, k).parse() for k in range(1, len(POINTS))]
    out = []
    for v in values:
        if isinstance(v, complex) and v.imag == 0:
            v = v.real
        if isinstance(v, float) and math.isnan(v):
            raise Bail("nan")
        out.append(v)
    return Num(tuple(out), p.decimal)


def _split_top(s: str, sep: str) -> list[str]:
    """Split on ``sep`` outside (), [], {} and \\{ \\}."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        if s.startswith("\\{", i) or s.startswith("\\}", i):
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(s[start:])
    return parts


def _one_group(s: str) -> bool:
    """``s`` is a single bracketed group: its first bracket closes at its last character."""
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i == len(s) - 1
    return False


def _label(s: str) -> str:
    """The variable a list item assigns (``y`` in ``y = 2``), or "" (read as ``strip_assignment``)."""
    m = ASSIGN.match(s)
    if m and "=" in m.group(0) and strip_assignment(s) != s:
        return re.sub(r"[\s={}]", "", m.group(0))  # "x_{1} =" and "x_1=" name the same variable
    return ""


def _items(parts: list[str], allow_pm: bool) -> tuple[tuple, tuple]:
    """The values of the list items and the variable each one assigns ("" for none)."""
    out: list = []
    labels: list[str] = []
    for p in parts:
        label = _label(p) if "=" in p else ""
        if r"\pm" in p or r"\mp" in p:
            if not allow_pm or p.count(r"\pm") + p.count(r"\mp") != 1:
                raise Bail("± inside an ordered sequence")
            out += [_scalar(p.replace(r"\pm", "+").replace(r"\mp", "-")),
                    _scalar(p.replace(r"\pm", "-").replace(r"\mp", "+"))]
            labels += [label, label]
        else:
            out.append(_scalar(p))
            labels.append(label)
    return tuple(out), tuple(labels)


def _names(labels: tuple, bare: bool) -> tuple | None:
    """``Seq.names`` from the item labels; raise ``Bail`` for labels the fast path cannot match.

    No labels, or one variable throughout (``x = 1, x = 2``: a list of solutions), give None.
    Distinct variables (``x = 1, y = 2``) are kept for a bare list, whose items are then matched
    by variable. Anything else (some items labelled, a variable twice among others, labels inside
    brackets or a set, which would otherwise compare only the values) is left to math-verify.
    """
    used = set(labels)
    if used == {""} or (len(used) == 1 and len(labels) > 1):
        return None
    if bare and "" not in used and len(used) == len(labels):
        return labels
    raise Bail("list items assign different variables")


_MATRIX = re.compile(r"^\\begin\{([pbBvV]?matrix)\}(.*)\\end\{\1\}$", re.S)


def parse_value(s: str) -> Num | Seq:
    """Parse a normalised answer into a number or a sequence; raise ``Bail`` when unsure."""
    s = strip_assignment(s.strip())
    s = clean_number_text(s)
    if not s or len(s) > MAX_FAST_LEN:
        raise Bail("empty or too long")
    m = _MATRIX.match(s)
    if m:
        if m.group(1) in ("vmatrix", "Vmatrix"):
            raise Bail("determinant")
        rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
        cells = tuple(tuple(_scalar(c) for c in r.split("&")) for r in rows)
        if len({len(r) for r in cells}) != 1:
            raise Bail("ragged matrix")
        return Seq("mat", cells)
    unions = _split_top(s, r"\cup")
    if len(unions) > 1:
        parts = [parse_value(u) for u in unions]
        if not all(isinstance(p, Seq) and p.brackets in ("()", "[]", "(]", "[)") for p in parts):
            raise Bail("union of non-intervals")
        return Seq("cup", tuple(parts))
    if s.startswith(r"\{") and s.endswith(r"\}"):
        inner = s[2:-2]
        if not inner.strip():
            return Seq("{}", ())
        items, labels = _items(_split_top(inner, ","), True)
        _names(labels, bare=False)
        return Seq("{}", items)
    if s[0] in "([" and s[-1] in ")]" and _one_group(s):
        parts = _split_top(s[1:-1], ",")
        if len(parts) > 1:
            items, labels = _items(parts, False)
            _names(labels, bare=False)
            return Seq(s[0] + s[-1], items)
    parts = _split_top(s, ",")
    if len(parts) > 1 or r"\pm" in s or r"\mp" in s:
        if len(parts) > MAX_LIST_ITEMS:
            raise Bail("long list")
        items, labels = _items(parts, True)
        return Seq("", items, _names(labels, bare=True))
    return _scalar(s)
