"""``ponder train sft``: supervised fine-tuning on ``{prompt, completion}`` JSONL.

Cold-start SFT (R1) and distillation SFT (R1-Distill, ``ponder train distill``) are the same
operation: teach a checkpoint to write given completions. Built on TRL's ``SFTTrainer`` with the
prompt-completion dataset format, so the loss covers completion tokens only (TRL's
``completion_only_loss``, on by default for that format) and an EOS is appended to every
completion (the model must learn to stop).

The JSONL ``prompt`` is the text the model sees (use ``ponder.train.common.prompt_for`` to build
it, as rejection sampling does); a list of chat messages is also accepted and rendered by the
tokenizer's chat template. On CPU the trainer runs with ``use_cpu=True, bf16=False,
gradient_checkpointing=False``; on a GPU (``device="auto"``) TRL's defaults apply.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ponder.config import ConfigError, FineTuneOptions, check_choice, option, shared
from ponder.train import common

log = logging.getLogger(__name__)


@dataclass
class SFTConfig(FineTuneOptions):
    """Options of ``ponder train sft``."""

    data: str = option("", "JSONL file, one {prompt, completion} object per line (other fields are ignored).")
    out: str = shared("out", "runs/sft")
    epochs: float = option(1.0, "Passes over the data (ignored when max_steps > 0).")
    max_steps: int = option(-1, "Optimizer steps; -1 = run for `epochs`.")
    lr: float | None = option(None, "Peak learning rate (AdamW, linear decay); default by model size: 5e-4 below 50M parameters, 2e-5 above.")
    warmup_ratio: float = option(0.05, "Share of steps spent warming the learning rate up.")
    batch_size: int = option(16, "Sequences per optimizer step per process.")
    grad_accum: int = option(1, "Gradient accumulation steps (effective batch = batch_size * grad_accum * processes).")
    max_length: int = option(256, "Longest prompt + completion in tokens (longer ones are truncated).")

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("sft.model (the checkpoint to fine-tune) is required")
        if not self.data:
            raise ConfigError("sft.data (a JSONL of {prompt, completion}) is required")
        common.positive(self, ("batch_size", "grad_accum", "max_length", "save_every"), "sft")
        if self.lr is not None:
            common.positive(self, ("lr",), "sft")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("sft: give epochs > 0 or max_steps > 0")
        check_choice(self, "device", ("cpu", "auto"), "sft.")
        from ponder.models.lora import normalise

        try:
            self.lora = normalise(self.lora)  # the canonical spec, as ponder_config.json records it
        except ConfigError as e:
            raise ConfigError(f"sft.{e}") from None


def total_steps(cfg: SFTConfig, n_rows: int, processes: int = 1) -> int:
    """Optimizer steps the run will take (for the progress bar)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(math.ceil(n_rows / (cfg.batch_size * processes)) / cfg.grad_accum * cfg.epochs))


def trainer_args(cfg: SFTConfig, out: Path, lr: float | None = None):
    """TRL ``SFTConfig`` for ``cfg`` (the CPU flags unless device=auto); ``lr`` when ``cfg.lr`` is unset."""
    from trl import SFTConfig as TRLSFTConfig

    return TRLSFTConfig(
        output_dir=str(out),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr if cfg.lr is not None else (lr or 5e-4),
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a share of all steps (transformers 5)
        lr_scheduler_type="linear",
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length,
        completion_only_loss=True,
        packing=False,
        **common.trainer_args(cfg.save_every, cfg.seed, cfg.device),
    )


def build_trainer(cfg: SFTConfig, out: Path, rows: list[dict], callbacks: list | None = None):
    """The configured TRL ``SFTTrainer`` (exposed for tests and bench/train.py)."""
    from datasets import Dataset
    from trl import SFTTrainer

    common.quiet_transformers()
    model, tok, peft_config = common.load_for_training(cfg.model, cfg.lora)
    common.check_targets(model, peft_config)
    model.train()
    return SFTTrainer(
        model=model,
        args=trainer_args(cfg, out, common.default_lr("sft", model, bool(cfg.lora)) if cfg.lr is None else None),
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        callbacks=callbacks or [],
        peft_config=peft_config,
    )


def run(cfg: SFTConfig) -> Path:
    """Fine-tune ``cfg.model`` on ``cfg.data`` (loss on completions only); return ``<out>/final``."""
    out, done = common.begin(cfg, "sft")
    if done is not None:
        return done
    rows = common.read_jsonl_pairs(cfg.data, "sft.data")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    callbacks = [common.trainer_progress(total_steps(cfg, len(rows), world), "sft"),
                 common.JsonlLogger(out / "metrics.jsonl"), *common.thread_guards(cfg.threads)]
    trainer = build_trainer(cfg, out, rows, callbacks)
    common.drop_printer(trainer)
    return common.train_and_save(trainer, out, cfg, {"rows": len(rows)}, thinking=data_thinking(rows))


def data_thinking(rows: list[dict]):
    """The start the SFT data trains: ``prefill`` when every string prompt ends in ``<think>``,
    else ``model`` (the completions open their think block themselves)."""
    from ponder.format import Thinking, ends_in_think

    texts = [r["prompt"] for r in rows if isinstance(r["prompt"], str)]
    if texts and all(ends_in_think(t) for t in texts):
        return Thinking("auto", "prefill", "the SFT prompts end in <think>")
    return Thinking("auto", "model", "the SFT completions open their think block")
