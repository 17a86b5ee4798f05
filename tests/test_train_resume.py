"""Kill a stage mid-run (SIGKILL, no chance to clean up), re-run it, and it finishes from its checkpoint.

Pretraining (ponder's own loop) and GRPO (transformers' Trainer, the same resume path as SFT) are
both killed once a complete checkpoint exists; the re-run must start from that checkpoint (not
from step 0) and leave one metrics line per step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from train_helpers import TASK, tiny_pretrain

from ponder.train import grpo, pretrain
from ponder.train.checkpoint import last_complete_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _kill_after_checkpoint(code: str, out: Path, timeout: float = 240) -> int:
    """Run ``code`` in a child process; SIGKILL it once ``out`` has a complete checkpoint."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            ckpt = last_complete_checkpoint(out)
            if ckpt is not None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return int(ckpt.name.split("-")[1])
            if proc.poll() is not None:
                raise AssertionError(f"the stage ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError("no checkpoint appeared in time")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _steps(metrics: Path) -> list[int]:
    return [json.loads(line)["step"] for line in metrics.read_text().splitlines()]


def test_pretrain_resumes_after_kill(tmp_path):
    out = tmp_path / "pt"
    kw = dict(steps=400, save_every=4)
    code = ("from train_helpers import tiny_pretrain; from ponder.train import pretrain; "
            f"pretrain.run(tiny_pretrain({str(out)!r}, **{kw!r}))")
    killed_at = _kill_after_checkpoint(code, out)
    assert not (out / "final").exists()
    resumed_from = []
    orig = pretrain._resume
    pretrain._resume = lambda *a: resumed_from.append(orig(*a)) or resumed_from[-1]
    try:
        final = pretrain.run(tiny_pretrain(out, **kw))
    finally:
        pretrain._resume = orig
    assert resumed_from and resumed_from[0] >= killed_at > 0  # continued, not restarted
    assert (final / "config.json").is_file()
    assert _steps(out / "metrics.jsonl") == list(range(1, 401))


def test_grpo_resumes_after_kill(tmp_path):
    base = pretrain.run(tiny_pretrain(tmp_path / "base"))
    out = tmp_path / "grpo"
    kw = dict(model=str(base), task=TASK, out=str(out), steps=60, batch_size=2, num_generations=2,
              max_completion_length=12, n_prompts=16, save_every=2)
    code = f"from ponder.train import grpo; grpo.run(grpo.GRPOConfig(**{kw!r}))"
    killed_at = _kill_after_checkpoint(code, out)
    kw["steps"] = killed_at + 2  # finish quickly: two more steps after the resumed checkpoint
    final = grpo.run(grpo.GRPOConfig(**kw))
    assert (final / "config.json").is_file()
    state = json.loads((final.parent / "ponder_done.json").read_text())
    assert state["steps"] == killed_at + 2
    steps = _steps(out / "metrics.jsonl")
    assert steps == list(range(1, killed_at + 3))  # no step twice, none missing
