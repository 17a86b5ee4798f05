"""Benchmark: ``ponder.verify.math_equal`` against plain math-verify, on the same pairs.

Pairs come from every MATH-500 and GSM8K (train + test) gold answer, plus AIME 2024 and
AMC 2023: each gold against several equivalent surface forms (``$…$``, ``\\boxed{}``,
``\\dfrac`` for ``\\frac``, a trailing ``.``, thousands separators, ``.0``, currency or degree
units where the item has them, the decimal form of a simple fraction, no ``\\left``/``\\right``;
for a list of solutions, the list written with "and" and in reverse order) and against
non-equivalent perturbations (the number + 1, the first integer bumped, e.g. a changed
numerator, the first two tuple items swapped, an interval's bracket flipped; for a list, its
first or last item alone, the list less its last item, an item repeated in place of another,
and "a, b, and c" with every item but the last changed; for an integer, the list
"1, 2, and N" that ends with it). Minerva's golds are not in the timed corpus: one pair in
about 25 is a formula (functions, subscripted names) that only math-verify reads, at about a
second each, so timing them would mostly time math-verify; ``load_golds(minerva=True)`` adds
them, for tests.

The baseline is exactly ``math_verify.verify(math_verify.parse(gold), math_verify.parse(answer))``
in this process (signal timeouts work here: main thread). A second row wraps both strings in
``$…$``, as math-verify's documentation does, to show its accuracy at its best.

Fairness: pairs are de-duplicated and ``math_equal``'s cache is cleared right before its timed
loop, so no result is ever served from the cache while timing; ``fallback`` workers are started
before timing (start-up is a one-off ~1 s per process). math-verify keeps its own internal parse
caches, as in normal use, in both its rows and in ponder's worker; ponder likewise keeps the
reading of each string (emptied with its result cache), so a gold compared with several answers
is read once, as in a GRPO group.

    .venv/bin/python bench/verify.py [--limit N] [--timeout 5]

``--limit N`` keeps N gold answers per data set (quick run).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from ponder.format import extract_answer  # noqa: E402

_INT = re.compile(r"^-?\d{1,3}(?:,\d{3})*$|^-?\d+$")
_FRAC = re.compile(r"^(-?)\\d?frac\{(\d+)\}\{(\d+)\}$")


def _thousands(n: int, sep: str) -> str:
    return f"{n:,}".replace(",", sep)


def _decimal(x: Fraction) -> str | None:
    """The terminating decimal of ``x`` ("3/8" → "0.375"), or None when it does not terminate."""
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return None
    s = format(Decimal(x.numerator) / Decimal(x.denominator), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def equivalent_forms(gold: str, money: bool = False) -> list[str]:
    """Surface forms of ``gold`` that every verifier should accept as equal.

    ``money``: the question is about money (GSM8K: a ``$`` in it; LaTeX sets: an escaped
    ``\\$``), so ``\\$N`` and ``N dollars`` are natural forms.
    """
    forms = [gold, f"${gold}$", f"\\boxed{{{gold}}}", f"{gold}."]
    if "\\frac" in gold:
        forms.append(gold.replace("\\frac", "\\dfrac"))
    if "\\dfrac" in gold:
        forms.append(gold.replace("\\dfrac", "\\frac"))
    if "\\left" in gold:
        forms.append(gold.replace("\\left", "").replace("\\right", ""))
    if _INT.match(gold):
        n = int(gold.replace(",", ""))
        forms += [str(n), f"{n}.0"]
        if abs(n) >= 1000:
            forms += [_thousands(n, ","), _thousands(n, "{,}"), _thousands(n, ",\\!")]
        if money:
            forms += [f"\\${n}", f"{n} dollars", f"\\${_thousands(n, ',')}"]
    m = _FRAC.match(gold)
    if m:
        x = Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
        dec = _decimal(x)
        if dec is not None:
            forms.append(dec)
        forms.append(f"{x.numerator}/{x.denominator}")
    deg = re.match(r"^(.*?)\s*\^\\circ$", gold)
    if deg:
        forms += [deg.group(1), f"{deg.group(1)}^{{\\circ}}", f"{deg.group(1)} degrees"]
    unit = re.match(r"^(.*?)\s*\\(?:text|mbox)\{\s*[a-z ]+\}(\^2)?$", gold)
    if unit and unit.group(1):
        forms.append(unit.group(1))
    items = list_items(gold)
    if items:  # a list of solutions: in words, and in another order
        *head, last = items
        if len(items) == 2:
            forms += [f"{head[0]} and {last}", f"\\boxed{{{head[0]} and {last}}}",
                      f"{head[0]} \\text{{ and }} {last}"]
        else:
            forms += [f"{', '.join(head)}, and {last}", f"{', '.join(head)} and {last}",
                      f"\\boxed{{{', '.join(head)}, and {last}}}"]
        forms.append(", ".join(reversed(items)))
    return list(dict.fromkeys(forms))


def list_items(gold: str) -> list[str] | None:
    """The items of a bare list of solutions ("1,-2", "3, 5, 7"), or None for anything else.

    Commas inside brackets or braces do not split; a number with thousands separators, a tuple,
    an interval or a set is not a bare list.
    """
    if _INT.match(gold) or "\\!" in gold or "{,}" in gold:
        return None
    parts, depth, start = [], 0, 0
    for i, c in enumerate(gold):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(gold[start:i].strip())
            start = i + 1
    parts.append(gold[start:].strip())
    return parts if len(parts) > 1 and all(parts) else None


def _bump_first_int(s: str) -> str | None:
    m = re.search(r"\d+", s)
    if not m:
        return None
    return s[: m.start()] + str(int(m.group(0)) + 1) + s[m.end():]


def perturbations(gold: str) -> list[str]:
    """Answers that are *not* equal to ``gold``: a verifier must reject every one."""
    out: list[str] = []
    if _INT.match(gold):
        out.append(str(int(gold.replace(",", "")) + 1))
    else:
        bumped = _bump_first_int(gold)
        if bumped is not None:
            out.append(bumped)
        elif re.fullmatch(r"\\text\{\(?[A-E]\)?\}", gold):
            out.append(re.sub(r"[A-E]", lambda m: "ABCDE"[("ABCDE".index(m.group(0)) + 1) % 5], gold))
        elif gold.startswith("\\text{"):
            out.append("\\text{nobody}")
        else:
            out.append(f"{gold} + 1")
    tup = re.fullmatch(r"(\\left)?\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*(,.*)?(\\right)?\)", gold)
    if tup and tup.group(2) != tup.group(3):
        rest = tup.group(4) or ""
        out.append(f"({tup.group(3)}, {tup.group(2)}{rest})")
    iv = re.fullmatch(r"([(\[])([^()\[\]]*)([)\]])", gold)
    if iv and "," in iv.group(2):
        flip = {"(": "[", "[": "(", ")": "]", "]": ")"}
        out.append(flip[iv.group(1)] + iv.group(2) + iv.group(3))
    items = list_items(gold)
    if items:
        # A list must be matched whole: none of its items alone, nor a list that only ends alike.
        *head, last = items
        out += [items[0], last, ", ".join([items[0]] + items[:1] + items[2:])]
        if len(items) > 2:
            out.append(", ".join(items[:-1]))
        changed = [_bump_first_int(x) for x in head]
        if all(changed):
            out.append(f"{', '.join(changed)}{',' if len(items) > 2 else ''} and {last}")
    elif _INT.match(gold):
        out.append(f"1, 2, and {gold.replace(',', '')}")
    inner = re.fullmatch(r"\\\{(.*)\\\}", gold)
    set_items = list_items(inner.group(1)) if inner else None
    if set_items:
        out += [set_items[-1], "\\{" + ", ".join(set_items[:-1]) + "\\}"]
    if "\\pm" in gold and "," not in gold:  # "1 \pm \sqrt{19}" is two solutions, not one
        out += [gold.replace("\\pm", "+"), gold.replace("\\pm", "-")]
    return [p for p in dict.fromkeys(out) if p != gold]


def load_golds(limit: int | None = None, minerva: bool = False) -> list[tuple[str, str, bool]]:
    """``(source, gold, money)`` for every item of the benchmark sets (``limit`` per set).

    ``minerva``: add Minerva's golds (the last ``\\boxed{}`` of each solution), which the timed
    corpus leaves out (see the module docstring).
    """
    rows: list[tuple[str, str, bool]] = []

    def take(name: str, items: Iterable[tuple[str, bool]]) -> None:
        for k, (gold, ctx) in enumerate(items):
            if limit is not None and k >= limit:
                break
            rows.append((name, gold, ctx))

    def jl(rel: str) -> list[dict]:
        with open(DATA / rel, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    take("math500", ((r["answer"], "\\$" in r["problem"]) for r in jl("math500/test.jsonl")))
    gsm = jl("gsm8k/test.jsonl") + jl("gsm8k/train.jsonl")
    take("gsm8k", ((extract_answer(r["answer"]) or "", "$" in r["question"]) for r in gsm))
    take("aime24", ((str(r["answer"]), "\\$" in r["problem"]) for r in jl("aime24/test.jsonl")))
    take("amc23", ((str(r["answer"]), "\\$" in r["problem"]) for r in jl("amc23/test.jsonl")))
    if minerva:
        from ponder.format import last_boxed

        boxed = ((last_boxed(r["solution"]) or "").strip() for r in jl("minerva_math/test.jsonl"))
        take("minerva", ((g, False) for g in boxed))
    return rows


def build_pairs(golds: list[tuple[str, str, bool]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """De-duplicated (gold, answer) pairs: equivalent ones and perturbed (non-equivalent) ones."""
    eq: dict[tuple[str, str], None] = {}
    ne: dict[tuple[str, str], None] = {}
    for _, gold, ctx in golds:
        for f in equivalent_forms(gold, ctx):
            eq[(gold, f)] = None
        for p in perturbations(gold):
            ne[(gold, p)] = None
    return list(eq), list(ne)


def _run(check: Callable[[str, str], bool], pairs: list[tuple[str, str]]) -> tuple[list[bool], float]:
    t0 = time.perf_counter()
    out = [check(g, a) for g, a in pairs]
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="gold answers per data set (quick run)")
    ap.add_argument("--timeout", type=float, default=5.0, help="math_equal fallback timeout (s)")
    ap.add_argument("--show", type=int, default=5, help="failures to list per row")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"benchmark data not found at {DATA}")
    logging.disable(logging.WARNING)  # math-verify logs every parse failure / timeout

    import math_verify

    from ponder.verify.math import clear_cache, math_equal_reason, warm_up

    golds = load_golds(args.limit)
    eq_pairs, ne_pairs = build_pairs(golds)
    pairs = eq_pairs + ne_pairs
    print(f"{len(golds)} gold answers -> {len(eq_pairs)} equivalent pairs + {len(ne_pairs)} perturbed pairs")

    warm_up()
    clear_cache()  # and every pair is distinct: no cache hit is possible in the timed loop
    methods: dict[str, int] = {}

    def ours(g: str, a: str) -> bool:
        r = math_equal_reason(g, a, timeout=args.timeout)
        methods[r.method] = methods.get(r.method, 0) + 1
        return r.equal

    def mv_plain(g: str, a: str) -> bool:
        return math_verify.verify(math_verify.parse(g), math_verify.parse(a))

    def mv_wrapped(g: str, a: str) -> bool:
        return math_verify.verify(math_verify.parse(f"${g}$"), math_verify.parse(f"${a}$"))

    rows = []
    for name, fn in (("ponder math_equal", ours), ("math-verify (plain)", mv_plain),
                     ("math-verify ($-wrapped)", mv_wrapped)):
        res, secs = _run(fn, pairs)
        missed = [p for p, r in zip(eq_pairs, res[: len(eq_pairs)]) if not r]
        false_pos = [p for p, r in zip(ne_pairs, res[len(eq_pairs):]) if r]
        rows.append((name, len(pairs) / secs, secs, missed, false_pos))

    base = rows[1][1]
    print(f"\n{'verifier':26} {'checks/s':>10} {'seconds':>8} {'vs plain':>9} {'missed equiv':>13} {'false pos':>10}")
    for name, rate, secs, missed, fp in rows:
        print(f"{name:26} {rate:10.0f} {secs:8.2f} {rate / base:8.1f}x {len(missed):13d} {len(fp):10d}")
    print(f"\nponder decided by: {', '.join(f'{k} {v}' for k, v in sorted(methods.items()))}")
    print(f"ponder vs $-wrapped math-verify: {rows[0][1] / rows[2][1]:.1f}x")
    for name, _, _, missed, fp in rows:
        for label, items in (("missed equivalent", missed), ("false positive", fp)):
            for g, a in items[: args.show]:
                print(f"  [{name}] {label}: gold={g!r} answer={a!r}")


if __name__ == "__main__":
    main()
