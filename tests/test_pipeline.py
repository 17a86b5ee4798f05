"""Recipes and ``ponder run``: resolution (@references, defaults, overrides), skip/resume, records, errors.

The run tests use a *toy* stage kind registered for the test (its runner writes a checkpoint-shaped
directory in microseconds), so the pipeline's own logic is tested without training. The shipped
recipes are resolved against the real stage configs, and the references stage runs for real.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.config import option
from ponder.tasks import get_task
from ponder.train import pipeline
from ponder.train.pipeline import Kind, PipelineError, resolve, run_recipe
from ponder.train.references import ReferencesConfig
from ponder.train.references import run as run_references

runner = CliRunner()
CALLS: list[str] = []
FAIL_AT: set[str] = set()


@dataclass
class ToyConfig:
    """A stand-in training stage."""

    model: str = option("", "input checkpoint")
    out: str = option("", "run dir")
    steps: int = option(1, "steps")
    task: str = option("none", "task")
    seed: int = option(0, "seed")


def toy_run(cfg: ToyConfig) -> Path:
    name = Path(cfg.out).name
    if name in FAIL_AT:
        (Path(cfg.out) / "checkpoint-1").mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt(f"killed in {name}")
    CALLS.append(name)
    final = Path(cfg.out) / "final"
    final.mkdir(parents=True, exist_ok=True)
    (final / "config.json").write_text(json.dumps({"from": cfg.model, "steps": cfg.steps}))
    (Path(cfg.out) / "ponder_done.json").write_text("{}")
    return final


@pytest.fixture(autouse=True)
def toy_kind(monkeypatch):
    monkeypatch.setitem(pipeline.KINDS, "toy", Kind(ToyConfig, toy_run))
    CALLS.clear()
    FAIL_AT.clear()


def _recipe(tmp_path, **extra) -> Path:
    data = {"description": "toy", "out": str(tmp_path / "run"), "task": "addition:digits=2", "seed": 7,
            "a": {"kind": "toy", "steps": 3},
            "b": {"kind": "toy", "model": "@a"},
            "c": {"kind": "toy", "model": "@b", "seed": 1}}
    data.update(extra)
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_resolve_references_defaults_and_overrides(tmp_path):
    data = pipeline.load_recipe(_recipe(tmp_path), ["b.steps=5", "out=" + str(tmp_path / "other")])
    stages = resolve(data)
    assert [s.name for s in stages] == ["a", "b", "c"]
    a, b, c = (s.config for s in stages)
    root = tmp_path / "other"
    assert b.model == str(root / "a" / "final") and c.model == str(root / "b" / "final")
    assert (a.out, b.steps, a.steps) == (str(root / "a"), 5, 3)
    assert (a.task, a.seed, c.seed) == ("addition:digits=2", 7, 1)  # recipe defaults, stage value wins


@pytest.mark.parametrize("extra,match", [
    ({"b": {"kind": "toy", "model": "@c"}}, "does not name an earlier stage"),
    ({"b": {"kind": "toy", "stepz": 1}}, r"stage b: unknown option\(s\) stepz; valid: .*steps"),
    ({"b": {"kind": "pretrainn"}}, "kind 'pretrainn' is not one of"),
    ({"out": None}, "`out`"),
    ({"b": 3}, "neither a recipe setting"),
])
def test_recipe_errors_name_the_problem(tmp_path, extra, match):
    with pytest.raises(PipelineError, match=match):
        resolve(pipeline.load_recipe(_recipe(tmp_path, **extra)))


def test_run_skips_done_stages_and_resumes_after_a_kill(tmp_path):
    recipe = _recipe(tmp_path)
    FAIL_AT.add("b")
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, log=lambda s: None)
    assert CALLS == ["a"]
    FAIL_AT.clear()
    results = run_recipe(recipe, log=lambda s: None)
    assert CALLS == ["a", "b", "c"]  # a was not run again
    assert [r["skipped"] for r in results.values()] == [True, False, False]
    root = tmp_path / "run"
    # the resolved config is recorded per stage and for the whole recipe
    rec = json.loads((root / "b" / "ponder_stage.json").read_text())
    assert rec["kind"] == "toy" and rec["config"]["model"] == str(root / "a" / "final")
    assert yaml.safe_load((root / "recipe.resolved.yaml").read_text())["c"]["seed"] == 1
    assert json.loads((root / "c" / "final" / "config.json").read_text())["from"] == str(root / "b" / "final")
    CALLS.clear()
    run_recipe(recipe, log=lambda s: None)
    assert CALLS == []


def test_until_stops_and_changed_settings_are_refused(tmp_path):
    recipe = _recipe(tmp_path)
    run_recipe(recipe, until="a", log=lambda s: None)
    assert CALLS == ["a"]
    with pytest.raises(PipelineError, match=r"stage .a. .*\(steps: 3 -> 4\)"):
        run_recipe(recipe, ["a.steps=4"], log=lambda s: None)
    with pytest.raises(PipelineError, match="--until 'z'"):
        run_recipe(recipe, until="z", log=lambda s: None)


def test_references_stage_writes_verifiable_cold_start_data(tmp_path):
    out = tmp_path / "ref.jsonl"
    run_references(ReferencesConfig(task="addition:digits=2", limit=5, out=str(out)))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    task = get_task("addition:digits=2")
    exs = {e["id"]: e for e in task.examples("train")}
    assert len(rows) == 5
    for r in rows:
        ex = exs[r["provenance"]["id"]]
        assert ex["prompt"] in r["prompt"] and task.score(r["completion"], ex).correct


@pytest.mark.parametrize("name", ["r1", "r1-zero", "distill"])
def test_shipped_recipes_resolve_with_the_real_stage_configs(name):
    stages = resolve(pipeline.load_recipe(name))
    kinds = [s.kind for s in stages]
    expected = {"r1": ["pretrain", "references", "sft", "grpo", "sample", "sft"],
                "r1-zero": ["pretrain", "grpo"], "distill": ["pretrain", "distill"]}[name]
    assert kinds == expected


def test_cli_dry_run_and_errors(tmp_path):
    r = runner.invoke(app, ["run", "r1", "--dry-run", "--set", "grpo.steps=7", "--set", "out=" + str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(r.output)
    assert data["grpo"]["steps"] == 7 and data["grpo"]["model"] == str(tmp_path / "x" / "sft" / "final")
    assert not (tmp_path / "x").exists()  # a dry run writes nothing
    r = runner.invoke(app, ["run", "no-such-recipe"])
    assert r.exit_code == 2 and "known: " in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["run", "r1", "--set", "grpo.stepz=1", "--dry-run"])
    assert r.exit_code == 2 and "stepz" in r.output


def test_cli_runs_a_recipe_and_prints_the_last_output(tmp_path):
    r = runner.invoke(app, ["run", str(_recipe(tmp_path))])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == str(tmp_path / "run" / "c" / "final")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A random 2-layer Llama with a tokenizer trained on addition problems (built in ~1 s)."""
    from itertools import islice

    from ponder.models import build_model, save, train_tokenizer
    from ponder.tasks.synthetic import reference_completion

    exs = list(islice(get_task("addition:digits=2").examples("train"), 200))
    tok = train_tokenizer([e["prompt"] + " " + reference_completion(e) for e in exs], vocab_size=300)
    model = build_model({"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}, tok)
    return save(model, tok, tmp_path_factory.mktemp("tiny"))


def test_train_distill_cli_samples_traces_then_fine_tunes_the_student(tmp_path, tiny_checkpoint):
    out = tmp_path / "d"
    args = ["train", "distill", "--teacher", str(tiny_checkpoint), "--student", str(tiny_checkpoint),
            "--task", "addition:digits=2", "--limit", "4", "--n", "2", "--max-tokens", "8", "--no-verify",
            "--out", str(out), "--set", "sft.max_steps=2", "--set", "sft.batch_size=4"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    traces = [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 8 and {t["provenance"]["model"] for t in traces} == {str(tiny_checkpoint)}
    assert json.loads((out / "final" / "ponder_distill_config.json").read_text())["teacher"] == str(tiny_checkpoint)
    assert json.loads((out / "final" / "ponder_config.json").read_text())["data"] == str(out / "traces.jsonl")
    # done: a re-run is skipped; bad sft options and missing teacher are one-line errors
    assert runner.invoke(app, args).exit_code == 0
    r = runner.invoke(app, args[:-4] + ["--set", "sft.out=x"])
    assert r.exit_code == 2 and "sft: option(s) out cannot be set here" in " ".join(r.output.split())
    r = runner.invoke(app, ["train", "distill", "--student", str(tiny_checkpoint)])
    assert r.exit_code == 2 and "teacher and student" in r.output


def test_threads_option_sets_every_stage_default(tmp_path):
    r = runner.invoke(app, ["run", "r1", "--dry-run", "--threads", "1", "--set", "out=" + str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(r.output)
    assert data["threads"] == 1 and data["base"]["threads"] == 1 and data["grpo"]["threads"] == 1
    r = runner.invoke(app, ["run", "r1", "--dry-run", "--threads", "0"])
    assert r.exit_code == 2 and "threads must be" in r.output


def test_kill_mid_recipe_then_resume_for_real(tmp_path):
    """SIGKILL `ponder run` while stage 2 (SFT) is training; the re-run skips stage 1 and resumes stage 2."""
    import os
    import signal
    import subprocess
    import sys
    import time

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "out": str(tmp_path / "run"), "task": "addition:digits=2", "seed": 0, "threads": 1,
        "base": {"kind": "pretrain", "preset": {"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                                "intermediate_size": 64},
                 "steps": 10, "batch_size": 8, "n_examples": 200, "seq_len": 96, "vocab_size": 300},
        "cold_start": {"kind": "references", "model": "@base", "limit": 64},
        "sft": {"model": "@base", "data": "@cold_start", "max_steps": 60, "batch_size": 4, "save_every": 2,
                "max_length": 96},
    }, sort_keys=False))
    cmd = [sys.executable, "-m", "ponder.cli.main", "run", str(recipe), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    sft_dir = tmp_path / "run" / "sft"
    deadline = time.time() + 240
    while time.time() < deadline and not any(p.name.startswith("checkpoint-") for p in sft_dir.glob("checkpoint-*")):
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # right after the first checkpoint: most steps are still to do
    proc.wait()
    assert not (sft_dir / "final").exists()
    killed_at = max(int(p.name.split("-")[1]) for p in sft_dir.glob("checkpoint-*"))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "base (pretrain): done earlier, skipped" in r.stderr
    assert "cold_start (references): done earlier, skipped" in r.stderr
    state = json.loads((sft_dir / "final" / "ponder_config.json").read_text())
    assert state["max_steps"] == 60 and killed_at < 60
    steps = [json.loads(x).get("step") for x in (sft_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert steps == sorted(set(steps))  # resumed, not restarted: each step logged once


def test_a_config_field_added_later_at_its_default_is_not_a_change(tmp_path):
    recipe = _recipe(tmp_path)
    run_recipe(recipe, until="a", log=lambda s: None)
    rec_file = tmp_path / "run" / "a" / "ponder_stage.json"
    rec = json.loads(rec_file.read_text())
    del rec["config"]["seed"]  # as if `seed` did not exist when stage a ran ...
    rec_file.write_text(json.dumps(rec))
    with pytest.raises(PipelineError, match="seed: None -> 7"):  # ... a non-default value is a change
        run_recipe(recipe, until="a", log=lambda s: None)
    run_recipe(recipe, ["seed=0"], until="a", log=lambda s: None)  # the default is not
