"""Synthetic tasks (addition, multiplication, Countdown), the safe evaluator and the registry."""

import json
import re
import time
from dataclasses import fields

import pytest

from ponder.tasks import TASKS, TaskError, describe, get_task, parse_spec
from ponder.tasks.countdown import CountdownTask, random_expression
from ponder.tasks.safe_eval import ExpressionError, evaluate
from ponder.tasks.synthetic import (
    AdditionTask,
    MultiplicationTask,
    addition_steps,
    multiplication_steps,
    reference_completion,
)
from ponder.tasks.toolkit import split_of

# --------------------------------------------------------------------------- generation


@pytest.mark.parametrize("cls", [AdditionTask, MultiplicationTask])
def test_arithmetic_examples_are_correct_distinct_and_seeded(cls):
    task = cls(min_digits=2, max_digits=4, n_train=300, n_test=50, seed=7)
    train = list(task.examples("train"))
    assert len(train) == 300 and len(list(task.examples("test"))) == 50
    assert [e["id"] for e in train] == [e["id"] for e in task.examples("train")]  # deterministic
    assert [e["id"] for e in train] != [e["id"] for e in cls(min_digits=2, max_digits=4, n_train=300, seed=8).examples("train")]
    assert len({task.key(e["meta"]["a"], e["meta"]["b"]) for e in train}) == 300
    for e in train:
        a, b = e["meta"]["a"], e["meta"]["b"]
        assert 2 <= len(str(a)) <= 4 and 2 <= len(str(b)) <= 4
        assert e["gold"] == str(a + b if cls is AdditionTask else a * b)
        assert str(a) in e["prompt"] and str(b) in e["prompt"]
        assert json.loads(json.dumps(e)) == e  # survives JSONL / dataset columns


@pytest.mark.parametrize(
    "task",
    [
        AdditionTask(min_digits=1, max_digits=3, n_train=20_000, n_test=2_000, seed=1),
        MultiplicationTask(min_digits=1, max_digits=4, n_train=20_000, n_test=2_000, seed=2),
    ],
    ids=["addition", "multiplication"],
)
def test_arithmetic_splits_disjoint_even_across_seeds(task):
    train = {task.key(e["meta"]["a"], e["meta"]["b"]) for e in task.examples("train")}
    # a test set drawn with another seed must still avoid every train problem
    other = type(task)(min_digits=1, max_digits=3, n_test=2_000, seed=99)
    test = {task.key(e["meta"]["a"], e["meta"]["b"]) for e in other.examples("test")}
    assert len(train) == 20_000 and len(test) == 2_000
    assert not train & test
    assert all(split_of(k) == "test" for k in test)


def test_commuted_problem_stays_in_one_split():
    task = AdditionTask()
    assert task.key(457, 68) == task.key(68, 457)
    train_ids = {e["id"] for e in AdditionTask(digits=2, n_train=3_000).examples("train")}
    for e in AdditionTask(digits=2, n_test=300).examples("test"):
        a, b = e["meta"]["a"], e["meta"]["b"]
        assert f"addition/{a}+{b}" not in train_ids and f"addition/{b}+{a}" not in train_ids


def test_small_problem_space_is_enumerated_and_exhaustion_is_an_error():
    train = list(AdditionTask(digits=1, n_train=40).examples("train"))
    assert len({AdditionTask().key(e["meta"]["a"], e["meta"]["b"]) for e in train}) == 40
    # default sizes are capped at what a small split holds: all 2-digit test problems, once each
    test = list(AdditionTask(digits=2).examples("test"))
    keys = {AdditionTask().key(e["meta"]["a"], e["meta"]["b"]) for e in test}
    all_keys = {AdditionTask().key(a, b) for a in range(10, 100) for b in range(a, 100)}
    assert len(keys) == len(test) == sum(split_of(k) == "test" for k in all_keys) < 500
    with pytest.raises(TaskError, match=r"test split of 1\.\.1-digit problems holds only \d+ problems, 500 requested"):
        list(AdditionTask(digits=1, n_test=500).examples("test"))


@pytest.mark.parametrize(
    "options,match",
    [
        ({"min_digits": 4, "max_digits": 2}, "min_digits <= max_digits"),
        ({"digits": 12}, "<= 9"),
        ({"digits": 0}, "1 <= min_digits"),
        ({"n_train": -1}, "n_train"),
        ({"colour": "red"}, "unknown option"),
    ],
)
def test_bad_arithmetic_options(options, match):
    with pytest.raises(TaskError, match=match):
        AdditionTask(**options)


