"""GRPO loss and sampling variants: clip-higher, GSPO, loss types, overlong filtering, entropy
masking reach TRL; DAPO dynamic sampling drops zero-spread groups and refills them; a reward
served over HTTP trains."""

from __future__ import annotations

import json
import math
import threading
import time
from types import SimpleNamespace

import pytest
from fastapi import Request  # module level: FastAPI resolves the (string) annotation of the server here
from train_helpers import TASK, tiny_pretrain

from ponder.config import ConfigError
from ponder.models import load
from ponder.train import dynamic, grpo, pretrain


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrain.run(tiny_pretrain(tmp_path_factory.mktemp("base") / "run", steps=20, lr=3e-3))


def _cfg(base, out, **kw):
    d = dict(model=str(base), task=TASK, out=str(out), steps=2, batch_size=2, num_generations=3,
             max_completion_length=16, n_prompts=16, save_every=5)
    d.update(kw)
    return grpo.GRPOConfig(**d)


def _rows(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def parity_reward(completions, gold, **kw):
    """Scripted: constant (0.5) on prompts with an even answer, 0/1 alternating on odd ones."""
    return [0.5 if int(g) % 2 == 0 else float(i % 2) for i, g in enumerate(gold)]


def test_every_variant_reaches_trls_trainer(base, tmp_path):
    cfg = _cfg(base, tmp_path / "x", epsilon=3e-4, epsilon_high=4e-4, importance_sampling_level="sequence",
               loss_type="grpo", mask_truncated=True, top_entropy_quantile=0.2, num_iterations=2)
    trainer, _ = grpo.build_trainer(cfg, tmp_path / "x")
    a = trainer.args
    assert (a.epsilon, a.epsilon_high, a.importance_sampling_level, a.loss_type) == (3e-4, 4e-4, "sequence", "grpo")
    assert a.mask_truncated_completions is True and a.top_entropy_quantile == 0.2 and a.num_iterations == 2
    # what the loss actually reads
    assert (trainer.epsilon_low, trainer.epsilon_high) == (3e-4, 4e-4)
    assert trainer.importance_sampling_level == "sequence" and trainer.loss_type == "grpo"
    plain = grpo.trainer_args(_cfg(base, tmp_path / "y"), tmp_path / "y")
    assert plain.epsilon_high is None and plain.importance_sampling_level == "token"  # TRL then uses epsilon


@pytest.mark.parametrize("kw, word", [
    ({"epsilon_high": 0.1}, "epsilon_high must be >= epsilon"),
    ({"importance_sampling_level": "group"}, "importance_sampling_level must be token or sequence"),
    ({"importance_sampling_level": "sequence"}, "loss_type=dapo weights each sequence by its length"),
    ({"loss_type": "luspo"}, "luspo needs importance_sampling_level=sequence"),
    ({"loss_type": "vespo", "importance_sampling_level": "sequence"}, "vespo"),
    ({"num_iterations": 0}, "num_iterations"),
    ({"top_entropy_quantile": 1.5}, "top_entropy_quantile"),
    ({"max_refill_rounds": -1}, "max_refill_rounds"),
    ({"dynamic_sampling": True, "generator": "trl"}, "dynamic_sampling needs generator=local"),
])
def test_bad_variant_is_a_one_line_error(base, kw, word):
    with pytest.raises(ConfigError, match=word) as e:
        _cfg(base, "x", **kw)
    assert "\n" not in str(e.value)


def _fake_trainer(model, tok, g):
    return SimpleNamespace(
        model=model, processing_class=tok, state=SimpleNamespace(global_step=0),
        args=SimpleNamespace(temperature=1.0, top_p=1.0, top_k=0, max_completion_length=12, num_generations=g),
        accelerator=SimpleNamespace(unwrap_model=lambda m: m, process_index=0),
    )


def test_dynamic_sampling_drops_zero_spread_groups_and_refills(base):
    model, tok = load(base)
    pool = grpo.prompt_dataset(_cfg(base, "unused", n_prompts=40), tok).to_list()
    even = [r for r in pool if int(r["gold"]) % 2 == 0]
    odd = [r for r in pool if int(r["gold"]) % 2 == 1]
    assert len(even) >= 2 and len(odd) >= 4
    g = 3
    batch = [even[0], odd[0], even[1], odd[1]]  # groups 0 and 2 have zero spread
    texts = [r["prompt"] for r in batch for _ in range(g)]
    sampler = dynamic.DynamicSampler([parity_reward], [1.0], pool, max_rounds=4, seed=0)
    out = grpo.LocalRollout(seed=0, dynamic=sampler)(texts, _fake_trainer(model, tok, g))

    stats = out[dynamic.STATS_KEY]
    assert stats["refilled_groups"] + stats["unfilled_groups"] == 2  # both zero-spread slots were handled
    assert stats["dropped_groups"] >= stats["refilled_groups"] >= 1 and 1 <= stats["refill_rounds"] <= 4
    n = len(texts)
    assert all(len(out[k]) == n for k in ("prompt_ids", "completion_ids", "logprobs", "gold", dynamic.PROMPT_KEY))
    final = out[dynamic.PROMPT_KEY]
    assert final[g:2 * g] == texts[g:2 * g] and final[3 * g:] == texts[3 * g:]  # groups with spread stay
    for i in range(0, n, g):
        group = out["gold"][i:i + g]
        assert len(set(final[i:i + g])) == 1 and len(set(group)) == 1
        assert group[0] == sampler.by_text[final[i]]["gold"]  # the rewards see the refilled prompt's own columns
        assert out["prompt_ids"][i] == tok.encode(final[i], add_special_tokens=False)
    kept_zero = sum(int(out["gold"][i]) % 2 == 0 for i in range(0, n, g))
    assert kept_zero == stats["unfilled_groups"]
    # TRL's scoring pass reuses the rollout's scores, and the first reward logs the counts
    logged = {}
    wrapped = dynamic.FromRollout(parity_reward, 0)
    cols = {k: out[k] for k in (dynamic.REWARDS_KEY, "gold")}
    values = wrapped(["x"] * n, **cols, **{dynamic.STATS_KEY: [stats] * n},
                     log_metric=lambda k, v: logged.setdefault(k, v))
    assert values == [r[0] for r in out[dynamic.REWARDS_KEY]]
    for i in range(0, n, g):  # each group scored as in its own sampling round
        odd = int(out["gold"][i]) % 2 == 1
        assert dynamic.has_spread(values[i:i + g]) == odd
        assert set(values[i:i + g]) <= ({0.0, 1.0} if odd else {0.5})
    assert logged["ponder/refilled_groups"] == stats["refilled_groups"]


def test_dynamic_sampling_cap_keeps_the_batch_shape(base):
    """No refill rounds allowed: zero-spread groups stay, counted as unfilled."""
    model, tok = load(base)
    pool = grpo.prompt_dataset(_cfg(base, "unused", n_prompts=16), tok).to_list()
    even = [r for r in pool if int(r["gold"]) % 2 == 0]
    texts = [r["prompt"] for r in even[:2] for _ in range(2)]
    sampler = dynamic.DynamicSampler([parity_reward], [1.0], pool, max_rounds=0)
    out = grpo.LocalRollout(dynamic=sampler)(texts, _fake_trainer(model, tok, 2))
    assert out[dynamic.STATS_KEY] == {"dropped_groups": 0, "refilled_groups": 0, "refill_rounds": 0,
                                      "unfilled_groups": 2}
    assert out[dynamic.PROMPT_KEY] == texts and len(out["completion_ids"]) == 4


@pytest.mark.parametrize("kw", [
    {"epsilon_high": 0.28},  # clip-higher (DAPO)
    {"importance_sampling_level": "sequence", "loss_type": "grpo", "epsilon": 3e-4, "epsilon_high": 4e-4},  # GSPO
])
def test_clip_variants_train_with_finite_loss(base, tmp_path, kw):
    out = tmp_path / "run"
    grpo.run(_cfg(base, out, num_iterations=2, **kw))
    rows = _rows(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert isinstance(rows[0]["reward"], float)  # a generation round
    assert rows[1]["reward"] is None  # the second step reuses it (num_iterations=2)
    assert all(0 <= r["clip_high"] <= 1 for r in rows)


@pytest.fixture
def reward_server():
    """A FastAPI reward server on loopback that scores like ``parity_reward`` and fails its first request."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from ponder.testing import free_port

    app, seen, fails = FastAPI(), [], {"n": 1}

    @app.post("/score")
    async def score(request: Request):
        body = await request.json()
        if fails["n"]:
            fails["n"] -= 1
            return JSONResponse({"error": "warming up"}, status_code=503)
        seen.append(body)
        return {"rewards": parity_reward(body["completions"], body["gold"])}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/score", seen
    server.should_exit = True
    t.join(5)


def test_grpo_with_a_remote_reward_and_dynamic_sampling(base, tmp_path, reward_server):
    url, seen = reward_server
    out = tmp_path / "run"
    grpo.run(_cfg(base, out, rewards=f"{url}(timeout=10, retries=2, backoff=0.01, name=judge)=1",
                  dynamic_sampling=True, max_refill_rounds=3, batch_size=4, n_prompts=40))
    rows = _rows(out)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert set(dynamic.STATS) <= set(r)
        assert r["refilled_groups"] + r["unfilled_groups"] <= 4
        assert r["dropped_groups"] >= r["refilled_groups"]
        # after refilling, only the unfilled slots can have zero spread
        assert r["zero_spread"] == pytest.approx(r["unfilled_groups"] / 4)
        assert isinstance(r["rewards/judge"], float)
    assert sum(r["dropped_groups"] for r in rows) >= 1  # even answers are common: some group was dropped
    # the server was asked by the rollout only (TRL's pass reused the scores): one request per sampling round
    assert len(seen) == sum(1 + r["refill_rounds"] for r in rows)
    assert all(len(b["completions"]) == len(b["gold"]) for b in seen)


def test_remote_reward_trains_without_dynamic_sampling(base, tmp_path, reward_server):
    url, seen = reward_server
    out = tmp_path / "run"
    grpo.run(_cfg(base, out, steps=1, rewards=f"accuracy=1,{url}(timeout=10, backoff=0.01)=0.5"))
    (row,) = _rows(out)
    assert isinstance(row["rewards/remote"], float) and "dropped_groups" not in row
    assert len(seen) == 1 and len(seen[0]["completions"]) == 6 and "trainer_state" not in seen[0]
