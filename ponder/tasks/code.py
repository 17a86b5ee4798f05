"""The ``code`` task: Python programming problems, scored by running tests in the sandbox.

An example is ``{id, prompt, gold, meta}`` with ``meta["tests"]`` a list of assert strings
(Python statements run after the code, e.g. ``"assert add(1, 2) == 3"``) and/or stdin/stdout
cases ``{"input": "1 2\\n", "output": "3"}``; optionally ``meta["entry_point"]`` (the function
the tests call: it is also bound to the name ``candidate``, for HumanEval-style tests),
``meta["solution"]`` (a reference solution; it is also the ``gold``) and
``meta["time_limit"]`` (seconds of CPU per execution; wall time is twice that).

Scoring (``ponder.tasks.judge``) takes the answer part of the completion (never the
reasoning), unwraps an ``<answer>`` block, extracts (``extract``) the last fenced code block
labelled ``python``/``py``/``python3`` (else the last unlabelled one; a fence cut off by the
end of the completion counts), falls back to the whole answer when there is no fence at
all, and runs it (``check``) with ``ponder.verify.sandbox.run_code``. ``correct`` means every test
passed; ``details`` holds the per-test results.

Data. By default the task serves ``BUILTIN``, ten small problems with reference solutions
(test split only), so demos and tests need no files. ``path=`` reads a JSONL file instead,
one problem per line: ``{"id"?, "prompt", "tests", "entry_point"?, "solution"?,
"time_limit"?}``; a path containing ``{split}`` serves both splits. A missing file, a line
that is not a JSON object, a missing or malformed field, or a repeated id is a ``TaskError``
naming the file, the line and the field.

Limits: the code runs with the standard library only (see the sandbox), and scoring a
completion costs a sandboxed run (~20 ms plus the code's own time).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from ponder.config import option
from ponder.format import ANSWER_CLOSE, ANSWER_OPEN
from ponder.io import json_objects
from ponder.tasks.base import Example, TaskError, Verdict
from ponder.tasks.toolkit import FileOptions, FileTask, check_split
from ponder.verify.sandbox import Limits, SandboxError, check_tests, run_code

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_PYTHON_LABELS = ("python", "py", "python3")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*\Z")


def extract_code(answer: str) -> str | None:
    """The code in an answer part, or None when the answer is empty.

    Inside an ``<answer>`` block when there is one; the last ```python block, else the last
    unlabelled block, else (no fence at all) the whole answer. A block in another language only
    (```bash) gives None: it is not Python.
    """
    i = answer.rfind(ANSWER_OPEN)
    if i >= 0:
        j = answer.find(ANSWER_CLOSE, i)
        answer = answer[i + len(ANSWER_OPEN): j if j >= 0 else len(answer)]
    if not answer.strip():
        return None
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(answer)]
    if not blocks:
        return answer
    for wanted in (_PYTHON_LABELS, ("",)):
        chosen = [code for label, code in blocks if label in wanted]
        if chosen:
            return chosen[-1] if chosen[-1].strip() else None
    return None


@dataclass
class CodeOptions(FileOptions):
    """Options of ``code``."""

    path: str | None = option(None, "JSONL file of problems (may contain {split}); default: the built-in set.")


class CodeTask(FileTask):
    """Python programming problems checked by running tests in a sandbox."""

    name = "code"
    Options = CodeOptions
    needs_subprocess = True  # each check is a sandboxed run: batches are judged in threads
    conflict_guard = False  # boxes and answer lines mean nothing to a program
    nothing_found = "no code found"
    options: CodeOptions

    def examples(self, split: str = "test") -> Iterator[Example]:
        """The problems of ``split`` in file order (the built-in set has only "test")."""
        check_split(split, self.name)
        if self.options.path is None:
            if split != "test":
                raise TaskError("code: the built-in problems have only a test split (give path= for more)")
            return iter([_example(row, f"code/{row['id']}", "builtin", i + 1) for i, row in enumerate(BUILTIN)])
        file = self.options.file(split, self.name)
        if not file.is_file():
            raise TaskError(f"{file}: no such file ({split} split)")
        return _read(file, split)

    def extract(self, answer_text: str) -> str | None:
        return extract_code(answer_text)

    def check(self, code: str, example: Example) -> Verdict:
        """Run ``code`` against the example's tests (see the module docstring)."""
        meta = example.get("meta") or {}
        tests = meta.get("tests")
        if not tests:
            raise TaskError(f"example {example.get('id')!r}: meta has no tests")
        entry = meta.get("entry_point")
        if entry and any(isinstance(t, str) for t in tests):
            code_run = f"{code}\n\ncandidate = {entry}\n"  # a NameError here = the function is missing
        else:
            code_run = code
        limit = float(meta.get("time_limit") or Limits.cpu_seconds)
        try:
            result = run_code(code_run, tests, Limits(cpu_seconds=limit, wall_seconds=2 * limit))
        except SandboxError as e:
            raise TaskError(f"example {example.get('id')!r}: {e}") from None
        n_passed = sum(t.passed for t in result.tests)
        if result.passed:
            reason = f"passed {n_passed}/{len(result.tests)} tests"
        else:
            reason = f"{result.reason} ({n_passed}/{len(result.tests)} tests passed)"
        details = {
            "tests": [asdict(t) for t in result.tests], "passed": n_passed, "total": len(result.tests),
            "reason": result.reason, "detail": result.detail, "stdout": result.stdout,
            "stderr": result.stderr, "duration": result.duration, "mode": result.mode,
        }  # fmt: skip
        return Verdict(result.passed, reason, answer=code, details=details)


