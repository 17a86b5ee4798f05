"""``ponder train distill``: teacher -> rejection-sampled traces -> student SFT, in one command.

The R1-Distill recipe at ponder's scale: the teacher (any checkpoint, typically the RL-trained
model) answers the task's train problems ``n`` times each; the verified-correct answers
(``ponder.train.sample``, ``keep``/``dedup`` as there) become an SFT set, and the student (a base
checkpoint, usually smaller) is fine-tuned on it (``ponder.train.sft``, loss on completions only).

Layout of ``out``::

    <out>/traces.jsonl            the teacher's kept traces (+ .progress.jsonl, .stats.json)
    <out>/checkpoint-N/, final/   the student's SFT run (final/ponder_config.json = this config)
    <out>/ponder_done.json        written last

Both halves resume on their own: sampling skips finished prompts, SFT continues from its last
checkpoint; a finished run is skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ponder.config import ConfigError, option
from ponder.io import write_json_atomic
from ponder.train.checkpoint import is_done


@dataclass
class DistillConfig:
    """Options of ``ponder train distill``."""

    teacher: str = option("", "Teacher checkpoint directory (samples the traces).")
    student: str = option("", "Student checkpoint directory to fine-tune (e.g. a smaller base model's final/).")
    task: str = option("addition:digits=3", "Task spec: its train split gives the prompts, its verifier filters traces.")
    out: str = option("runs/distill", "Run directory (traces.jsonl, the student's checkpoints and final/).")
    limit: int = option(1000, "Train problems the teacher answers (0 = the whole split).")
    n: int = option(4, "Teacher samples per problem.")
    temperature: float = option(0.8, "Teacher sampling temperature.")
    max_tokens: int = option(256, "Most tokens per teacher sample.")
    keep: str = option("all", "all: every correct trace; shortest: the shortest correct trace per problem.")
    dedup: bool = option(True, "Drop repeated traces of the same problem.")
    verify: bool = option(True, "Keep verified-correct traces only (False: every trace, unfiltered).")
    lora: str = option("", "Train the student as a LoRA adapter: a preset (default, small, attn) and/or r=16,alpha=32,dropout=0,targets=all-linear ('' = full fine-tuning; same as sft.lora).")
    sft: dict = option({}, "SFT options for the student, fields of `ponder train sft` (YAML mapping, or --set sft.max_steps=200).")
    seed: int = option(0, "Seed for sampling and SFT.")

    def __post_init__(self) -> None:
        if not self.teacher or not self.student:
            raise ConfigError("distill: teacher and student (checkpoint directories) are both required")
        from ponder.train.sft import SFTConfig

        bad = sorted(set(self.sft) - {f.name for f in fields(SFTConfig)} | ({"model", "data", "out"} & set(self.sft)))
        if bad:
            allowed = sorted({f.name for f in fields(SFTConfig)} - {"model", "data", "out"})
            raise ConfigError(f"distill.sft: option(s) {', '.join(bad)} cannot be set here; valid: {', '.join(allowed)}")
        from ponder.models.lora import normalise

        if self.lora and self.sft.get("lora"):
            raise ConfigError("distill: give lora or sft.lora, not both")
        try:
            self.lora = normalise(self.lora or self.sft.get("lora", ""))
        except ConfigError as e:
            raise ConfigError(f"distill.{e}") from None
        self.sft = {k: v for k, v in self.sft.items() if k != "lora"}


def run(cfg: DistillConfig) -> Path:
    """Sample the teacher's traces, then fine-tune the student on them; returns ``<out>/final``."""
    from ponder.train import sft
    from ponder.train.sample import SampleConfig
    from ponder.train.sample import run as sample_run

    out = Path(cfg.out)
    if is_done(out):
        return out / "final"
    traces = sample_run(SampleConfig(
        model=cfg.teacher, task=cfg.task, out=str(out / "traces.jsonl"), split="train", limit=cfg.limit, n=cfg.n,
        temperature=cfg.temperature, max_tokens=cfg.max_tokens, keep=cfg.keep, dedup=cfg.dedup, verify=cfg.verify,
        seed=cfg.seed,
    ))
    if not traces.is_file() or not traces.read_text().strip():
        raise ConfigError(f"distill: the teacher {cfg.teacher} produced no verified-correct trace on {cfg.task!r} "
                          "(try more samples, a higher limit, or a stronger teacher)")
    sft_cfg = sft.SFTConfig(**{"seed": cfg.seed, **cfg.sft, "lora": cfg.lora, "model": cfg.student, "data": str(traces), "out": str(out)})
    final = sft.run(sft_cfg)
    # the student's final/ponder_config.json says "sft"; record the whole distillation beside it
    write_json_atomic(Path(final) / "ponder_distill_config.json", asdict(cfg))
    return Path(final)
