"""ponder serve: the OpenAI-compatible API, driven by the official ``openai`` client on loopback.

The model is ``ponder.testing.tiny_engine``: a random tiny Llama whose EOS logit is 0, so
completions run exactly to their limits. Its prompts open the think block; a thinking budget
forces ``</think>``, after which the "answer" follows: with ``budget_tokens=B`` and
``max_tokens=M`` a completion has exactly B + C reasoning tokens (C: the forced ``\n</think>``,
two tokens in ponder's tokenizer; the budget counts the model's own) and M answer tokens, which
makes the token accounting checkable to the token.
"""

from __future__ import annotations

import threading

import httpx
import openai
import pytest
from typer.testing import CliRunner

from ponder.cli.main import app as cli
from ponder.generate import Budget, SamplingParams
from ponder.serve import Running, ServeConfig, create_app, summarize
from ponder.serve.protocol import Message, render_messages
from ponder.testing import tiny_engine

Q = [{"role": "user", "content": "What is 3 + 4?"}]
C = 2  # the forced "\n</think>" of a thinking budget: two tokens of ponder's tokenizer


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


@pytest.fixture(scope="module")
def server(engine):
    with Running(create_app(engine, ServeConfig(log_requests=False), "tiny")) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def think(budget: int) -> dict:
    return {"thinking": {"type": "enabled", "budget_tokens": budget}}


def ask(client, **kw):
    kw.setdefault("model", "tiny")
    kw.setdefault("messages", Q)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(**kw)


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def test_models_lists_the_model_and_auto(client):
    assert {m.id for m in client.models.list()} == {"tiny", "auto"}


def test_reasoning_and_answer_apart_with_exact_token_counts(client, engine):
    r = ask(client, max_tokens=6, extra_body=think(10))
    msg, u = r.choices[0].message, r.usage
    extra = msg.model_extra
    assert extra["reasoning_content"] == extra["reasoning"] and extra["reasoning_content"].strip()
    assert msg.content.strip() and msg.content not in extra["reasoning_content"]
    assert u.completion_tokens_details.reasoning_tokens == 10 + C  # the budget, exactly, and the forced close
    assert u.completion_tokens == 16 + C and r.choices[0].finish_reason == "length"
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # the server's answer is the engine's answer for the same prompt (nothing lost or reordered)
    prompt = render_messages([Message(**Q[0])], engine, think=True).text
    c = engine.generate([prompt], 1, SamplingParams(temperature=0, max_tokens=6),
                        Budget(thinking_budget=10))[0][0]
    assert (c.reasoning, c.answer) == (extra["reasoning_content"], msg.content)
    assert u.prompt_tokens == len(engine.tokenizer.encode(prompt, add_special_tokens=False))


def test_reasoning_effort_uses_the_effort_table(client, engine):
    r = ask(client, max_completion_tokens=3, reasoning_effort="low")
    assert r.usage.completion_tokens_details.reasoning_tokens == engine.effort_table["low"] + C
    assert r.usage.completion_tokens == engine.effort_table["low"] + C + 3


@pytest.mark.parametrize("off", [{"reasoning_effort": "none"}, {"extra_body": {"thinking": {"type": "disabled"}}}])
def test_thinking_off(client, off):
    r = ask(client, max_tokens=7, **off)
    assert r.usage.completion_tokens_details.reasoning_tokens == 0
    assert r.choices[0].message.model_extra["reasoning_content"] == ""
    assert r.choices[0].message.content and r.usage.completion_tokens == 7


def test_max_tokens_bounds_the_whole_completion_without_a_budget(client):
    r = ask(client, max_tokens=9)
    assert r.usage.completion_tokens == 9 and r.choices[0].finish_reason == "length"


