"""math_equal: real answer pairs, equal and not, lists, commas, symmetry, benchmark golds, junk."""

from __future__ import annotations

import functools
import importlib.util
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponder.format import extract_answer, last_boxed
from ponder.verify import math_equal
from ponder.verify.math import clear_cache, math_equal_reason, warm_up

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark data not found at {DATA}")

# (gold, answer): must be equal. Golds are real MATH-500 / GSM8K / AIME / AMC answers where possible.
EQUAL = [
    (r"\frac{1}{2}", "0.5"),
    (r"\frac{1}{2}", "1/2"),
    (r"\frac{14}{3}", r"\dfrac{14}{3}"),
    (r"\frac43", r"\frac{4}{3}"),
    (r"\frac 59", "5/9"),
    (r"\dfrac{17}{50}", "0.34"),
    (r"\dfrac{33}{100}", "0.33"),
    (r"-\frac{35}{9}", r"\frac{-35}{9}"),
    ("27.0", "27"),  # AMC 23 answers are floats
    ("025", "25"),  # AIME 24 answers are zero-padded
    ("3159.0", "3,159"),
    (r"\$1,000", "1000"),
    (r"\$32,\!348", "32348"),
    (r"\$18.90", "18.9"),
    (r"10,\!080", "10080"),
    (r"11,\! 111,\! 111,\! 100", "11111111100"),
    ("58,500", "58500"),
    ("1,450,000", r"1{,}450{,}000"),
    (r"10 \text{ cm}", "10"),
    (r"5.4 \text{ cents}", "5.4"),
    (r"864 \mbox{ inches}^2", "864"),
    (r"15\mbox{ cm}^2", "15"),
    (r"\frac{270}7\text{ degrees}", r"\frac{270}{7}"),
    (r"90^\circ", "90"),
    (r"3^\circ", "3"),
    (r"145^\circ", r"145^{\circ}"),
    ("x=5", "5"),
    ("3", "x = 3"),
    (r"x \in [-2,7]", "[-2, 7]"),
    (r"50\%", "50"),  # percent policy: the % side may be read as written ...
    (r"50\%", "0.5"),  # ... or divided by 100
    ("0.5", r"50\%"),
    (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}"),
    (r"2\sqrt{3}", r"\sqrt{12}"),
    (r"3\sqrt{13}", r"\sqrt{117}"),
    (r"11\sqrt2", r"11\sqrt{2}"),
    (r"\frac{3\sqrt{3}}{4}", r"\frac{3}{4}\sqrt{3}"),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"),
    (r"\frac{1}{3}", "0.333333"),  # a decimal needs 6 significant digits for a repeating value
    (r"1\frac{4}{5}", r"\frac{9}{5}"),  # mixed number
    (r"137 \frac{1}{2}", "137.5"),
    (".0000672", "6.72e-5"),
    (r"-\frac{\pi}{6}", r"-\pi/6"),
    (r"288 \pi", r"288\pi"),
    (r"18+2\pi", r"2\pi + 18"),
    ("6 - 5i", "-5i + 6"),
    ("1+274i", "274i+1"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi/2)"),
    (r"\left(\frac{3}{5},\frac{8}{3}\right]", "(0.6, 8/3]"),
    (r"(-\infty, 0]", r"(-\infty,0]"),
    (r"(0,9) \cup (9,36)", r"(9,36) \cup (0,9)"),
    ("1,-2", "-2, 1"),  # a bare list of solutions is unordered
    ("3, 5, 7", "7, 5, 3"),
    ("(6,31,-1)", "6, 31, -1"),
    (r"1 \pm \sqrt{19}", r"1 - \sqrt{19}, 1 + \sqrt{19}"),
    (r"\{1\pm\sqrt{5},-2\}", r"-2, 1+\sqrt5, 1-\sqrt5"),
    (r"\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}", r"\begin{pmatrix} -\frac13 \\ \frac23 \\ \frac53 \end{pmatrix}"),
    (r"\begin{pmatrix} -2 \\ -14 \\ -7 \end{pmatrix}", "(-2, -14, -7)"),
    (r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}", r"\begin{bmatrix} -1 & 0 \\ 0 & -1 \end{bmatrix}"),
    (r"\text{Evelyn}", "Evelyn"),
    (r"\text{east}", "East"),
    (r"\text{(C)}", "C"),
    (r"\text{(E)}", "(E)"),
    ("52_8", "52"),
    ("4210_{5}", "4210"),
    ("p - q", "-q + p"),
    ("x^3+3x-6", "3x + x^3 - 6"),
    ("(a+5)(b+2)", "ab + 2a + 5b + 10"),
    ("6r^2-4r-24", "2(3r^2 - 2r - 12)"),
    ("y = 2x + 3", "y = 3 + 2x"),
    (r"\frac{11+9a}{20}", r"\frac{11}{20} + \frac{9a}{20}"),
    ("42", r"\boxed{42}"),
    ("42", "$42$"),
    ("42", "42."),
    ("1024", "2^{10}"),
    ("1024", "2^10"),  # LaTeX would read 2^1·0: the fast path leaves it to math-verify, which reads 2^{10}
    ("x = 5", "x=5"),
    ("5", r"\(5\)"),
]

