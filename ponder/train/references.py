"""The ``references`` stage of a recipe: cold-start SFT data from the task's own worked solutions.

DeepSeek-R1's cold start is a few thousand readable chains of thought; for a synthetic task the
task writes them itself (``task.reference_completion``: the reasoning in ``<think>``, then the
answer), framed by the prompt every stage uses (``ponder.train.common.prompt_for``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from ponder.config import option, shared
from ponder.io import write_text_atomic
from ponder.train.common import StageError


@dataclass
class ReferencesConfig:
    """Cold-start SFT data: the task's own worked solutions as ``{prompt, completion}`` lines."""

    model: str = option("", "Checkpoint whose tokenizer's chat template frames each prompt ('' = the plain layout).")
    task: str = shared("task", "addition:digits=3")
    split: str = shared("split", "train")
    limit: int = shared("limit", 200)
    template: str = shared("template", "think")
    thinking: str = shared("thinking", "auto")
    out: str = option("runs/references.jsonl", "Output JSONL.")


def run(cfg: ReferencesConfig) -> Path:
    """Write ``cfg.out`` atomically (a re-run with the file present does nothing)."""
    from ponder.format import completion_after
    from ponder.tasks import get_task
    from ponder.train.common import OWN_MODELS, prompt_for, thinking_for

    out = Path(cfg.out)
    if out.is_file():
        return out
    tok, thinking = None, OWN_MODELS
    if cfg.model:
        from transformers import AutoConfig, AutoTokenizer

        from ponder.models import check_checkpoint

        path = str(check_checkpoint(cfg.model))
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        thinking = thinking_for(tok, AutoConfig.from_pretrained(path, local_files_only=True), cfg.thinking)
    task = get_task(cfg.task)
    lines = []
    for ex in islice(task.examples(cfg.split), cfg.limit):
        try:
            completion = task.reference_completion(ex, cfg.template)
        except (KeyError, ValueError) as e:
            raise StageError(f"references: task {cfg.task!r} has no reference solutions ({e})") from None
        prompt = prompt_for(ex["prompt"], tok, thinking)
        lines.append({"prompt": prompt, "completion": completion_after(prompt, completion),
                      "provenance": {"task": cfg.task, "id": ex["id"], "source": "reference"}})
    if not lines:
        raise StageError(f"references: task {cfg.task!r} split {cfg.split!r} is empty")
    write_text_atomic(out, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    return out
