"""The LLM judge (``ponder eval --judge``): verdict parsing, agreement metrics, replace mode, the
cache, failing judges and bad rubrics against real HTTP servers (``ponder.testing.scripted_server``),
and SmolLM2 as a (weak) real judge on GSM8K.

The model under test answers ``a + b`` right unless the sum is a multiple of 3 (then it says sum + 1);
the judge server follows ``judge_rule`` on the gold it reads from the rubric, so the confusion
matrix of judge against verifier follows from the two rules, computed here apart from the code.
"""

from __future__ import annotations

import json
import re
from itertools import islice
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.evaluate.harness import EvalConfig, EvalError, run_eval
from ponder.evaluate.judge import load_rubric, parse_verdict, verdict_of
from ponder.io import read_records
from ponder.tasks import get_task
from ponder.testing import arithmetic_answer, scripted_server

N = 10
EXAMPLES = list(islice(get_task("addition").examples("test"), N))


def model_answer(question: str) -> str:
    s = int(arithmetic_answer(question))
    return str(s + 1 if s % 3 == 0 else s)


def judge_rule(gold: int, predicted: int) -> str:
    """The judge's reply: unparsable when the gold is a multiple of 5, a letter grade "correct" for
    multiples of 7, a boxed "incorrect" for other even golds, else honest (with a think block)."""
    if gold % 5 == 0:
        return "The two look similar, I think."
    if gold % 7 == 0:
        return "A"
    if gold % 2 == 0:
        return "The answers differ.\n**Verdict:** \\boxed{INCORRECT}"
    verdict = "CORRECT" if predicted == gold else "INCORRECT"
    return f"<think>VERDICT: {'INCORRECT' if verdict == 'CORRECT' else 'CORRECT'}?</think>Checked.\nVERDICT: {verdict}"


def judge_reply(content: str) -> str:
    gold = int(re.search(r"Gold answer:\s*(-?\d+)", content).group(1))
    predicted = int(re.search(r"Predicted answer:.*?\\boxed\{(-?\d+)\}", content, re.S).group(1))
    return judge_rule(gold, predicted)


def expected() -> dict:
    """Counts from the two rules alone: (judge verdict, verifier verdict) per example."""
    c = {"tp": 0, "tn": 0, "fp": 0, "fn": 0, "unparsed": 0}
    for e in EXAMPLES:
        gold = int(e["gold"])
        pred = int(model_answer(e["prompt"]))
        verifier = pred == gold
        reply = judge_rule(gold, pred)
        if "similar" in reply:
            c["unparsed"] += 1
            continue
        judge = reply == "A" or reply.endswith("VERDICT: CORRECT")
        c[{(True, True): "tp", (False, False): "tn", (True, False): "fp", (False, True): "fn"}[judge, verifier]] += 1
    return c


@pytest.fixture(scope="module")
def servers():
    with scripted_server(answer=model_answer) as model, scripted_server(reply=judge_reply) as judge:
        yield model, judge


def cfg(model, judge, out, **kw) -> EvalConfig:
    base = dict(model=model.spec, task="addition", limit=N, n=1, temperature=0, max_tokens=64, retries=0,
                judge=judge.spec, judge_max_tokens=32, out=str(out))
    return EvalConfig(**{**base, **kw})


def test_the_scripted_rules_cover_every_cell():
    c = expected()
    assert all(c[k] > 0 for k in ("tp", "tn", "fp", "fn", "unparsed")), c  # else the test below proves little


def test_parse_verdict_reads_the_last_verdict_line_and_nothing_else():
    assert parse_verdict("VERDICT: CORRECT")[0] == "correct"
    assert parse_verdict("verdict: incorrect")[0] == "incorrect"
    assert parse_verdict("**VERDICT:** `CORRECT`.")[0] == "correct"
    assert parse_verdict("Final verdict: $\\boxed{\\text{INCORRECT}}$")[0] == "incorrect"
    assert parse_verdict("VERDICT: INCORRECT\nOn reflection:\nVERDICT: CORRECT\n")[0] == "correct"  # the last one
    assert parse_verdict("They match.\n\n[[B]]")[0] == "incorrect"
    assert parse_verdict("A")[0] == "correct"
    for bad in ("VERDICT: CORRECT or INCORRECT", "VERDICT: maybe", "The answer is correct.", "", "C"):
        assert parse_verdict(bad)[0] == "unparsed", bad
    # a later line without a verdict is read past; a later malformed verdict line decides: unparsed
    assert parse_verdict("VERDICT: CORRECT\nHope this helps.")[0] == "correct"
    assert parse_verdict("VERDICT: CORRECT\nVERDICT: unsure")[0] == "unparsed"