def test_unknown_split():
    with pytest.raises(TaskError, match="unknown split 'dev'"):
        next(AdditionTask().examples("dev"))


# --------------------------------------------------------------------------- reference reasoning


def test_addition_steps_format():
    assert addition_steps(457, 68) == (
        "units: 7+8=15, write 5 carry 1\n"
        "tens: 5+6+1=12, write 2 carry 1\n"
        "hundreds: 4+0+1=5, write 5\n"
        "so 457+68=525"
    )
    assert addition_steps(999, 1).splitlines()[-2:] == ["thousands: write 1", "so 999+1=1000"]


def test_multiplication_steps_format():
    assert multiplication_steps(457, 68) == "457*8=3656\n457*60=27420\n3656+27420=31076\nso 457*68=31076"
    # zero digits of the multiplier give no partial product
    assert multiplication_steps(1203, 1002) == "1203*2=2406\n1203*1000=1203000\n2406+1203000=1205406\nso 1203*1002=1205406"
    assert multiplication_steps(5, 0) == "5*0=0\nso 5*0=0"


_ADD_LINE = re.compile(r"\w[\w-]*: (\d)\+(\d)(?:\+(1))?=(\d+), write (\d)( carry 1)?")


@pytest.mark.parametrize("seed", [0, 1])
def test_addition_steps_are_arithmetically_right(seed):
    for e in AdditionTask(min_digits=1, max_digits=9, n_test=200, seed=seed).examples("test"):
        lines = e["meta"]["solution"].splitlines()
        written, carry = [], 0
        for line in lines[:-1]:
            if line.endswith(": write 1"):
                written.append("1")
                continue
            x, y, c, s, w, carried = _ADD_LINE.fullmatch(line).groups()
            assert int(c or 0) == carry and int(x) + int(y) + carry == int(s) and int(w) == int(s) % 10
            carry = 1 if carried else 0
            written.append(w)
        assert ("".join(reversed(written)).lstrip("0") or "0") == e["gold"]
        assert lines[-1] == f"so {e['meta']['a']}+{e['meta']['b']}={e['gold']}"


def test_multiplication_steps_are_arithmetically_right():
    for e in MultiplicationTask(min_digits=1, max_digits=6, n_test=200).examples("test"):
        for line in e["meta"]["solution"].splitlines()[:-1]:
            lhs, rhs = line.split("=")
            assert evaluate(lhs) == int(rhs), line
        assert e["meta"]["solution"].splitlines()[-2].endswith("=" + e["gold"])


@pytest.mark.parametrize("template", ["think", "r1-zero"])
@pytest.mark.parametrize("name", ["addition", "multiplication", "countdown"])
def test_reference_completion_scores_correct(name, template):
    task = get_task(name, n_test=100)
    for e in task.examples("test"):
        completion = task.reference_completion(e, template)
        assert completion.startswith("<think>") and "</think>" in completion
        v = task.score(completion, e)
        assert v.correct, (e, completion, v)


def test_reference_completion_shape():
    e = AdditionTask().example(457, 68)
    assert reference_completion(e) == "<think>" + addition_steps(457, 68) + "</think>525"
    assert reference_completion(e, "r1-zero").endswith("</think><answer>525</answer>")


# --------------------------------------------------------------------------- arithmetic scoring

ADD = AdditionTask().example(457, 68)  # gold 525
BIG = AdditionTask().example(999_999, 234_567)  # gold 1234566

ARITH_CASES = [
    # (example, completion, correct, reason pattern)
    (ADD, "<think>7+8=15 ...</think>525", True, "equal"),
    (ADD, "<think>carry the one</think><answer>525</answer>", True, "equal"),
    (ADD, "units: 7+8=15\n</think>\n525", False, "got 15"),  # no pre-fill said: a stray </think> is answer text
    (ADD, "525", True, "equal"),  # plain text
    (ADD, "The answer is 525.", True, "equal"),
    (ADD, "<think>r</think>\\boxed{525}", True, "equal"),
    (ADD, "<think>r</think>525.", True, "equal"),
    (ADD, "<think>r</think>0525", True, "equal"),  # same integer
    (BIG, "<think>r</think>1,234,566", True, "equal"),  # thousands separators
    (BIG, "<think>r</think><answer>1,234,566.</answer>", True, "equal"),
    (ADD, "<think>so the sum is 525", False, "no answer found"),  # unterminated think
    (ADD, "<think>r</think>", False, "no answer found"),
    (ADD, "", False, "no answer found"),
    (ADD, "<think>r</think>524", False, "got 524, expected 525"),
    (ADD, "<think>\\boxed{525}</think>524", False, "got 524"),  # box in the reasoning is a draft
    (ADD, "<think>r</think>525.0", False, "not an integer"),
    (ADD, "<think>r</think>457+68=525", True, "equal"),  # numeric tasks read the value after the last "="
    (ADD, "<think>r</think>five hundred twenty-five", False, "not an integer"),
    (BIG, "<think>r</think>1,23,4566", False, "not an integer"),  # malformed grouping
    (BIG, "<think>r</think>\\boxed{" + "9" * 5000 + "}", False, "answer too long"),
]


