"""The FastAPI app of ``ponder serve``: OpenAI-compatible chat completions that keep reasoning apart.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``, ``GET /metrics``
(Prometheus text) and ``GET /`` (the playground page, ``static/index.html``). With an API key
set, ``/v1/*`` and ``/metrics`` need ``Authorization: Bearer KEY`` (401 otherwise); ``/``
and ``/health`` stay open (the page asks for the key).

Every request gets an id (``chatcmpl-…``, echoed in the ``x-request-id`` header) and one JSON
log line with its status, token counts and latency. Every error is a 4xx/5xx with OpenAI's
error object. See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ponder.generate.types import Completion
from ponder.serve.batcher import BatchedBackend, Batcher
from ponder.serve.config import ServeConfig
from ponder.serve.metrics import Stats, request_logger
from ponder.serve.protocol import (
    ApiError,
    Plan,
    chunk,
    finish,
    message,
    now,
    parse_request,
    plan_request,
    usage,
)
from ponder.serve.stream import RowStream

log = logging.getLogger("ponder.serve")
CHAT = "/v1/chat/completions"


class ServerState:
    """The backend, its batcher, the limits and the counters of one running server."""

    def __init__(self, backend, cfg: ServeConfig, model_name: str):
        self.backend, self.cfg, self.model_name = backend, cfg, model_name
        self.tokenizer = backend.tokenizer
        self.max_positions = backend.max_positions
        self.stats = Stats()
        self.batcher = Batcher(backend, cfg.batch_window_ms / 1000, cfg.max_batch_rows, self.stats,
                               cfg.continuous_batching)
        self.batched = BatchedBackend(self.batcher)
        self.logger = request_logger()

    def log(self, fields: dict) -> None:
        """One JSON line for a finished request (when ``log_requests`` is on)."""
        if self.cfg.log_requests:
            self.logger.info("request", extra={"fields": fields})

    def close(self) -> None:
        self.batcher.close()


def create_app(backend, cfg: ServeConfig | None = None, model_name: str = "ponder") -> FastAPI:
    """The app serving ``backend`` (a ``LocalEngine`` or any ``Backend``) under ``model_name``:
    its routes call the module-level handlers below with the one ``ServerState``."""
    cfg = cfg or ServeConfig()
    state = ServerState(backend, cfg, cfg.model_name or model_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.close()  # stop the batcher thread when uvicorn shuts down

    app = FastAPI(title="ponder serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ponder = state
    page = resources.files("ponder.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = ApiError(f"{request.method} {request.url.path}: {exc.detail}", status=exc.status_code,
                       code="not_found" if exc.status_code == 404 else "method_not_allowed")
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def playground() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": state.model_name, "in_flight": state.stats.in_flight,
                "queued": state.batcher.pending(), "streaming": state.batcher.streams}

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        return metrics_text(state, request)

    @app.get("/v1/models")
    def models(request: Request) -> Response:
        return list_models(state, request)

    @app.post(CHAT)
    async def chat(request: Request) -> Response:
        return await chat_completions(state, request)

    return app


# --------------------------------------------------------------------------- handlers


def authorize(state: ServerState, request: Request) -> None:
    if state.cfg.api_key is None:
        return
    got = request.headers.get("authorization", "")
    token = got[7:].strip() if got[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(token.encode(), state.cfg.api_key.encode()):
        raise ApiError("missing or incorrect API key: send 'Authorization: Bearer <key>'", status=401,
                       code="invalid_api_key")


def fail(state: ServerState, err: ApiError, rid: str, endpoint: str, t0: float, rec: dict) -> JSONResponse:
    state.stats.request(endpoint, err.status, time.perf_counter() - t0)
    state.log({**rec, "status": err.status, "error": err.message,
               "latency_ms": round(1000 * (time.perf_counter() - t0), 1)})
    return JSONResponse(err.body(), status_code=err.status, headers={"x-request-id": rid})


def metrics_text(state: ServerState, request: Request) -> Response:
    try:
        authorize(state, request)
    except ApiError as e:
        return JSONResponse(e.body(), status_code=e.status)
    cache = getattr(state.backend, "prefix_cache_stats", None)  # a LocalEngine's prefix cache counters
    return PlainTextResponse(state.stats.render(state.batcher.pending(), cache() if cache else None),
                             media_type="text/plain; version=0.0.4; charset=utf-8")


def list_models(state: ServerState, request: Request) -> Response:
    try:
        authorize(state, request)
    except ApiError as e:
        return JSONResponse(e.body(), status_code=e.status)
    created = int(state.stats.started)
    return JSONResponse({"object": "list", "data": [
        {"id": name, "object": "model", "created": created, "owned_by": "ponder"}
        for name in (state.model_name, "auto")]})


async def chat_completions(state: ServerState, request: Request) -> Response:
    """``POST /v1/chat/completions``: parse, plan, admit, then answer whole or as a stream."""
    t0 = time.perf_counter()
    rid = "chatcmpl-" + uuid.uuid4().hex[:24]
    rec: dict = {"request_id": rid, "endpoint": CHAT}
    admitted = False
    try:
        authorize(state, request)
        raw = await read_body(request, state.cfg.max_body_bytes)
        req = parse_request(raw)
        rec.update(model=req.model, stream=req.stream, n=req.n)
        if req.model not in (state.model_name, "auto"):
            raise ApiError(f"model {req.model!r} does not exist; this server has {state.model_name!r} and 'auto'",
                           status=404, param="model", code="model_not_found")
        plan = plan_request(req, state.cfg, state.backend, state.max_positions)
        rec.update(prompt_tokens=plan.prompt_tokens, strategy=plan.strategy)
        if not state.stats.admit(state.cfg.max_concurrent):
            raise ApiError(f"the server is busy ({state.cfg.max_concurrent} requests in flight); retry later",
                           status=429, type="rate_limit_error", code="server_busy")
        admitted = True
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        if req.stream:
            gen = stream_strategy if plan.strategy else stream_plain
            admitted = False  # the stream releases its slot when it ends or the client leaves
            end = StreamEnd(state, rec, t0)
            return EventStream(gen(state, rid, req.model, plan, include_usage, rec, end), end,
                               media_type="text/event-stream",
                               headers={"x-request-id": rid, "cache-control": "no-cache"})
        if plan.strategy:
            body = await run_strategy(state, rid, req.model, plan)
        else:
            job = state.batcher.submit([plan.prompt.payload], plan.n, plan.sampling, plan.budget)
            comps = (await asyncio.wrap_future(job.future))[0]
            body = completion_body(state, rid, req.model, plan, comps)
        u = body["usage"]
        rec.update(completion_tokens=u["completion_tokens"],
                   reasoning_tokens=u["completion_tokens_details"]["reasoning_tokens"])
        done(state, rec, 200, t0)
        return JSONResponse(body, headers={"x-request-id": rid})
    except ApiError as e:
        return fail(state, e, rid, CHAT, t0, rec)
    except ValueError as e:  # GenerationError, StrategyError: the request asked for something invalid
        return fail(state, ApiError(str(e), code="invalid_value"), rid, CHAT, t0, rec)
    except Exception as e:  # noqa: BLE001 - a bug must not kill the server; the log has the trace
        log.exception("request %s failed", rid)
        return fail(state, ApiError(f"internal error: {type(e).__name__}: {e}", status=500, type="server_error",
                             code="internal_error"), rid, CHAT, t0, rec)
    finally:
        if admitted:
            state.stats.release()


def done(state: ServerState, rec: dict, status: int, t0: float) -> None:
    seconds = time.perf_counter() - t0
    state.stats.request(CHAT, status, seconds, rec.get("prompt_tokens", 0), rec.get("completion_tokens", 0),
                        rec.get("reasoning_tokens", 0))
    state.log({**rec, "status": status, "latency_ms": round(1000 * seconds, 1)})


def completion_body(state: ServerState, rid: str, model: str, plan: Plan, comps: list[Completion]) -> dict:
    choices = [{"index": i, "message": message(c.answer, c.reasoning, state.cfg.reasoning),
                "finish_reason": finish(c.finish_reason), "logprobs": logprobs(state, c) if plan.logprobs else None}
               for i, c in enumerate(comps)]
    return {"id": rid, "object": "chat.completion", "created": now(), "model": model, "choices": choices,
            "usage": usage(prompt_tokens(state, plan, comps), sum(c.reasoning_tokens + c.answer_tokens for c in comps),
                           sum(c.reasoning_tokens for c in comps), loop_breaks(plan, comps))}


def loop_breaks(plan: Plan, comps: list[Completion]) -> int | None:
    return sum(c.loop_breaks for c in comps) if plan.budget.loop_guard else None


def prompt_tokens(state: ServerState, plan: Plan, comps: list[Completion]) -> int:
    """The prompt's tokens: counted here for a local model, the upstream server's count for
    an endpoint when it reported one."""
    reported = [c.prompt_tokens for c in comps if c.prompt_tokens is not None]
    return reported[0] if reported and not state.backend.capabilities.local else plan.prompt_tokens


def logprobs(state: ServerState, c: Completion) -> dict:
    """OpenAI's logprobs object over the generated tokens: all of them with ``--reasoning full``,
    the answer's only otherwise. The engine's log-probs are of the raw model distribution
    (before temperature and top-p; docs/generation.md)."""
    if not state.backend.capabilities.token_level or len(c.logprobs) != len(c.token_ids):
        return {"content": None}  # a remote backend: its own server's log-probs are not passed on
    start = 0 if state.cfg.reasoning == "full" else c.reasoning_tokens  # hidden reasoning stays hidden
    ids, lps = c.token_ids[start:], c.logprobs[start:]
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8")), "top_logprobs": []}
                        for t, lp in zip((state.backend.decode([i]) for i in ids), lps)]}


async def run_strategy(state: ServerState, rid: str, model: str, plan: Plan) -> dict:
    from ponder.strategies import run_strategy as run

    name = "router" if plan.strategy == "auto" else plan.strategy
    r = await asyncio.to_thread(run, name, state.batched, plan.prompt, n=plan.strategy_n,
                                sampling=plan.sampling, budget=plan.budget)
    chosen = r.completion
    answer_text = chosen.answer if chosen is not None else r.answer_text
    finish_reason = finish(chosen.finish_reason) if chosen is not None else "stop"
    trace = json.loads(json.dumps(r.trace, default=str))
    return {"id": rid, "object": "chat.completion", "created": now(), "model": model,
            "choices": [{"index": 0, "message": message(answer_text, r.reasoning, state.cfg.reasoning),
                         "finish_reason": finish_reason, "logprobs": None}],
            "usage": usage(plan.prompt_tokens, r.tokens, r.reasoning_tokens),
            "ponder": {"strategy": trace.get("strategy", name), "n": plan.strategy_n, "answer": r.answer,
                       "samples": len(r.samples), "tokens": r.tokens, "reasoning_tokens": r.reasoning_tokens,
                       "answer_tokens": r.answer_tokens, "trace": trace}}


def delta(rid: str, model: str, created: int, index: int, kind: str, text: str) -> str:
    d = {"content": text} if kind == "answer" else {"reasoning_content": text, "reasoning": text}
    return chunk(rid, model, created, index, d)


async def stream_plain(state: ServerState, rid: str, model: str, plan: Plan, include_usage: bool, rec: dict,
                       end: "StreamEnd"):
    """SSE: a role chunk per choice, reasoning deltas, content deltas, finish chunks, usage, [DONE]."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()
    streams = state.batcher.streams

    def on_token(row: int, ids: list[int]) -> None:  # batcher thread -> event loop
        loop.call_soon_threadsafe(q.put_nowait, (row, list(ids)))

    job = end.job = state.batcher.submit([plan.prompt.payload], plan.n, plan.sampling, plan.budget,
                                         on_token if streams else None)
    job.future.add_done_callback(lambda f: loop.call_soon_threadsafe(q.put_nowait, (None, None)))
    rows = [RowStream(plan.prompt.start, state.backend.decode if streams else None, state.backend.eos_ids,
                      plan.sampling.stop, state.cfg.reasoning) for _ in range(plan.n)]
    created, status, ended = now(), 200, False
    try:
        for i in range(plan.n):
            yield chunk(rid, model, created, i, {"role": "assistant", "content": ""})
        while True:
            row, ids = await q.get()
            if row is None:
                break
            for kind, text in rows[row].feed(ids):
                yield delta(rid, model, created, row, kind, text)
        try:
            comps = job.future.result()[0]
        except ValueError as e:
            status = 400
            yield f"data: {json.dumps(ApiError(str(e), code='invalid_value').body())}\n\n"
            comps = []
        for i, c in enumerate(comps):
            for kind, text in rows[i].final(c):
                yield delta(rid, model, created, i, kind, text)
            yield chunk(rid, model, created, i, {}, finish(c.finish_reason))
        rec.update(completion_tokens=sum(c.reasoning_tokens + c.answer_tokens for c in comps),
                   reasoning_tokens=sum(c.reasoning_tokens for c in comps))
        if include_usage and comps:
            yield chunk(rid, model, created, usage_=usage(prompt_tokens(state, plan, comps), rec["completion_tokens"],
                                                           rec["reasoning_tokens"], loop_breaks(plan, comps)))
        yield "data: [DONE]\n\n"
        ended = True
    finally:
        end(ended, status)


