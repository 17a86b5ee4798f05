"""``ponder train pretrain|sft|grpo`` through typer's CliRunner, and SFT/GRPO under ``accelerate launch``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from train_helpers import TASK, TINY
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.models import load
from ponder.tasks import get_task
from ponder.tasks.synthetic import reference_completion
from ponder.train.common import prompt_for

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A base model made by the CLI itself, options from a YAML file plus --set overrides."""
    d = tmp_path_factory.mktemp("cli")
    cfg = d / "pt.yaml"
    cfg.write_text(yaml.safe_dump({"task": TASK, "preset": TINY, "steps": 50, "n_examples": 64, "vocab_size": 300,
                                   "seq_len": 96, "warmup_steps": 1}))
    r = runner.invoke(app, ["train", "pretrain", "--config", str(cfg), "--out", str(d / "base"),
                            "--set", "batch_size=8", "--set", "save_every=1000"])
    assert r.exit_code == 0, r.output
    final = Path(r.stdout.strip().splitlines()[-1])
    saved = json.loads((final / "ponder_config.json").read_text())
    assert saved["batch_size"] == 8 and saved["steps"] == 50 and saved["preset"] == TINY
    return final


@pytest.fixture(scope="module")
def data(base, tmp_path_factory) -> Path:
    _, tok = load(base)
    rows = [{"prompt": prompt_for(e["prompt"], tok), "completion": reference_completion(e)}
            for e, _ in zip(get_task(TASK).examples("train"), range(32))]
    path = tmp_path_factory.mktemp("data") / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sft_and_grpo_commands_print_the_final_path(base, data, tmp_path):
    r = runner.invoke(app, ["train", "sft", str(base), "--data", str(data), "--out", str(tmp_path / "sft"),
                            "--max-steps", "2", "--batch-size", "4"])
    assert r.exit_code == 0, r.output
    sft_final = Path(r.stdout.strip().splitlines()[-1])
    assert sft_final == tmp_path / "sft" / "final" and (sft_final / "config.json").is_file()
    r = runner.invoke(app, ["train", "grpo", str(sft_final), "--task", TASK, "--out", str(tmp_path / "g"),
                            "--steps", "1", "--batch-size", "2", "--num-generations", "2",
                            "--max-completion-length", "16", "--n-prompts", "8"])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "g" / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "sft", "{base}", "--data", "{missing}"], "no such file"),
        (["train", "sft", "{missing}", "--data", "{data}"], "no such directory"),
        (["train", "grpo", "{base}", "--num-generations", "1"], "num_generations"),
        (["train", "pretrain", "--set", "stepz=3"], "unknown option"),
        (["train", "grpo", "{base}", "--rewards", "accuracy=x"], "weight of 'accuracy'"),
    ],
)
def test_user_errors_are_one_line_exit_2(base, data, tmp_path, args, message):
    fill = {"base": str(base), "data": str(data), "missing": str(tmp_path / "missing")}
    r = runner.invoke(app, [a.format(**fill) for a in args] + ["--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())  # rich wraps long lines
    assert message in text and "Traceback" not in text


def _launch(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--multi_gpu", "-m", "ponder.cli.main", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_sft_with_two_processes_via_accelerate(base, data, tmp_path):
    r = _launch(["train", "sft", str(base), "--data", str(data), "--out", str(tmp_path / "mp"),
                 "--max-steps", "2", "--batch-size", "4"])
    assert r.returncode == 0, r.stderr[-3000:]
    done = json.loads((tmp_path / "mp" / "ponder_done.json").read_text())
    assert done["processes"] == 2 and done["steps"] == 2
    load(tmp_path / "mp" / "final")


def test_grpo_with_two_processes_via_accelerate(base, tmp_path):
    r = _launch(["train", "grpo", str(base), "--task", TASK, "--out", str(tmp_path / "mpg"),
                 "--steps", "2", "--batch-size", "2", "--num-generations", "2", "--max-completion-length", "12",
                 "--n-prompts", "8"])
    assert r.returncode == 0, r.stderr[-3000:]
    done = json.loads((tmp_path / "mpg" / "ponder_done.json").read_text())
    assert done["processes"] == 2 and done["steps"] == 2
    assert len((tmp_path / "mpg" / "metrics.jsonl").read_text().splitlines()) == 2