@pytest.mark.parametrize("example,completion,correct,reason", ARITH_CASES)
def test_arithmetic_score_table(example, completion, correct, reason):
    v = AdditionTask().score(completion, example)
    assert v.correct is correct
    assert re.search(reason, v.reason), v.reason


def test_multiplication_score_and_option_independence():
    e = MultiplicationTask(digits=5).example(12_345, 6_789)
    assert e["gold"] == "83810205"
    # scoring depends on the example only: a default-option task scores a digits=5 example
    assert get_task("multiplication").score("<think>x</think>83,810,205", e).correct
    assert not get_task("multiplication").score("<think>x</think>83810204", e).correct


def test_non_integer_gold_is_an_error():
    with pytest.raises(TaskError, match="gold 'abc' is not an integer"):
        AdditionTask().score("1", {"id": "x", "prompt": "", "gold": "abc", "meta": {}})


# --------------------------------------------------------------------------- countdown generation


def test_countdown_examples_follow_the_rules():
    task = CountdownTask(n_train=500, n_test=100, seed=3)
    for e in list(task.examples("train")) + list(task.examples("test")):
        nums, target = e["meta"]["numbers"], e["meta"]["target"]
        assert 3 <= len(nums) <= 4 and all(1 <= n <= 99 for n in nums)
        assert 1 <= target <= 100 and e["gold"] == str(target)
        assert sorted(int(t) for t in re.findall(r"\d+", e["meta"]["solution"])) == sorted(nums)
        assert evaluate(e["meta"]["solution"]) == target
        assert str(nums) in e["prompt"] and str(target) in e["prompt"]
        assert json.loads(json.dumps(e)) == e


def test_countdown_splits_disjoint_for_large_splits():
    task = CountdownTask(n_train=20_000, n_test=1_000, seed=0)
    train = {task.key(e["meta"]["numbers"], e["meta"]["target"]) for e in task.examples("train")}
    test = {task.key(e["meta"]["numbers"], e["meta"]["target"]) for e in CountdownTask(n_test=1_000, seed=5).examples("test")}
    assert len(train) == 20_000 and len(test) == 1_000
    assert not train & test


def test_countdown_at_most_once_rule():
    task = CountdownTask(use_all=False, n_test=100)
    partial = 0
    for e in task.examples("test"):
        assert e["meta"]["use_all"] is False and "at most once" in e["prompt"]
        partial += len(re.findall(r"\d+", e["meta"]["solution"])) < len(e["meta"]["numbers"])
        assert task.score(task.reference_completion(e), e).correct
    assert partial > 0  # some solutions really leave numbers out


def test_random_expression_intermediates_are_positive_integers():
    import random

    rng = random.Random(0)
    for _ in range(500):
        values = [rng.randint(1, 99) for _ in range(4)]
        value, text = random_expression(values, rng)
        assert evaluate(text) == value and value >= 1


def test_countdown_reasoning_trace():
    e = CountdownTask().example([25, 5, 4], 80, "(25-5)*4", True)
    assert CountdownTask().reference_completion(e) == "<think>target 80\n25-5=20\n20*4=80\nfound (25-5)*4=80</think>(25-5)*4 = 80"


# --------------------------------------------------------------------------- countdown scoring


def _cd(numbers, target, use_all=True):
    return {"id": "t", "prompt": "", "gold": str(target), "meta": {"numbers": numbers, "target": target, "use_all": use_all}}


