"""GRPO micro-batches: a step split into micro-batches (gradient accumulation) takes the same
optimizer step as one forward over all completions, still from one generation round; ``auto``
splits a real 135M model's step and keeps a tiny model's in one forward; SmolLM2 LoRA GRPO stays
under 4 GiB peak RSS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import TASK, tiny_pretrain

from ponder.config import ConfigError
from ponder.train import grpo, pretrain

# the overlong penalty grows with length, so every group of sampled completions has a spread
# (zero-spread groups would give zero advantages and an all-zero gradient)
SPREAD_REWARD = "overlong(max_len=24,cache=20)"
# recipes/smollm2-r1-zero.yaml's system turn (its prompts are 84 tokens long)
SYSTEM = ("You are a helpful assistant. You first think about the reasoning process step by step and then give the "
          "user the answer. The reasoning is enclosed within <think> </think> tags and the final answer, a single "
          "number, follows it: <think> reasoning here </think> answer")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrain.run(tiny_pretrain(tmp_path_factory.mktemp("base") / "run", steps=20, lr=3e-3))


def _cfg(base, out, **kw):
    d = dict(model=str(base), task=TASK, out=str(out), steps=1, batch_size=2, num_generations=3,
             max_completion_length=24, n_prompts=16, save_every=100, rewards=SPREAD_REWARD, lr=0.5)
    d.update(kw)
    return grpo.GRPOConfig(**d)


def _one_step(base, out, **kw) -> tuple[dict, dict]:
    """Parameters before and after one GRPO step with plain SGD and no clipping: the update is
    lr times the gradient, so any error in how micro-batches are weighted shows in it."""
    cfg = _cfg(base, out, **kw)
    args = grpo.trainer_args(cfg, out, optim="sgd", max_grad_norm=0.0)
    trainer, rollout = grpo.build_trainer(cfg, out, args=args)
    calls = []
    inner = rollout._sample
    rollout._sample = lambda texts, *a, **k: calls.append(len(texts)) or inner(texts, *a, **k)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    after = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert calls == [6]  # one generation round over the step's 2 prompts x 3 completions
    return before, after


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_micro_batched_step_equals_one_forward(base, tmp_path, loss_type):
    b1, one = _one_step(base, tmp_path / "one", loss_type=loss_type, micro_batch_size=6)
    b2, micro = _one_step(base, tmp_path / "micro", loss_type=loss_type, micro_batch_size=2)
    moved = max((one[n] - b1[n]).abs().max().item() for n in one)
    assert moved > 1e-4  # the step did change the weights
    for n in one:
        torch.testing.assert_close(b2[n], b1[n])
        torch.testing.assert_close(micro[n] - b2[n], one[n] - b1[n], rtol=1e-3, atol=1e-6, msg=n)


def test_micro_batches_keep_one_row_per_step_and_num_iterations(base, tmp_path):
    cfg = _cfg(base, tmp_path / "run", steps=4, num_iterations=2, micro_batch_size=3, save_every=10)
    grpo.run(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # generation rounds on steps 1 and 3 only; the steps between re-use them
    assert [r["reward"] is not None for r in rows] == [True, False, True, False]
    assert all(r["loss"] is not None for r in rows)


@pytest.mark.parametrize("kw", [
    {"tools": True, "max_tool_calls": 1},  # env_mask travels with the split rows
    {"dynamic_sampling": True, "rewards": "accuracy=1,format=0.2"},  # refills see whole groups
])
def test_micro_batches_with_tool_rollouts_and_dynamic_sampling(base, tmp_path, kw):
    grpo.run(_cfg(base, tmp_path / "run", steps=2, micro_batch_size=3, lr=1e-3, **kw))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["reward"] is not None and r["loss"] is not None for r in rows)


def test_trl_gets_accumulation_steps_and_one_generation_per_step(base, tmp_path):
    a = grpo.trainer_args(_cfg(base, tmp_path, micro_batch_size=2), tmp_path)
    assert (a.per_device_train_batch_size, a.gradient_accumulation_steps, a.steps_per_generation) == (2, 3, 3)
    assert a.generation_batch_size == 6


def test_auto_splits_a_real_model_and_keeps_a_tiny_one_whole(base, smollm2_dir, tmp_path):
    from transformers import AutoConfig

    smol = AutoConfig.from_pretrained(smollm2_dir)  # 30 layers, hidden 576, vocabulary 49,152
    tiny = AutoConfig.from_pretrained(base)
    # the recipe's step: 4 prompts x 4 completions of up to 96 tokens after an 84-token prompt
    cfg = _cfg(base, tmp_path, batch_size=4, num_generations=4, max_completion_length=96)
    assert grpo.micro_batch(cfg, 16, smol, prompt_tokens=84) == 2
    assert grpo.micro_batch(cfg, 16, tiny, prompt_tokens=84) == 16
    # longer completions need smaller micro-batches; the estimate never goes below one row
    long = _cfg(base, tmp_path, batch_size=4, num_generations=4, max_completion_length=1024)
    assert grpo.micro_batch(long, 16, smol, prompt_tokens=84) == 1
    assert grpo.activation_bytes(smol, 180) > 50 * grpo.activation_bytes(tiny, 180)
    # unknown model config: one forward, as before micro-batches existed
    assert grpo.micro_batch(cfg, 16, None) == 16


@pytest.mark.parametrize("value, word", [
    (0, "must divide batch_size"),
    (4, r"must divide batch_size\*num_generations \(6\)"),
    ("half", "must be auto or a positive integer"),
    (2.5, "must be auto or a positive integer"),
])
def test_bad_micro_batch_size_is_a_one_line_error(base, value, word):
    with pytest.raises(ConfigError, match=word) as e:
        _cfg(base, "x", micro_batch_size=value)
    assert "\n" not in str(e.value)


def test_micro_batch_size_from_the_command_line(base):
    assert _cfg(base, "x", micro_batch_size="3").micro_batch_size == 3
    assert _cfg(base, "x", micro_batch_size="AUTO").micro_batch_size == "auto"


def test_smollm2_lora_grpo_step_stays_under_4_gib(smollm2_dir, tmp_path):
    """The recipe's step (LoRA r=16, 4 prompts x 4 completions of up to 96 tokens) in a fresh
    process, so the peak RSS is the stage's alone (11.3 GB before micro-batches)."""
    out = tmp_path / "grpo"
    cmd = [sys.executable, "-m", "ponder.cli.main", "train", "grpo", str(smollm2_dir), "--lora", "default",
           "--task", "addition:digits=2", "--thinking", "on", "--system", SYSTEM, "--rewards", "accuracy=1,format=0.5",
           "--steps", "1", "--batch-size", "4", "--num-generations", "4", "--max-completion-length", "96",
           "--lr", "2e-4", "--out", str(out), "--threads", "1"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    (row,) = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert 0 < row["peak_rss_mb"] < 4096, row["peak_rss_mb"]