async def stream_strategy(state: ServerState, rid: str, model: str, plan: Plan, include_usage: bool, rec: dict,
                          end: "StreamEnd"):
    """A strategy's answer is known only at its end: the stream sends it in one piece per part."""
    created, status, ended = now(), 200, False
    try:
        yield chunk(rid, model, created, 0, {"role": "assistant", "content": ""})
        try:
            body = await run_strategy(state, rid, model, plan)
        except ValueError as e:
            status = 400
            yield f"data: {json.dumps(ApiError(str(e), code='invalid_value').body())}\n\n"
            yield "data: [DONE]\n\n"
            ended = True
            return
        msg = body["choices"][0]["message"]
        if msg.get("reasoning_content"):
            yield delta(rid, model, created, 0, "reasoning", msg["reasoning_content"])
        yield delta(rid, model, created, 0, "answer", msg["content"])
        yield chunk(rid, model, created, 0, {}, body["choices"][0]["finish_reason"])
        u = body["usage"]
        rec.update(completion_tokens=u["completion_tokens"],
                   reasoning_tokens=u["completion_tokens_details"]["reasoning_tokens"])
        if include_usage:
            last = json.loads(chunk(rid, model, created, usage_=u)[6:])
            last["ponder"] = body["ponder"]
            yield f"data: {json.dumps(last)}\n\n"
        yield "data: [DONE]\n\n"
        ended = True
    finally:
        end(ended, status)


