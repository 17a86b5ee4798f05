"""A tiny in-memory model to exercise the server (tests, bench/serve.py) without any checkpoint.

It is a randomly initialised Llama from ``ponder.models`` with ponder's own tokenizer trained on a
few arithmetic lines: it writes nonsense, but nonsense in the real token format, fast. Its EOS
embedding is zeroed (tied weights: the EOS logit is then 0 while the largest of ~500 random
logits is positive), so completions run to their token limits and every length is predictable.
A thinking budget is what makes it "answer": its prompts open the think block (the checkpoint
records the ``prefill`` start, so ``--thinking auto`` keeps it), the budget forces ``</think>``
and the answer follows.
"""

from __future__ import annotations

from pathlib import Path


def _corpus() -> list[str]:
    from ponder.format import Thinking, format_completion, render

    plain = Thinking("auto", "model", "the tokenizer's corpus")
    out = []
    for a in range(3, 200, 7):
        for b in range(5, 100, 11):
            reasoning = f"{a} plus {b}: add the ones, then the tens. So {a} + {b} = {a + b}."
            out.append(render(f"What is {a} + {b}?", None, plain).text
                       + format_completion(reasoning, f"The answer is {a + b}."))
    return out


def tiny_engine(seed: int = 0, max_positions: int = 1024, hidden: int = 64, layers: int = 2,
                save_to: str | Path | None = None):
    """A ``LocalEngine`` over a fresh tiny model (about 0.1M parameters at the defaults).

    ``save_to``: also write the checkpoint there (``ponder serve DIR`` loads it).
    """
    import torch

    from ponder.generate import LocalEngine
    from ponder.models import CHAT_TEMPLATE, build_model, save, train_tokenizer

    tok = train_tokenizer(_corpus(), vocab_size=400)
    tok.chat_template = tok.chat_template or CHAT_TEMPLATE
    model = build_model({"hidden_size": hidden, "num_layers": layers, "num_heads": 4, "intermediate_size": 2 * hidden,
                         "max_position_embeddings": max_positions, "initializer_range": 0.2}, tok, seed=seed)
    with torch.no_grad():
        model.get_output_embeddings().weight[tok.eos_token_id].zero_()
    model.config.ponder_thinking = "prefill"  # it writes nonsense anyway: start it inside <think>
    model.eval()
    if save_to is not None:
        save(model, tok, save_to)
    return LocalEngine(model, tok)
