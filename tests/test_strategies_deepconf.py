"""DeepConf against scripted backends whose per-token log-probs are set by hand: which traces are
filtered, where a trace stops, when sampling stops, and what the vote says."""

from __future__ import annotations

import math

import pytest

from ponder.format import decide_thinking, ends_in_think
from ponder.generate.types import DEFAULT_EFFORT_BUDGETS, Capabilities, SamplingParams, make_completion
from ponder.strategies import StrategyError, run_batch, run_strategy
from ponder.strategies.deepconf import group_confidences, quantile, stop_point, trace_confidence

P = "User: question\nAssistant: <think>"
SURE, UNSURE = -0.05, -2.0  # log-probs of a confident and an unsure token


def dec(ids):
    return "".join(chr(i) for i in ids if i)


class Fake:
    """One token per character; ``traces`` is a list of (answer, log-prob per reasoning char,
    reasoning length), handed out in order across calls and prompts. With ``hook`` it takes
    ``stop_row`` and stops a row the way the local engine does."""

    thinking = decide_thinking("on")
    tokenizer = None
    effort_table = dict(DEFAULT_EFFORT_BUDGETS)
    name, max_positions, eos_ids, budget_honoured = "fake", None, frozenset({0}), True

    def __init__(self, traces, hook=False):
        self.traces, self.i, self.calls = list(traces), 0, []
        self.capabilities = Capabilities(local=True, token_level=True, streaming=False, concurrent=False,
                                         logprobs=True, stop_hook=hook)

    decode = staticmethod(dec)

    def generate(self, prompts, n=1, sampling=None, budget=None, stop_row=None):
        self.calls.append(n)
        out = []
        for p in prompts:
            group = []
            for _ in range(n):
                ans, lp, length = self.traces[self.i % len(self.traces)]
                self.i += 1
                text = "r" * length + f"</think>{ans}"
                ids = [ord(ch) for ch in text] + [0]
                lps = [lp] * length + [SURE] * (len(ids) - length)
                finish = "eos"
                if stop_row is not None:
                    for k in range(1, len(ids) + 1):
                        if stop_row(len(out) * n + len(group), lps[:k]):
                            ids, lps, finish = ids[:k], lps[:k], "length"
                            break
                group.append(make_completion(ids, dec, finish, lps, ends_in_think(p), (), frozenset({0})))
            out.append(group)
        return out


def test_group_confidence_finds_the_weak_stretch_the_mean_hides():
    lps = [SURE] * 40 + [UNSURE] * 8 + [SURE] * 40
    assert min(group_confidences(lps, 8)) == pytest.approx(UNSURE)
    comp = make_completion([ord("r")] * len(lps), dec, "length", lps, True, (), frozenset())
    assert trace_confidence(comp, "lowest", 8) == pytest.approx(UNSURE)
    assert trace_confidence(comp, "mean", 8) > -0.3  # the global mean barely moves
    assert trace_confidence(comp, "tail", 8) == pytest.approx(SURE)
    assert stop_point(lps, 8, -1.0) == 40 + 4  # the first full window whose mean is below -1
    assert stop_point(lps, 8, -3.0) is None
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5 and quantile([-math.inf, 1.0], 0.0) == -math.inf


def test_offline_filters_low_confidence_traces_and_the_vote_is_right():
    # 3 confident "7"s, 5 unsure "9"s: majority says 9, DeepConf keeping the top 40% says 7
    traces = [("9", UNSURE, 20)] * 5 + [("7", SURE, 20)] * 3
    fake = Fake(traces)
    maj = run_strategy("majority", Fake(traces), P, n=8)
    assert maj.answer == "9"
    r = run_strategy("deepconf", fake, P, n=8, mode="offline", eta=0.375)
    assert r.answer == "7"
    assert r.trace["voters"] == [5, 6, 7]  # the three confident traces
    r = run_strategy("deepconf", Fake(traces), P, n=8, mode="offline", eta=0.5)
    assert r.trace["voters"] == [0, 5, 6, 7]  # ceil(0.5 * 8) = 4: the 7s, then the earliest 9
    assert r.answer == "7"  # three heavy votes outweigh one or two light ones
    assert len(r.samples) == 8 and fake.calls == [8]


