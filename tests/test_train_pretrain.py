"""Pretraining: the corpus mixes worked and answer-only solutions, the loop learns, the output loads."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
from train_helpers import TASK, tiny_pretrain

from ponder.config import ConfigError
from ponder.format import parse
from ponder.models import load
from ponder.tasks import get_task
from ponder.train import pretrain
from ponder.train.checkpoint import DONE_FILE


def test_corpus_mixes_worked_and_answer_only_solutions(tmp_path):
    cfg = tiny_pretrain(tmp_path, n_examples=200, solution_share=0.3)
    pairs = pretrain.build_corpus(cfg)
    assert len(pairs) == 200
    golds = {ex["prompt"]: ex["gold"] for ex in get_task(TASK).examples("train")}
    worked = 0
    for question, completion in pairs:
        p = parse(completion)
        assert p.think_closed and p.answer == golds[question]  # every completion ends in the right answer
        worked += p.has_reasoning
    assert 0.15 < worked / 200 < 0.45  # ~30% carry a worked solution
    assert pretrain.corpus_stats(tiny_pretrain(tmp_path, n_examples=50, solution_share=0.0))["worked"] == 0
    assert pretrain.corpus_stats(tiny_pretrain(tmp_path, n_examples=50, solution_share=1.0))["answer_only"] == 0


def test_corpus_draws_from_several_tasks(tmp_path):
    cfg = tiny_pretrain(tmp_path, task="addition:digits=1;multiplication:digits=1", n_examples=40)
    questions = [q for q, _ in pretrain.build_corpus(cfg)]
    assert sum("+" in q for q in questions) == 20 and sum("*" in q for q in questions) == 20


def test_batch_masks_prompt_and_padding():
    data = [([5, 6, 7, 8, 9], 3), ([5, 6, 7], 2)]
    ids, mask, labels = pretrain.batch(data, [0, 1], pad_id=0, prompt_loss=False)
    assert ids.tolist() == [[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert labels.tolist() == [[-100, -100, -100, 8, 9], [-100, -100, 7, -100, -100]]
    _, _, labels = pretrain.batch(data, [1], pad_id=0, prompt_loss=True)
    assert labels.tolist() == [[5, 6, 7]]


def test_run_learns_saves_and_skips_when_done(tmp_path):
    cfg = tiny_pretrain(tmp_path / "run", steps=40, lr=3e-3, save_every=15)
    final = pretrain.run(cfg)
    assert final == tmp_path / "run" / "final"
    model, tok = load(final)  # a loadable HF checkpoint with its tokenizer
    assert len(tok.encode("<think>", add_special_tokens=False)) == 1
    assert json.loads((final / "ponder_config.json").read_text()) == json.loads(json.dumps(asdict(cfg)))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5  # it learned something
    assert not list((tmp_path / "run").glob("checkpoint-*"))  # superseded by final
    stamp = (tmp_path / "run" / DONE_FILE).stat().st_mtime_ns
    assert pretrain.run(cfg) == final  # done: skipped
    assert (tmp_path / "run" / DONE_FILE).stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "kw, word",
    [({"solution_share": 1.5}, "solution_share"), ({"steps": 0}, "steps"), ({"template": "xml"}, "template"),
     ({"task": ""}, "task")],
)
def test_bad_config_is_a_clear_error(tmp_path, kw, word):
    with pytest.raises(ConfigError, match=word):
        cfg = tiny_pretrain(tmp_path, **kw)
        pretrain.build_corpus(cfg)


def test_lr_schedule_warms_up_then_decays_to_ten_percent(tmp_path):
    cfg = tiny_pretrain(tmp_path, steps=100, warmup_steps=10, lr=1.0, anneal=1.0)
    assert pretrain.lr_at(0, cfg) == pytest.approx(0.1)
    assert pretrain.lr_at(9, cfg) == pytest.approx(1.0)
    assert pretrain.lr_at(99, cfg) == pytest.approx(0.1, abs=0.01)


def test_anneal_stops_mid_decay(tmp_path):
    annealed = tiny_pretrain(tmp_path, steps=60, warmup_steps=0, lr=1.0, anneal=1.0)
    assert pretrain.lr_at(59, annealed) == pytest.approx(0.1, abs=0.01)
    cfg = tiny_pretrain(tmp_path, steps=60, warmup_steps=0, lr=1.0, anneal=0.6)  # cosine over 100 steps
    assert pretrain.lr_at(59, cfg) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.59)))
    with pytest.raises(ConfigError, match="anneal"):
        tiny_pretrain(tmp_path, anneal=0)


def test_length_groups_split_short_from_long_rows_and_cover_the_batch():
    lengths = [20, 72, 21, 19, 70, 22, 75, 20] * 4  # answer-only and worked rows, as in the corpus
    groups = pretrain.length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert len(groups) == 2 and {max(lengths[i] for i in g) for g in groups} == {22, 75}
    # a forward's fixed cost makes a batch of equal rows one forward, not several
    assert pretrain.length_groups([30] * 32) == [list(range(32))]
    assert len(pretrain.length_groups(lengths, max_groups=1)) == 1


@pytest.mark.parametrize("prompt_loss", [False, True])
def test_grouped_backward_gives_the_padded_batch_gradient(prompt_loss):
    import random

    import torch

    from ponder.models import build_model

    rng = random.Random(0)
    # rows of (ids, prompt length): short answer-only rows and long worked ones
    data = [([rng.randrange(3, 60) for _ in range(n)], 6) for n in [12, 40, 11, 13, 44, 12, 38, 10] * 2]
    idx = list(range(len(data)))
    tok = type("Tok", (), {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "__len__": lambda self: 64})()
    one, grouped = (build_model("nano", tok, seed=0) for _ in range(2))
    ids, mask, labels = pretrain.batch(data, idx, 0, prompt_loss)
    ref = one(input_ids=ids, attention_mask=mask, labels=labels).loss
    ref.backward()
    assert len(pretrain.length_groups([len(d[0]) for d in data])) > 1  # the split is exercised
    loss = pretrain.backward(grouped, data, idx, 0, prompt_loss)
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    for a, b in zip(one.parameters(), grouped.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-7)