# (gold, answer): must NOT be equal. A false positive is worse than a false negative in a reward.
NOT_EQUAL = [
    # MATH-500 golds with "+1" appended (perturbations that once slipped through)
    ("x=5", "(x=5)+1"),
    ("1\\frac{4}{5}", "1\\frac{4}{5}+1"),
    ("1\\frac{4}{5}", "(1\\frac{4}{5})+1"),
    ("1/2", "2"),
    ("2", "1/2"),
    (r"\frac{3}{56}", r"\frac{4}{56}"),
    ("(1,2)", "(2,1)"),  # ordered pair / interval
    (r"\left( 3, \frac{\pi}{2} \right)", r"\left( \frac{\pi}{2}, 3 \right)"),
    ("(3,4]", "(3,4)"),  # interval brackets matter
    ("(3,4]", "[3,4]"),
    ("(2,4)", "4, 2"),
    ("(-2,1)", "-2, 1"),  # an interval (MATH-500) is not the list of solutions -2 and 1
    (r"(-\infty, 0]", r"(-\infty, 0)"),
    ("1000000", "1000000.5"),  # no tolerance against an exact integer
    ("0.15", "0.150001"),
    (r"\frac{1}{3}", "0.33333"),
    (r"\frac{1}{3}", "0.33"),
    (r"\sqrt{2}", "1.414"),
    ("9", "9.01"),
    ("27", "28.0"),
    ("025", "26"),
    ("6 - 5i", "6 + 5i"),
    ("6 - 5i", "6 - 5"),
    (r"3\sqrt{13}", r"3\sqrt{14}"),
    (r"2\sqrt{3}", r"\sqrt{6}"),
    (r"\pi", "3.14"),
    (r"90^\circ", r"\frac{\pi}{2}"),  # degrees are not converted to radians
    (r"50\%", "5"),
    ("3, 5, 7", "3, 5"),
    ("1,-2", "1"),
    ("5", "5, 5, 6"),
    (r"1 \pm \sqrt{19}", r"1 + \sqrt{19}"),
    (r"\begin{pmatrix} -2 \\ -14 \\ -7 \end{pmatrix}", r"\begin{pmatrix} -2 \\ -7 \\ -14 \end{pmatrix}"),
    (r"\text{Evelyn}", "Navin"),
    (r"\text{Evelyn}", "nylevE"),  # a word is not a product of commuting symbols
    (r"\text{(C)}", "D"),
    ("p - q", "q - p"),
    ("2k", "2"),
    ("2k+2", "2j+2"),
    ("x^3+3x-6", "x^3+3x+6"),
    ("y = 2x + 3", "y = 3x + 2"),
    ("52_8", "42"),
    ("a_2", "a"),  # a subscript on a variable is not a number base
    ("x=5", "x=6"),
    ("y = 2x + 3", "z = 2x + 3"),  # different variables: math-verify decides
    ("10", "100"),
    ("1", "i"),
    ("18", "18 or 19"),
]


