"""Training stages (pretrain, SFT, GRPO, …), one module each; checkpoints are the only hand-off.

``from ponder.train import pretrain, sft, grpo``; each has a config dataclass and ``run(cfg) -> Path``
returning ``<out>/final``. See docs/training.md.
"""
