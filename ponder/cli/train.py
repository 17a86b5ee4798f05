"""``ponder train``: one command per training stage; each prints the path of the final model.

    ponder train pretrain --out runs/base --task 'addition:digits=3' --preset micro --steps 600
    ponder train sft runs/base/final --data cold.jsonl --out runs/sft
    ponder train grpo runs/sft/final --task addition:digits=3 --rewards 'accuracy=1,format=0.2' --out runs/grpo

Every field of the stage's config dataclass is a flag (with its help text); ``--config FILE.yaml``
and ``--set key=value`` work as for every config command. Re-running a finished stage with the
same ``--out`` skips it; re-running a killed one resumes from its last checkpoint.
"""

from __future__ import annotations

import typer
from rich.console import Console

from ponder.cli.configcli import command
from ponder.train import grpo, pretrain, sft

console = Console(stderr=True)

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Train a model: pretrain a tiny base, SFT on JSONL, GRPO on a task.")


def _runner(run):
    def go(cfg) -> None:
        final = run(cfg)
        console.print(f"final model: {final}", highlight=False)
        print(final)  # stdout: just the path, for scripts

    return go


app.command("pretrain", help="Pretrain a tiny base model on a synthetic task corpus (trains the tokenizer too).")(
    command(pretrain.PretrainConfig, _runner(pretrain.run), "Pretrain a tiny base model on a synthetic task corpus.")
)
app.command("sft", help="Supervised fine-tuning on {prompt, completion} JSONL (loss on completions only).")(
    command(sft.SFTConfig, _runner(sft.run), "Supervised fine-tuning on {prompt, completion} JSONL (loss on completions only).",
            positional="model")
)
app.command("grpo", help="GRPO on a task with verifiable rewards (TRL GRPOTrainer + ponder rewards).")(
    command(grpo.GRPOConfig, _runner(grpo.run), "GRPO on a task with verifiable rewards; writes metrics.jsonl per step.",
            positional="model")
)
from ponder.train import distill as _distill  # noqa: E402

app.command("distill", help="Distillation: teacher traces (rejection-sampled) -> student SFT, in one command.")(command(_distill.DistillConfig, _runner(_distill.run), "Teacher -> verified traces -> student SFT."))
