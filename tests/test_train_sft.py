"""SFT: JSONL errors name the line, the loss covers the completion only, a run saves and resumes state."""

from __future__ import annotations

import json

import pytest
from train_helpers import TASK, tiny_pretrain

from ponder.models import load
from ponder.tasks import get_task
from ponder.tasks.synthetic import reference_completion
from ponder.train import pretrain, sft
from ponder.train.common import StageError, prompt_for, read_jsonl_pairs


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrain.run(tiny_pretrain(tmp_path_factory.mktemp("base") / "run"))


@pytest.fixture(scope="module")
def data(base, tmp_path_factory):
    """16 worked-solution rows in the prompt layout every stage uses."""
    _, tok = load(base)
    path = tmp_path_factory.mktemp("data") / "sft.jsonl"
    rows = []
    for i, ex in enumerate(get_task(TASK).examples("train")):
        if i == 16:
            break
        rows.append({"prompt": prompt_for(ex["prompt"], tok), "completion": reference_completion(ex),
                     "provenance": {"id": ex["id"]}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a"\n', r":2: not valid JSON"),
        ('{"prompt": "a", "completion": "b"}\n\n{"prompt": "a"}\n', r":3: missing field\(s\) completion"),
        ('[1, 2]\n', r":1: expected a JSON object"),
        ('{"prompt": "", "completion": "b"}\n', r":1: prompt must be a non-empty"),
        ("\n\n", "no examples"),
    ],
)
def test_malformed_jsonl_names_the_line(tmp_path, content, message):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(StageError, match=message):
        read_jsonl_pairs(path)


def test_missing_file_is_a_clear_error(tmp_path, base):
    with pytest.raises(StageError, match="no such file"):
        sft.run(sft.SFTConfig(model=str(base), data=str(tmp_path / "nope.jsonl"), out=str(tmp_path / "o")))


def test_loss_is_on_completion_tokens_only(base, data, tmp_path):
    rows = read_jsonl_pairs(data)
    trainer = sft.build_trainer(sft.SFTConfig(model=str(base), data=str(data), out=str(tmp_path)), tmp_path, rows)
    tok = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    n_prompt = len(tok.encode(rows[0]["prompt"], add_special_tokens=False))
    assert all(x == -100 for x in labels[:n_prompt])  # no loss on the prompt
    target = tok.encode(rows[0]["completion"], add_special_tokens=False) + [tok.eos_token_id]
    assert labels[n_prompt:n_prompt + len(target)] == target == ids[n_prompt:n_prompt + len(target)]


def test_run_trains_saves_and_logs(base, data, tmp_path):
    cfg = sft.SFTConfig(model=str(base), data=str(data), out=str(tmp_path / "run"), max_steps=3, batch_size=4,
                        save_every=2, lr=1e-3)
    final = sft.run(cfg)
    model, _ = load(final)
    before, _ = load(base)
    assert any((a - b).abs().max() > 0 for a, b in zip(model.parameters(), before.parameters()))  # weights moved
    saved = json.loads((final / "ponder_config.json").read_text())
    assert saved["data"] == str(data) and saved["max_steps"] == 3
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert sft.run(cfg) == final  # done: skipped


def test_total_steps_counts_epochs(base, data):
    cfg = sft.SFTConfig(model=str(base), data=str(data), epochs=2, batch_size=4)
    assert sft.total_steps(cfg, 16) == 8
    assert sft.total_steps(cfg, 16, processes=2) == 4
