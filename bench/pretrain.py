"""Pretraining step time: one right-padded forward per batch vs ponder's length groups, in one run.

The demo's corpus mixes answer-only examples (~20 tokens) with worked solutions (~70 tokens), so a
batch padded to its longest row spends about half its compute on padding. ``ponder.train.pretrain``
runs each batch as a few forwards of similar-length rows (``length_groups``) and sums their
token-weighted losses: the same gradient (checked here, and in tests/test_train_pretrain.py).

Both ways train the same freshly built model on the same batches (the demo's corpus: 2-digit
addition, 30% worked solutions, batch 32), alternating in rounds so that a change in machine load
hits both; the first steps of each are warm-up and not timed.

    .venv/bin/python bench/pretrain.py                  # micro and nano, ~1 min on a 2-core CPU
    .venv/bin/python bench/pretrain.py --steps 5        # a smoke test
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import torch

from ponder.models import build_model
from ponder.train import pretrain as P


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per way and round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (padded, grouped, padded, ...)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--presets", default="micro,nano", help="model presets to time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = P.PretrainConfig(out=tempfile.mkdtemp(prefix="bench-pretrain-"), task="addition:digits=2",
                           solution_share=0.3, threads=args.threads)
    pairs = P.build_corpus(cfg)
    tok = P._tokenizer(cfg, Path(cfg.out), pairs)
    data = P.encode(pairs, tok, cfg)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    lengths = [len(d[0]) for d in data]
    print(f"corpus: {len(data)} examples, mean {sum(lengths) / len(lengths):.1f} tokens, longest {max(lengths)}; "
          f"batch {cfg.batch_size}; {args.threads} threads; {platform.machine()}, {os.cpu_count()} CPUs; "
          f"load {', '.join(f'{x:.1f}' for x in os.getloadavg())}")

    def padded(model, idx):
        ids, mask, labels = P.batch(data, idx, pad, False)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return loss.item()

    def grouped(model, idx):
        return P.backward(model, data, idx, pad, False)

    for preset in args.presets.split(","):
        models = {name: build_model(preset, tok, seed=0) for name in ("padded", "grouped")}
        fns = {"padded": padded, "grouped": grouped}
        # the same gradient: one batch through both
        idx = random.Random(0).sample(range(len(data)), cfg.batch_size)
        for name, m in models.items():
            m.train()
            m.zero_grad()
            fns[name](m, idx)
        rel = max(((a.grad - b.grad).abs().max() / (a.grad.abs().max() + 1e-12)).item()
                  for a, b in zip(models["padded"].parameters(), models["grouped"].parameters()))
        secs = {"padded": 0.0, "grouped": 0.0}
        step = 1
        for r in range(args.rounds):
            for name in ("padded", "grouped"):
                m, fn = models[name], fns[name]
                for i in range(args.steps + (3 if r == 0 else 0)):
                    idx = random.Random(f"bench:{step}").sample(range(len(data)), cfg.batch_size)
                    step += 1
                    t0 = time.perf_counter()
                    m.zero_grad(set_to_none=True)
                    fn(m, idx)
                    if r > 0 or i >= 3:  # the first 3 steps of each way are warm-up
                        secs[name] += time.perf_counter() - t0
        n = args.steps * args.rounds
        a, b = secs["padded"] / n, secs["grouped"] / n
        print(f"{preset:>6}: padded batch {a * 1000:7.1f} ms/step | length groups {b * 1000:7.1f} ms/step | "
              f"{a / b:.2f}x  (forward+backward, {n} steps each; max relative gradient difference {rel:.1e})")


if __name__ == "__main__":
    main()
