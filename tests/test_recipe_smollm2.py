"""The SmolLM2 R1-Zero recipe (recipes/smollm2-r1-zero.yaml): it parses as written, and a cut-down
run (1 LoRA GRPO step of 2×2 completions ≤ 8 tokens, a 3-problem report) goes through every stage
on the real model. The full training is documented in docs/real-models.md, not run here."""

from __future__ import annotations

import json

import pytest

from ponder.evaluate.recipe_report import ReportConfig, training_seconds
from ponder.train.grpo import GRPOConfig
from ponder.train.pipeline import find_recipe, load_recipe, resolve, run_recipe


def test_recipe_resolves_to_lora_grpo_then_a_report():
    stages = resolve(load_recipe("smollm2-r1-zero"))
    assert [s.kind for s in stages] == ["grpo", "report"]
    grpo, report = stages[0].config, stages[1].config
    assert isinstance(grpo, GRPOConfig) and isinstance(report, ReportConfig)
    assert grpo.lora == "r=16,alpha=32,dropout=0,targets=all-linear"
    assert grpo.generator == "local" and grpo.thinking == "on" and "<think>" in grpo.system
    assert {"accuracy", "format"} <= {p.split("=")[0] for p in grpo.rewards.split(",")}
    # the report evaluates what GRPO wrote, with the prompt GRPO trained on
    assert report.trained == str(stages[0].output)
    assert (report.system, report.thinking, report.task, report.base) == (grpo.system, grpo.thinking, grpo.task, grpo.model)
    assert report.limit == 200
    assert find_recipe("smollm2-r1-zero").name == "smollm2-r1-zero.yaml"


def test_a_bad_report_field_names_the_stage():
    from ponder.train.pipeline import PipelineError

    with pytest.raises(PipelineError, match="report"):
        resolve(load_recipe("smollm2-r1-zero", ["report.limitt=3"]))


def test_training_time_is_the_last_elapsed_value_of_each_process():
    # metrics rows carry seconds since their process started: summing them counted a 17-minute
    # run as 280 minutes; a resumed run starts counting again
    assert training_seconds([{"seconds": 38.7}, {"seconds": 74.4}, {"seconds": 109.0}]) == 109.0
    assert training_seconds([{"seconds": 40.0}, {"seconds": 80.0}, {"seconds": 35.0}, {"seconds": 70.0}]) == 150.0
    assert training_seconds([{"seconds": None}, {}]) == 0.0


def test_a_short_run_trains_an_adapter_and_writes_the_report(smollm2_dir, tmp_path):
    out = tmp_path / "run"
    sets = [f"out={out}", f"grpo.model={smollm2_dir}", f"report.base={smollm2_dir}", "threads=1",
            "grpo.steps=1", "grpo.batch_size=2", "grpo.num_generations=2", "grpo.max_completion_length=8",
            "grpo.n_prompts=4", "report.limit=3", "report.max_tokens=8"]
    res = run_recipe("smollm2-r1-zero", sets, log=lambda s: None)
    assert list(res) == ["grpo", "report"]
    assert (out / "grpo" / "final" / "adapter_config.json").is_file()  # LoRA: an adapter, not a full model
    rows = [json.loads(x) for x in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["reward"] is not None and "rewards/format" in rows[0]
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["base"]["pass1"]["n"] == summary["GRPO"]["pass1"]["n"] == 3
    # the base model also answers with its own prompt (its template's system turn, no pre-fill) and the
    # bar needs the gain over both base rows
    own = json.loads((out / "report" / "eval" / "base_own_prompt.json").read_text())
    assert own["settings"]["system"] == "" and own["settings"]["thinking"] == "off"
    assert summary["base, own prompt"]["pass1"]["n"] == 3
    g, g_own = summary["gain"]["mean"], summary["gain_over_own_prompt"]["mean"]
    assert summary["gain"]["pass"] == (g >= 0.10 and g_own >= 0.10)
    assert summary["grpo_steps"] == 1
    text = (out / "report" / "report.md").read_text()
    assert "GRPO gain" in text and "grpo_curves.png" in text
    assert (out / "report" / "grpo_curves.png").stat().st_size > 0 and (out / "report" / "pass1.png").is_file()
    # a finished recipe is skipped stage by stage on a re-run
    again = run_recipe("smollm2-r1-zero", sets, log=lambda s: None)
    assert all(r["skipped"] for r in again.values())