def test_the_judges_reasoning_is_cut_off_before_parsing():
    def c(text, prefilled=False, finish="stop"):
        return SimpleNamespace(text=text, prefilled=prefilled, finish_reason=finish)

    assert verdict_of(c("<think>so VERDICT: CORRECT</think>I am not sure."))[0] == "unparsed"
    assert verdict_of(c("<think>hmm</think>VERDICT: INCORRECT"))[0] == "incorrect"
    assert verdict_of(c("VERDICT: CORRECT, surely", prefilled=True, finish="length"))[0] == "unparsed"  # never closed
    assert verdict_of(c("<think>VERDICT: CORRECT"))[1] == "the judge's reasoning never closed (no answer part)"


def test_compare_mode_reports_agreement_exactly(servers, tmp_path):
    model, judge = servers
    before = judge.requests
    res = run_eval(cfg(model, judge, tmp_path / "c"), progress=False)
    j, c = res.metrics["judge"], expected()
    assert j["mode"] == "compare" and judge.requests - before == N  # one judge call per distinct answer
    assert j["verdicts"] == {"correct": c["tp"] + c["fp"], "incorrect": c["tn"] + c["fn"], "unparsed": c["unparsed"],
                             "error": 0}
    a = j["agreement"]
    assert {k: a[k] for k in ("tp", "tn", "fp", "fn")} == {k: c[k] for k in ("tp", "tn", "fp", "fn")}
    n = N - c["unparsed"]
    po = (c["tp"] + c["tn"]) / n
    pe = ((c["tp"] + c["fp"]) * (c["tp"] + c["fn"]) + (c["tn"] + c["fn"]) * (c["tn"] + c["fp"])) / n ** 2
    assert a["n"] == n and a["accuracy"] == pytest.approx(po) and a["kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert a["false_positive_rate"] == pytest.approx(c["fp"] / (c["fp"] + c["tn"]))
    assert a["false_negative_rate"] == pytest.approx(c["fn"] / (c["fn"] + c["tp"]))
    # the verifier still decides: pass@1 is the model's rule, not the judge's
    right = sum(int(model_answer(e["prompt"])) == int(e["gold"]) for e in EXAMPLES)
    assert res.metrics["pass@1"]["mean"] == pytest.approx(right / N)
    recs = read_records(res.out / "samples.jsonl")
    assert all(r["judge"]["cached"] is False and r["judge"]["raw"] for r in recs)
    report = (res.out / "report.md").read_text()
    assert "## LLM judge" in report and f"Cohen's kappa {a['kappa']:.3f}" in report
    assert json.loads((res.out / "config.json").read_text())["judge_mode"] == "compare"  # the resolved mode

    # a resumed run asks the judge nothing: every verdict comes from the run's cache
    asked = judge.requests
    again = run_eval(cfg(model, judge, tmp_path / "c", resume=True), progress=False)
    assert judge.requests == asked and again.metrics["judge"]["cache_hits"] == N
    assert again.metrics["judge"]["agreement"] == a


def test_replace_mode_lets_the_judge_decide_and_a_shared_cache_is_reused(servers, tmp_path):
    model, judge = servers
    shared = tmp_path / "shared"
    res = run_eval(cfg(model, judge, tmp_path / "r", judge_mode="replace", judge_cache=str(shared)), progress=False)
    c = expected()
    assert res.metrics["pass@1"]["mean"] == pytest.approx((c["tp"] + c["fp"]) / N)  # unparsed counts as incorrect
    assert res.metrics["judge"]["changed"] == c["fp"] + c["fn"] + sum(
        1 for e in EXAMPLES if int(e["gold"]) % 5 == 0 and int(model_answer(e["prompt"])) == int(e["gold"]))
    recs = read_records(res.out / "samples.jsonl")
    assert all(r["correct"] == (r["judge"]["verdict"] == "correct") for r in recs)
    assert any(r["correct"] != r["verifier_correct"] for r in recs)
    asked = judge.requests
    other = run_eval(cfg(model, judge, tmp_path / "r2", judge_mode="replace", judge_cache=str(shared)), progress=False)
    assert judge.requests == asked and other.metrics["judge"]["cache_hits"] == N
    assert other.metrics["pass@1"] == res.metrics["pass@1"]


def test_a_failing_judge_stops_with_a_clear_error_and_the_samples_stay(servers, tmp_path):
    model, _ = servers
    with scripted_server(failing=True) as broken:
        with pytest.raises(EvalError, match=r"judge openai:scripted@.*: 2 calls in a row failed .*--resume"):
            run_eval(cfg(model, broken, tmp_path / "f", max_failures=2, concurrency=1), progress=False)
    assert len(read_records(tmp_path / "f" / "samples.jsonl")) == N


def test_judge_failures_below_the_limit_are_recorded_and_fail_the_run(servers, tmp_path):
    model, _ = servers
    with scripted_server(reply=judge_reply) as flaky:
        flaky.fail_after = 6
        res = run_eval(cfg(model, flaky, tmp_path / "e", max_failures=100, concurrency=1), progress=False)
    v = res.metrics["judge"]["verdicts"]
    assert v["error"] == N - 6 and sum(v.values()) == N
    errs = [r for r in read_records(res.out / "samples.jsonl") if r["judge"]["verdict"] == "error"]
    assert all("500" in r["judge"]["why"] or "scripted failure" in r["judge"]["why"] for r in errs)


def test_bad_rubric_is_a_one_line_error(servers, tmp_path):
    model, judge = servers
    bad = tmp_path / "rubric.txt"
    bad.write_text("Question: {question}\nAnswer: {answer}\nSay VERDICT: CORRECT or INCORRECT.")
    with pytest.raises(EvalError, match=r"lacks the placeholder\(s\) \{gold\}"):
        cfg(model, judge, tmp_path / "b", judge_rubric=str(bad))
    bad.write_text("{question} {gold} {answer} {score}")
    with pytest.raises(EvalError, match=r"unknown placeholder\(s\) \{score\}"):
        cfg(model, judge, tmp_path / "b", judge_rubric=str(bad))
    r = CliRunner().invoke(app, ["eval", model.spec, "--task", "addition", "--judge", judge.spec,
                                 "--judge-rubric", str(bad), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "unknown placeholder" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "b").exists()
    assert "{gold}" in load_rubric().text  # the shipped rubric passes its own check


def test_smollm2_judges_gsm8k_in_compare_mode(smollm2_dir, tmp_path):
    """SmolLM2-135M as its own judge on 2 GSM8K answers: a weak judge, but a real one end to end."""
    spec = str(smollm2_dir)
    c = EvalConfig(model=spec, task="gsm8k", limit=2, n=1, temperature=0, max_tokens=96, batch_size=2, judge=spec,
                   judge_max_tokens=16, out=str(tmp_path / "s"))
    res = run_eval(c, progress=False)
    j = res.metrics["judge"]
    assert j["mode"] == "compare" and j["samples"] == 2 and sum(j["verdicts"].values()) == 2
    assert j["verdicts"]["error"] == 0
    a = j["agreement"]
    assert a["n"] == j["verdicts"]["correct"] + j["verdicts"]["incorrect"] == a["tp"] + a["tn"] + a["fp"] + a["fn"]
    recs = read_records(res.out / "samples.jsonl")
    assert all(r["judge"]["raw"].strip() for r in recs)  # the judge wrote something for every sample
    again = run_eval(EvalConfig(**{**c.__dict__, "resume": True}), progress=False)
    assert again.metrics["judge"]["cache_hits"] == 2 and again.metrics["judge"]["verdicts"] == j["verdicts"]
