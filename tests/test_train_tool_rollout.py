"""Tool-augmented GRPO rollouts: inserted tool output is masked, the call cap holds, errors become text,
and the per-step tool metrics count what happened."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ponder.generate import SamplingParams
from ponder.strategies.tools import CLOSE_FENCE, output_block
from ponder.train.tool_rollout import rollout_stats, tool_rollouts


class Tok:
    def encode(self, text, add_special_tokens=False):
        return [1000 + ord(ch) for ch in text]  # one id per character: inserted spans are countable


class Scripted:
    """An engine that writes the given pieces in order (one per generate call), each 'stopped'."""

    def __init__(self, pieces):
        self.pieces, self.prompts = list(pieces), []

    def generate(self, prompts, n=1, sampling=None):
        self.prompts.append((prompts[0], tuple(sampling.stop)))
        text = self.pieces.pop(0)
        finish = "stop" if sampling.stop and self.pieces else "length"
        # as LocalEngine: the text is cut before the stop string, the sampled tokens include it
        sampled = text + (sampling.stop[0] if finish == "stop" else "")
        return [[SimpleNamespace(text=text, token_ids=[ord(ch) for ch in sampled], logprobs=[-0.5] * len(sampled),
                                 finish_reason=finish)]]


def _run(pieces, max_calls=2, max_tokens=400):
    eng = Scripted(pieces)
    ids, lps, mask, calls = tool_rollouts(eng, Tok(), ["Q: 123*45? <think>"], SamplingParams(seed=0), max_tokens,
                                          max_calls)
    return eng, ids[0], lps[0], mask[0], calls[0]


def test_tool_output_is_masked_and_model_tokens_are_not():
    eng, ids, lps, mask, calls = _run(["Let me compute.\n", "print(123*45)\n", "</think>5535"], max_calls=1)
    assert [(c["code"], c["output"], c["ok"]) for c in calls] == [("print(123*45)\n", "5535", True)]
    assert len(ids) == len(lps) == len(mask)
    inserted = "".join(chr(i - 1000) for i, m in zip(ids, mask) if m == 0)
    assert inserted == "\n```output\n5535\n```\n"  # the sandbox really ran the code; only its output is inserted
    sampled = "".join(chr(i) for i, m in zip(ids, mask) if m == 1)
    # the fences are the model's own tokens (trained), each once: none is inserted again
    assert sampled == "Let me compute.\n```python\nprint(123*45)\n```</think>5535"
    assert all(lp == 0.0 for lp, m in zip(lps, mask) if m == 0)
    # after the cap the last call has no stop strings: the model finishes freely
    assert eng.prompts[-1][1] == ()
    assert "5535" in eng.prompts[-1][0]  # the output is in the context the model continues from


def test_sandbox_error_becomes_output_text():
    _, ids, _, mask, calls = _run(["x\n", "import time\nwhile True: pass\n", "1/0\n", "</think>0"], max_calls=2)
    inserted = "".join(chr(i - 1000) for i, m in zip(ids, mask) if m == 0)
    assert len(calls) == 1  # the second piece is prose before a fence, not code: see the scripted order
    assert not calls[0]["ok"] and "output" in inserted


def test_untrusted_code_runs_only_in_sandbox(tmp_path):
    target = tmp_path / "pwned"
    _run(["a\n", f"open({str(target)!r}, 'w').write('x')\nprint('done')\n", "</think>1"], max_calls=1)
    assert not target.exists()


def test_step_metrics_count_calls_errors_and_masked_tokens():
    _, ok_ids, _, ok_mask, ok_calls = _run(["Let me compute.\n", "print(123*45)\n", "</think>5535"], max_calls=1)
    _, err_ids, _, err_mask, err_calls = _run(["x\n", "print(1/0)\n", "</think>0"], max_calls=1)
    _, plain_ids, _, plain_mask, plain_calls = _run(["</think>5535"], max_calls=0)
    assert err_calls[0]["ok"] is False and "ZeroDivisionError" in err_calls[0]["output"]
    stats = rollout_stats([ok_calls, err_calls, plain_calls], [ok_mask, err_mask, plain_mask])
    assert stats["tool_calls"] == pytest.approx(2 / 3)
    assert stats["tool_use_share"] == pytest.approx(2 / 3)
    assert stats["tool_error_share"] == pytest.approx(1 / 2)
    # the scripted tokenizer has one id per character: the inserted text's length is its token count
    inserted = [len(output_block(o)) - len(CLOSE_FENCE) for o in ("5535", err_calls[0]["output"])]
    total = len(ok_ids) + len(err_ids) + len(plain_ids)
    assert stats["masked_share"] == pytest.approx(sum(inserted) / total)
    no_tools = rollout_stats([plain_calls], [plain_mask])
    assert no_tools == {"tool_calls": 0.0, "tool_use_share": 0.0, "tool_error_share": None, "masked_share": 0.0}


class PerRow:
    """An engine that writes each row's own pieces (keyed by the row's prompt), all rows in one call."""

    def __init__(self, pieces):
        self.pieces, self.limits = {k: list(v) for k, v in pieces.items()}, []

    def generate(self, prompts, n=1, sampling=None):
        self.limits.append(sampling.max_tokens)
        out = []
        for p in prompts:
            todo = self.pieces[next(k for k in self.pieces if p.startswith(k))]
            text = todo.pop(0)[: sampling.max_tokens]
            stopped = bool(sampling.stop) and bool(todo)
            sampled = text + (sampling.stop[0] if stopped else "")
            out.append([SimpleNamespace(text=text, token_ids=[ord(ch) for ch in sampled],
                                        logprobs=[-0.5] * len(sampled), finish_reason="stop" if stopped else "length")])
        return out


def test_a_long_row_does_not_cut_the_others_short():
    long_prose = "Let me think about this for a good while first, carefully.\n"  # B then has ~20 tokens left
    eng = PerRow({"A:": ["x\n", "print(6*7)\n", "</think>" + "4" * 60], "B:": [long_prose, "print(1)\n", "</think>1"]})
    ids, _, mask, calls = tool_rollouts(eng, Tok(), ["A:", "B:"], SamplingParams(seed=0), 120, 1)
    assert [len(c) for c in calls] == [1, 1]
    a_sampled = "".join(chr(i) for i, m in zip(ids[0], mask[0]) if m == 1)
    assert a_sampled.endswith("</think>" + "4" * 60)  # A's answer was not cut to what B had left
    assert all(len(i) <= 120 for i in ids)  # B, the longer row, is still capped at max_tokens
