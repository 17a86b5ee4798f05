"""A tiny OpenAI-compatible server for endpoint tests and ``bench/eval.py`` (real HTTP on 127.0.0.1).

    with scripted_server(latency=0.05) as srv:
        run_eval(EvalConfig(model=srv.spec, task="addition", …))

``POST /v1/chat/completions`` answers the arithmetic question in the last user message
("What is 12 + 7?") with ``<think>…</think>The answer is \\boxed{19}.`` -- ``n`` choices, a
``usage`` block with ``completion_tokens_details.reasoning_tokens`` -- after sleeping ``latency``
seconds (asyncio, so concurrent requests overlap as on a real server). ``failing`` (or
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
from typing import Callable, Iterator

from fastapi import Request  # module level: FastAPI resolves the (string) annotation here

_Q = re.compile(r"(-?\d+)\s*([+*x×-])\s*(-?\d+)")


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
