"""Test doubles ponder ships for its own tests and benchmarks, and for users testing code on top
of ponder without a model or a server: one deliberate place (``tests/`` holds the rest).

* ``tiny_engine()``: a ``LocalEngine`` over a fresh tiny model, built in memory in a second.
* ``scripted_server()``: an OpenAI-compatible server on 127.0.0.1 that answers arithmetic (and,
  by model name, the scripted behaviours the OpenAI backend's tests need).

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

``GET /v1/models`` lists ``scripted`` and the named behaviours below. ``POST /v1/chat/completions`` answers the
arithmetic question in the last user message
("What is 12 + 7?") with ``<think>…</think>The answer is \\boxed{19}.`` -- ``n`` choices, a
``usage`` block with ``completion_tokens_details.reasoning_tokens`` -- after sleeping ``latency``
seconds (asyncio, so concurrent requests overlap as on a real server); ``reply(question)``, when
given, is the whole message content instead (code answers for ``humaneval``). ``failing`` (or
``fail_after`` = N: after N requests) makes requests answer HTTP 500, to test that a failing
endpoint stops a run; ``srv.requests``, ``srv.max_in_flight`` and ``srv.bodies`` (every request
body) record what the server saw.

The model name picks other behaviours (``BEHAVIOURS``), for the OpenAI backend's tests:

* ``rc`` / ``rs`` / ``tags``: reasoning in ``reasoning_content``, in ``reasoning``, or as
  ``<think>`` tags in the content; ``rc`` reports usage with reasoning_tokens, ``tags`` none.
  Streaming (``stream: true``) sends the reasoning in 4-character deltas (``tags``: the whole
  text in 3-character pieces, so tags split across chunks), then a usage chunk.
* ``flaky``: answers 503 while ``srv.fails["flaky"] > 0`` (the test sets it), then as ``rc``.
* ``broken``: always 500. ``missing``: 404 (a model the server does not have).
* ``one``: ignores ``n``, always one choice. ``nolp``: 400 when logprobs are asked for.
* ``n1usage``: ``n`` choices but the usage of one (as llama.cpp's server reports it).
* ``slow``: sleeps 100 ms per request (to count requests in flight).
* ``const``: answers ``\\boxed{42}`` except choice 1, which answers ``\\boxed{7}`` (for votes).

Their answers are ``ans:<question>:<choice index>``, reasoning ``thinking about <question> step <i>``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    #: every request body, with the Authorization header as ``_auth`` and the client's port as
    #: ``_port`` (the same port on two requests = one reused keep-alive connection)
    bodies: list[dict] = field(default_factory=list)
    #: model name -> how many more requests answer HTTP 503 ("overloaded"), then it answers
    fails: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: models that answer with reasoning in a separate field (``reasoning_content``)
_RC_MODELS = ("rc", "flaky", "slow", "one", "nolp", "const", "n1usage")
#: the named behaviours; any other model name is the arithmetic ``scripted`` model
BEHAVIOURS = _RC_MODELS + ("rs", "tags", "broken", "missing")


def _parts(model: str, q: str, i: int) -> tuple[str, str]:
    if model == "const":  # for votes: every choice but the second answers 42
        return f"reasoning {i}", "\\boxed{42}" if i != 1 else "\\boxed{7}"
    return f"thinking about {q} step {i}", f"ans:{q}:{i}"


def _named(model: str, q: str, body: dict) -> dict:
    """The non-streamed response of a named behaviour (see the module docstring)."""
    n = 1 if model == "one" else body.get("n") or 1
    choices = []
    for i in range(n):
        r, a = _parts(model, q, i)
        msg = {"role": "assistant", "content": a}
        if model in _RC_MODELS:
            msg["reasoning_content"] = r
        elif model == "rs":
            msg["reasoning"] = r
        else:
            msg["content"] = f"<think>{r}</think>{a}"
        ch = {"index": i, "message": msg, "finish_reason": "stop"}
        if body.get("logprobs"):
            ch["logprobs"] = {"content": [{"token": w, "logprob": -0.5, "bytes": None, "top_logprobs": []}
                                         for w in a.split(":")]}
        choices.append(ch)
    resp = {"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": choices}
    if model != "tags":
        per = 1 if model == "n1usage" else n  # llama.cpp's server reports one choice's usage for n
        resp["usage"] = {"prompt_tokens": 5, "completion_tokens": 20 * per, "total_tokens": 5 + 20 * per,
                         "completion_tokens_details": {"reasoning_tokens": 12 * per}}
    return resp


async def _sse(model: str, q: str):
    r, a = _parts(model, q, 0)
    if model == "tags":
        text = f"<think>{r}</think>{a}"
        pieces = [{"content": text[i:i + 3]} for i in range(0, len(text), 3)]  # tags split across chunks
    else:
        key = "reasoning" if model == "rs" else "reasoning_content"
        pieces = [{key: r[i:i + 4]} for i in range(0, len(r), 4)] + [{"content": a[:3]}, {"content": a[3:]}]
    for i, d in enumerate(pieces):
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                 "choices": [{"index": 0, "delta": d, "finish_reason": "stop" if i == len(pieces) - 1 else None}]}
        yield f"data: {json.dumps(chunk)}\n\n"
    usage = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
             "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17,
                       "completion_tokens_details": {"reasoning_tokens": 9}}}
    yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"


def _arithmetic(state: ServerState, body: dict, question: str, answer: Callable[[str], str | None],
                reply: Callable[[str], str] | None) -> dict:
    ans = answer(question)
    reasoning = f"I compute {question.strip()}"
    if reply is not None:
        content = reply(question)
    else:
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


@contextmanager
def scripted_server(latency: float = 0.0, failing: bool = False,
                    answer: Callable[[str], str | None] = arithmetic_answer,
                    reply: Callable[[str], str] | None = None) -> Iterator[ServerState]:
    """Run the server in a background thread for the duration of the ``with`` block.

    ``reply(question)``: the whole message content to send instead (code answers, prose), in place
    of ``answer``'s boxed value."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse

    state = ServerState(failing=failing)
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        # "created" changes on every call, as on real servers: a card must not record it
        return {"object": "list", "data": [{"id": m, "object": "model", "created": int(time.time()),
                                            "owned_by": "ponder.testing"} for m in ("scripted", *BEHAVIOURS)]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        state.requests += 1
        state.bodies.append({**body, "_auth": request.headers.get("authorization"),
                             "_port": request.client.port if request.client else None})
        model = str(body.get("model", ""))
        if state.failing or (state.fail_after is not None and state.requests > state.fail_after) or model == "broken":
            return JSONResponse({"error": {"message": "scripted failure"}}, status_code=500)
        if model == "missing":
            return JSONResponse({"error": {"message": "model 'missing' not found"}}, status_code=404)
        if state.fails.get(model, 0) > 0:
            state.fails[model] -= 1
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if model == "nolp" and body.get("logprobs"):
            return JSONResponse({"error": {"message": "logprobs are not supported"}}, status_code=400)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if latency or model == "slow":
                await asyncio.sleep(latency or 0.1)
        finally:
            state.in_flight -= 1
        question = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        if model not in BEHAVIOURS:
            return _arithmetic(state, body, question, answer, reply)
        if body.get("stream"):
            return StreamingResponse(_sse(model, question), media_type="text/event-stream")
        return _named(model, question, body)

    port = free_port()
    # a long keep-alive: a test checks that one connection serves calls made seconds apart
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                                           timeout_keep_alive=120))
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