def _example(row: dict[str, Any], ex_id: str, source: str, line: int) -> Example:
    meta: dict[str, Any] = {"tests": row["tests"], "source": source, "line": line}
    for key in ("entry_point", "solution", "time_limit"):
        if row.get(key) is not None:
            meta[key] = row[key]
    return {"id": ex_id, "prompt": row["prompt"], "gold": row.get("solution") or "", "meta": meta}


def _read(path: Path, split: str) -> Iterator[Example]:
    """Examples of one JSONL file, streamed; errors name the file, line and field."""
    seen: dict[str, int] = {}
    index = 0
    for n, row in json_objects(path, TaskError):
        where = f"{path}:{n}"
        _check_row(row, where)
        ex_id = str(row["id"]) if row.get("id") is not None else f"{split}/{index}"
        if ex_id in seen:
            raise TaskError(f"{where}: duplicate id {ex_id!r} (first on line {seen[ex_id]})")
        seen[ex_id] = n
        yield _example(row, ex_id, str(path), n)
        index += 1


def _check_row(row: dict[str, Any], where: str) -> None:
    for name in ("prompt", "tests"):
        if name not in row:
            raise TaskError(f"{where}: missing field {name!r}")
    if not isinstance(row["prompt"], str) or not row["prompt"].strip():
        raise TaskError(f"{where}: field 'prompt' must be a non-empty string")
    if not isinstance(row["tests"], list) or not row["tests"]:
        raise TaskError(f"{where}: field 'tests' must be a non-empty list")
    try:
        check_tests(row["tests"])
    except SandboxError as e:
        raise TaskError(f"{where}: field 'tests': {e}") from None
    entry = row.get("entry_point")
    if entry is not None and (not isinstance(entry, str) or not _IDENTIFIER.match(entry)):
        raise TaskError(f"{where}: field 'entry_point' must be a Python name, got {entry!r}")
    if row.get("solution") is not None and not isinstance(row["solution"], str):
        raise TaskError(f"{where}: field 'solution' must be a string")
    limit = row.get("time_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
        raise TaskError(f"{where}: field 'time_limit' must be a positive number of seconds, got {limit!r}")


# --------------------------------------------------------------------------- built-in problems

_ANSWER_WITH = "Answer with the complete code in one ```python block."


def _function(name: str, signature: str, text: str) -> str:
    return f"Write a Python function `{name}{signature}` that {text}\n\n{_ANSWER_WITH}"


def _program(text: str) -> str:
    return f"Write a Python program that {text}\n\n{_ANSWER_WITH}"


BUILTIN: list[dict[str, Any]] = [
    {
        "id": "is_palindrome",
        "prompt": _function("is_palindrome", "(s: str) -> bool", "returns whether `s` reads the same "
                            "backwards, ignoring case and every character that is not a letter or digit."),
        "entry_point": "is_palindrome",
        "tests": ["assert is_palindrome('A man, a plan, a canal: Panama')", "assert not is_palindrome('race a car')",
                  "assert is_palindrome('')", "assert is_palindrome('No lemon, no melon')", "assert not is_palindrome('ab')"],
        "solution": "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]\n",
    },
    {
        "id": "fibonacci",
        "prompt": _function("fib", "(n: int) -> int", "returns the n-th Fibonacci number, with fib(0) = 0 and "
                            "fib(1) = 1. It must be fast for n up to 90."),
        "entry_point": "fib",
        "tests": ["assert fib(0) == 0", "assert fib(1) == 1", "assert fib(10) == 55", "assert fib(90) == 2880067194370816120"],
        "solution": "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    },
    {
        "id": "primes_up_to",
        "prompt": _function("primes_up_to", "(n: int) -> list[int]", "returns the primes p with 2 <= p <= n, "
                            "in increasing order."),
        "entry_point": "primes_up_to",
        "tests": ["assert primes_up_to(1) == []", "assert primes_up_to(2) == [2]",
                  "assert primes_up_to(30) == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]", "assert len(primes_up_to(10000)) == 1229"],
        "solution": ("def primes_up_to(n):\n    sieve = [True] * (n + 1)\n    out = []\n    for i in range(2, n + 1):\n"
                     "        if sieve[i]:\n            out.append(i)\n            for j in range(i * i, n + 1, i):\n"
                     "                sieve[j] = False\n    return out\n"),
    },
    {
        "id": "max_subarray",
        "prompt": _function("max_subarray", "(xs: list[int]) -> int", "returns the largest sum of a non-empty "
                            "contiguous run of `xs` (which is not empty)."),
        "entry_point": "max_subarray",
        "tests": ["assert max_subarray([-2, 1, -3, 4, -1, 2, 1, -5, 4]) == 6", "assert max_subarray([-3, -1, -2]) == -1",
                  "assert max_subarray([5]) == 5", "assert max_subarray([2, -1, 2]) == 3"],
        "solution": ("def max_subarray(xs):\n    best = cur = xs[0]\n    for x in xs[1:]:\n        cur = max(x, cur + x)\n"
                     "        best = max(best, cur)\n    return best\n"),
    },
    {
        "id": "balanced_brackets",
        "prompt": _function("balanced", "(s: str) -> bool", "returns whether the brackets (), [] and {} in `s` "
                            "are balanced and properly nested; other characters are ignored."),
        "entry_point": "balanced",
        "tests": ["assert balanced('([]{})')", "assert not balanced('([)]')", "assert balanced('')",
                  "assert not balanced('((')", "assert not balanced('())')", "assert balanced('a(b)c[d]')"],
        "solution": ("def balanced(s):\n    pairs = {')': '(', ']': '[', '}': '{'}\n    stack = []\n    for c in s:\n"
                     "        if c in '([{':\n            stack.append(c)\n        elif c in pairs:\n"
                     "            if not stack or stack.pop() != pairs[c]:\n                return False\n"
                     "    return not stack\n"),
    },
    {
        "id": "roman_to_int",
        "prompt": _function("roman_to_int", "(s: str) -> int", "converts a Roman numeral (I, V, X, L, C, D, M; "
                            "subtractive forms like IV and CM) to an integer."),
        "entry_point": "roman_to_int",
        "tests": ["assert roman_to_int('III') == 3", "assert roman_to_int('IV') == 4", "assert roman_to_int('IX') == 9",
                  "assert roman_to_int('LVIII') == 58", "assert roman_to_int('MCMXCIV') == 1994"],
        "solution": ("def roman_to_int(s):\n    v = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n"
                     "    total = 0\n    for a, b in zip(s, s[1:] + ' '):\n"
                     "        total += -v[a] if b != ' ' and v[a] < v[b] else v[a]\n    return total\n"),
    },
    {
        "id": "fizzbuzz",
        "prompt": _program("reads an integer n from standard input and prints the numbers 1 to n, one per line, "
                           "printing Fizz for multiples of 3, Buzz for multiples of 5 and FizzBuzz for multiples of both."),
        "tests": [{"input": "5\n", "output": "1\n2\nFizz\n4\nBuzz\n"},
                  {"input": "15\n", "output": "1\n2\nFizz\n4\nBuzz\nFizz\n7\n8\nFizz\nBuzz\n11\nFizz\n13\n14\nFizzBuzz\n"},
                  {"input": "1\n", "output": "1\n"}],
        "solution": ("n = int(input())\nfor i in range(1, n + 1):\n"
                     "    print('Fizz' * (i % 3 == 0) + 'Buzz' * (i % 5 == 0) or i)\n"),
    },
    {
        "id": "lcm",
        "prompt": _program("reads two positive integers a and b (on one line, separated by a space) and prints "
                           "their least common multiple."),
        "tests": [{"input": "4 6\n", "output": "12"}, {"input": "7 5\n", "output": "35"},
                  {"input": "12 12\n", "output": "12"}, {"input": "1000000007 998244353\n", "output": "998244359987710471"}],
        "solution": "import math\na, b = map(int, input().split())\nprint(a * b // math.gcd(a, b))\n",
    },
    {
        "id": "digit_sums",
        "prompt": _program("reads t on the first line, then t lines each holding a non-negative integer, and prints "
                           "the sum of the decimal digits of each integer on its own line."),
        "tests": [{"input": "3\n123\n0\n9999\n", "output": "6\n0\n36\n"}, {"input": "1\n1000000000000\n", "output": "1\n"},
                  {"input": "2\n5\n55\n", "output": "5\n10\n"}],
        "solution": ("import sys\nlines = sys.stdin.read().split()\nfor x in lines[1:1 + int(lines[0])]:\n"
                     "    print(sum(map(int, x)))\n"),
    },
    {
        "id": "word_frequencies",
        "prompt": _program("reads text from standard input and prints each distinct word (lower-cased, words are runs "
                           "of letters) with its count as `word count`, most frequent first, ties in alphabetical order."),
        "tests": [{"input": "the cat and the hat\n", "output": "the 2\nand 1\ncat 1\nhat 1\n"},
                  {"input": "B a b, A! b\n", "output": "b 3\na 2\n"}, {"input": "\n", "output": ""}],
        "solution": ("import re, sys\nfrom collections import Counter\n"
                     "c = Counter(w.lower() for w in re.findall('[A-Za-z]+', sys.stdin.read()))\n"
                     "for w, k in sorted(c.items(), key=lambda x: (-x[1], x[0])):\n    print(w, k)\n"),
    },
]  # fmt: skip
for _row in BUILTIN:
    _row["time_limit"] = 1  # they all run in milliseconds; a slow solution (fib the naive way) fails fast
