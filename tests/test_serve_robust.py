"""ponder serve under bad input and bad clients: OpenAI-style 4xx errors, API key, disconnects,
/health, /metrics and the JSON request log. After every bad request the server must still serve."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import httpx
import openai
import pytest

from ponder.serve import Running, ServeConfig, create_app
from ponder.serve.metrics import JsonLines
from ponder.testing import tiny_engine

OK = {"model": "tiny", "messages": [{"role": "user", "content": "What is 1 + 1?"}], "max_tokens": 3}


class Spy:
    """The engine, recording every completion it returns (to see a cancelled row stop early).
    ``gate`` (cleared) holds every generate call until it is set; ``delay`` slows each token."""

    def __init__(self, engine):
        self.engine, self.completions = engine, []
        self.gate, self.delay = threading.Event(), 0.0
        self.gate.set()

    def __getattr__(self, name):  # everything else (the Backend attributes) is the engine's
        return getattr(self.engine, name)

    def generate(self, prompts, n=1, sampling=None, budget=None, on_token=None):
        self.gate.wait(30)
        slow = on_token
        if on_token is not None and self.delay:
            def slow(row, ids):
                time.sleep(self.delay)
                return on_token(row, ids)
        out = self.engine.generate(prompts, n, sampling, budget, on_token=slow)
        self.completions += [c for g in out for c in g]
        return out


@pytest.fixture(scope="module")
def spy():
    return Spy(tiny_engine(max_positions=512))


@pytest.fixture(scope="module")
def server(spy):
    cfg = ServeConfig(max_n=4, max_body_bytes=20_000, max_tokens_limit=2000, max_concurrent=2)
    with Running(create_app(spy, cfg, "tiny")) as s:
        yield s


def post(server, body, **kw) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(server.url + "/v1/chat/completions", content=content,
                      headers={"content-type": "application/json", **kw.pop("headers", {})}, timeout=30, **kw)


def still_serving(server) -> None:
    r = post(server, OK)
    # Sampling is unseeded and the tiny model can draw EOS early: the bound is what max_tokens promises.
    assert r.status_code == 200 and 1 <= r.json()["usage"]["completion_tokens"] <= 3


CASES = [
    # (name, body, status, code, param)
    ("malformed json", b'{"model": "tiny", "messages": [', 400, "invalid_json", None),
    ("not an object", b"[1, 2]", 400, "invalid_json", None),
    ("unknown field", {**OK, "max_token": 5}, 400, "unknown_field", "max_token"),
    ("unknown nested field", {**OK, "thinking": {"type": "enabled", "budget_tokens": 4, "x": 1}}, 400,
     "unknown_field", "thinking.x"),
    ("wrong type temperature", {**OK, "temperature": "hot"}, 400, "invalid_type", "temperature"),
    ("wrong type n", {**OK, "n": 2.5}, 400, "invalid_type", "n"),
    ("wrong type messages", {**OK, "messages": "hello"}, 400, "invalid_type", "messages"),
    ("wrong role", {**OK, "messages": [{"role": "robot", "content": "hi"}]}, 400, "invalid_type", "messages[0].role"),
    ("missing model", {"messages": OK["messages"]}, 400, "missing_required_parameter", "model"),
    ("empty messages", {**OK, "messages": []}, 400, "invalid_value", "messages"),
    ("no user message", {**OK, "messages": [{"role": "system", "content": "be brief"}]}, 400, "invalid_value",
     "messages"),
    ("too many tokens", {**OK, "max_tokens": 1500}, 400, "context_length_exceeded", "max_tokens"),
    ("prompt too long", {**OK, "messages": [{"role": "user", "content": "7 " * 2000}]}, 400,
     "context_length_exceeded", "messages"),
    ("max_tokens above limit", {**OK, "max_tokens": 5000}, 400, "invalid_value", "max_tokens"),
    ("n above limit", {**OK, "n": 5}, 400, "invalid_value", "n"),
    ("ponder.n above limit", {**OK, "ponder": {"strategy": "majority", "n": 50}}, 400, "invalid_value", "ponder.n"),
    ("unknown strategy", {**OK, "ponder": {"strategy": "telepathy"}}, 400, "invalid_value", None),
    ("effort and budget", {**OK, "reasoning_effort": "low", "thinking": {"type": "enabled", "budget_tokens": 5}},
     400, "invalid_value", "thinking"),
    ("unsupported tools", {**OK, "tools": [{"type": "function"}]}, 400, "unsupported_parameter", "tools"),
    ("logprobs with stream", {**OK, "logprobs": True, "stream": True}, 400, "unsupported_parameter", "logprobs"),
    ("top_logprobs", {**OK, "logprobs": True, "top_logprobs": 3}, 400, "unsupported_parameter", "top_logprobs"),
    ("unknown model", {**OK, "model": "gpt-9"}, 404, "model_not_found", "model"),
    ("oversized body", {**OK, "messages": [{"role": "user", "content": "x" * 30_000}]}, 413, "request_too_large", None),
]


@pytest.mark.parametrize("name,body,status,code,param", CASES, ids=[c[0] for c in CASES])
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server, name, body, status, code, param):
    r = post(server, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["code"] == code and err["param"] == param
    assert r.headers["x-request-id"].startswith("chatcmpl-")
    still_serving(server)


def test_openai_client_sees_the_error(server):
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tiny", messages=[], max_tokens=3)
    assert e.value.code == "invalid_value" and "at least one message" in e.value.message


def test_unknown_route_and_method_are_json_errors(server):
    r = httpx.get(server.url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(server.url + "/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_api_key(spy):
    with Running(create_app(spy, ServeConfig(api_key="s3cret", log_requests=False), "tiny")) as s:
        no_key = openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            no_key.chat.completions.create(**OK)
        with pytest.raises(openai.AuthenticationError):
            no_key.models.list()
        assert httpx.get(s.url + "/metrics").status_code == 401
        assert httpx.get(s.url + "/health").status_code == 200 and httpx.get(s.url + "/").status_code == 200
        good = openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0)
        assert good.chat.completions.create(**OK).usage.completion_tokens == 3


def metrics(server) -> dict[str, float]:
    out = {}
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_disconnect_mid_stream_frees_the_slot_and_the_row(server, spy):
    before = metrics(server)
    n_before = len(spy.completions)
    body = {**OK, "max_tokens": 400, "stream": True}  # 400 tokens at >= 5 ms each: far longer than 3 chunks
    spy.delay = 0.005
    try:
        with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30) as resp:
            got = 0
            for line in resp.iter_lines():
                got += line.startswith("data: ")
                if got == 4:
                    break  # leave mid-stream: closing the connection is the disconnect
    finally:
        spy.delay = 0.0
    deadline = time.time() + 10
    while time.time() < deadline and (len(spy.completions) == n_before or metrics(server)["ponder_requests_in_flight"]):
        time.sleep(0.05)
    after = metrics(server)
    assert after["ponder_requests_in_flight"] == 0
    assert after["ponder_stream_disconnects_total"] == before["ponder_stream_disconnects_total"] + 1
    assert len(spy.completions[-1].token_ids) < 400  # the engine stopped the row, not only the stream
    # the freed slot is usable: two more streams at once (max_concurrent=2) both finish
    results = []

    def stream_one() -> None:
        with httpx.stream("POST", server.url + "/v1/chat/completions", json={**OK, "stream": True}) as r:
            results.append((r.status_code, [ln for ln in r.iter_lines() if ln.startswith("data: ")][-1]))

    threads = [threading.Thread(target=stream_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(200, "data: [DONE]")] * 2


def test_busy_server_answers_429(spy):
    with Running(create_app(spy, ServeConfig(max_concurrent=1, log_requests=False), "tiny")) as s:
        spy.gate.clear()  # the first request is admitted, then waits inside generate
        first: list[httpx.Response] = []
        t = threading.Thread(target=lambda: first.append(post(s, OK)))
        t.start()
        try:
            deadline = time.time() + 10
            while metrics(s)["ponder_requests_in_flight"] < 1 and time.time() < deadline:
                time.sleep(0.02)
            busy = post(s, OK)
        finally:
            spy.gate.set()
            t.join()
        assert busy.status_code == 429 and busy.json()["error"]["type"] == "rate_limit_error"
        assert first[0].status_code == 200
        still_serving(s)


def test_health_metrics_and_json_logs(server):
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("ponder.serve.requests")
    logger.addHandler(handler)
    try:
        before = metrics(server)
        ok = post(server, {**OK, "thinking": {"type": "enabled", "budget_tokens": 4}})
        bad = post(server, {**OK, "n": 99})
    finally:
        logger.removeHandler(handler)
    h = httpx.get(server.url + "/health").json()
    assert h["status"] == "ok" and h["model"] == "tiny"
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    mine = {x["request_id"]: x for x in lines}
    good = mine[ok.headers["x-request-id"]]
    u = ok.json()["usage"]
    assert good["status"] == 200 and good["prompt_tokens"] == u["prompt_tokens"]
    # 4 of its own and the forced "\n</think>" (2 tokens) of reasoning, then 3 answer tokens
    assert good["completion_tokens"] == u["completion_tokens"] == 9 and good["reasoning_tokens"] == 6
    assert good["latency_ms"] > 0 and mine[bad.headers["x-request-id"]]["status"] == 400
    after = metrics(server)
    key = 'ponder_requests_total{endpoint="/v1/chat/completions",code="%d"}'
    assert after[key % 200] == before.get(key % 200, 0) + 1 and after[key % 400] == before.get(key % 400, 0) + 1
    assert after["ponder_completion_tokens_total"] == before["ponder_completion_tokens_total"] + 9
    assert after["ponder_reasoning_tokens_total"] == before["ponder_reasoning_tokens_total"] + 6
    text = httpx.get(server.url + "/metrics")
    assert text.headers["content-type"].startswith("text/plain") and "# TYPE ponder_requests_total counter" in text.text


def test_oversized_chunked_body_without_content_length(server):
    def body():  # chunked transfer: the limit is enforced while reading, not from a header
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}]}'

    r = httpx.post(server.url + "/v1/chat/completions", content=body(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    still_serving(server)