def test_online_stops_weak_traces_early_and_stops_sampling_at_consensus():
    # warm-up: 4 confident "7"s; then unsure "9"s that must be cut, then more "7"s
    traces = [("7", SURE, 30)] * 4 + [("9", UNSURE, 30)] * 2 + [("7", SURE, 30)] * 10
    fake = Fake(traces)
    r = run_strategy("deepconf", fake, P, n=16, warmup=4, batch=1, window=8, consensus=0.95)
    assert r.answer == "7"
    # the warm-up is unanimous: consensus at once, nothing more is sampled
    assert r.trace["stopped"] == "consensus" and fake.calls == [4] and r.trace["samples_used"] == 4
    maj = run_strategy("majority", Fake(traces), P, n=16)
    assert r.tokens < maj.tokens / 3


@pytest.mark.parametrize("hook", [False, True])
def test_online_cuts_low_confidence_traces_and_they_do_not_vote(hook):
    # warm-up disagrees (3 x 7 confident, 1 x 5 confident): no consensus at 0.95; then 2 unsure 9s
    # (cut after one window, no vote) and confident 7s until the 7s hold 95% of the weight
    traces = [("7", SURE, 30)] * 3 + [("5", SURE, 30)] + [("9", UNSURE, 30)] * 2 + [("7", SURE, 30)] * 20
    fake = Fake(traces, hook=hook)
    r = run_strategy("deepconf", fake, P, n=40, warmup=4, batch=1, window=8, eta=0.9, consensus=0.95)
    assert r.answer == "7"
    assert r.trace["early_stopped"] == [4, 5]
    for j in (4, 5):
        s = r.samples[j]
        assert len(s.token_ids) == 8 and s.finish_reason == "length"  # stopped after one window
        assert r.trace["answers"][j] is None  # a stopped trace does not vote
    assert r.trace["stopped"] == "consensus"
    full = len(r.samples[0].token_ids)
    assert r.tokens == (len(r.samples) - 2) * full + 2 * 8


def test_online_batch_shares_generate_calls_across_prompts():
    traces = [("7", SURE, 10)]
    fake = Fake(traces)
    rs = run_batch("deepconf", fake, [P, P, P], n=8, warmup=2)
    assert [r.answer for r in rs] == ["7", "7", "7"] and fake.calls == [2]


@pytest.mark.parametrize("kw, match", [
    ({"mode": "both"}, "mode must be"), ({"confidence": "vibes"}, "confidence must be"),
    ({"eta": 0}, "eta must be"), ({"consensus": 1.5}, "consensus must be"),
    ({"scorer": "logprob"}, "does not use a scorer"),
])  # fmt: skip
def test_bad_options_are_clear_errors(kw, match):
    with pytest.raises(StrategyError, match=match):
        run_strategy("deepconf", Fake([("7", SURE, 5)]), P, n=8, **kw)


def test_the_local_engine_stops_a_row_when_stop_row_says_so():
    from ponder.testing import tiny_engine

    eng = tiny_engine(hidden=32, layers=1)
    eng.num_threads = 1  # no thread tuning: a few steps only
    assert eng.capabilities.stop_hook
    sp = SamplingParams(temperature=1.0, max_tokens=10, seed=1)
    free = eng.generate(["User: 1 + 2\nAssistant: <think>"], n=2, sampling=sp)[0]
    cut = eng.generate(["User: 1 + 2\nAssistant: <think>"], n=2, sampling=sp,
                       stop_row=lambda row, lps: row == 1 and len(lps) >= 5)[0]
    assert all(len(c.token_ids) > 5 for c in free)
    # row 1 stops after its 5th token; row 0 runs on (the draws after the stop differ: one generator)
    assert len(cut[1].token_ids) == 5 and cut[1].finish_reason == "length" and cut[1].token_ids == free[1].token_ids[:5]
    assert len(cut[0].token_ids) > 5