@pytest.mark.parametrize("gold,answer", EQUAL)
def test_equal(gold: str, answer: str) -> None:
    r = math_equal_reason(gold, answer)
    assert r.equal, (gold, answer, r)
    assert math_equal(answer, gold), f"not symmetric: {answer!r} vs {gold!r}"


@pytest.mark.parametrize("gold,answer", NOT_EQUAL)
def test_not_equal(gold: str, answer: str) -> None:
    r = math_equal_reason(gold, answer)
    assert not r.equal, (gold, answer, r)
    assert not math_equal(answer, gold), f"not symmetric: {answer!r} vs {gold!r}"


# --------------------------------------------------------------------------- lists

# Lists of solutions (bare, or joined by "and") are compared item by item, in any order, with
# repeats counted; a single value is never a list. Golds: MATH-500 intermediate_algebra/1388
# ("1,-2", "Enter all such integers, separated by commas"), /1102 ("-2,1"), /428 ("3, 5, 7"),
# /662 ("1 \pm \sqrt{19}"), /2015 (a set); AIME/GSM8K integers.
LIST_EQUAL = [
    ("3, 5, 7", "3, 5, and 7"),
    ("3, 5, 7", "3, 5 and 7"),
    ("3, 5, 7", "7, 5, and 3"),
    ("3, 5, 7", r"\boxed{3, 5, and 7}"),
    ("3, 5, 7", r"3, 5, \text{and } 7"),
    ("1,-2", "1 and -2"),
    ("1,-2", "-2 and 1"),
    ("-2,1", r"1 \text{ and } -2"),
    ("-2,1", r"\boxed{-2 and 1}"),
    ("-2,1", "$1$ and $-2$"),
    (r"1 \pm \sqrt{19}", r"1 + \sqrt{19} and 1 - \sqrt{19}"),
    (r"\{1\pm\sqrt{5},-2\}", r"-2, 1 - \sqrt{5}, and 1 + \sqrt{5}"),
    ("(6,31,-1)", "6, 31, and -1"),  # a bare triple is the tuple, in order
    ("x = 1, y = 2", "y = 2, x = 1"),  # assignments are matched by variable
    ("x = 1, y = 2", "1, 2"),  # ... or, unlabelled, in the order written
    ("x = 1, y = 2", "x = 1 and y = 2"),
    ("x = 1, x = 2", "2, 1"),  # one variable throughout: a list of solutions
    ("x = 1, 2", "2, 1"),
]

LIST_NOT_EQUAL = [
    ("19, 46, and 82", "1, 2, and 82"),  # ends alike, but the first items differ
    (r"\boxed{19, 46, and 82}", r"\boxed{1, 2, and 82}"),
    ("19, 46, and 82", "82"),  # a single item is not the list
    ("19, 46, and 82", "19"),
    ("19, 46, and 82", "19, 46"),
    ("19, 46,, 82", "1, 2,, 82"),  # malformed lists: math-verify would read only the last item
    ("19, 46,, 82", "82"),
    ("3, 5, 7", "7"),
    ("3, 5, 7", "4, 6, and 7"),
    ("3, 5, 7", "3, 3, 7"),  # repeats count: 5 is missing
    ("3, 5, 7", "3, 5, 7, 7"),
    ("1,-2", "-2"),
    ("1,-2", "1, 1"),
    ("-2,1", "1"),
    ("-2,1", "-3 and 1"),
    ("-2,1", "2, -1"),
    (r"1 \pm \sqrt{19}", r"1 - \sqrt{19}"),
    (r"\{1\pm\sqrt{5},-2\}", "-2"),
    (r"\{1\pm\sqrt{5},-2\}", r"\{1\pm\sqrt{5}\}"),
    ("(6,31,-1)", "-1, 31, and 6"),  # a tuple stays ordered
    ("(-2,1)", "-2 and 1"),  # an interval is not the list of its end points
    ("18", "1, 2, and 18"),  # a list that ends with the gold is not the gold
    ("025", "1, 2, and 25"),
    ("x = 1, y = 2", "x = 2, y = 1"),
    ("x = 1, y = 2", "2, 1"),
    ("x = 1, y = 2", "y = 1, x = 2"),
    ("x = 1, y = 2", "1"),
]


