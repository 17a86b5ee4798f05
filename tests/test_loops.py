"""Reasoning loops: the detector (``ponder.format.loops``) on real and constructed text, and the
loop guard of the local engine on a decoder scripted to loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.format import find_loop, looped, tail_loop
from ponder.format.loops import words
from ponder.generate import Budget, GenerationError, SamplingParams

REAL = Path(__file__).parent / "data" / "real" / "smollm2_gsm8k_greedy.jsonl"


@pytest.mark.parametrize("units, period, span", [
    ([7] * 30, 1, 30),
    (list("ab" * 15), 2, 30),
    (words("so x = 2 " * 7), 4, 28),
    (words("Step one. " + "The son's age is 1 year before the son's age. " * 4 + "Done."), 10, 40),
])
def test_a_cycle_repeated_over_the_span_is_a_loop(units, period, span):
    loop = find_loop(units)
    assert loop is not None and loop.period == period and loop.span == span


@pytest.mark.parametrize("text", [
    "very very good",
    "1 1 1 1 1 1 1 1",  # a short run of one token is not a loop: it must cover the span
    " ".join(str(i) for i in range(60)),
    "16 - 3 - 4 = 9 eggs. 9 * 2 = 18 dollars. She makes 18 dollars a day. #### 18",
    ("Let me check: 2 + 3 = 5. Let me check again: 2 + 3 = 5. " * 2),  # a check repeated twice is emphasis
])
def test_ordinary_text_is_not_a_loop(text):
    assert not looped(text)


def test_tail_loop_sees_only_a_loop_that_is_still_going():
    stuck = words("the answer is " + "10 years past " * 10)
    assert tail_loop(stuck) is not None
    assert tail_loop(stuck + ["so", "the", "answer", "is", "40"]) is None  # it got out again
    assert find_loop(stuck + ["so", "the", "answer", "is", "40"]) is not None  # but it did loop
    assert tail_loop(stuck, start=len(stuck) - 10) is None  # only the last 10 words are watched


def test_real_smollm2_outputs_loop_where_a_reader_sees_a_loop():
    """Greedy SmolLM2-135M-Instruct on GSM8K (recorded by ponder eval, see the file's header),
    each completion labelled by reading it: the detector flags exactly the exact cycles, not the
    repetitive-but-changing ones (a counter going up is not stuck), and nothing that ended by itself."""
    rows = [json.loads(line) for line in REAL.read_text().splitlines() if line.startswith("{")]
    assert len(rows) >= 30 and {r["by_eye"] for r in rows} == {"loop", "varies", "none"}
    for r in rows:
        assert looped(r["completion"]) == (r["by_eye"] == "loop"), (r["id"], r["by_eye"])
    assert all(r["finish_reason"] == "length" for r in rows if r["by_eye"] == "loop")


def test_bad_guard_settings_are_named():
    with pytest.raises(GenerationError, match="loop_guard must be"):
        Budget(loop_guard="break")
    with pytest.raises(GenerationError, match="loop_span"):
        Budget(loop_guard="stop", loop_span=1)


# ---------------------------------------------------------------------------- the engine's guard


@pytest.fixture()
def scripted(monkeypatch):
    """A tiny LocalEngine whose sampler emits a scripted token cycle: A B C A B C …"""
    import torch

    import ponder.generate.continuous as continuous
    import ponder.generate.local as local
    from ponder.testing import tiny_engine

    engine = tiny_engine()
    cycle = [engine.tokenizer.convert_tokens_to_ids(t) for t in ("a", "b", "c")]
    assert len(set(cycle)) == 3 and not set(cycle) & set(engine.eos_ids)
    step = {"i": 0}

    def sample(logits, sp, gen):
        out = torch.tensor([cycle[step["i"] % 3]] * logits.shape[0])
        step["i"] += 1
        return out

    monkeypatch.setattr(local, "sample", sample)
    monkeypatch.setattr(continuous, "sample", sample)  # ponder serve decodes in its continuous batch
    return engine


PROMPT = "User: What is 1 + 1?\nAssistant: <think>"


def test_without_a_guard_the_scripted_decoder_loops_to_the_limit(scripted):
    c = scripted.generate([PROMPT], sampling=SamplingParams(max_tokens=90))[0][0]
    assert c.finish_reason == "length" and c.loop_breaks == 0 and len(c.token_ids) == 90 and not c.think_closed


def test_stop_ends_the_completion_at_the_loop(scripted):
    c = scripted.generate([PROMPT], sampling=SamplingParams(max_tokens=90), budget=Budget(loop_guard="stop"))[0][0]
    assert c.finish_reason == "stop" and c.loop_breaks == 1
    assert len(c.token_ids) == 24  # the default span: 24 tokens of the cycle


def test_close_forces_the_answer_and_a_loop_in_the_answer_stops_it(scripted):
    c = scripted.generate([PROMPT], sampling=SamplingParams(max_tokens=90),
                          budget=Budget(loop_guard="close", loop_span=12))[0][0]
    assert c.think_closed and not c.forced_close  # closed by the guard, not by a budget
    assert c.loop_breaks == 2 and c.finish_reason == "stop"  # the answer looped too
    assert c.reasoning_tokens < 20 and 0 < c.answer_tokens < 20


def test_serve_runs_the_guard_per_request_and_counts_the_breaks(scripted):
    import httpx

    from ponder.generate import load_backend
    from ponder.serve import Running, ServeConfig, create_app

    body = {"model": "tiny", "messages": [{"role": "user", "content": "What is 1 + 1?"}], "max_tokens": 90}
    with Running(create_app(scripted, ServeConfig(), "tiny")) as s:
        plain = httpx.post(s.url + "/v1/chat/completions", json=body, timeout=60).json()
        guarded = httpx.post(s.url + "/v1/chat/completions", json={**body, "ponder": {"loop_guard": "stop"}},
                             timeout=60).json()
        # a client of ponder serve asks for it through the Budget, like a local engine
        b = load_backend(f"openai:tiny@{s.url}/v1")
        assert b.capabilities.loop_guard
        c = b.generate(["What is 1 + 1?"], sampling=SamplingParams(max_tokens=90), budget=Budget(loop_guard="stop"))[0][0]
    assert plain["choices"][0]["finish_reason"] == "length" and "loop_breaks" not in plain["usage"]
    assert guarded["choices"][0]["finish_reason"] == "stop" and guarded["usage"]["loop_breaks"] == 1
    assert guarded["usage"]["completion_tokens"] == 24
    # OpenAI's "stop" is a natural end, ponder's "eos"; the break comes back in usage
    assert c.finish_reason == "eos" and c.loop_breaks == 1 and c.reasoning_tokens + c.answer_tokens < 90


def test_a_generic_endpoint_refuses_the_guard_before_any_request():
    from ponder.generate.openai_backend import OpenAIBackend

    b = OpenAIBackend("m", "http://127.0.0.1:9/v1", ponder_server=False)
    assert not b.capabilities.loop_guard
    with pytest.raises(GenerationError, match="loop_guard watches every token"):
        b.generate(["q"], budget=Budget(loop_guard="close"))
    assert b.requests == 0
