"""Tool-augmented GRPO rollouts: inserted tool output is masked, the call cap holds, errors become text."""

from __future__ import annotations

from types import SimpleNamespace

from ponder.generate import SamplingParams
from ponder.train.tool_rollout import tool_rollouts


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
        return [[SimpleNamespace(text=text, token_ids=[ord(ch) for ch in text], logprobs=[-0.5] * len(text),
                                 finish_reason=finish)]]


def _run(pieces, max_calls=2, max_tokens=400):
    eng = Scripted(pieces)
    ids, lps, mask, calls = tool_rollouts(eng, Tok(), ["Q: 123*45? <think>"], SamplingParams(seed=0), max_tokens,
                                          max_calls)
    return eng, ids[0], lps[0], mask[0], calls[0]


def test_tool_output_is_masked_and_model_tokens_are_not():
    eng, ids, lps, mask, calls = _run(["Let me compute.\n", "print(123*45)\n", "</think>5535"], max_calls=1)
    assert calls == 1
    assert len(ids) == len(lps) == len(mask)
    inserted = "".join(chr(i - 1000) for i, m in zip(ids, mask) if m == 0)
    assert "```output\n5535\n```" in inserted  # the sandbox really ran the code
    sampled = "".join(chr(i) for i, m in zip(ids, mask) if m == 1)
    assert sampled == "Let me compute.\nprint(123*45)\n</think>5535"
    assert all(lp == 0.0 for lp, m in zip(lps, mask) if m == 0)
    # after the cap the last call has no stop strings: the model finishes freely
    assert eng.prompts[-1][1] == ()
    assert "5535" in eng.prompts[-1][0]  # the output is in the context the model continues from


def test_sandbox_error_becomes_output_text():
    _, ids, _, mask, calls = _run(["x\n", "import time\nwhile True: pass\n", "1/0\n", "</think>0"], max_calls=2)
    inserted = "".join(chr(i - 1000) for i, m in zip(ids, mask) if m == 0)
    assert calls == 1  # the second piece is prose before a fence, not code: see the scripted order
    assert "output" in inserted


def test_untrusted_code_runs_only_in_sandbox(tmp_path):
    target = tmp_path / "pwned"
    _run(["a\n", f"open({str(target)!r}, 'w').write('x')\nprint('done')\n", "</think>1"], max_calls=1)
    assert not target.exists()