@pytest.mark.parametrize("gold,answer", LIST_EQUAL)
def test_lists_equal(gold: str, answer: str) -> None:
    r = math_equal_reason(gold, answer)
    assert r.equal, (gold, answer, r)
    assert math_equal(answer, gold), f"not symmetric: {answer!r} vs {gold!r}"


@pytest.mark.parametrize("gold,answer", LIST_NOT_EQUAL)
def test_lists_not_equal(gold: str, answer: str) -> None:
    r = math_equal_reason(gold, answer)
    assert not r.equal, (gold, answer, r)
    assert not math_equal(answer, gold), f"not symmetric: {answer!r} vs {gold!r}"


def test_lists_take_the_fast_path() -> None:
    for g, a in [("19, 46, and 82", "1, 2, and 82"), ("3, 5, 7", "7, 5, and 3"), ("18", "1, 2, and 18"),
                 ("x = 1, y = 2", "x = 2, y = 1")]:
        assert math_equal_reason(g, a).method == "fast", (g, a)


# --------------------------------------------------------------------------- commas in numbers

# A comma is a thousands separator only between groups of exactly three digits (GSM8K writes
# "2,125" for 2125); any other comma separates list items. There is no decimal comma: "1,5" is
# the list 1, 5 (as math-verify reads it), never 1.5, so a list never equals a decimal.
COMMA_EQUAL = [
    ("2,125", "2125"),  # GSM8K test golds
    ("114,200", "114200.0"),
    ("1,450,000", "1450000"),
    ("1,875", r"1{,}875"),
    ("58,500", r"58,\!500"),  # MATH-500 counting_and_probability/737
    (r"10,\!080", "10,080"),
    ("2125", r"\$2,125"),
    ("1,5", "5, 1"),  # a list of two numbers
    ("1,5", "1 and 5"),
    (r"1{,}5", "1, 5"),
]

COMMA_NOT_EQUAL = [
    ("1.5", "1,5"),  # no decimal comma
    ("15", "1,5"),
    ("2,125", "2.125"),
    ("2,125", "2, 125"),  # with a space it is a list
    ("2,125", "2,12"),
    ("1,50", "150"),  # a group of two digits is not a thousands group
    ("12,34", "1234"),
    ("0,500", "500"),  # nor a group after a leading 0
    ("1,234", "1.234"),
    (r"1{,}5", "1.5"),
]


@pytest.mark.parametrize("gold,answer", COMMA_EQUAL)
def test_commas_equal(gold: str, answer: str) -> None:
    r = math_equal_reason(gold, answer)
    assert r.equal and r.method == "fast", (gold, answer, r)
    assert math_equal(answer, gold)


@pytest.mark.parametrize("gold,answer", COMMA_NOT_EQUAL)
def test_commas_not_equal(gold: str, answer: str) -> None:
    r = math_equal_reason(gold, answer)
    assert not r.equal and r.method == "fast", (gold, answer, r)
    assert not math_equal(answer, gold)


