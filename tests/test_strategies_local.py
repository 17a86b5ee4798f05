"""Strategies end to end on the real LocalEngine with a tiny random Llama (built here, nothing
downloaded), and reward-model scorers loaded from a checkpoint directory written by the test.

The model is random, so these tests check plumbing that the scripted-backend tests cannot:
seeded reproducibility through several generate calls, stop strings and step joins on real
tokens, token accounting against the engine's own token ids, and reward-model scores against
the engine's log-probs.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from ponder.generate import LocalEngine, SamplingParams, prompt
from ponder.models.build import build_model, save
from ponder.models.tokenizer import train_tokenizer
from ponder.strategies import RewardModel, run_batch, run_strategy
from ponder.tasks import get_task

SP = SamplingParams(temperature=1.0, max_tokens=12, seed=3)


@pytest.fixture(scope="module")
def tok():
    task = get_task("addition")
    texts = [ex["prompt"] + task.reference_completion(ex) for ex in list(task.examples("train"))[:200]]
    return train_tokenizer(texts, vocab_size=300)


@pytest.fixture(scope="module")
def model(tok):
    cfg = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "initializer_range": 0.3}
    return build_model(cfg, tok, seed=1)


@pytest.fixture(scope="module")
def engine(model, tok):
    return LocalEngine(model, tok)


@pytest.fixture(scope="module")
def prompts(engine):
    return [prompt(engine, f"What is {a} + {b}?") for a, b in [(3, 4), (12, 30), (7, 7)]]


def _spent(r):
    return sum(len(c.token_ids) for c in r.samples)


@pytest.mark.parametrize("name, kw", [("majority", {"n": 6}), ("weighted_majority", {"n": 6}),
                                      ("best_of_n", {"n": 6}), ("adaptive_majority", {"n": 8, "batch": 2})])
def test_sampling_strategies_are_reproducible_and_count_tokens(engine, prompts, name, kw):
    a = run_batch(name, engine, prompts, sampling=SP, **kw)
    b = run_batch(name, engine, prompts, sampling=SP, **kw)
    for ra, rb in zip(a, b):
        assert [c.token_ids for c in ra.samples] == [c.token_ids for c in rb.samples]
        assert ra.answer == rb.answer and ra.text == rb.text
        assert ra.tokens == _spent(ra) == ra.reasoning_tokens + ra.answer_tokens
        assert len(ra.samples) == kw["n"] if name != "adaptive_majority" else 2 <= len(ra.samples) <= 8


def test_adaptive_rounds_draw_new_samples(engine, prompts):
    r = run_strategy("adaptive_majority", engine, prompts[0], n=8, batch=2, confidence=None, sampling=SP)
    texts = [c.token_ids for c in r.samples]
    assert len(texts) == 8 and texts[:2] != texts[2:4]  # shifted seeds, not the same two samples again


def test_beam_and_mcts_steps_on_real_tokens(engine, prompts):
    for name in ("beam", "mcts"):
        r = run_strategy(name, engine, prompts[1], n=2, expand=2, max_steps=3, delimiter=" ", step_tokens=6,
                         sampling=SP)
        assert r.tokens == _spent(r) == r.reasoning_tokens + r.answer_tokens
        steps = r.samples[:-1] if r.trace.get("how") == "completed most visited" else r.samples
        assert all(len(c.token_ids) <= 6 for c in steps)  # (mcts may finish its best path in one call)
        if name == "beam":
            kept = [s for step in r.trace["steps"] for s in step if s["kept"]]
            assert kept and all(" " not in s["step"] for s in kept)  # each step stops at the delimiter


def test_router_fast_path_closes_thinking_at_once(engine, prompts):
    r = run_strategy("router", engine, prompts[0], sampling=SP)
    c = r.samples[0]
    # budget 0: a think block the model opens is closed at once (ponder's models open it themselves)
    assert r.trace["route"]["path"] == "fast" and r.reasoning == "" and c.forced_close == c.parsed.think_open
    r = run_strategy("router", engine, prompt(engine, "What is 3 + 4? Think hard."), sampling=SP)
    assert r.trace["route"]["path"] == "think"


def test_progress_bar_run(engine, prompts):
    rs = run_batch("single", engine, prompts, sampling=SP, progress=True, chunk=1)
    assert len(rs) == 3 and all(r.trace["strategy"] == "single" for r in rs)


def test_causal_lm_reward_model_is_the_completion_likelihood(tmp_path, engine, model, tok, prompts):
    save(model, tok, tmp_path / "lm")
    rm = RewardModel.from_path(tmp_path / "lm")
    assert rm.kind == "lm"
    (group,) = engine.generate([prompts[2].text], n=3, sampling=SP)
    for c in group:  # -score == transformers' own mean cross-entropy over the completion tokens
        p_ids = tok(prompts[2].text, add_special_tokens=False)["input_ids"]
        c_ids = tok(c.text, add_special_tokens=False)["input_ids"]
        if not c_ids:
            continue
        labels = torch.tensor([[-100] * len(p_ids) + c_ids])
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([p_ids + c_ids]), labels=labels).loss
        assert rm(prompts[2].text, c) == pytest.approx(-float(loss), abs=1e-4)
    r = run_strategy("best_of_n", engine, prompts[2], n=3, sampling=SP, scorer=str(tmp_path / "lm"))
    assert r.trace["scores"][r.trace["chosen"]] == max(r.trace["scores"])


def test_classifier_reward_model_checkpoint_ranks_best_of_n(tmp_path, engine, tok, prompts):
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=len(tok), num_labels=1, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    clf = LlamaForSequenceClassification(cfg).eval()
    clf.save_pretrained(tmp_path / "orm")
    tok.save_pretrained(tmp_path / "orm")
    r = run_strategy("best_of_n", engine, prompts[0], n=5, sampling=SP, scorer=str(tmp_path / "orm"))
    with torch.no_grad():  # score each sample directly with the classifier
        direct = [float(clf(input_ids=torch.tensor([tok(prompts[0].text + c.text, add_special_tokens=False)
                                                    ["input_ids"]])).logits[0, 0]) for c in r.samples]
    assert r.trace["scores"] == pytest.approx(direct, abs=1e-5)
    assert r.trace["chosen"] == max(range(5), key=lambda i: direct[i])
