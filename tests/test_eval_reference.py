"""The harness end to end on real benchmarks: reference solutions score 100%, perturbed ones 0%.

Every item of GSM8K test (1,319) and MATH-500 (500) from ../shared/data is used. The
"model" answers each question with the dataset's own reference solution (GSM8K ``#### N``,
MATH ``\\boxed{}``), as raw text; the perturbed run replaces the final answer by ``(gold)+1``.

Two MATH-500 perturbations once slipped through the verifier (``(x=5)+1`` vs ``x=5`` and
``1\\frac{4}{5}+1`` vs ``1\\frac{4}{5}``); they are cases of tests/test_verify_math.py now.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fakes import FakeBackend, question_of

from ponder.evaluate.harness import EvalConfig, read_records, run_eval
from ponder.generate.types import Completion
from ponder.tasks import get_task


def replace_last_boxed(text: str, new: str) -> str:
    i = text.rfind("\\boxed{")
    j = k = i + len("\\boxed{")
    depth = 1
    while depth:
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        k += 1
    return text[:j] + new + text[k - 1:]


def perturb(task: str, solution: str, gold: str) -> str:
    if task == "gsm8k":
        return re.sub(r"####\s*(.+?)\s*$", lambda m: f"#### {m.group(1)}1", solution)  # 18 -> 181
    return replace_last_boxed(solution, f"({gold})+1")


class Reference(FakeBackend):
    """Answers each question with a fixed text (its reference solution, or a perturbed one)."""

    def __init__(self, texts: dict[str, str]):
        super().__init__()
        self.texts = texts

    def generate(self, prompts, n=1, sampling=None, budget=None):
        out = []
        for p in map(question_of, prompts):
            t = self.texts[p]
            out.append([Completion(text=t, token_ids=[], reasoning="", answer=t, reasoning_tokens=0,
                                   answer_tokens=len(t) // 4, finish_reason="stop")] * n)
        return out


DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark data not found at {DATA}")
@pytest.mark.parametrize("task", ["gsm8k", "math500"])
def test_reference_solutions_score_100_and_perturbed_0(task, tmp_path):
    examples = list(get_task(task).examples("test"))
    assert len(examples) == {"gsm8k": 1319, "math500": 500}[task]
    by_q = {}
    for e in examples:
        by_q.setdefault(e["prompt"], e)
    # a question asked twice must have the same reference answer, or the scripted mapping is ambiguous
    assert all(by_q[e["prompt"]]["gold"] == e["gold"] for e in examples)
    ref = {q: e["meta"]["solution"] for q, e in by_q.items()}
    wrong = {q: perturb(task, e["meta"]["solution"], e["gold"]) for q, e in by_q.items()}
    assert all(wrong[q] != ref[q] for q in ref)

    cfg = dict(model="reference", task=task, n=1, concurrency=1)
    by = ["subject", "level"] if task == "math500" else []
    good = run_eval(EvalConfig(**cfg, by=by, out=str(tmp_path / "ref")), Reference(ref), progress=False).metrics
    assert good["complete_problems"] == len(examples)
    for field in by:  # MATH-500 breakdowns: 7 subjects, levels 1-5, every problem in exactly one group
        rows = good["by"][field]
        assert len(rows) == {"subject": 7, "level": 5}[field] and sum(r["problems"] for r in rows) == 500
        assert all(r["pass@1"]["mean"] == 1.0 for r in rows)
    assert good["pass@1"]["mean"] == 1.0, [r["id"] for r in read_records(tmp_path / "ref" / "samples.jsonl")
                                           if not r["correct"]][:10]

    run_eval(EvalConfig(**cfg, out=str(tmp_path / "bad")), Reference(wrong), progress=False)
    recs = read_records(tmp_path / "bad" / "samples.jsonl")
    assert len(recs) == len(examples)
    right = [r["id"] for r in recs if r["correct"]]
    assert right == []
    # wrong by value, or -- where a solution boxes its answer twice and only the last box was
    # perturbed -- by the judge's conflict guard (two boxes, two values)
    assert all((r["answer"] is not None and "not equal" in r["reason"]) or r["reason"].startswith("conflicting")
               for r in recs if not r["correct"])