E80 = _cd([25, 5, 4], 80)
COUNTDOWN_CASES = [
    # every completion shape
    (E80, "<think>25-5=20, 20*4=80</think>(25-5)*4 = 80", True, "reaches 80"),
    (E80, "<think>r</think><answer>(25 - 5) * 4</answer>", True, "reaches 80"),
    (E80, "25-5=20\n20*4=80\n</think>\n4*(25-5)=80", True, "reaches 80"),
    (E80, "<think>r</think>80 = 4 * (25 - 5)", True, "reaches 80"),
    (E80, "The answer is (25 − 5) × 4 = 80.", True, "reaches 80"),
    (E80, "<think>r</think>$\\boxed{(25-5)\\times 4}$", True, "reaches 80"),
    (E80, "<think>r</think>Here is my equation:\n" + "(25 - 5) * 4 = 80", True, "reaches 80"),
    (E80, "<think>(25-5)*4 = 80 works", False, "no equation found"),  # unterminated
    (E80, "<think>r</think>", False, "no equation found"),
    # alternative valid equations and fractional intermediates
    (_cd([2, 3, 4], 10), "<think>r</think>2*3+4", True, "reaches 10"),
    (_cd([2, 3, 4], 10), "<think>r</think>3*4-2", True, "reaches 10"),
    (_cd([3, 4, 6], 8), "<think>r</think>4/3*6 = 8", True, "reaches 8"),
    (_cd([1, 3, 4, 6], 24), "<think>r</think>6/(1-3/4)", True, "reaches 24"),
    (_cd([25, 5, 4, 1], 80, use_all=False), "<think>r</think>(25-5)*4", True, "reaches 80"),
    # wrong numbers, reuse, unused numbers
    (E80, "<think>r</think>25*4-20", False, "uses 20 which is not available"),
    (E80, "<think>r</think>25*4-5*4", False, "uses 4 twice but it is given once"),
    (_cd([25, 5, 4, 1], 80), "<think>r</think>(25-5)*4", False, "does not use 1"),
    (E80, "<think>r</think>80", False, "uses 80 which is not available"),
    # wrong values
    (E80, "<think>r</think>25*4-5", False, "evaluates to 95, not 80"),
    (E80, "<think>r</think>25/4*5", False, "evaluates to 125/4, not 80"),
    (E80, "<think>r</think>(25-5)*4 = 81", False, "states 81 but the expression evaluates to 80"),
    (_cd([5, 5, 4], 4), "<think>r</think>4/(5-5)", False, "division by zero"),
    # not a single arithmetic expression
    (E80, "<think>r</think>25-5=20, 20*4=80", False, "not a single equation"),
    (E80, "<think>r</think>(25-5)*4 = 4*20", False, "both sides"),
    (E80, "<think>r</think>(25-5)*4)", False, "syntax error"),
    (E80, "<think>r</think>(25-5)x4", False, "character 'x' is not allowed"),
    (E80, "<think>r</think>25.0*4-20", False, "not allowed"),
]

MALICIOUS = [
    "__import__('os').system('x')",
    "9**9**9**9",
    "9**999999",
    "(25-5)*4 or 1",
    "[25, 5, 4]",
    "'80'",
    "0x50",
    "1_0*8",
    "lambda: 80",
    "25 // 5 * 4",
    "25 % 5",
    "().__class__.__bases__[0].__subclasses__()",
    "+".join(["1"] * 150),  # 299 characters
    "(" * 150 + "25" + ")" * 150,
    "-" * 190 + "80",
    "9" * 5000,
]


@pytest.mark.parametrize("example,completion,correct,reason", COUNTDOWN_CASES)
def test_countdown_score_table(example, completion, correct, reason):
    v = CountdownTask().score(completion, example)
    assert v.correct is correct, v
    assert reason in v.reason, v.reason


@pytest.mark.parametrize("text", MALICIOUS)
def test_countdown_refuses_malicious_or_huge_input_fast(text):
    for completion in (f"<think>r</think>{text}", f"<think>r</think><answer>{text}</answer>"):
        start = time.perf_counter()
        v = CountdownTask().score(completion, E80)
        assert time.perf_counter() - start < 0.5
        assert not v.correct and v.reason, v


def test_countdown_follows_example_not_options():
    e = _cd([25, 5, 4, 1], 80, use_all=False)
    assert get_task("countdown").score("<think>r</think>(25-5)*4", e).correct
    assert not get_task("countdown", use_all=False).score("<think>r</think>(25-5)*4", _cd([25, 5, 4, 1], 80)).correct


