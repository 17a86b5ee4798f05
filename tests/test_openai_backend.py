"""OpenAIBackend and load_backend against a REAL local OpenAI-compatible server.

The server (``ponder.testing.scripted_server``) is a minimal FastAPI app run by uvicorn on
127.0.0.1; the model name picks its behaviour (reasoning field shapes, failures, ignored n, no
logprobs).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ponder.generate import Budget, GenerationError, SamplingParams, estimate_tokens, prompt
from ponder.generate.backends import ModelSpecError, load_backend, parse_model_spec
from ponder.generate.openai_backend import OpenAIBackend
from ponder.testing import free_port


def backend(url: str, model: str, **kw) -> OpenAIBackend:
    kw.setdefault("backoff", 0.01)
    return OpenAIBackend(model, url, api_key="test-key", **kw)


@pytest.mark.parametrize("model", ["rc", "rs", "tags"])
def test_reasoning_is_read_from_each_server_shape(url, model):
    groups = backend(url, model).generate(["2+2?", "3+3?"], n=2)
    assert [[c.answer for c in g] for g in groups] == [["ans:2+2?:0", "ans:2+2?:1"], ["ans:3+3?:0", "ans:3+3?:1"]]
    c = groups[1][1]
    assert c.reasoning == "thinking about 3+3? step 1" and c.think_closed
    # the text is rebuilt in the local shape, so ponder.format.parse agrees with the fields
    from ponder.format import parse

    p = parse(c.text, c.prefilled)
    assert (p.reasoning, p.answer) == (c.reasoning, c.answer)
    assert c.token_ids == [] and c.finish_reason == "eos"
    if model == "tags":  # no usage: estimated from the text, and marked as such
        assert (c.reasoning_tokens, c.answer_tokens) == (estimate_tokens(c.reasoning), estimate_tokens(c.answer))
        assert c.estimated and c.prefilled is None  # thinking auto: the server's template is unknown
    else:  # usage shared between the two choices of the response (40 tokens, 24 reasoning)
        assert sum(x.reasoning_tokens for x in groups[1]) == 24 and not c.estimated
        assert sum(x.reasoning_tokens + x.answer_tokens for x in groups[1]) == 40


def test_usage_of_one_choice_for_n_choices_is_replaced_by_estimates(url):
    """llama.cpp's server reports one choice's usage for n=2: shared out, each would read half."""
    g = backend(url, "n1usage").generate(["2+2?"], n=2)[0]
    assert all(c.estimated for c in g)
    assert [c.reasoning_tokens for c in g] == [estimate_tokens(c.reasoning) for c in g]


def test_n_is_one_request_per_prompt_and_falls_back_when_ignored(url, srv):
    b = backend(url, "rc")
    b.generate(["q"], n=3)
    assert b.requests == 1
    one = backend(url, "one")
    g = one.generate(["q"], n=3)[0]
    assert len(g) == 3 and one.requests == 3 and one.use_n is False  # 1 choice came back: 2 more requests
    one.generate(["q"], n=2)  # now n requests straight away
    assert one.requests == 5
    # a seed: one request per sample, each with its own seed (a request's choices share one)
    seeded = backend(url, "rc")
    assert len(seeded.generate(["q"], n=3, sampling=SamplingParams(seed=5))[0]) == 3 and seeded.requests == 3
    assert sorted(r.get("seed") for r in srv.bodies[-3:]) == [5, 6, 7] and all(r["n"] == 1 for r in srv.bodies[-3:])


def test_retries_with_backoff_then_succeeds(url, srv):
    srv.fails["flaky"] = 2
    b = backend(url, "flaky", max_retries=3)
    t0 = time.perf_counter()
    assert b.generate(["hi"])[0][0].answer == "ans:hi:0"
    assert b.requests == 3 and srv.fails["flaky"] == 0
    assert time.perf_counter() - t0 >= 0.01 * (0.5 + 1)  # two backoff sleeps happened


def test_a_server_that_keeps_failing_raises_a_clear_error(url):
    b = backend(url, "broken", max_retries=2)
    with pytest.raises(GenerationError, match=r"kept failing.*'broken'.*3 attempts.*HTTP 500"):
        b.generate(["hi"])
    assert b.requests == 3


def test_a_refused_request_is_not_retried(url):
    b = backend(url, "missing", max_retries=5)
    with pytest.raises(GenerationError, match="refused.*HTTP 404"):
        b.generate(["hi"])
    assert b.requests == 1


def test_unreachable_server_raises_after_retries():
    port = free_port()  # nothing listens here
    b = OpenAIBackend("m", f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.01, timeout=5)
    with pytest.raises(GenerationError, match="kept failing.*2 attempts.*APIConnectionError"):
        b.generate(["hi"])


def test_concurrency_is_bounded_and_used(url, srv):
    srv.max_in_flight = 0
    b = backend(url, "slow", concurrency=2)
    groups = b.generate([f"q{i}" for i in range(6)])
    assert [g[0].answer for g in groups] == [f"ans:q{i}:0" for i in range(6)]
    assert srv.max_in_flight == 2


def test_the_client_and_its_connection_are_kept_across_calls(url, srv):
    with backend(url, "rc") as b:
        b.generate(["a"])
        b.generate(["b"])
        assert srv.bodies[-1]["_port"] == srv.bodies[-2]["_port"]  # one keep-alive connection
    b.generate(["c"])  # closed: a new loop and client start on demand
    assert srv.bodies[-1]["_port"] != srv.bodies[-2]["_port"]
    b.close()


def test_concurrency_is_bounded_over_threads(url, srv):
    srv.max_in_flight = 0
    b = backend(url, "slow", concurrency=2)
    threads = [threading.Thread(target=b.generate, args=([f"t{i}-{j}" for j in range(3)],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.requests == 6 and srv.max_in_flight == 2
    b.close()


def test_budgets_map_to_request_fields(url, srv):
    b = backend(url, "rc", effort_table={"low": 10, "medium": 20, "high": 40})
    b.generate(["q"], sampling=SamplingParams(max_tokens=50, top_k=5, stop=["##"]), budget=Budget(effort="high"))
    body = srv.bodies[-1]
    assert body["reasoning_effort"] == "high" and body["max_tokens"] == 90
    assert body["top_k"] == 5 and body["stop"] == ["##"]
    b.generate(["q"], sampling=SamplingParams(max_tokens=50), budget=Budget(thinking_budget=30))
    body = srv.bodies[-1]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 30} and body["max_tokens"] == 80
    assert "reasoning_effort" not in body
    n = len(srv.bodies)
    with pytest.raises(GenerationError, match="min-thinking.*local checkpoint"):
        b.generate(["q"], budget=Budget(min_thinking=5))
    assert len(srv.bodies) == n  # rejected before any request


def test_logprobs_are_read_and_dropped_when_the_server_rejects_them(url, srv):
    c = backend(url, "rc").generate(["q"])[0][0]
    assert c.logprobs == [-0.5, -0.5, -0.5] and c.mean_logprob == -0.5
    b = backend(url, "nolp")
    c = b.generate(["q"])[0][0]
    assert c.answer == "ans:q:0" and c.logprobs == [] and b.logprobs is False
    assert "logprobs" not in srv.bodies[-1]


def test_message_prompts_and_api_key(url, monkeypatch, srv):
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    b = load_backend(f"openai:rc@{url}")
    assert isinstance(b, OpenAIBackend) and b.model == "rc"
    msgs = prompt(b, "what?", system="be brief").payload
    b.generate([msgs])
    body = srv.bodies[-1]
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what?"}]
    assert body["_auth"] == "Bearer env-key"
    assert prompt(b, "what?").payload == [{"role": "user", "content": "what?"}]


def test_generate_works_inside_a_running_event_loop(url):
    async def handler():
        return backend(url, "rc").generate(["q"])

    assert asyncio.run(handler())[0][0].answer == "ans:q:0"


@pytest.mark.parametrize("model", ["rc", "rs", "tags"])
def test_streaming_yields_reasoning_then_answer(url, model):
    events = list(backend(url, model).stream("s?"))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and kinds.count("reasoning") >= 3
    assert kinds.index("answer") > max(i for i, k in enumerate(kinds) if k == "reasoning")
    r = "".join(t for k, t in events if k == "reasoning")
    a = "".join(t for k, t in events if k == "answer")
    done = events[-1][1]
    assert (r, a) == ("thinking about s? step 0", "ans:s?:0") == (done.reasoning, done.answer)
    assert done.think_closed and (done.reasoning_tokens, done.answer_tokens) == (9, 3)


def test_bad_inputs_raise_clear_errors(url):
    b = backend(url, "rc")
    with pytest.raises(GenerationError, match="prompts must be a list"):
        b.generate("q")
    with pytest.raises(GenerationError, match=r"prompts\[1\]"):
        b.generate(["q", 3])
    with pytest.raises(GenerationError, match="n must be"):
        b.generate(["q"], n=0)
    with pytest.raises(GenerationError, match="concurrency"):
        OpenAIBackend("m", url, concurrency=0)
    assert b.generate([]) == []


@pytest.mark.parametrize("spec, match", [
    ("openai:m", "openai:<model>@<base_url>"),
    ("openai:@http://h/v1", "empty model name"),
    ("openai:m@http://", "no host"),
    ("", "non-empty"),
])
def test_bad_model_specs(spec, match):
    with pytest.raises(ModelSpecError, match=match):
        parse_model_spec(spec)


def test_model_spec_parsing():
    s = parse_model_spec("openai:org/m@v2@https://api.example.com/v1/")
    assert (s.kind, s.model, s.base_url) == ("openai", "org/m@v2", "https://api.example.com/v1")
    assert parse_model_spec("runs/x").kind == "local"


def test_load_backend_rejects_bad_local_dirs(tmp_path):
    with pytest.raises(ModelSpecError, match="does not exist.*openai:<model>@<base_url>"):
        load_backend(str(tmp_path / "nope"))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a checkpoint directory"):
        load_backend(str(f))
    with pytest.raises(ValueError, match="no config.json"):
        load_backend(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="no weights"):
        load_backend(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"junk")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot load"):
        load_backend(str(tmp_path))


def test_against_ponder_serve_budgets_are_exact():
    """ponder's own server (ponder.serve) runs a LocalEngine: over HTTP the backend must get what
    the engine gives directly -- split, token counts and log-probs -- with the budget exact."""
    from ponder.serve import Running, ServeConfig, create_app
    from ponder.serve.protocol import Message, render_messages
    from ponder.testing import tiny_engine

    engine = tiny_engine()
    sp, budget = SamplingParams(temperature=0, max_tokens=8), Budget(thinking_budget=12)
    with Running(create_app(engine, ServeConfig(log_requests=False), "tiny")) as server:
        with OpenAIBackend("tiny", server.url + "/v1", backoff=0.01) as b:  # detects ponder serve
            got = b.generate(["What is 3 + 4?"], n=2, sampling=sp, budget=budget)[0]
            assert b.ponder_server is True
            forced = b.generate(["What is 3 + 4?"], n=2, sampling=sp, budget=Budget(thinking_budget=12, min_thinking=6))
            assert b.requests == 3  # n in one request; forcing goes through the extension, one request each
            streamed = list(b.stream("What is 3 + 4?", sp, budget))[-1][1]
        with pytest.raises(GenerationError, match="ponder serve"):  # told it is generic
            OpenAIBackend("tiny", server.url + "/v1", ponder_server=False).generate(["q"], budget=Budget(min_thinking=4))
    prompt = render_messages([Message(role="user", content="What is 3 + 4?")], engine, True).text
    ref = engine.generate([prompt], 1, sp, budget)[0][0]
    for c in got:
        assert (c.reasoning, c.answer) == (ref.reasoning, ref.answer)
        assert (c.reasoning_tokens, c.answer_tokens) == (ref.reasoning_tokens, ref.answer_tokens) == (12 + 2, 8)
        assert c.logprobs == pytest.approx(ref.logprobs, abs=1e-4)
    assert len(forced[0]) == 2 and all(c.reasoning_tokens == 12 + 2 for c in forced[0])
    assert (streamed.reasoning, streamed.answer, streamed.reasoning_tokens) == (ref.reasoning, ref.answer, 12 + 2)


def test_a_generic_server_is_detected_as_such(url, srv):
    b = backend(url, "rc")
    b.generate(["q"], budget=Budget(thinking_budget=5), sampling=SamplingParams(max_tokens=7))
    assert b.ponder_server is False and srv.bodies[-1]["max_tokens"] == 12  # budget + answer: the total bound
