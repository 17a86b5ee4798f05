"""The code task: extraction from completions, scoring in the sandbox, the built-in set, JSONL loading."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from ponder.tasks import TaskError, get_task
from ponder.tasks.code import BUILTIN, CodeTask, extract_code


def answer(code: str, lang: str = "python") -> str:
    """A completion in the R1 shape whose answer is one fenced block."""
    return f"<think>Let me write it.</think>Here is my solution:\n```{lang}\n{code}```\n"


# --------------------------------------------------------------------------- extraction

EXTRACT = [
    ("<think>x</think>```python\nprint(1)\n```", "print(1)\n"),
    ("<think>x</think>```python\nprint(1)\n```\nthen\n```python\nprint(2)\n```", "print(2)\n"),  # the last block
    ("<think>x</think>```py\na = 1\n```", "a = 1\n"),
    ("<think>x</think>```\nb = 2\n```", "b = 2\n"),  # unlabelled
    ("<think>x</think>```python\nc = 3\n```\n```\nusage: run it\n```", "c = 3\n"),  # python beats unlabelled
    ("<think>x</think>```bash\npython sol.py\n```", None),  # not python
    ("<think>x</think>print(42)", "print(42)"),  # no fence: the whole answer
    ("<think>```python\ndraft = 1\n```</think>```python\nfinal = 1\n```", "final = 1\n"),  # not from the reasoning
    ("<think>```python\ndraft = 1\n```", None),  # unterminated thinking: no answer
    ("<think>x</think><answer>```python\nd = 4\n```</answer>", "d = 4\n"),
    ("<think>x</think>```python\ne = 5\n", "e = 5"),  # fence cut off by the length limit
    ("<think>x</think>```python\n```", None),  # empty block
    ("", None),
]


@pytest.mark.parametrize("completion,code", EXTRACT)
def test_extract_code(completion, code):
    from ponder.format import parse

    # the judge hands extract_code the answer part (never the reasoning)
    assert extract_code(parse(completion).answer_text()) == code


# --------------------------------------------------------------------------- the built-in set

# Plausible wrong solutions (the bugs models make): each must fail its problem's tests.
BROKEN = {
    "is_palindrome": "def is_palindrome(s):\n    return s == s[::-1]\n",  # forgets case and punctuation
    "fibonacci": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",  # exponential: times out
    "primes_up_to": "def primes_up_to(n):\n    return [p for p in range(2, n) if all(p % d for d in range(2, p))]\n",  # excludes n
    "max_subarray": "def max_subarray(xs):\n    best = cur = 0\n    for x in xs:\n        cur = max(0, cur + x)\n        best = max(best, cur)\n    return best\n",  # all-negative
    "balanced_brackets": "def balanced(s):\n    return s.count('(') == s.count(')') and s.count('[') == s.count(']')\n",
    "roman_to_int": "def roman_to_int(s):\n    v = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n    return sum(v[c] for c in s)\n",
    "fizzbuzz": "n = int(input())\nfor i in range(1, n):\n    print('Fizz' * (i % 3 == 0) + 'Buzz' * (i % 5 == 0) or i)\n",  # off by one
    "lcm": "a, b = map(int, input().split())\nprint(a * b)\n",
    "digit_sums": "t = int(input())\nfor _ in range(t):\n    print(sum(int(c) for c in input() if c != '0'))\nprint()\nprint(0)\n",
    "word_frequencies": "import sys\nfrom collections import Counter\nfor w, k in Counter(sys.stdin.read().split()).most_common():\n    print(w, k)\n",
}


def test_builtin_set_is_complete_and_serialisable():
    examples = list(CodeTask().examples())
    assert len(examples) == len(BUILTIN) == 10
    assert {e["id"] for e in examples} == {f"code/{k}" for k in BROKEN}
    for e in examples:
        assert json.loads(json.dumps(e)) == e
        assert "```python" in e["prompt"] and e["meta"]["tests"] and e["gold"] == e["meta"]["solution"]
    kinds = {type(t) for e in examples for t in e["meta"]["tests"]}
    assert kinds == {str, dict}  # both kinds of test are exercised


def _score_all(completions):
    task = CodeTask()
    examples = list(task.examples())
    with ThreadPoolExecutor(4) as pool:
        return examples, list(pool.map(lambda e: task.score(completions(e), e), examples))


def test_every_reference_solution_passes():
    examples, verdicts = _score_all(lambda e: answer(e["meta"]["solution"]))
    for e, v in zip(examples, verdicts):
        assert v.correct, (e["id"], v.reason, v.details["detail"])
        assert v.reason == f"passed {len(e['meta']['tests'])}/{len(e['meta']['tests'])} tests"
        assert v.answer == e["meta"]["solution"]


def test_every_broken_solution_fails():
    examples, verdicts = _score_all(lambda e: answer(BROKEN[e["id"].split("/", 1)[1]]))
    for e, v in zip(examples, verdicts):
        assert not v.correct, e["id"]
        assert 0 <= v.details["passed"] < v.details["total"] == len(e["meta"]["tests"])
    by_id = {e["id"]: v for e, v in zip(examples, verdicts)}
    assert by_id["code/fibonacci"].details["reason"] == "timeout"  # fib(90) the slow way
    assert by_id["code/lcm"].details["tests"][0]["detail"] == "expected '12', got '24'"
    assert by_id["code/is_palindrome"].reason == "wrong answer (3/5 tests passed)"


def test_builtin_has_no_train_split():
    with pytest.raises(TaskError, match="only a test split"):
        list(CodeTask().examples("train"))


# --------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def palindrome():
    return next(e for e in CodeTask().examples() if e["id"] == "code/is_palindrome")


def test_score_failures_say_why(palindrome):
    task = CodeTask()
    v = task.score("<think>I will not write code", palindrome)
    assert not v.correct and v.reason == "no code found (the think block never closed)" and v.answer is None
    v = task.score(answer("def is_palindrome(s)\n    return True\n"), palindrome)
    assert not v.correct and v.reason.startswith("syntax error")
    v = task.score(answer("def is_pal(s):\n    return True\n"), palindrome)  # wrong name
    assert not v.correct and v.details["reason"] == "runtime error" and "NameError" in v.details["detail"]
    v = task.score(answer("def is_palindrome(s):\n    return True\n"), palindrome)
    assert [t["passed"] for t in v.details["tests"]] == [True, False, True, True, False]
    assert "race a car" in v.details["tests"][1]["detail"]


def test_entry_point_is_bound_to_candidate():
    example = {"id": "he", "prompt": "p", "gold": "", "meta": {
        "tests": ["assert candidate(2) == 4", "assert square(3) == 9"], "entry_point": "square"}}
    assert CodeTask().score(answer("def square(x):\n    return x * x\n"), example).correct
    assert not CodeTask().score(answer("def square(x):\n    return x + x\n"), example).correct


def test_example_without_tests_is_an_error():
    with pytest.raises(TaskError, match="no tests"):
        CodeTask().score(answer("pass"), {"id": "x", "prompt": "p", "gold": "", "meta": {}})


def test_registry_builds_the_task():
    task = get_task("code")
    assert task.name == "code" and len(list(task.examples())) == 10


# --------------------------------------------------------------------------- JSONL files


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = [
    {"id": "add", "prompt": "Write add(a, b).", "tests": ["assert add(1, 2) == 3"], "entry_point": "add",
     "solution": "def add(a, b):\n    return a + b\n"},
    {"prompt": "Echo a line.", "tests": [{"input": "hi\n", "output": "hi"}], "time_limit": 2},
]  # fmt: skip


def test_jsonl_loads_and_scores(tmp_path):
    path = write(tmp_path / "p.jsonl", GOOD[:1] + [""] + GOOD[1:])  # a blank line is skipped
    task = get_task(f"code:path={path}")
    a, b = list(task.examples())
    assert (a["id"], b["id"]) == ("add", "test/1")
    assert a["meta"]["entry_point"] == "add" and a["gold"] == GOOD[0]["solution"]
    assert b["meta"]["time_limit"] == 2 and (b["meta"]["source"], b["meta"]["line"]) == (str(path), 3)
    assert task.score(answer(a["gold"]), a).correct
    assert task.score(answer("print(input())"), b).correct
    assert not task.score(answer("print(input().upper())"), b).correct


def test_jsonl_split_placeholder(tmp_path):
    write(tmp_path / "train.jsonl", GOOD[:1])
    write(tmp_path / "test.jsonl", GOOD)
    task = CodeTask(path=str(tmp_path / "{split}.jsonl"))
    assert [len(list(task.examples(s))) for s in ("train", "test")] == [1, 2]
    with pytest.raises(TaskError, match="holds the test split"):
        CodeTask(path=str(tmp_path / "test.jsonl")).examples("train")


@pytest.mark.parametrize(
    "row,message",
    [
        ('{"prompt": "x", "tests": ["assert 1"]', r"p\.jsonl:2: not valid JSON"),
        ('["prompt"]', r"p\.jsonl:2: expected a JSON object, got list"),
        ({"tests": ["assert 1"]}, r"p\.jsonl:2: missing field 'prompt'"),
        ({"prompt": "x"}, r"p\.jsonl:2: missing field 'tests'"),
        ({"prompt": "x", "tests": []}, r"p\.jsonl:2: field 'tests' must be a non-empty list"),
        ({"prompt": "x", "tests": ["assert ("]}, r"p\.jsonl:2: field 'tests': test 0 is not valid Python"),
        ({"prompt": "x", "tests": [{"in": "1", "out": "1"}]}, r"p\.jsonl:2: field 'tests': test 0: an io case"),
        ({"prompt": "x", "tests": ["assert 1"], "entry_point": "not a name"}, r"field 'entry_point' must be a Python name"),
        ({"prompt": "x", "tests": ["assert 1"], "time_limit": 0}, r"field 'time_limit' must be a positive number"),
        ({"id": "add", "prompt": "x", "tests": ["assert 1"]}, r"p\.jsonl:2: duplicate id 'add' \(first on line 1\)"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, row, message):
    path = write(tmp_path / "p.jsonl", [GOOD[0], row])
    with pytest.raises(TaskError, match=message):
        list(CodeTask(path=path).examples())


def test_missing_file(tmp_path):
    with pytest.raises(TaskError, match=r"nope\.jsonl: no such file"):
        CodeTask(path=tmp_path / "nope.jsonl").examples()
