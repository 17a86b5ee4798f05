"""The LocalEngine prefix cache: outputs with the cache equal outputs without it, in every layout
the prefill can take (hits and misses in one batch, n > 1, a prompt inside a cached one, eviction),
the cache forgets after a weight change, and its counters count what was reused.

Prompts are real GSM8K questions (``../shared/data``; a built-in question without it) behind a
shared few-shot head, as strategies and chat send them; the model is ``tiny_engine``'s.
"""

from __future__ import annotations

import json

import pytest
import torch

from ponder.generate import LocalEngine, SamplingParams
from ponder.serve.metrics import Stats
from ponder.tasks.files import DATA_DIR
from ponder.testing import tiny_engine

GREEDY = SamplingParams(temperature=0, max_tokens=12)


def _questions(k: int) -> list[str]:
    path = DATA_DIR / "gsm8k" / "test.jsonl"
    if not path.is_file():
        return [f"Tom has {3 + i} apples and buys {7 * i} more. How many apples does he have?" for i in range(k)]
    with path.open() as f:
        return [json.loads(next(f))["question"] for _ in range(k)]


QS = _questions(4)
HEAD = "Solve the problem step by step.\n" + "\n".join(f"Q: {q}\nA: ..." for q in QS[:2]) + "\n"


@pytest.fixture(scope="module")
def engines():
    """(cached, uncached) engines over the same tiny model, fast path."""
    e = tiny_engine(max_positions=4096)
    return e, LocalEngine(e.model, e.tokenizer, prefix_cache=0)


def texts(groups) -> list[list[str]]:
    return [[c.text for c in g] for g in groups]


def check_same(cached: LocalEngine, plain: LocalEngine, prompts, n: int = 1, sp: SamplingParams = GREEDY):
    got, want = cached.generate(prompts, n=n, sampling=sp), plain.generate(prompts, n=n, sampling=sp)
    assert texts(got) == texts(want)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            assert a.token_ids == b.token_ids
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4


def fresh(e: LocalEngine, **kw) -> LocalEngine:
    return LocalEngine(e.model, e.tokenizer, **kw)


def test_single_prompt_hit_equals_uncached(engines):
    e, plain = engines
    c = fresh(e)
    p = HEAD + f"Q: {QS[2]}\nA:"
    check_same(c, plain, [p])  # cold: stores
    check_same(c, plain, [p])  # the same prompt again: all but its last token reused
    st = c.prefix_cache_stats()
    n_tok = len(e.tokenizer(p)["input_ids"])
    assert st["lookups"] == 2 and st["hits"] == 1
    # the second lookup reuses the full blocks, at most len - 1 tokens (one is prefilled for logits)
    assert st["tokens_reused"] == min(n_tok // 16 * 16, n_tok - 1)
    assert st["tokens_prefilled"] == 2 * n_tok - st["tokens_reused"]
    assert st["blocks"] == n_tok // 16 and st["bytes"] > 0


def test_mixed_batch_and_n(engines):
    e, plain = engines
    c = fresh(e)
    c.generate([HEAD + "Q: warm up\nA:"], sampling=GREEDY)
    # hits on the head of different lengths, a cold prompt, a very short one: gaps in both parts
    batch = [HEAD + f"Q: {QS[2]}\nA:", "What is 2 + 2?", HEAD + f"Q: {QS[3]}\nA: Let us", "Hi"]
    check_same(c, plain, batch)
    st = c.prefix_cache_stats()
    assert st["hits"] == 2 and st["lookups"] == 5
    check_same(c, plain, batch, n=2)  # rows expanded after a cached prefill
    check_same(c, plain, batch, n=3, sp=SamplingParams(temperature=1.0, max_tokens=10, seed=7))


def test_prompt_inside_a_cached_one(engines):
    e, plain = engines
    c = fresh(e)
    long = HEAD + f"Q: {QS[2]}\nA: First we add the numbers."
    check_same(c, plain, [long])
    ids = e.tokenizer(long)["input_ids"]
    short = e.decode(ids[: len(ids) // 2])  # a strict prefix of the cached prompt
    n_short = len(e.tokenizer(short)["input_ids"])
    before = c.prefix_cache_stats()["tokens_reused"]
    check_same(c, plain, [short])
    assert c.prefix_cache_stats()["tokens_reused"] - before == min(n_short // 16 * 16, n_short - 1) > 0


def test_eviction_under_a_tiny_budget(engines):
    e, plain = engines
    probe = fresh(e)
    probe.generate([HEAD], sampling=GREEDY)
    block_bytes = probe.prefix_cache_stats()["bytes"] // probe.prefix_cache_stats()["blocks"]
    c = fresh(e, prefix_cache=3 * block_bytes)
    prompts = [HEAD + f"Q: {q}\nA:" for q in QS]
    for p in prompts + prompts[::-1]:
        check_same(c, plain, [p])
        st = c.prefix_cache_stats()
        assert st["bytes"] <= 3 * block_bytes and st["blocks"] <= 3
    assert c.prefix_cache_stats()["evictions"] > 0
    assert c.prefix_cache_stats()["hits"] > 0  # the head's first blocks are touched most: they stay


def test_hf_path_equals_uncached(engines):
    e, _ = engines
    c, plain = fresh(e, fast=False), fresh(e, fast=False, prefix_cache=0)
    assert c.path == "hf"
    batch = [HEAD + f"Q: {QS[2]}\nA:", "What is 2 + 2?"]
    check_same(c, plain, batch)
    check_same(c, plain, batch + [HEAD + f"Q: {QS[3]}\nA:"], n=2)
    assert c.prefix_cache_stats()["hits"] == 2


def test_weight_change_invalidates():
    e = tiny_engine(seed=3, max_positions=4096)
    p = HEAD + f"Q: {QS[2]}\nA:"
    e.generate([p], sampling=GREEDY)
    w = e.model.model.layers[0].self_attn.k_proj.weight
    # an in-place update that bumps the parameter's version: noticed by the next call
    with torch.no_grad():
        w.add_(torch.randn_like(w) * 0.3)
    got = e.generate([p], sampling=GREEDY)
    assert e.prefix_cache_stats()["invalidations"] == 1 and e.prefix_cache_stats()["hits"] == 0
    assert texts(got) == texts(fresh(e, prefix_cache=0).generate([p], sampling=GREEDY))
    # an update behind the version counter (as fused AdamW's): refresh_weights must drop the KV
    w.data.add_(torch.randn_like(w) * 0.3)
    e.refresh_weights()
    assert e.prefix_cache_stats()["blocks"] == 0 and e.prefix_cache_stats()["invalidations"] == 2
    got = e.generate([p], sampling=GREEDY)
    assert texts(got) == texts(fresh(e, prefix_cache=0).generate([p], sampling=GREEDY))
    assert e.prefix_cache_stats()["hits"] == 0


def test_off_and_metrics_page(engines):
    e, plain = engines
    assert plain.prefix_cache_stats() is None and "prefix_cache=0" in plain.prefix_cache_reason
    c = fresh(e)
    c.generate([HEAD + "Q: a\nA:", HEAD + "Q: b\nA:"], sampling=GREEDY)
    c.generate([HEAD + "Q: c\nA:"], sampling=GREEDY)
    st = c.prefix_cache_stats()
    page = Stats().render(0, st)
    assert f"ponder_prefix_cache_hits_total {st['hits']}" in page
    assert f"ponder_prefix_cache_tokens_reused_total {st['tokens_reused']}" in page
    assert "# TYPE ponder_prefix_cache_bytes gauge" in page
    assert "ponder_prefix_cache" not in Stats().render(0)  # a backend without the cache: no lines