@needs_data
def test_every_gsm8k_gold_with_a_comma_is_a_thousands_number() -> None:
    """Every comma in a GSM8K gold sits between thousands groups: none reads as a list."""
    golds = [extract_answer(r["answer"]) or "" for split in ("test", "train")
             for r in _jsonl(f"gsm8k/{split}.jsonl")]
    with_comma = [g for g in golds if "," in g]
    assert len(with_comma) > 50
    bad = [g for g in with_comma
           if not math_equal(g, g.replace(",", "")) or math_equal(g, g.replace(",", ", "))]
    assert not bad, bad[:10]


# Every common form must be decided without math-verify: that is what makes rewards cheap.
FAST = [
    ("42", "42.0"), (r"\frac{1}{2}", "0.5"), (r"\$1,000", "1000"), ("(1,2)", "(2,1)"),
    (r"2\sqrt{3}", r"\sqrt{12}"), ("x^3+3x-6", "x^3+3x+6"), (r"\text{east}", "west"), ("7", "8"),
]


@pytest.mark.parametrize("gold,answer", FAST)
def test_common_forms_take_the_fast_path(gold: str, answer: str) -> None:
    assert math_equal_reason(gold, answer).method == "fast"


# The fast path cannot read these; math-verify (sympy) decides them in the worker process.
FALLBACK = [
    (r"\cot x", r"\frac{\cos x}{\sin x}", True),
    (r"\cot x", r"\tan x", False),
    ("5x - 7y + 11z + 4 = 0", "-5x + 7y - 11z - 4 = 0", True),
    ("y = 2x + 3", "2x - y + 3 = 0", True),
    (r"\ln 8", r"3\ln 2", True),
    (r"\log_2 8", "4", False),
    (r"\sin^2 x + \cos^2 x", "1", True),
    (r"\ln 2, \ln 3", r"\ln 3, \ln 2", True),  # lists it reads as sets
    (r"x = \ln 2, \ln 3", r"\ln 3, \ln 2", True),  # read as x = {…}: still the whole list
    (r"\ln 2, \ln 3", r"\ln 3", False),
    ("19, 46,, 82", "1, 2,, 82", False),  # it reads each as 82: a list read as one value is refused
]


@pytest.mark.parametrize("gold,answer,expected", FALLBACK)
def test_fallback_to_math_verify(gold: str, answer: str, expected: bool) -> None:
    r = math_equal_reason(gold, answer, timeout=20)
    assert r.method == "math-verify", r
    assert r.equal is expected, r


# math-verify accepts these in one direction only; math_equal asks it both ways, and both must agree.
ONE_WAY = [
    (r"\ln 2, \ln 3", r"(\ln 3, \ln 2)", False),  # a gold set against a tuple: sets; the reverse: order
    (r"\sin x, \cos x", r"(\cos x, \sin x)", False),
    (r"-2 \le x \le 2", "[-2, 2]", True),  # a relation and a set: compared in both directions
    (r"x > 3", r"(3, \infty)", True),
]


@pytest.mark.parametrize("gold,answer,expected", ONE_WAY)
def test_fallback_is_symmetric(gold: str, answer: str, expected: bool) -> None:
    for g, a in ((gold, answer), (answer, gold)):
        r = math_equal_reason(g, a, timeout=20)
        assert r.method == "math-verify" and r.equal is expected, (g, a, r)


def test_fallback_can_be_disabled() -> None:
    r = math_equal_reason(r"\cot x", r"\frac{\cos x}{\sin x}", fallback=False)
    assert not r.equal and r.method == "fast" and r.reason.startswith("undecided")


def test_timeout_returns_false_with_reason_and_the_worker_recovers() -> None:
    slow = r"2^{2^{2^{2^{100}}}}"  # too big for the fast path; sympy grinds on it
    warm_up()  # a worker's start-up (importing sympy) is not part of the timeout: keep it out of `took`
    t0 = time.perf_counter()
    r = math_equal_reason(slow, "3", timeout=1.0)
    took = time.perf_counter() - t0
    assert not r.equal and r.method == "timeout" and "timeout" in r.reason
    assert took < 10, f"timeout of 1 s took {took:.1f} s"
    again = math_equal_reason(r"\ln 8", r"3\ln 2", timeout=60)  # a fresh worker answers
    assert again.equal and again.method == "math-verify"


