"""Shared fixtures of the training tests: a tiny pretraining config and a tiny base model.

The model is far below the ``nano`` preset (one layer, hidden 32) so that each stage runs in a
few seconds on a shared 2-core CPU; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from ponder.train import pretrain

TINY = {"preset": "nano", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
TASK = "addition:max_digits=2"


def tiny_pretrain(out: Path, **kw) -> pretrain.PretrainConfig:
    """A pretraining config that runs in ~1 s: 1-digit addition, tiny model, few steps."""
    base = dict(out=str(out), task=TASK, preset=TINY, steps=6, batch_size=8, n_examples=64, vocab_size=300,
                seq_len=96, warmup_steps=1, save_every=3, solution_share=0.5)
    base.update(kw)
    return pretrain.PretrainConfig(**base)
