"""``ponder demo --quick``: the whole R1 pipeline end to end, and a report whose numbers are the eval files'.

One real quick run (a few minutes on the shared 2-core machine, every stage cut to a few steps) is
shared by the tests through a module fixture. The report is parsed and each number compared with
the per-stage evaluation JSON it claims to come from; the PASS/MISS verdicts are recomputed from the
per-problem rows, so a report that faked a check would fail here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app

runner = CliRunner()
STAGES = ["base", "sft", "grpo", "final", "nano_base", "nano_distill", "nano_grpo"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    r = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--seed", "3"])
    return r, out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _eval(out: Path, stage: str) -> dict:
    return json.loads((out / "eval" / f"{stage}.json").read_text())


def test_quick_demo_runs_and_prints_the_report_path(quick_run):
    r, out = quick_run
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == str(out / "report.md")
    for png in ("pass1.png", "grpo_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_numbers_are_the_eval_files_numbers(quick_run):
    _, out = quick_run
    report = (out / "report.md").read_text()
    for section in ("## Checks", "## Held-out pass@1 per stage", "## The cold start", "## Test-time sampling", "## GRPO training curves",
                    "## Distillation vs RL", "![held-out pass@1 per stage](pass1.png)", "seed **3**"):
        assert section in report
    found = {m.group(4): m for m in re.finditer(r"^\| [^|]+ \| [^|]+ \| ([\d.]+%) \| \[([\d.]+%), ([\d.]+%)\] \| "
                                               r"[\d.]+ \| eval/(\w+)\.json \|$", report, re.M)}
    assert sorted(found) == sorted(STAGES)
    for stage, m in found.items():
        p = _eval(out, stage)["pass1_greedy"]
        assert (m.group(1), m.group(2), m.group(3)) == (_pct(p["mean"]), _pct(p["low"]), _pct(p["high"]))
        ev = _eval(out, stage)
        assert p["n"] == len(ev["rows"]) == 24
        assert p["mean"] == pytest.approx(sum(r["greedy_correct"] for r in ev["rows"]) / len(ev["rows"]))
    final = _eval(out, "final")
    assert f"| maj@8 | {_pct(final['maj@8']['mean'])} |" in report
    assert f"| pass@1 (sampled) | {_pct(final['pass1_sampled']['mean'])} |" in report


def test_checks_are_recomputed_honestly(quick_run):
    _, out = quick_run
    report = (out / "report.md").read_text()
    sft = {r["id"]: r["greedy_correct"] for r in _eval(out, "sft")["rows"]}
    grpo = _eval(out, "grpo")["rows"]
    gain = sum(r["greedy_correct"] - sft[r["id"]] for r in grpo) / len(grpo)
    word = "PASS" if gain >= 0.10 else "MISS"
    assert f"- {word}: GRPO gain over its start (SFT) {100 * gain:+.1f} points" in report
    # the cold start's check: the per-problem share of sampled completions that reason, SFT - base
    base_rows = {r["id"]: r for r in _eval(out, "base")["rows"]}
    sft_ev = _eval(out, "sft")
    assert sft_ev["config"]["samples"] == 8
    assert sft_ev["config"]["temperature"] == json.loads((out / "grpo" / "final" / "ponder_config.json").read_text())["temperature"]
    d = [r["sampled_reasoned"] / r["sampled_n"] - base_rows[r["id"]]["sampled_reasoned"] / base_rows[r["id"]]["sampled_n"]
         for r in sft_ev["rows"]]
    mean = sum(d) / len(d)
    half = 1.96 * (sum((x - mean) ** 2 for x in d) / (len(d) - 1)) ** 0.5 / len(d) ** 0.5
    word = "PASS" if mean - half > 0 else "MISS"
    share = sum(r["sampled_reasoned"] for r in sft_ev["rows"]) / sum(r["sampled_n"] for r in sft_ev["rows"])
    assert share == sft_ev["reasoning_share_sampled"]
    assert (f"- {word}: the cold start makes sampled reasoning more likely: "
            f"{_pct(_eval(out, 'base')['reasoning_share_sampled'])} -> {_pct(share)} of samples reason ({100 * mean:+.1f} points") in report
    assert f"| SFT | {_pct(sft_ev['pass1_greedy']['mean'])} | {_pct(sft_ev['reasoning_share_greedy'])} |" in report
    final = _eval(out, "final")
    word = "PASS" if final["maj@8"]["mean"] >= final["pass1_sampled"]["mean"] else "MISS"
    assert f"- {word}: final model maj@8 {_pct(final['maj@8']['mean'])}" in report
    assert re.search(r"- RESULT: distilled nano [\d.]+% vs nano GRPO-only [\d.]+%: [+-][\d.]+ points", report)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checks"]["grpo_gain"]["pass"] == (gain >= 0.10)


def test_recipe_settings_and_checkpoints_are_recorded(quick_run):
    _, out = quick_run
    import yaml

    resolved = yaml.safe_load((out / "recipe.resolved.yaml").read_text())
    assert resolved["seed"] == 3 and resolved["grpo"]["model"] == str(out / "sft" / "final")
    assert resolved["nano_distill"]["teacher"] == str(out / "final" / "final")
    for stage in ("base", "sft", "grpo", "final", "nano_grpo"):
        cfg = json.loads((out / stage / "final" / "ponder_config.json").read_text())
        assert cfg["seed"] == 3
    assert (out / "nano_distill" / "traces.jsonl").is_file()
    grpo_metrics = [json.loads(x) for x in (out / "grpo" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert len([m for m in grpo_metrics if m.get("reward") is not None]) == resolved["grpo"]["steps"]


def test_a_second_run_reuses_every_stage(quick_run):
    _, out = quick_run
    before = (out / "report.md").read_text().split("## Held-out pass@1 per stage")[1].split("## Stages")[0]
    r = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert r.output.count("done earlier, skipped") == len(STAGES) + 2  # + cold_start and rejection
    after = (out / "report.md").read_text().split("## Held-out pass@1 per stage")[1].split("## Stages")[0]
    assert after == before