def test_safe_from_threads() -> None:
    """math-verify's signal timeouts fail off the main thread; ours must not."""
    clear_cache()
    cases = [(g, a, True) for g, a in EQUAL[:20]] + [(g, a, False) for g, a in NOT_EQUAL[:20]]
    cases += FALLBACK[:4]
    with ThreadPoolExecutor(max_workers=6) as ex:
        got = list(ex.map(lambda c: math_equal_reason(c[0], c[1], timeout=30), cases))
    for (g, a, want), r in zip(cases, got):
        assert r.equal is want, (g, a, r)


def test_results_are_cached() -> None:
    clear_cache()
    from ponder.verify.math import _judge

    math_equal("3", "3.0")
    before = _judge.cache_info().hits
    math_equal("3", "3.0")
    assert _judge.cache_info().hits == before + 1


@pytest.mark.parametrize(
    "gold,answer,reason",
    [
        (None, "1", "strings"), ("1", None, "strings"), (1, 1, "strings"), (b"1", "1", "strings"),
        ("1", "", "empty answer"), ("1", "   ", "empty answer"), ("", "1", "empty gold"),
        ("1", r"\boxed{}", "empty"),
    ],
)
def test_bad_input_is_false_not_an_error(gold: object, answer: object, reason: str) -> None:
    r = math_equal_reason(gold, answer)
    assert r.equal is False and reason in r.reason


@pytest.mark.parametrize(
    "junk",
    ["(" * 3000 + "1" + ")" * 3000, r"\frac{" * 500, "1" * 5000, r"\sqrt[1000000]{2}", "10^{10^{10}}",
     "100!!!", r"\binom{10^9}{5}", "1/0", "\\", "{", r"\begin{pmatrix}", "$$", "\x00\ud800", "٣"],
)
def test_junk_never_raises(junk: str) -> None:
    assert math_equal(junk, "1", timeout=0.5) in (True, False)
    assert math_equal("1", junk, timeout=0.5) in (True, False)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(list("0123456789.,-+/^()[]{}\\$%xi =") + ["\\frac", "\\sqrt", "\\pi", "\\text{"]),
                max_size=20).map("".join))
def test_random_latexish_strings_never_raise(s: str) -> None:
    r = math_equal_reason("1", s, fallback=False)
    assert isinstance(r.equal, bool)


# --------------------------------------------------------------------------- all benchmark golds

