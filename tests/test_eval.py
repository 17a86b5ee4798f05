"""ponder eval: known-answer metrics from a scripted backend, records, resume, breakdowns, CLI.

The scripted backend declares itself an endpoint (the question as one user message, concurrent
requests); it answers each question with a fixed list of completions,
handing out the next ones on every call, so a resumed run continues the same sequence.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fakes import FakeBackend, question_of
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.evaluate.compare import compare_runs, paired_bootstrap, sign_test
from ponder.evaluate.harness import EndpointError, EvalConfig, EvalError, read_records, run_eval
from ponder.generate.types import Completion

# question -> (gold, the 4 final answers the scripted model gives, in sample order)
SCRIPT = {
    "Q1": ("5", ["3", "5", "5.0", "7"]),  # c=2; 5 and 5.0 vote together
    "Q2": ("10", ["10", "3", "3", "10"]),  # c=2; 3 reaches 2 votes first
    "Q3": ("\\frac{1}{2}", ["\\frac{1}{2}", "2", "2", None]),  # c=1; one sample has no answer
}


def completion(answer: str | None, reasoning_tokens: int = 6, answer_tokens: int = 2, finish="stop") -> Completion:
    if answer is None:  # cut off while thinking: no answer at all
        return Completion(text="<think>working and working", token_ids=[], reasoning="working and working", answer="",
                          reasoning_tokens=reasoning_tokens + answer_tokens, answer_tokens=0, finish_reason=finish)
    ans = f"The answer is \\boxed{{{answer}}}."
    text = f"<think>working</think>{ans}"
    return Completion(text=text, token_ids=[], reasoning="working", answer=ans, reasoning_tokens=reasoning_tokens,
                      answer_tokens=answer_tokens, finish_reason=finish, think_closed=True)


class Scripted(FakeBackend):
    """Returns the next scripted completions of each question; can fail on chosen questions."""

    def __init__(self, fail_on: set[str] = frozenset(), fail_times: int = 10**9):
        super().__init__()
        self.next = {q: 0 for q in SCRIPT}
        self.calls: list[tuple[str, int]] = []
        self.fail_on, self.fail_left = set(fail_on), fail_times
        self.lock = threading.Lock()

    def generate(self, prompts, n=1, sampling=None, budget=None):
        out = []
        for p in map(question_of, prompts):
            with self.lock:
                self.calls.append((p, n))
                if p in self.fail_on and self.fail_left > 0:
                    self.fail_left -= 1
                    raise ConnectionError(f"scripted failure on {p}")
                i = self.next[p]
                self.next[p] += n
            out.append([completion(a, finish="length" if a is None else "stop") for a in SCRIPT[p][1][i:i + n]])
        return out


@pytest.fixture
def task_file(tmp_path) -> str:
    f = tmp_path / "qs.jsonl"
    f.write_text("".join(json.dumps({"id": q, "question": q, "answer": g, "kind": "odd" if q != "Q2" else "even"}) + "\n"
                         for q, (g, _) in SCRIPT.items()))
    return f"jsonl:path={f},id_field=id,meta_fields=kind"


def cfg(task: str, out: Path, **kw) -> EvalConfig:
    return EvalConfig(model="scripted", task=task, n=4, out=str(out), concurrency=2, **kw)


def test_known_pass_and_maj_values(task_file, tmp_path):
    res = run_eval(cfg(task_file, tmp_path / "run", by=["kind"]), Scripted(), progress=False)
    m = res.metrics
    # per problem c = 2, 2, 1 of n = 4. pass@k = 1 - C(n-c,k)/C(n,k):
    #   pass@1 = (2/4 + 2/4 + 1/4)/3 = 5/12
    #   pass@2 = (5/6 + 5/6 + (1 - C(3,2)/C(4,2) = 1/2))/3 = 13/18, pass@4 = 1
    assert m["pass@1"]["mean"] == pytest.approx(5 / 12)
    assert m["pass@k"] == pytest.approx({"1": 5 / 12, "2": 13 / 18, "4": 1.0})
    # maj@k, ties to the answer that reached the top count first:
    #   Q1 [3,5,5.0,7]: k=1 3 ✗, k=2 3 ✗ (tie, 3 first), k=4 {5,5.0} ✓
    #   Q2 [10,3,3,10]: k=1 ✓, k=2 ✓ (tie, 10 first), k=4 3 reached 2 votes first ✗
    #   Q3 [1/2,2,2,-]: k=1 ✓, k=2 ✓ (tie), k=4 2 ✗
    assert m["maj@k"] == pytest.approx({"1": 2 / 3, "2": 2 / 3, "4": 1 / 3})
    assert m["strategy"]["accuracy"]["mean"] == pytest.approx(1 / 3)
    assert m["truncated_share"] == pytest.approx(1 / 12) and m["no_answer_share"] == pytest.approx(1 / 12)
    # 11 samples of 6 reasoning + 2 answer tokens, the cut-off one 8 + 0
    assert m["tokens"]["per_sample"] == pytest.approx({"reasoning": 74 / 12, "answer": 22 / 12, "total": 8})
    assert m["tokens"]["per_problem"]["total"] == pytest.approx(32)
    rows = {r["value"]: r for r in m["by"]["kind"]}
    assert rows["even"]["problems"] == 1 and rows["even"]["pass@1"]["mean"] == pytest.approx(0.5)
    assert rows["odd"]["problems"] == 2 and rows["odd"]["pass@1"]["mean"] == pytest.approx(3 / 8)
    # the saved files say the same thing
    assert json.loads((res.out / "metrics.json").read_text())["pass@k"]["2"] == pytest.approx(13 / 18)
    report = (res.out / "report.md").read_text()
    assert "## Sample verdicts" in report and "| Q1 | 0 | ✗ not equal to 5 | 3 | 5 |" in report
    assert "41.7%" in report and (res.out / "pass_at_k.png").stat().st_size > 1000 and (res.out / "by_kind.png").exists()


def test_vote_grouping_uses_math_equality_only_for_short_answers():
    from ponder.evaluate.report import answers_equal

    assert answers_equal("0.5", "\\frac{1}{2}") and not answers_equal("0.5", "0.25")
    prog_a, prog_b = "def f(x):\n    return x + 1", "def f(x):\n  return x + 1"
    assert not answers_equal(prog_a, prog_b) and answers_equal(prog_a, prog_a + "\n")


def test_records_are_complete_audits(task_file, tmp_path):
    res = run_eval(cfg(task_file, tmp_path / "run"), Scripted(), progress=False)
    recs = read_records(res.out / "samples.jsonl")
    assert len(recs) == 12 and len({(r["id"], r["sample"]) for r in recs}) == 12
    r = next(r for r in recs if r["id"] == "Q1" and r["sample"] == 2)
    assert r["answer"] == "5.0" and r["gold"] == "5" and r["correct"] and r["reason"] == "equal"
    assert r["prompt"] == [{"role": "user", "content": "Q1"}] and "\\boxed{5.0}" in r["completion"]
    assert r["reasoning"] == "working" and r["think_closed"] and r["seed"] is not None
    assert (r["reasoning_tokens"], r["answer_tokens"], r["tokens"]) == (6, 2, 8)
    wrong = next(r for r in recs if r["id"] == "Q1" and r["sample"] == 0)
    assert not wrong["correct"] and "not equal" in wrong["reason"]


def test_strategy_from_ponder_strategies(task_file, tmp_path):
    class Ranked(FakeBackend):
        """Every call returns the scripted samples; sample j has log-prob -(j+1), so best_of_n
        with the default log-prob scorer picks sample 0: Q1 "3" ✗, Q2 "10" ✓, Q3 "1/2" ✓."""

        def generate(self, prompts, n=1, sampling=None, budget=None):
            out = []
            for p in map(question_of, prompts):
                group = []
                for j, a in enumerate(SCRIPT[p][1][:n]):
                    c = completion(a)
                    group.append(Completion(**{**c.__dict__, "token_ids": [1], "logprobs": [-(j + 1.0)]}))
                out.append(group)
            return out

    res = run_eval(cfg(task_file, tmp_path / "s", strategy="best_of_n"), Ranked(), progress=False)
    st = res.metrics["strategy"]
    assert st["name"] == "best_of_n" and st["accuracy"]["mean"] == pytest.approx(2 / 3)
    assert res.metrics["maj@k"]["4"] == pytest.approx(1 / 3)  # the samples' own metrics are unchanged
    recs = {r["id"]: r for r in read_records(res.out / "strategy.jsonl")}
    assert recs["Q1"]["answer"] == "3" and not recs["Q1"]["correct"] and recs["Q2"]["correct"]
    with pytest.raises(EvalError, match="unknown strategy 'vote'"):
        run_eval(cfg(task_file, tmp_path / "v", strategy="vote"), Ranked(), progress=False)


def test_endpoint_failures_stop_keep_records_and_resume(task_file, tmp_path):
    out = tmp_path / "run"
    c = cfg(task_file, out, retries=1, max_failures=1)
    flaky = Scripted(fail_on={"Q2"})
    with pytest.raises(EndpointError, match="--resume"):
        run_eval(c, flaky, progress=False)
    kept = read_records(out / "samples.jsonl")
    assert kept and all(r["id"] != "Q2" for r in kept)
    assert sum(1 for p, _ in flaky.calls if p == "Q2") == 2  # first try + 1 retry
    # a kill mid-write leaves a torn line: resume drops it and redoes that sample
    with open(out / "samples.jsonl", "a") as f:
        f.write('{"id": "Q2", "sample": 0, "corr')
    again = Scripted()
    for r in kept:  # the new backend continues each question's sequence where the records end
        again.next[r["id"]] = max(again.next[r["id"]], r["sample"] + 1)
    with pytest.raises(EvalError, match="already holds a run"):
        run_eval(cfg(task_file, out), again, progress=False)
    res = run_eval(cfg(task_file, out, resume=True), again, progress=False)
    assert sum(n for _, n in again.calls) == 12 - len(kept)  # finished samples are not asked for again
    assert res.new_samples == 12 - len(kept)
    assert res.metrics["pass@k"] == pytest.approx({"1": 5 / 12, "2": 13 / 18, "4": 1.0})
    assert len(read_records(out / "samples.jsonl")) == 12


def test_isolated_failures_leave_problems_incomplete_not_averaged(task_file, tmp_path):
    res = run_eval(cfg(task_file, tmp_path / "r", retries=0, max_failures=5), Scripted(fail_on={"Q2"}), progress=False)
    m = res.metrics
    assert (m["complete_problems"], m["incomplete_problems"]) == (2, 1)
    assert m["failed_requests"] == 1 and "scripted failure on Q2" in m["last_error"]  # the CLI exits non-zero
    assert m["pass@1"]["mean"] == pytest.approx((2 / 4 + 1 / 4) / 2)  # Q1 and Q3 only
    assert "**Incomplete:** 1 problems" in (res.out / "report.md").read_text()


def test_resume_refuses_changed_settings_but_extends_limit(task_file, tmp_path):
    first = Scripted()
    assert run_eval(cfg(task_file, tmp_path / "r", limit=2), first, progress=False).metrics["complete_problems"] == 2
    more = Scripted()
    res = run_eval(cfg(task_file, tmp_path / "r", resume=True), more, progress=False)
    assert [p for p, _ in more.calls] == ["Q3"] and res.new_samples == 4  # only the new problem
    assert res.metrics["pass@k"]["2"] == pytest.approx(13 / 18)
    with pytest.raises(EvalError, match="n was 4"):
        run_eval(EvalConfig(model="scripted", task=task_file, n=2, out=str(tmp_path / "r"), resume=True), Scripted(),
                 progress=False)


def test_bad_input_is_named(task_file, tmp_path):
    with pytest.raises(EvalError, match="n must be >= 1"):
        EvalConfig(model="m", task="addition", n=0)
    with pytest.raises(EvalError, match="temperature"):
        EvalConfig(model="m", task="addition", temperature=-1)
    with pytest.raises(EvalError, match="no model"):
        EvalConfig(task="addition")
    with pytest.raises(EvalError, match="available: kind"):
        run_eval(cfg(task_file, tmp_path / "x", by=["subject"]), Scripted(), progress=False)


def test_budget_sweep_writes_curve(task_file, tmp_path):
    seen = []

    class Budgeted(Scripted):
        def generate(self, prompts, n=1, sampling=None, budget=None):
            seen.append(budget.thinking_budget)
            if budget.thinking_budget < 100:  # too little thinking: no answer
                return [[completion(None, reasoning_tokens=budget.thinking_budget, answer_tokens=0, finish="length")] * n for _ in prompts]
            return [[completion(SCRIPT[question_of(p)][0], reasoning_tokens=40)] * n for p in prompts]

    res = run_eval(cfg(task_file, tmp_path / "sweep", budgets=[32, 128]), Budgeted(), progress=False)
    rows = {r["budget"]: r for r in res.metrics["sweep"]}
    assert set(seen) == {32, 128}
    assert rows[32]["accuracy"] == 0 and rows[128]["accuracy"] == 1
    assert rows[32]["mean_reasoning_tokens"] == 32 and rows[128]["truncated_share"] == 0
    assert (res.out / "budget_curve.png").stat().st_size > 1000 and (res.out / "budget_curve.csv").is_file() and (res.out / "budget-128" / "samples.jsonl").exists()


def test_compare_paired_tests(task_file, tmp_path):
    a = run_eval(cfg(task_file, tmp_path / "a"), Scripted(), progress=False).out

    class AllRight(Scripted):
        def generate(self, prompts, n=1, sampling=None, budget=None):
            return [[completion(SCRIPT[question_of(p)][0])] * n for p in prompts]

    b = run_eval(cfg(task_file, tmp_path / "b"), AllRight(), progress=False).out
    res = compare_runs([a, b])
    t = res["tests"][0]
    assert t["shared_problems"] == 3 and t["pass@1_diff"] == pytest.approx(1 - 5 / 12)
    assert (t["wins"], t["losses"], t["ties"]) == (3, 0, 0)
    assert t["p_sign"] == pytest.approx(0.25)  # 3 wins of 3: 2 · (1/2)^3
    assert t["ci_low"] > 0  # every resample of all-positive differences is positive
    same = compare_runs([a, a])["tests"][0]
    assert same["pass@1_diff"] == 0 and same["p_bootstrap"] == 1 and not same["significant"]
    with pytest.raises(EvalError, match="at least two"):
        compare_runs([a])
    with pytest.raises(EvalError, match="not an eval run"):
        compare_runs([a, tmp_path / "nothing"])


def test_significance_tests_against_hand_values():
    assert sign_test(0, 0) == 1.0
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)  # P(X<=1), X~Bin(10, 1/2), two-sided
    big = paired_bootstrap([0.2] * 30 + [0.0] * 10)
    assert big["diff"] == pytest.approx(0.15) and big["p"] < 0.01 and big["low"] > 0
    noisy = paired_bootstrap([1, -1] * 20)
    assert noisy["p"] > 0.5 and noisy["low"] < 0 < noisy["high"]


def test_cli_eval_local_model_and_compare(tmp_path):
    from ponder.testing import tiny_engine

    model = tmp_path / "tiny"
    tiny_engine(save_to=model)
    runner = CliRunner()
    outs = []
    for seed in (0, 1):
        out = tmp_path / f"run{seed}"
        r = runner.invoke(app, ["eval", str(model), "--task", "addition:digits=1,n_test=4", "--n", "2",
                                "--max-tokens", "8", "--thinking-budget", "4", "--seed", str(seed), "--out", str(out),
                                "--by", "digits"])
        assert r.exit_code == 0, r.output
        assert "pass@1" in r.output and "report:" in r.output
        recs = read_records(out / "samples.jsonl")
        # the budget counts the model's own reasoning; the forced "\n</think>" adds its 2 tokens
        assert len(recs) == 8 and all(x["reasoning_tokens"] <= 4 + 2 for x in recs)
        assert recs[0]["prompt"].rstrip().endswith("<think>") and recs[0]["thinking_budget"] == 4
        outs.append(str(out))
    r = runner.invoke(app, ["eval", "compare", *outs, "--md", str(tmp_path / "cmp.md"), "--json", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "cmp.md").read_text()
    assert "| pass@1 |" in md and "Δ run1" in md and "paired bootstrap" in md
    assert json.loads((tmp_path / "c.json").read_text())["tests"][0]["shared_problems"] >= 1
    assert "paired bootstrap" in r.output and "run1 vs run0" in r.output
    r = runner.invoke(app, ["eval", str(model), "--task", "addition", "--n", "0"])
    assert r.exit_code == 2 and "n must be >= 1" in r.output
    r = runner.invoke(app, ["eval", str(tmp_path / "missing"), "--task", "addition"])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())
