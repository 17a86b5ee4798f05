"""Continuous batching: requests join the running decode batch between steps and leave when done.

The engine-level tests drive ``ContinuousBatch`` step by step (joins at chosen steps, so the cache
realignment paths run deterministically) and compare every request with the same request run
alone through ``LocalEngine.generate``. The server tests check the same through HTTP: a request
that arrives mid-decode returns before a long one, a disconnected stream does not disturb the
others, streamed deltas per row, and per-request stop strings and budgets in one batch.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from ponder.generate import Budget, LocalEngine, SamplingParams
from ponder.generate.continuous import ContinuousBatch
from ponder.serve import Running, ServeConfig, create_app
from ponder.serve.protocol import Message, render_messages
from ponder.testing import tiny_engine

G = SamplingParams(temperature=0, max_tokens=12)


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


def rendered(engine, q: str) -> str:
    return render_messages([Message(role="user", content=q)], engine, True).text


def mixed(engine) -> list[tuple]:
    """Requests with different limits and settings: (prompts, n, sampling, budget)."""
    long_q = "What is 12345 + 67890, and then what is that times 3, and minus 7?"
    alone = engine.generate([rendered(engine, "What is 3 * 4?")], 1, SamplingParams(temperature=0, max_tokens=60))
    text = alone[0][0].reasoning
    stop = next(text[i:i + 2] for i in range(20, len(text) - 2) if text[i:i + 2].strip() and "\ufffd" not in text[i:i + 2])
    return [
        ([rendered(engine, "What is 1 + 2?")], 1, SamplingParams(temperature=0, max_tokens=45), Budget()),
        ([rendered(engine, long_q)], 2, SamplingParams(temperature=0, max_tokens=6), Budget(thinking_budget=9)),
        ([rendered(engine, "Hi"), rendered(engine, "What is 5 - 2?")], 1, SamplingParams(temperature=0, max_tokens=7),
         Budget(thinking_budget=0)),
        ([rendered(engine, "What is 3 * 4?")], 1, SamplingParams(temperature=0, max_tokens=60, stop=[stop]),
         Budget(loop_guard="stop", loop_span=4, loop_repeats=3)),
        ([rendered(engine, "What is 9 + 9?")], 3, SamplingParams(temperature=0.9, top_p=0.8, max_tokens=10, seed=5),
         Budget(thinking_budget=4)),
    ]


def run_staggered(engine, reqs, join_every: int) -> tuple[dict, list[int]]:
    batch = ContinuousBatch(engine)
    handles, order, pending, step = {}, [], list(enumerate(reqs)), 0
    while pending or batch.rows:
        if pending and step % join_every == 0:
            i, (prompts, n, sp, budget) = pending.pop(0)
            handles[i] = batch.add(prompts, n, sp, budget)
        for done in batch.step():
            order.append(next(i for i, h in handles.items() if h is done))
        step += 1
    return handles, order


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "hf"])
def test_joined_rows_decode_exactly_as_alone(engine, fast):
    eng = engine if fast else LocalEngine(engine.model, engine.tokenizer, fast=False)
    assert eng.path == ("fast" if fast else "hf")
    reqs = mixed(eng)
    handles, order = run_staggered(eng, reqs, join_every=4)
    for i, (prompts, n, sp, budget) in enumerate(reqs):
        if sp.seed is not None:
            continue  # sampled: its draws depend on the generator's history, see the seeded test
        alone = eng.generate(prompts, n, sp, budget)
        got = handles[i].completions
        assert [[c.token_ids for c in g] for g in got] == [[c.token_ids for c in g] for g in alone], i
        assert [[(c.finish_reason, c.text) for c in g] for g in got] == [[(c.finish_reason, c.text) for c in g]
                                                                          for g in alone], i
        # log-probs: equal up to float rounding (a lone row's step uses another weight layout)
        for g, a in zip(got, alone):
            for c, d in zip(g, a):
                assert c.logprobs == pytest.approx(d.logprobs, abs=1e-4)
    by = {i: handles[i].completions for i in handles}
    assert by[3][0][0].finish_reason == "stop"  # its own stop string, in a batch with others
    assert all(c.reasoning_tokens == 9 + 2 for c in by[1][0])  # its own budget (+ the forced close)
    assert all(g[0].reasoning_tokens == 2 and g[0].answer_tokens == 7 for g in by[2])  # budget 0: closed at once
    assert order.index(1) < order.index(0)  # a later, shorter request left before the long first one


def test_a_seeded_request_alone_in_its_batch_is_generate(engine):
    prompts, n, sp, budget = mixed(engine)[4]
    batch = ContinuousBatch(engine)
    h = batch.add(prompts, n, sp, budget)
    while batch.rows:
        batch.step()
    alone = engine.generate(prompts, n, sp, budget)
    assert [c.token_ids for c in h.completions[0]] == [c.token_ids for c in alone[0]]
    assert len({tuple(c.token_ids) for c in alone[0]}) > 1


def test_longer_newcomer_and_dropped_columns(engine):
    """A newcomer longer than the batch's history shifts the cache right; once the first row has
    left, the columns only it used are dropped (shift left): outputs stay those of each request alone."""
    def req(q: str, m: int) -> tuple:
        return [rendered(engine, q)], 1, SamplingParams(temperature=0, max_tokens=m), Budget()

    short, long_p = req("Hi", 20), req("What is " + " + ".join(str(i) for i in range(30)) + "?", 30)
    batch = ContinuousBatch(engine)
    a = batch.add(*short)
    batch.step()
    t_before = batch.state["t"]
    b = batch.add(*long_p)  # its prompt is longer than the 1-step history: everything moves right
    assert batch.state["t"] == b.rows[0].plen > t_before and a.rows[0].first > 0 == b.rows[0].first
    while batch.rows:
        batch.step()

    first, later = req("Hi", 40), req("What is 2 + 2?", 40)
    batch = ContinuousBatch(engine)
    a = batch.add(*first)
    for _ in range(30):
        batch.step()
    c = batch.add(*later)
    joined_at = c.rows[0].first
    assert joined_at > 0
    while not a.done:
        batch.step()  # the step it leaves compacts the batch and drops the columns before c's prompt
    assert c.rows[0].first == 0 and batch.state["t"] == c.rows[0].plen + len(c.rows[0].ids)
    while batch.rows:
        batch.step()
    for h, r in ((a, first), (b, long_p), (c, later)):
        assert h.completions[0][0].token_ids == engine.generate(*r)[0][0].token_ids


def test_on_token_per_row_and_stopping_one_row(engine):
    batch = ContinuousBatch(engine)
    seen: dict[tuple[str, int], list[int]] = {}

    def hook(name):
        def on_token(row, ids):
            seen.setdefault((name, row), []).append(len(ids))
            return name == "gone" and len(ids) >= 3  # this request's client leaves after 3 tokens
        return on_token

    p = [rendered(engine, "What is 2 + 2?")]
    keep = batch.add(p, 2, G, Budget(), hook("keep"))
    gone = batch.add(p, 1, SamplingParams(temperature=0, max_tokens=40), Budget(), hook("gone"))
    while batch.rows:
        batch.step()
    assert seen[("keep", 0)] == seen[("keep", 1)] == list(range(1, 13))  # every step, in order
    assert seen[("gone", 0)] == [1, 2, 3] and len(gone.completions[0][0].token_ids) == 3
    assert gone.completions[0][0].finish_reason == "length"
    assert [c.token_ids for c in keep.completions[0]] == [c.token_ids for c in engine.generate(p, 2, G)[0]]


# ---------------------------------------------------------------------------------------- server

def body(q: str, **kw) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": q}], "temperature": 0, **kw}


def events(resp) -> list[dict]:
    import json

    return [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: {")]


@pytest.fixture(scope="module")
def server(engine):
    with Running(create_app(engine, ServeConfig(log_requests=False), "tiny")) as s:
        yield s


def test_mid_decode_arrival_finishes_first_and_matches_alone(server, engine):
    url = server.url + "/v1/chat/completions"
    short = body("What is 1 + 1?", max_tokens=4, thinking={"type": "enabled", "budget_tokens": 3})
    alone = httpx.post(url, json=short, timeout=60).json()
    finished: list[str] = []
    long_req = body("Tell me a long story.", max_tokens=600, stream=True)
    started = threading.Event()

    def long_stream() -> None:
        with httpx.stream("POST", url, json=long_req, timeout=120) as r:
            for i, line in enumerate(r.iter_lines()):
                if i == 8:
                    started.set()  # the long request is decoding
        finished.append("long")

    t = threading.Thread(target=long_stream)
    t.start()
    assert started.wait(60)
    mid = httpx.post(url, json=short, timeout=60).json()
    finished.append("short")
    t.join()
    assert finished == ["short", "long"]
    assert mid["choices"][0]["message"] == alone["choices"][0]["message"]
    assert mid["usage"] == alone["usage"]


def test_streams_per_row_and_a_disconnect_leaves_the_others_alone(server):
    url = server.url + "/v1/chat/completions"
    want = httpx.post(url, json=body("What is 4 + 5?", n=2, max_tokens=30), timeout=60).json()
    got: dict = {}
    go = threading.Barrier(2)

    def stay() -> None:
        go.wait()
        with httpx.stream("POST", url, json=body("What is 4 + 5?", n=2, max_tokens=30, stream=True), timeout=60) as r:
            got["events"] = events(r)

    def leave() -> None:
        go.wait()
        with httpx.stream("POST", url, json=body("What is 6 + 1?", max_tokens=500, stream=True), timeout=60) as r:
            for i, _ in enumerate(r.iter_lines()):
                if i == 6:
                    break  # gone mid-stream

    threads = [threading.Thread(target=f) for f in (stay, leave)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    text = {0: "", 1: ""}
    finish = {}
    for ev in got["events"]:
        for c in ev["choices"]:
            d = c["delta"]
            text[c["index"]] += d.get("reasoning_content") or ""
            if c.get("finish_reason"):
                finish[c["index"]] = c["finish_reason"]
    for i, ch in enumerate(want["choices"]):
        assert text[i] == ch["message"]["reasoning_content"]  # row i's deltas, in order, are its reasoning
    assert finish == {0: "length", 1: "length"}


def test_stop_strings_and_budgets_per_request_in_one_batch(engine):
    with Running(create_app(engine, ServeConfig(batch_window_ms=300, log_requests=False), "tiny")) as s:
        url = s.url + "/v1/chat/completions"
        ref = httpx.post(url, json=body("What is 3 + 4?", max_tokens=40), timeout=60).json()
        text = ref["choices"][0]["message"]["reasoning_content"]
        stop = next(text[i:i + 2] for i in range(5, len(text) - 2) if text[i:i + 2].strip() and "\ufffd" not in text[i:i + 2])
        reqs = {"stop": body("What is 3 + 4?", max_tokens=40, stop=[stop]),
                "budget": body("What is 8 + 1?", max_tokens=5, thinking={"type": "enabled", "budget_tokens": 7}),
                "plain": body("What is 2 + 9?", max_tokens=11)}
        alone = {k: httpx.post(url, json=b, timeout=60).json() for k, b in reqs.items()}
        before = httpx.get(s.url + "/metrics").text
        out: dict = {}
        go = threading.Barrier(len(reqs))

        def one(k: str) -> None:
            go.wait()
            out[k] = httpx.post(url, json=reqs[k], timeout=60).json()

        threads = [threading.Thread(target=one, args=(k,)) for k in reqs]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        after = httpx.get(s.url + "/metrics").text
    batches = [float(x.split()[-1]) for t in (before, after) for x in t.splitlines()
               if x.startswith("ponder_batches_total ")]
    assert batches[1] - batches[0] == 1  # all three decoded in one batch
    for k in reqs:
        assert out[k]["choices"] == alone[k]["choices"] and out[k]["usage"] == alone[k]["usage"], k
    assert out["stop"]["choices"][0]["finish_reason"] == "stop"
    assert out["budget"]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 7 + 2
    assert out["plain"]["usage"]["completion_tokens"] == 11
