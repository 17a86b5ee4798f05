"""Benchmark: ponder's LocalEngine against transformers' eager ``generate()`` on CPU.

Model: a randomly initialised Llama built here (no download): hidden 192, 4 layers, 6 query
heads of 32 dims sharing 2 KV heads (GQA), SwiGLU intermediate 1152, untied embeddings, a
512-token byte-level BPE trained on synthetic text below -- 3,245,760 parameters. The weights
use ``initializer_range=0.1`` (not 0.02) for varied, well-separated logits. For batch >= 2 the
engine's logits equal HF's bit for bit; batch 1 differs by float rounding only.

For batch 1, 16 and 64 the same left-padded prompts are decoded greedily for the same number of
new tokens (EOS ignored, so every row has the same length) by both, the outputs are asserted
identical token for token, and tokens/s and the speed-up are printed. Each timing is the best
of ``--repeats`` runs after a warm-up, so the numbers are indicative on a shared machine.
The HF baseline runs on 1 thread and on torch's default count and the faster is kept (on a
shared machine a busy core can make 2 threads far slower); ponder picks its own count.
At batch 64 the engine's arithmetic rate is compared with the machine's best fp32 matmul rate
(a 2048x2048 ``torch.matmul``, best of 8, on 1 and on the default thread count):
FLOPs = 2 x (non-embedding parameters) x tokens + attention (4 x heads x head_dim x context
per token per layer).

    .venv/bin/python bench/generate.py            # 128 new tokens
    .venv/bin/python bench/generate.py --quick    # 32 new tokens, one repeat
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from ponder.generate import LocalEngine, SamplingParams  # noqa: E402

WORDS = "the a fox dog cat runs jumps over under quickly slowly and then so if we add take".split()


def corpus(k: int) -> list[str]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(k):
        n = int(torch.randint(4, 16, (1,), generator=g))
        words = [WORDS[int(j)] for j in torch.randint(0, len(WORDS), (n,), generator=g)]
        out.append(" ".join(words) + f" {i} + {i % 7} = {i + i % 7}.")
    return out


def build(vocab: int = 512) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(2000), trainer)
    tk = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                 pad_token="<pad>", padding_side="left")
    cfg = LlamaConfig(hidden_size=192, intermediate_size=1152, num_hidden_layers=4,
                      num_attention_heads=6, num_key_value_heads=2, vocab_size=len(tk),
                      tie_word_embeddings=False, initializer_range=0.1, max_position_embeddings=1024,
                      bos_token_id=1, eos_token_id=None, pad_token_id=0)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    model.generation_config.eos_token_id = None  # every row runs to max_new_tokens
    return model, tk


def matmul_gflops(threads: int, size: int = 2048, reps: int = 8) -> float:
    """fp32 GFLOP/s of a big square matmul on ``threads`` threads (best of ``reps``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(old)
    return 2 * size**3 / best / 1e9


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="32 new tokens, one repeat")
    ap.add_argument("--new-tokens", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    new = args.new_tokens or (32 if args.quick else 128)
    repeats = args.repeats or (1 if args.quick else 2)

    model, tk = build()
    params = sum(p.numel() for p in model.parameters())
    non_emb = params - model.model.embed_tokens.weight.numel()
    cfg = model.config
    engine = LocalEngine(model, tk)
    threads = torch.get_num_threads()
    counts = sorted({1, threads})
    peaks = {k: matmul_gflops(k) for k in counts}
    peak = max(peaks.values())
    print(f"model: Llama hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, "
          f"{cfg.num_attention_heads} heads / {cfg.num_key_value_heads} KV heads, "
          f"intermediate {cfg.intermediate_size}, vocab {cfg.vocab_size}: {params:,} parameters")
    print(f"engine path: {engine.path} ({engine.path_reason}); no torch.compile (compile time 0 s)")
    print("machine fp32 matmul (2048x2048): "
          + ", ".join(f"{peaks[k]:.1f} GFLOP/s on {k} thread(s)" for k in counts))
    print(f"greedy, {new} new tokens per row, EOS ignored, best of {repeats}; the HF baseline is its "
          f"faster thread count of {counts}\n")
    print(f"{'batch':>5}  {'HF generate tok/s':>22}  {'ponder tok/s':>17}  {'speed-up':>8}  same output")

    prompts = corpus(64)
    sp = SamplingParams(temperature=0, max_tokens=new, ignore_eos=True)
    for batch in (1, 16, 64):
        ps = prompts[:batch]
        enc = tk(ps, return_tensors="pt", padding=True)

        def hf():
            with torch.inference_mode():
                return model.generate(**enc, max_new_tokens=new, do_sample=False)

        def ours():
            return engine.generate(ps, sampling=sp)

        with torch.inference_mode():
            model.generate(**enc, max_new_tokens=4, do_sample=False)  # warm-up
        engine.generate(ps, sampling=SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))
        t_hf, hf_threads, ref = float("inf"), 0, None
        for k in counts:
            torch.set_num_threads(k)
            t, out = best_time(hf, repeats)
            if t < t_hf:
                t_hf, hf_threads, ref = t, k, out
        torch.set_num_threads(threads)
        t_us, got = best_time(ours, repeats)
        ref_ids = ref[:, enc.input_ids.shape[1]:].tolist()
        same = all(g[0].token_ids == r for g, r in zip(got, ref_ids))
        tokens = batch * new
        hf_col = f"{tokens / t_hf:.0f} ({hf_threads} thr)"
        us_col = f"{tokens / t_us:.0f} ({engine.threads_used} thr)"
        print(f"{batch:>5}  {hf_col:>22}  {us_col:>17}  {t_hf / t_us:>7.2f}x  {same}")
        assert same, f"batch {batch}: ponder's greedy output differs from transformers' generate()"
        if batch == 64:
            plens = enc.attention_mask.sum(1).tolist()
            hd = cfg.hidden_size // cfg.num_attention_heads
            attn = sum(4 * cfg.num_attention_heads * hd * (p + i) * cfg.num_hidden_layers
                       for p in plens for i in range(new))
            flops = 2 * non_emb * tokens + attn
            rate = flops / t_us / 1e9
            print(f"\nbatch 64: {flops / 1e9:.2f} GFLOP in {t_us:.2f} s = {rate:.1f} GFLOP/s, "
                  f"{100 * rate / peak:.0f}% of the machine's best matmul rate ({peak:.1f} GFLOP/s); "
                  f"HF generate: {100 * flops / t_hf / 1e9 / peak:.0f}%")


if __name__ == "__main__":
    main()