class StreamEnd:
    """Ends a streamed request exactly once: frees its slot, logs it and, when the client left
    before the end, cancels its generation job (its rows stop in the engine at the next token)."""

    def __init__(self, state: ServerState, rec: dict, t0: float):
        self.state, self.rec, self.t0 = state, rec, t0
        self.job = None
        self.ended = False

    def __call__(self, completed: bool, status: int = 200) -> None:
        if self.ended:
            return
        self.ended = True
        if not completed:  # the client went away (or the server is stopping)
            if self.job is not None:
                self.job.cancel()
            self.state.stats.disconnected()
            self.rec["disconnected"] = True
        self.state.stats.release()
        done(self.state, self.rec, status if completed else 499, self.t0)


class EventStream(StreamingResponse):
    """A streaming response that ends its request even when the body generator never ran or was
    left suspended (a client gone before the first byte, or between two events)."""

    def __init__(self, content, end: StreamEnd, **kw):
        super().__init__(content, **kw)
        self.end = end

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.end(False)  # no-op when the generator already ended the request


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(f"the request body is {declared} bytes; the limit is {limit}", status=413,
                       code="request_too_large")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise ApiError(f"the request body exceeds the limit of {limit} bytes", status=413,
                           code="request_too_large")
    return bytes(body)


class Running:
    """A server running in a background thread (tests, benchmarks, the playground check)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def model_name_for(spec: str) -> str:
    """The id /v1/models reports for a model spec: a directory's name, or the remote model's."""
    if spec.startswith("openai:"):
        return spec[len("openai:"):].split("@", 1)[0] or "ponder"
    return Path(spec.rstrip("/")).name or "ponder"
