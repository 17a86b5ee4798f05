"""A safe evaluator for model-written arithmetic: integers, + - * /, unary minus, parentheses.

Model text is never passed to ``eval``. An expression is checked in three layers:

1. a length cap (``MAX_LEN`` characters, default 200) and a character whitelist
   (digits, ``+ - * /``, parentheses, spaces) -- this rejects names, calls, strings,
   attribute access and float/hex/underscore literals before the parser sees them;
2. ``ast.parse(mode="eval")`` and a node whitelist: ``Constant`` ints, ``BinOp`` with
   ``Add``/``Sub``/``Mult``/``Div``, ``UnaryOp`` with ``USub`` (parentheses leave no node).
   ``**``, ``//`` and ``%`` are refused, so values cannot blow up: within 200 characters the
   largest reachable magnitude is about 10**200, which ``Fraction`` handles instantly;
3. exact evaluation with ``fractions.Fraction``, so ``(8/3)*3`` is exactly 8 and a division
   by zero is reported rather than raised.

Every refusal is an ``ExpressionError`` (a ``ValueError``) whose message says what is wrong
in a few words, ready to become a verdict reason.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

MAX_LEN = 200
_ALLOWED_CHARS = re.compile(r"[0-9+\-*/()\s]*")
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_REFUSED_BINOPS = {ast.Pow: "**", ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@"}


class ExpressionError(ValueError):
    """The text is not a safe arithmetic expression, or it cannot be evaluated."""


def parse_expression(text: str, max_len: int = MAX_LEN) -> ast.expr:
    """The checked AST of ``text``; raises ``ExpressionError`` naming the problem."""
    text = text.strip()
    if not text:
        raise ExpressionError("empty expression")
    if len(text) > max_len:
        raise ExpressionError(f"expression too long ({len(text)} characters, limit {max_len})")
    if not _ALLOWED_CHARS.fullmatch(text):
        bad = next(c for c in text if not _ALLOWED_CHARS.fullmatch(c))
        raise ExpressionError(f"not an arithmetic expression (character {bad!r} is not allowed)")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        # SyntaxError: unbalanced parentheses, "5 +", leading zeros ("05"), too deep nesting.
        raise ExpressionError("not an arithmetic expression (syntax error)") from None
    _check(tree.body)
    return tree.body


def _check(node: ast.AST) -> None:
    """Refuse any node outside the whitelist (defence in depth behind the character filter)."""
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:
            raise ExpressionError(f"not an arithmetic expression ({node.value!r} is not a whole number)")
    elif isinstance(node, ast.BinOp):
        op = type(node.op)
        if op not in _BINOPS:
            sym = _REFUSED_BINOPS.get(op, op.__name__)
            raise ExpressionError(f"not an arithmetic expression (operator {sym} is not allowed)")
        _check(node.left)
        _check(node.right)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check(node.operand)
    else:
        raise ExpressionError(f"not an arithmetic expression ({type(node).__name__} is not allowed)")


def _apply(op: ast.operator, left: Fraction, right: Fraction) -> Fraction:
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return left * right
    if right == 0:
        raise ExpressionError("division by zero")
    return left / right


def _value(node: ast.expr) -> Fraction:
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp):
        return -_value(node.operand)
    assert isinstance(node, ast.BinOp)  # guaranteed by _check
    return _apply(node.op, _value(node.left), _value(node.right))


def evaluate_node(node: ast.expr) -> Fraction:
    """Exact value of a node returned by ``parse_expression``."""
    try:
        return _value(node)
    except RecursionError:  # pragma: no cover - the parser refuses such depth first
        raise ExpressionError("expression nested too deeply") from None


def evaluate(text: str, max_len: int = MAX_LEN) -> Fraction:
    """Exact value of the arithmetic expression ``text``; raises ``ExpressionError``."""
    return evaluate_node(parse_expression(text, max_len))


def numbers_in(node: ast.expr) -> list[int]:
    """The integer literals of a checked expression, left to right (``-5`` counts as 5)."""
    out: list[int] = []

    def walk(n: ast.expr) -> None:
        if isinstance(n, ast.Constant):
            out.append(n.value)
        elif isinstance(n, ast.UnaryOp):
            walk(n.operand)
        elif isinstance(n, ast.BinOp):
            walk(n.left)
            walk(n.right)

    walk(node)
    return out


def is_number(node: ast.expr) -> bool:
    """True for a lone integer literal, possibly negated (``80``, ``-3``)."""
    while isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant)


def fmt(value: Fraction) -> str:
    """``Fraction`` as text: ``80`` for integers, ``79/3`` otherwise."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def steps(node: ast.expr) -> list[str]:
    """The intermediate calculations of an expression in evaluation order: ``["25-5=20", "20*4=80"]``.

    Used to write Countdown reference reasoning; each step combines two already-computed
    values, as a person working the problem would.
    """
    lines: list[str] = []

    def walk(n: ast.expr) -> Fraction:
        if isinstance(n, ast.Constant):
            return Fraction(n.value)
        if isinstance(n, ast.UnaryOp):
            return -walk(n.operand)
        assert isinstance(n, ast.BinOp)
        a, b = walk(n.left), walk(n.right)
        value = _apply(n.op, a, b)
        lines.append(f"{fmt(a)}{_BINOPS[type(n.op)]}{fmt(b)}={fmt(value)}")
        return value

    walk(node)
    return lines
