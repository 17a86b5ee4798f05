"""Test doubles ponder ships for its own tests and benchmarks, and for users testing code on top
of ponder without a model or a server: one deliberate place (``tests/`` holds the rest).

* ``tiny_engine()``: a ``LocalEngine`` over a fresh tiny model, built in memory in a second.
* ``scripted_server()``: an OpenAI-compatible server on 127.0.0.1 that answers arithmetic.

## tiny_engine

A tiny in-memory model to exercise the server (tests, bench/serve.py) without any checkpoint.

It is a randomly initialised Llama from ``ponder.models`` with ponder's own tokenizer trained on a
few arithmetic lines: it writes nonsense, but nonsense in the real token format, fast. Its EOS
embedding is zeroed (tied weights: the EOS logit is then 0 while the largest of ~500 random
logits is positive), so greedy completions run to their token limits and every length is predictable (sampled, an
early EOS stays possible: tests bound lengths rather than fix them).
A thinking budget is what makes it "answer": its prompts open the think block (the checkpoint
records the ``prefill`` start, so ``--thinking auto`` keeps it), the budget forces ``</think>``
and the answer follows.

## scripted_server

A tiny OpenAI-compatible server for endpoint tests and ``bench/eval.py`` (real HTTP on 127.0.0.1).

    with scripted_server(latency=0.05) as srv:
        run_eval(EvalConfig(model=srv.spec, task="addition", …))

``POST /v1/chat/completions`` answers the arithmetic question in the last user message
("What is 12 + 7?") with ``<think>…</think>The answer is \\boxed{19}.`` -- ``n`` choices, a
``usage`` block with ``completion_tokens_details.reasoning_tokens`` -- after sleeping ``latency``
seconds (asyncio, so concurrent requests overlap as on a real server); ``GET /v1/models``
lists the one model ``scripted``. ``failing`` (or
``fail_after`` = N: after N requests) makes requests answer HTTP 500, to test that a failing
endpoint stops a run; ``srv.requests`` and
``srv.max_in_flight`` count what the server saw.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from fastapi import Request  # module level: FastAPI resolves the (string) annotation here

_Q = re.compile(r"(-?\d+)\s*([+*x×-])\s*(-?\d+)")


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


def arithmetic_answer(question: str) -> str | None:
    m = _Q.search(question)
    if not m:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return str(a + b if op == "+" else a - b if op == "-" else a * b)


@dataclass
class ServerState:
    spec: str = ""
    base_url: str = ""
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    failing: bool = False
    fail_after: int | None = None  # answer HTTP 500 once this many requests were served


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def scripted_server(latency: float = 0.0, failing: bool = False,
                    answer: Callable[[str], str | None] = arithmetic_answer) -> Iterator[ServerState]:
    """Run the server in a background thread for the duration of the ``with`` block."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    state = ServerState(failing=failing)
    app = FastAPI()

    @app.get("/v1/models")
    async def models():  # what `ponder eval` records in its card; not counted in requests
        return {"object": "list", "data": [{"id": "scripted", "object": "model", "created": int(time.time()),
                                            "owned_by": "ponder.testing"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        state.requests += 1
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if latency:
                await asyncio.sleep(latency)
            if state.failing or (state.fail_after is not None and state.requests > state.fail_after):
                return JSONResponse({"error": {"message": "scripted failure"}}, status_code=500)
            question = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
            ans = answer(question)
            reasoning = f"I compute {question.strip()}"
            content = f"<think>{reasoning}</think>The answer is \\boxed{{{ans}}}." if ans is not None else "No idea."
            n = int(body.get("n") or 1)
            choices = [{"index": i, "finish_reason": "stop", "logprobs": None,
                        "message": {"role": "assistant", "content": content}} for i in range(n)]
            r_tok, a_tok = max(1, len(reasoning) // 4), max(1, (len(content) - len(reasoning)) // 4)
            return {"id": f"cmpl-{state.requests}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "scripted"), "choices": choices,
                    "usage": {"prompt_tokens": len(question) // 4, "completion_tokens": n * (r_tok + a_tok),
                              "total_tokens": n * (r_tok + a_tok) + len(question) // 4,
                              "completion_tokens_details": {"reasoning_tokens": n * r_tok}}}
        finally:
            state.in_flight -= 1

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("scripted server did not start")
        time.sleep(0.02)
    state.base_url = f"http://127.0.0.1:{port}/v1"
    state.spec = f"openai:scripted@{state.base_url}"
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