def test_n_seed_and_temperature(client):
    kw = dict(max_tokens=8, n=3, temperature=1.0, top_p=0.9, seed=7, extra_body=think(4))
    a, b = ask(client, **kw), ask(client, **kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    texts = [c.message.model_extra["reasoning_content"] + c.message.content for c in a.choices]
    assert texts == [c.message.model_extra["reasoning_content"] + c.message.content for c in b.choices]
    assert len(set(texts)) > 1  # three samples, not one repeated
    assert a.usage.completion_tokens == 3 * (12 + C)
    other = ask(client, **{**kw, "seed": 8})
    assert [c.message.content for c in other.choices] != [c.message.content for c in a.choices]


def test_stop_string_cuts_the_completion(client):
    full = ask(client, max_tokens=30)
    text = full.choices[0].message.model_extra["reasoning_content"]
    stop = next(text[i:i + 2] for i in range(3, len(text) - 2) if text[i:i + 2].strip() and "\ufffd" not in text[i:i + 2])
    r = ask(client, max_tokens=30, stop=[stop])
    got = r.choices[0].message.model_extra["reasoning_content"] + (r.choices[0].message.content or "")
    assert r.choices[0].finish_reason == "stop" and stop not in got
    assert text.startswith(got) and len(got) < len(text)


def _collect(stream):
    order, parts, usage, finishes = [], {}, None, {}
    for ch in stream:
        if ch.usage is not None:
            usage = ch.usage
        for c in ch.choices:
            d = c.delta.model_extra or {}
            p = parts.setdefault(c.index, {"reasoning": "", "content": ""})
            if d.get("reasoning_content"):
                assert d["reasoning"] == d["reasoning_content"]
                p["reasoning"] += d["reasoning_content"]
                order.append((c.index, "r"))
            if c.delta.content:
                p["content"] += c.delta.content
                order.append((c.index, "c"))
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    return order, parts, usage, finishes


def test_stream_reasoning_then_content_then_usage(client):
    plain = ask(client, max_tokens=6, extra_body=think(12))
    order, parts, usage, finishes = _collect(ask(client, max_tokens=6, extra_body=think(12), stream=True,
                                                  stream_options={"include_usage": True}))
    kinds = [k for _, k in order]
    assert "r" in kinds and "c" in kinds and kinds.index("c") > max(i for i, k in enumerate(kinds) if k == "r")
    msg = plain.choices[0].message
    assert parts[0] == {"reasoning": msg.model_extra["reasoning_content"], "content": msg.content}
    assert usage.completion_tokens_details.reasoning_tokens == 12 + C and usage.completion_tokens == 18 + C
    assert finishes == {0: "length"}


def test_stream_n_choices_and_no_usage_unless_asked(client):
    order, parts, usage, finishes = _collect(ask(client, max_tokens=4, n=2, temperature=1, seed=1,
                                                  extra_body=think(5), stream=True))
    assert set(parts) == {0, 1} and finishes == {0: "length", 1: "length"} and usage is None
    assert all(p["content"] for p in parts.values())


def test_strategy_extension_reports_tokens_spent(client):
    r = ask(client, max_tokens=5, temperature=0.8, seed=3,
            extra_body={**think(8), "ponder": {"strategy": "majority", "n": 4}})
    p = r.model_extra["ponder"]
    assert p["strategy"] == "majority" and p["samples"] == 4
    assert p["tokens"] == r.usage.completion_tokens == 4 * (13 + C)  # every sample is paid for
    assert p["reasoning_tokens"] == r.usage.completion_tokens_details.reasoning_tokens == 4 * (8 + C)
    assert r.choices[0].message.content and r.choices[0].message.model_extra["reasoning_content"]


def test_strategy_stream_carries_usage_and_ponder(server):
    body = {"model": "tiny", "messages": Q, "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True},
            **think(4), "ponder": {"strategy": "best_of_n", "n": 2}}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json
    last = json.loads(events[-2])
    # every sample is paid for; a sampled EOS (unseeded) may end one early, so the bound is 2 * (8 + C)
    assert 0 < last["usage"]["completion_tokens"] == last["ponder"]["tokens"] <= 2 * (8 + C)


def test_model_auto_routes_per_request(client):
    fast = ask(client, model="auto", max_tokens=4, messages=[{"role": "user", "content": "Just the answer: 2 + 2?"}])
    slow = ask(client, model="auto", max_tokens=4, reasoning_effort="low",
               messages=[{"role": "user", "content": "Think step by step: what is 2 + 2?"}])
    assert fast.model_extra["ponder"]["trace"]["route"]["path"] == "fast"
    assert slow.model_extra["ponder"]["trace"]["route"]["path"] == "think"
    assert slow.usage.completion_tokens_details.reasoning_tokens > fast.usage.completion_tokens_details.reasoning_tokens


def test_concurrent_requests_are_batched_and_routed_back(server, client, engine):
    questions = [f"What is {i} + {2 * i}?" for i in range(8)]
    out: dict[int, object] = {}
    before_batches = metric(server.url, "ponder_batches_total")
    before_reqs = metric(server.url, "ponder_batch_requests_total")
    go = threading.Barrier(len(questions))

    def one(i: int) -> None:
        go.wait()
        out[i] = ask(client, max_tokens=5, messages=[{"role": "user", "content": questions[i]}], extra_body=think(6))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batches = metric(server.url, "ponder_batches_total") - before_batches
    assert metric(server.url, "ponder_batch_requests_total") - before_reqs == 8
    assert batches < 8  # at least two requests shared a generate call
    # each client got the completion of its own prompt
    prompts = [render_messages([Message(role="user", content=q)], engine, True).text for q in questions]
    want = engine.generate(prompts, 1, SamplingParams(temperature=0, max_tokens=5), Budget(thinking_budget=6))
    for i, g in enumerate(want):
        assert out[i].choices[0].message.content == g[0].answer


@pytest.mark.parametrize("extra", [think(6), {"reasoning_effort": "none"}])
def test_different_max_tokens_share_a_batch_and_stop_at_their_own(engine, extra):
    with Running(create_app(engine, ServeConfig(batch_window_ms=300, log_requests=False), "tiny")) as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        out: dict[int, object] = {}
        go = threading.Barrier(2)

        def one(m: int) -> None:
            go.wait()
            out[m] = ask(c, max_tokens=m, extra_body=extra)

        threads = [threading.Thread(target=one, args=(m,)) for m in (3, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert metric(s.url, "ponder_batches_total") == 1  # one generate call for both
    reasoning = 6 + C if "thinking" in extra else 0
    for m in (3, 9):
        assert out[m].usage.completion_tokens == reasoning + m and out[m].choices[0].finish_reason == "length"
        assert out[m].usage.completion_tokens_details.reasoning_tokens == reasoning
    short, long = (out[m].choices[0].message for m in (3, 9))
    assert long.content.startswith(short.content) and len(long.content) > len(short.content)


@pytest.mark.parametrize("mode", ["hidden", "summary"])
def test_reasoning_modes(engine, client, mode):
    full = ask(client, max_tokens=4, extra_body=think(150)).choices[0].message.model_extra["reasoning_content"]
    with Running(create_app(engine, ServeConfig(reasoning=mode, log_requests=False), "tiny")) as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        r = ask(c, max_tokens=4, extra_body=think(150))
        _, parts, usage, _ = _collect(ask(c, max_tokens=4, extra_body=think(150), stream=True,
                                          stream_options={"include_usage": True}))
        answer_only = ask(c, max_tokens=4, logprobs=True, extra_body=think(150)).choices[0].logprobs.content
    extra = r.choices[0].message.model_extra
    assert r.usage.completion_tokens_details.reasoning_tokens == usage.completion_tokens_details.reasoning_tokens
    assert 0 < usage.completion_tokens_details.reasoning_tokens <= 150  # the model may close </think> itself
    assert parts[0]["content"] == r.choices[0].message.content
    if mode == "hidden":
        assert "reasoning_content" not in extra and "reasoning" not in extra and parts[0]["reasoning"] == ""
        assert len(answer_only) == 4  # log-probs must not leak the hidden reasoning tokens
    else:
        assert extra["reasoning_content"] == extra["reasoning"] == summarize(full) == parts[0]["reasoning"]
        assert 0 < len(extra["reasoning_content"]) <= 200 < len(full)


def test_logprobs_cover_every_generated_token(client):
    r = ask(client, max_tokens=5, logprobs=True, extra_body=think(6))
    lp = r.choices[0].logprobs.content
    assert len(lp) == r.usage.completion_tokens == 11 + C and all(t.logprob <= 0 for t in lp)
    text = "".join(t.token for t in lp)
    assert "</think>" in text and r.choices[0].message.model_extra["reasoning_content"] in text
    assert ask(client, max_tokens=5, extra_body=think(6)).choices[0].logprobs is None  # only when asked


def test_remote_backend_through_another_ponder_server(server, client):
    """``ponder serve openai:tiny@URL``: this server fronts another one (here: the test server)."""
    from ponder.generate.openai_backend import OpenAIBackend

    remote = OpenAIBackend("tiny", server.url + "/v1", api_key="x", max_retries=0)
    with Running(create_app(remote, ServeConfig(log_requests=False), "front")) as s:
        front = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        r = ask(front, model="front", max_tokens=6, extra_body=think(10))
        _, parts, usage, _ = _collect(ask(front, model="front", max_tokens=6, extra_body=think(10), stream=True,
                                          stream_options={"include_usage": True}))
    direct = ask(client, max_tokens=6, extra_body=think(10)).choices[0].message
    msg = r.choices[0].message
    assert msg.model_extra["reasoning_content"] == direct.model_extra["reasoning_content"]
    # the remote request asks for budget + max_tokens in all (no exact cut-off over HTTP): a longer answer
    assert msg.content.startswith(direct.content) and r.usage.completion_tokens_details.reasoning_tokens == 10 + C
    assert parts[0] == {"reasoning": msg.model_extra["reasoning_content"], "content": msg.content}
    assert usage.completion_tokens == r.usage.completion_tokens


def test_summarize_keeps_first_and_last_sentence():
    assert summarize("Add the ones. So it is 7.") == "Add the ones."
    s = summarize("First I add the ones. Then the tens carry. Then check it. So the answer is 7.")
    assert s.startswith("First I add the ones.") and s.endswith("So the answer is 7.") and "carry" not in s
    assert len(summarize("word " * 500, max_chars=50)) <= 50 and summarize("  ") == ""


def test_cli_serve_help_and_errors(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["serve", "--help"])
    assert r.exit_code == 0 and "--reasoning" in r.output and "--api-key" in r.output
    r = runner.invoke(cli, ["serve", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "missing" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["serve", str(tmp_path), "--reasoning", "loud"])
    assert r.exit_code == 2 and "reasoning" in r.output


def test_cli_serve_loads_the_checkpoint_and_applies_options(tmp_path, monkeypatch):
    import uvicorn

    tiny_engine(save_to=tmp_path / "m")
    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))  # do not block
    r = CliRunner().invoke(cli, ["serve", str(tmp_path / "m"), "--port", "8123", "--api-key", "k",
                                 "--reasoning", "hidden", "--set", "max_n=2"])
    assert r.exit_code == 0, r.output
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8123)
    state = seen["app"].state.ponder
    assert (state.cfg.max_n, state.cfg.reasoning, state.model_name) == (2, "hidden", "m")
    with Running(seen["app"]) as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="k", max_retries=0)
        out = ask(c, model="m", max_tokens=3, extra_body=think(4))
        assert out.usage.completion_tokens == 7 + C and "reasoning_content" not in out.choices[0].message.model_extra
        with pytest.raises(openai.BadRequestError):
            ask(c, model="m", max_tokens=3, n=3)  # max_n=2 from --set