def test_countdown_example_without_numbers_is_an_error():
    with pytest.raises(TaskError, match="meta\\['numbers'\\]"):
        CountdownTask().score("1", {"id": "x", "prompt": "", "gold": "80", "meta": {}})


# --------------------------------------------------------------------------- safe evaluator


@pytest.mark.parametrize(
    "text,value",
    [("1+2*3", 7), ("(1+2)*3", 9), ("7/2*2", 7), ("-3+5", 2), ("2/3", "2/3"), (" ( 8 ) ", 8), ("1-(-2)", 3)],
)
def test_evaluate_exact(text, value):
    from fractions import Fraction

    assert evaluate(text) == Fraction(value)


@pytest.mark.parametrize(
    "text,reason",
    [("", "empty"), ("2**3", "operator ** is not allowed"), ("abs(-1)", "character 'a'"),
     ("1/0", "division by zero"), ("1/(2-2)", "division by zero"), ("(1", "syntax error"),
     ("05", "syntax error"), ("1" * 201, "too long"), ("+5", "UnaryOp is not allowed")],
)  # fmt: skip
def test_evaluate_refusals(text, reason):
    with pytest.raises(ExpressionError, match=re.escape(reason)):
        evaluate(text)


# --------------------------------------------------------------------------- registry


def test_registry_names_and_descriptions():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "tasks.md").read_text()
    for name in TASKS:
        assert f"`{name}`" in doc, f"task {name!r} is registered but docs/tasks.md does not describe it"
        assert describe(name)
        if name != "code":
            task = get_task(name)  # cheap: reads no file
            assert task.name == name
            assert all(f.metadata.get("help") for f in fields(type(task).Options)), name


@pytest.mark.parametrize(
    "spec,name,options",
    [
        ("addition", "addition", {}),
        ("addition:digits=3", "addition", {"digits": "3"}),
        ("countdown: use_all = false , n_test=5", "countdown", {"use_all": "false", "n_test": "5"}),
        ("jsonl:path=a.jsonl,meta_fields=subject,level,prompt_field=q", "jsonl",
         {"path": "a.jsonl", "meta_fields": "subject,level", "prompt_field": "q"}),
    ],
)  # fmt: skip
def test_parse_spec(spec, name, options):
    assert parse_spec(spec) == (name, options)


def test_get_task_from_spec_and_overrides():
    t = get_task("addition:digits=3,n_test=4")
    assert (t.options.min_digits, t.options.max_digits, t.options.n_test) == (3, 3, 4)
    assert get_task("addition:digits=3", digits=5).options.max_digits == 5
    assert get_task("countdown:use_all=false").options.use_all is False
    j = get_task("jsonl:path=a.jsonl,meta_fields=subject,level,gold_extract=boxed")
    assert j.options.meta_fields == ["subject", "level"] and j.options.gold_extract == "boxed"


@pytest.mark.parametrize(
    "spec,match",
    [
        ("additon", r"unknown task 'additon'; known: addition, multiplication, countdown"),
        ("addition:digits", "must look like key=value"),
        ("addition:digits=three", "'three' is not a valid int"),
        ("countdown:size=3", "unknown option.*valid: max_number"),
        ("jsonl:gold_extract=latex", "gold_extract must be one of"),
    ],
)
def test_get_task_errors(spec, match):
    with pytest.raises(TaskError, match=match):
        get_task(spec)


def test_a_task_of_your_own_by_dotted_path(tmp_path, monkeypatch):
    """A user's task needs no registration: a dotted path loads it, with its options."""
    (tmp_path / "mytasks.py").write_text(
        "from ponder.tasks import BaseTask, Verdict\n"
        "class Echo(BaseTask):\n"
        "    name = 'echo'\n"
        "    answer_fallback = 'number'\n"
        "    def __init__(self, word='yes'):\n"
        "        self.word = word\n"
        "    def examples(self, split='test'):\n"
        "        yield {'id': 'e/1', 'prompt': 'Say 7', 'gold': '7', 'meta': {}}\n"
        "    def check(self, answer, example):\n"
        "        return Verdict(answer == example['gold'], self.word if answer == example['gold'] else 'no', answer)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    task = get_task("mytasks:Echo:word=right")
    ex = next(task.examples())
    assert task.score("<think>hmm</think>so 3 + 4 = 7", ex).reason == "right"  # the task's fallback extracted 7
    assert get_task("mytasks.Echo").word == "yes"
    with pytest.raises(TaskError, match="cannot import module 'nosuch"):
        get_task("nosuch.tasks:Quiz")
