"""A minimal OpenAI-compatible chat server for tests (FastAPI + uvicorn on 127.0.0.1, a thread).

The model name picks its behaviour, so every test talks HTTP to one server:

* ``rc`` / ``rs`` / ``tags``: reasoning in ``reasoning_content``, in ``reasoning``, or as
  ``<think>`` tags in the content; ``rc`` reports usage with reasoning_tokens, ``tags`` none.
* ``flaky``: fails with 503 while ``FAILS["flaky"] > 0`` (the test sets it), then answers as ``rc``.
* ``broken``: always 500. ``missing``: 404 (a model the server does not have).
* ``one``: ignores ``n`` and always returns one choice. ``nolp``: 400 when logprobs are asked for.
* ``n1usage``: returns ``n`` choices but reports the usage of one (as llama.cpp's server does).
* ``slow``: sleeps 100 ms per request (to measure requests in flight).
* ``const``: answers ``\\boxed{42}`` except choice 1, which answers ``\\boxed{7}`` (for votes).

Answers are ``ans:<question>:<choice index>``, reasoning ``thinking about <question> step <i>``.
Every request body is appended to ``REQUESTS`` (with the Authorization header as ``_auth`` and
the client's port as ``_port``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from typing import Iterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

REQUESTS: list[dict] = []
FAILS: dict[str, int] = {}
INFLIGHT = {"now": 0, "max": 0}


def _question(body: dict) -> str:
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def _parts(model: str, q: str, i: int) -> tuple[str, str]:
    if model == "const":  # for votes: every choice but the second answers 42
        return f"reasoning {i}", "\\boxed{42}" if i != 1 else "\\boxed{7}"
    return f"thinking about {q} step {i}", f"ans:{q}:{i}"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        body["_auth"] = request.headers.get("authorization")
        body["_port"] = request.client.port if request.client else None  # the same port = a reused connection
        REQUESTS.append(body)
        model = body["model"]
        if model == "broken":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if model == "missing":
            return JSONResponse({"error": {"message": "model 'missing' not found"}}, status_code=404)
        if FAILS.get(model, 0) > 0:
            FAILS[model] -= 1
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if model == "nolp" and body.get("logprobs"):
            return JSONResponse({"error": {"message": "logprobs are not supported"}}, status_code=400)
        INFLIGHT["now"] += 1
        INFLIGHT["max"] = max(INFLIGHT["max"], INFLIGHT["now"])
        try:
            if model == "slow":
                await asyncio.sleep(0.1)
        finally:
            INFLIGHT["now"] -= 1
        q = _question(body)
        n = 1 if model == "one" else body.get("n") or 1
        if body.get("stream"):
            return StreamingResponse(_sse(model, q), media_type="text/event-stream")
        choices = []
        for i in range(n):
            r, a = _parts(model, q, i)
            msg = {"role": "assistant", "content": a}
            if model in ("rc", "flaky", "slow", "one", "nolp", "const", "n1usage"):
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
            per = 1 if model == "n1usage" else n
            resp["usage"] = {"prompt_tokens": 5, "completion_tokens": 20 * per, "total_tokens": 5 + 20 * per,
                             "completion_tokens_details": {"reasoning_tokens": 12 * per}}
        return resp

    return app


async def _sse(model: str, q: str):
    r, a = _parts(model, q, 0)
    if model == "tags":
        text = f"<think>{r}</think>{a}"
        pieces = [{"content": text[i:i + 3]} for i in range(0, len(text), 3)]  # tags split across chunks
    else:
        field = "reasoning" if model == "rs" else "reasoning_content"
        pieces = [{field: r[i:i + 4]} for i in range(0, len(r), 4)] + [{"content": a[:3]}, {"content": a[3:]}]
    for i, d in enumerate(pieces):
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                 "choices": [{"index": 0, "delta": d, "finish_reason": "stop" if i == len(pieces) - 1 else None}]}
        yield f"data: {json.dumps(chunk)}\n\n"
    usage = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
             "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17,
                       "completion_tokens_details": {"reasoning_tokens": 9}}}
    yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@contextlib.contextmanager
def serve() -> Iterator[str]:
    """Run the server in a thread; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    port = free_port()
    # a long keep-alive: a test checks that one connection serves calls made seconds apart
    server = uvicorn.Server(uvicorn.Config(make_app(), host="127.0.0.1", port=port, log_level="error",
                                           timeout_keep_alive=120))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("test server did not start")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
