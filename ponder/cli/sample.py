"""``ponder sample``: rejection sampling (and teacher traces) into an SFT JSONL.

    ponder sample runs/r1/grpo/final --task addition:digits=3 --n 8 --keep shortest \
        --out runs/rs.jsonl

Every option of ``ponder.train.sample.SampleConfig`` is a flag; ``--config FILE.yaml`` and
``--set key=value`` work as for every config command. A killed run resumes where it stopped when
re-run with the same options.
"""

from __future__ import annotations

import json

from rich.console import Console

from ponder.cli.configcli import command
from ponder.train.sample import SampleConfig, paths
from ponder.train.sample import run as run_sample

console = Console(stderr=True)


def _run(cfg: SampleConfig) -> None:
    out = run_sample(cfg)
    stats = json.loads(paths(out)[2].read_text())
    console.print(
        f"{stats['prompts']} prompts, {stats['samples']} samples, {stats['sample_accuracy']:.1%} correct, "
        f"{stats['prompts_with_correct']} prompts with a correct sample; kept {stats['kept']} → {out}",
        highlight=False,
    )


sample = command(
    SampleConfig, _run,
    "Rejection sampling: N samples per prompt, keep the verified-correct ones, write SFT JSONL with provenance.",
    positional="model",
)
