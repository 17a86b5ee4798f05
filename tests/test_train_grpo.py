"""GRPO: LocalEngine rollouts fit TRL's contract, rewards see the task columns, metrics are logged per step."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from train_helpers import TASK, tiny_pretrain

from ponder.config import ConfigError
from ponder.models import load
from ponder.rewards import parse_reward_spec
from ponder.tasks import get_task
from ponder.tasks.synthetic import reference_completion
from ponder.train import grpo, pretrain


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrain.run(tiny_pretrain(tmp_path_factory.mktemp("base") / "run", steps=20, lr=3e-3))


def _cfg(base, out, **kw):
    d = dict(model=str(base), task=TASK, out=str(out), steps=2, batch_size=2, num_generations=3,
             max_completion_length=24, n_prompts=16, save_every=1, beta=0.01)
    d.update(kw)
    return grpo.GRPOConfig(**d)


def test_run_logs_every_metric_per_step(base, tmp_path):
    final = grpo.run(_cfg(base, tmp_path / "run"))
    load(final)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        for key in ("reward", "rewards/accuracy", "rewards/format", "accuracy", "completion_length",
                    "reasoning_length", "think_share", "kl"):
            assert isinstance(r[key], (int, float)), key
        assert 0 <= r["think_share"] <= 1 and 0 <= r["accuracy"] <= 1
        assert r["completion_length"] <= 24
        # the weighted reward is the weighted sum of the per-function means
        assert r["reward"] == pytest.approx(r["rewards/accuracy"] + 0.2 * r["rewards/format"], abs=1e-5)
    saved = json.loads((final / "ponder_config.json").read_text())
    assert saved["num_generations"] == 3 and saved["rewards"] == "accuracy=1,format=0.2"


def test_local_rollout_matches_trl_contract(base):
    model, tok = load(base)
    prompts = ["User: What is 1 + 2?\nAssistant: "] * 3 + ["User: What is 4 + 4?\nAssistant: "] * 3
    trainer = SimpleNamespace(
        model=model, processing_class=tok, state=SimpleNamespace(global_step=0),
        args=SimpleNamespace(temperature=1.0, top_p=1.0, top_k=0, max_completion_length=16),
        accelerator=SimpleNamespace(unwrap_model=lambda m: m, process_index=0),
    )
    rollout = grpo.LocalRollout(seed=1)
    out = rollout(prompts, trainer)
    assert len(out["prompt_ids"]) == len(out["completion_ids"]) == len(out["logprobs"]) == 6
    for p, ids, c, lps in zip(prompts, out["prompt_ids"], out["completion_ids"], out["logprobs"]):
        assert ids == tok.encode(p, add_special_tokens=False)
        assert 1 <= len(c) <= 16 and len(lps) == len(c)
        assert all(lp <= 0 for lp in lps)
        if len(c) < 16:
            assert c[-1] == tok.eos_token_id  # a finished completion ends in EOS, as TRL expects
    assert rollout.tokens == sum(map(len, out["completion_ids"]))
    assert rollout(prompts, trainer)["completion_ids"] == out["completion_ids"]  # same step, same seed


def test_rewards_read_the_task_columns(base):
    _, tok = load(base)
    ds = grpo.prompt_dataset(_cfg(base, "unused", n_prompts=4, batch_size=2), tok)
    row = ds[0]
    example = {"id": row["id"], "prompt": row["question"], "gold": row["gold"], "meta": json.loads(row["meta"])}
    good, bad = reference_completion(example), "<think></think>-1"
    logged = {}
    stats = grpo.WithCompletionMetrics(parse_reward_spec("accuracy")[0][0], tok)
    cols = {k: [row[k]] * 2 for k in ("gold", "meta", "id", "task", "question", "template")}
    values = stats([good, bad], prompts=[row["prompt"]] * 2, log_metric=lambda k, v: logged.setdefault(k, v), **cols)
    assert values == [1.0, 0.0]
    assert logged["ponder/accuracy"] == 0.5 and logged["ponder/think_share"] == 0.5
    assert logged["ponder/reasoning_length"] == pytest.approx(len(tok.encode(example["meta"]["solution"])) / 2, abs=2)
    assert get_task(row["task"]).score(good, example).correct


def test_metrics_row_maps_trl_logs():
    logs = {"reward": 0.5, "rewards/accuracy/mean": 0.4, "rewards/accuracy/std": 0.1, "completions/mean_length": 30.0,
            "ponder/reasoning_length": 20.0, "ponder/think_share": 0.75, "ponder/accuracy": 0.4, "learning_rate": 1e-4}
    row = grpo.metrics_row(logs)
    assert row["rewards/accuracy"] == 0.4 and "rewards/accuracy/std" not in row
    assert row["kl"] is None  # beta = 0: TRL keeps no reference model, so there is no KL
    assert grpo.metrics_row({"train_runtime": 3.0}) is None


@pytest.mark.parametrize(
    "kw, word",
    [({"num_generations": 1}, "num_generations"), ({"loss_type": "ppo"}, "loss_type"), ({"beta": -1}, "beta"),
     ({"generator": "hf"}, "generator"), ({"model": ""}, "model"), ({"scale_rewards": "max"}, "scale_rewards")],
)
def test_bad_config_is_a_clear_error(base, kw, word):
    with pytest.raises(ConfigError, match=word):
        _cfg(base, "x", **kw)


def test_unknown_reward_is_a_clear_error(base, tmp_path):
    with pytest.raises(ValueError, match="nope"):
        grpo.run(_cfg(base, tmp_path / "r", rewards="accuracy=1,nope=1"))


def test_rollout_sees_weights_changed_without_version_bump(base):
    """Fused AdamW (transformers' default) updates weights without bumping tensor versions; the
    rollout must still generate from the updated model after each optimizer step."""
    import torch

    from ponder.generate import LocalEngine, SamplingParams

    model, tok = load(base)
    prompts = ["User: What is 3 + 5?\nAssistant: "] * 2
    trainer = SimpleNamespace(
        model=model, processing_class=tok, state=SimpleNamespace(global_step=0),
        args=SimpleNamespace(temperature=0.0, top_p=1.0, top_k=0, max_completion_length=12),
        accelerator=SimpleNamespace(unwrap_model=lambda m: m, process_index=0),
    )
    rollout = grpo.LocalRollout()
    before = rollout(prompts, trainer)
    gen = torch.Generator().manual_seed(0)
    for layer in model.model.layers:  # q|k|v and gate|up are the weights the fast path fuses
        for w in (layer.self_attn.q_proj.weight, layer.mlp.up_proj.weight):
            w.data.add_(torch.randn(w.shape, generator=gen))  # .data: no version bump
    trainer.state.global_step = 1
    after = rollout(prompts, trainer)
    fresh = LocalEngine(model, tok).generate(prompts[:1], n=2, sampling=SamplingParams(temperature=0.0, max_tokens=12))
    assert after["completion_ids"] == [c.token_ids for c in fresh[0]]
    assert after["logprobs"][0] == pytest.approx(fresh[0][0].logprobs, abs=1e-4)
    assert after["logprobs"][0][:3] != pytest.approx(before["logprobs"][0][:3], abs=1e-3)  # the change is visible


def test_trl_generation_path_runs_too(base, tmp_path):
    """generator="trl" (TRL's own model.generate, the GPU-less fallback for non-Llama models) logs the same metrics."""
    grpo.run(_cfg(base, tmp_path / "trl", steps=1, generator="trl", beta=0.0))
    (row,) = [json.loads(x) for x in (tmp_path / "trl" / "metrics.jsonl").read_text().splitlines()]
    assert row["kl"] is None and 0 <= row["accuracy"] <= 1 and row["completion_length"] <= 24


def test_tool_rollouts_train_end_to_end(base, tmp_path):
    """``tools=true`` goes through TRL's env_mask path for real: steps run, metrics and a checkpoint land."""
    final = grpo.run(_cfg(base, tmp_path / "tools", steps=2, tools=True, max_tool_calls=1))
    load(final)
    rows = [json.loads(x) for x in (tmp_path / "tools" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(isinstance(r["kl"], (int, float)) and r["completion_length"] <= 24 for r in rows)
    for r in rows:  # the tool metrics ride along every step (an untrained model rarely opens a fence)
        assert 0 <= r["tool_use_share"] <= 1 and 0 <= r["masked_share"] < 1
        assert r["tool_calls"] <= 1  # max_tool_calls=1
        assert (r["tool_error_share"] is None) == (r["tool_calls"] == 0)


def test_tool_metrics_reach_the_step_log(base):
    """The rollout's tool metrics are logged once, by the first reward, and metrics_row keeps them."""
    _, tok = load(base)
    stats = {"tool_calls": 0.5, "tool_use_share": 0.25, "tool_error_share": None, "masked_share": 0.1}
    rollout = grpo.LocalRollout(max_tool_calls=1)
    rollout.stats = dict(stats)
    logged: dict = {}
    wrapped = grpo.WithCompletionMetrics(parse_reward_spec("format")[0][0], tok, rollout.take_stats)
    wrapped(["<think>a</think>1"], prompts=["p"], log_metric=lambda k, v: logged.setdefault(k, v), template=["think"])
    assert {k: logged[k] for k in logged if k.startswith("ponder/tool") or k == "ponder/masked_share"} == {
        "ponder/tool_calls": 0.5, "ponder/tool_use_share": 0.25, "ponder/masked_share": 0.1}
    assert rollout.take_stats() == {}  # taken: a second reward call does not log them again
    row = grpo.metrics_row({"reward": 1.0, **logged})
    assert row["tool_calls"] == 0.5 and row["masked_share"] == 0.1 and row["tool_error_share"] is None
    assert "tool_calls" not in grpo.metrics_row({"reward": 1.0})  # runs without tools keep their columns


def test_local_engine_keeps_the_stop_tokens_tool_rollouts_train(base):
    """LocalEngine cuts a stopped completion's text before the stop string but returns the tokens that
    spelled it: tool rollouts keep those tokens (the model's own fence) and insert no second fence."""
    from ponder.generate import LocalEngine, SamplingParams

    model, tok = load(base)
    eng = LocalEngine(model, tok)
    prompt = "User: What is 12 + 34?\nAssistant: "
    ((free,),) = eng.generate([prompt], n=1, sampling=SamplingParams(temperature=0.0, max_tokens=24))
    assert len(free.text) >= 8, free.text
    stop = free.text[4:8]
    ((cut,),) = eng.generate([prompt], n=1, sampling=SamplingParams(temperature=0.0, max_tokens=24, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    spelled = tok.decode(cut.token_ids)
    assert spelled.startswith(cut.text + stop) and len(cut.logprobs) == len(cut.token_ids)
