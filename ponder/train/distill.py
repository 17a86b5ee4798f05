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

from ponder.config import ConfigError, option, shared
from ponder.io import write_json_atomic
from ponder.train.checkpoint import is_done
from ponder.train.sample import LIMIT_HELP, TraceOptions


@dataclass
class DistillConfig(TraceOptions):
    """Options of ``ponder train distill``."""

    teacher: str = option("", "Teacher checkpoint directory (samples the traces).")
    student: str = option("", "Student checkpoint directory to fine-tune (e.g. a smaller base model's final/).")
    out: str = shared("out", "runs/distill")
    limit: int = option(1000, LIMIT_HELP)
    lora: str = shared("lora", "")
    sft: dict = option({}, "SFT options for the student, fields of `ponder train sft` (YAML mapping, or --set sft.max_steps=200).")
    seed: int = shared("seed", 0)

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