def _jsonl(rel: str) -> list[dict]:
    with open(DATA / rel, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@needs_data
def test_every_math500_and_gsm8k_gold_matches_itself_and_its_solution() -> None:
    """Each gold equals itself and the answer extracted from its own reference solution."""
    clear_cache()
    t0 = time.perf_counter()
    pairs: list[tuple[str, str]] = []
    for r in _jsonl("math500/test.jsonl"):
        pairs += [(r["answer"], r["answer"]), (r["answer"], last_boxed(r["solution"]) or ""),
                  (r["answer"], extract_answer(r["solution"]) or "")]
    for split in ("test", "train"):
        for r in _jsonl(f"gsm8k/{split}.jsonl"):
            gold = extract_answer(r["answer"]) or ""
            pairs += [(gold, gold), (gold, gold.replace(",", ""))]
    for r in _jsonl("amc23/test.jsonl"):
        pairs.append((str(r["answer"]), str(int(r["answer"]))))
    for r in _jsonl("aime24/test.jsonl"):
        pairs.append((r["answer"], str(int(r["answer"]))))
    bad = [(g, a) for g, a in pairs if not math_equal(g, a)]
    took = time.perf_counter() - t0
    print(f"\n{len(pairs)} gold/solution pairs checked in {took:.2f} s")
    assert not bad, bad[:10]


@functools.lru_cache(maxsize=1)
def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_verify", ROOT / "bench" / "verify.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@functools.lru_cache(maxsize=1)
def _golds_by_set() -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for source, gold, _ in _bench_module().load_golds(minerva=True):
        by.setdefault(source, []).append(gold)
    return {k: sorted(set(v)) for k, v in by.items()}


_SHAPES = ["{}", "{}, {}", "{} and {}", "{}, {}, and {}", "({}, {})", "({}, {}, {})", r"\{{{}, {}\}}",
           r"\boxed{{{}}}", "x = {}", r"\text{{{}}}", r"{}\%", "({})+1"]


@st.composite
def _gold_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Two answers built from real golds: each item is a gold, one of its equivalent surface forms
    or one of its perturbations (the benchmark's generators), and the items are put in a shape
    (alone, a list with commas or "and", a tuple, a set, boxed, an assignment, \\text{}, a percent,
    an expression). The second answer has the same items in another order, other forms of the
    same golds, or other golds, in a shape of its own. Data sets are drawn first, so Minerva is
    as likely as GSM8K."""
    bench, by = _bench_module(), _golds_by_set()

    def around(gold: str) -> str:
        return draw(st.sampled_from([gold, *bench.equivalent_forms(gold), *bench.perturbations(gold)]))

    def any_gold() -> str:
        return draw(st.sampled_from(by[draw(st.sampled_from(sorted(by)))]))

    def shape(n: int) -> str:
        return draw(st.sampled_from([t for t in _SHAPES if t.count("{}") == n]))

    golds = [any_gold() for _ in range(draw(st.integers(1, 3)))]
    items = [around(g) for g in golds]
    how = draw(st.sampled_from(["same items", "same golds", "other golds"]))
    if how == "same items":
        other = list(draw(st.permutations(items)))
    elif how == "same golds":
        other = [around(g) for g in draw(st.permutations(golds))]
    else:
        other = [around(any_gold()) for _ in golds]
    return shape(len(items)).format(*items), shape(len(other)).format(*other)


@needs_data
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_gold_pairs())
def test_fast_path_is_symmetric(pair: tuple[str, str]) -> None:
    """Every fast-path rule treats both sides alike: same verdict, and undecided both ways."""
    x, y = pair
    xy, yx = math_equal_reason(x, y, fallback=False), math_equal_reason(y, x, fallback=False)
    decided = (not xy.reason.startswith("undecided"), not yx.reason.startswith("undecided"))
    assert (xy.equal, decided[0]) == (yx.equal, decided[1]), (x, y, xy, yx)


@needs_data
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_gold_pairs())
def test_math_equal_is_symmetric(pair: tuple[str, str]) -> None:
    """With the math-verify fallback too (fewer examples: each fallback costs milliseconds)."""
    x, y = pair
    xy, yx = math_equal_reason(x, y, timeout=30), math_equal_reason(y, x, timeout=30)
    assert (xy.equal, xy.method) == (yx.equal, yx.method), (x, y, xy, yx)


@needs_data
def test_every_gold_in_many_surface_forms_and_no_perturbation_passes() -> None:
    """The benchmark's corpus: all golds × equivalent forms are equal, perturbations are not."""
    bench = _bench_module()
    clear_cache()
    t0 = time.perf_counter()
    eq_pairs, ne_pairs = bench.build_pairs(bench.load_golds())
    missed = [p for p in eq_pairs if not math_equal(*p, timeout=30)]
    false_pos = [p for p in ne_pairs if math_equal(*p, timeout=30)]
    took = time.perf_counter() - t0
    print(f"\n{len(eq_pairs)} equivalent + {len(ne_pairs)} perturbed pairs in {took:.2f} s")
    assert not missed, missed[:10]
    assert not false_pos, false_pos[:10]
