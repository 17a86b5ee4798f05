"""Strategy logic against a scripted fake backend, so every vote, score and stop is known by hand.

``Fake`` answers each request from a script ``(prompt, call, sample) -> text`` (or
``(text, logprob per token)``), one token per character, honouring stop strings like a real
backend (the text is cut before the stop string, whose characters still count as tokens).
It records every request, so tests can check what a strategy asked for.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.format import Thinking, decide_thinking, ends_in_think, render
from ponder.generate.types import DEFAULT_EFFORT_BUDGETS, Budget, Capabilities, SamplingParams, make_completion
from ponder.strategies import (
    STRATEGIES,
    StrategyError,
    StrategyResult,
    run_batch,
    run_strategy,
    strategy_options,  # fmt: skip
)
from ponder.strategies.router import intent, router_report
from ponder.strategies.voting import leader_confidence
from ponder.tasks import get_task

P = "User: question\nAssistant: <think>"
# the same prompt as a conversation (refine continues it; the router reads its user turn)
PP = render("question", None, Thinking("on", "prefill", ""))
assert PP.text == P


class Fake:
    """A Backend whose completions come from ``script(prompt, call, j)``."""

    capabilities = Capabilities(local=True, token_level=True, streaming=False, concurrent=False, logprobs=True)
    thinking = decide_thinking("on")
    tokenizer = None
    effort_table = dict(DEFAULT_EFFORT_BUDGETS)
    name, max_positions, eos_ids, budget_honoured = "fake", None, frozenset({0}), True

    def __init__(self, script):
        self.script = script
        self.calls: list[dict] = []

    def decode(self, ids):
        return "".join(chr(i) for i in ids if i)

    def generate(self, prompts, n=1, sampling=None, budget=None):
        sp = sampling or SamplingParams()
        call = len(self.calls)
        self.calls.append({"prompts": list(prompts), "n": n, "sampling": sp, "budget": budget})
        out = []
        for p in prompts:
            group = []
            for j in range(n):
                got = self.script(p, call, j)
                text, lp = got if isinstance(got, tuple) else (got, -0.5)
                # a pre-filled block the script never closes ran out of tokens (no answer)
                finish = "length" if ends_in_think(p) and "</think>" not in text else "eos"
                cuts = [(text.find(s), s) for s in sp.stop if s in text]
                if cuts:
                    at, s = min(cuts)
                    text, finish = text[: at + len(s)], "stop"
                ids = [ord(ch) for ch in text] + ([0] if finish == "eos" else [])
                group.append(make_completion(ids, lambda t: "".join(chr(i) for i in t if i), finish,
                                             [lp] * len(ids), ends_in_think(p), sp.stop, frozenset({0})))
            out.append(group)
        return out


def seq(*answers, lps=None):
    """A script giving sample j the reasoning 'r' and answer ``answers[j]`` (cycled over calls)."""
    flat = list(answers)
    count = {"i": 0}

    def script(p, call, j):
        a = flat[count["i"] % len(flat)]
        lp = lps[count["i"] % len(lps)] if lps else -0.5
        count["i"] += 1
        return (f"r</think>{a}" if a is not None else "r r r", lp)

    return script


# --------------------------------------------------------------------------- registry and errors


def test_every_registered_strategy_is_documented_with_its_options():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "strategies.md").read_text()
    for name in STRATEGIES:
        assert f"`{name}`" in doc, f"strategy {name!r} is registered but docs/strategies.md does not describe it"
        for opt in strategy_options(name):
            assert opt in doc, f"option {opt!r} of strategy {name!r} is not in docs/strategies.md"


@pytest.mark.parametrize("call, match", [
    (lambda b: run_strategy("nope", b, P), "unknown strategy 'nope'.*majority"),
    (lambda b: run_strategy("majority", b, P, n=0), "n must be an int >= 1"),
    (lambda b: run_strategy("majority", b, P, n=4, bogus=1), "no option 'bogus'.*equal"),
    (lambda b: run_strategy("single", b, P, n=3), "one sample"),
    (lambda b: run_strategy("majority", b, P, equal="fuzzy"), "equal must be"),
    (lambda b: run_strategy("best_of_n", b, P, n=2, scorer="oracle"), "unknown scorer 'oracle'"),
    (lambda b: run_strategy("best_of_n", b, P, n=2, scorer="verifier"), "needs task= and example="),
    (lambda b: run_strategy("best_of_n", b, P, n=2, scorer=lambda p, c: "high"), "must return a float"),
    (lambda b: run_strategy("beam", b, P, scorer=lambda p, c: None), "must return a float"),
    (lambda b: run_strategy("beam", b, P, delimiter=""), "delimiter must be a non-empty string"),
    (lambda b: run_strategy("mcts", b, P, c_uct=-1), "c_uct must be"),
    (lambda b: run_strategy("tools", b, P, sampling=SamplingParams(stop=["x"])), "sets its own stop strings"),
    (lambda b: run_strategy("refine", b, PP, feedback=lambda c: None, revise_template="again"), "{feedback}"),
    (lambda b: run_strategy("router", b, P, difficulty="vibes"), "difficulty must be"),
    (lambda b: run_strategy("refine", b, PP), "refine needs feedback"),
    (lambda b: run_strategy("beam", b, P, budget=Budget(effort="low")), "does not take a thinking budget"),
    (lambda b: run_strategy("adaptive_majority", b, P, confidence=0.3), "confidence must be"),
    (lambda b: run_strategy("router", b, P, strategy="router"), "router's strategy"),
    (lambda b: run_strategy("majority", b, P, sampling={"temperature": 1}), "sampling must be a SamplingParams"),
    (lambda b: run_batch("majority", b, [P, P], examples=[None]), "1 examples for 2 prompts"),
    (lambda b: run_batch("majority", b, P), "prompts must be a list"),
])  # fmt: skip
def test_bad_input_is_a_clear_value_error(call, match):
    with pytest.raises(StrategyError, match=match) as e:
        call(Fake(seq("1")))
    assert isinstance(e.value, ValueError)


# --------------------------------------------------------------------------- voting


def test_single_reports_answer_and_token_totals():
    r = run_strategy("single", Fake(seq("42")), P)
    assert isinstance(r, StrategyResult) and r.answer == "42" and r.reasoning == "r"
    c = r.samples[0]
    assert r.tokens == len(c.token_ids) == r.reasoning_tokens + r.answer_tokens
    assert r.reasoning_tokens == len("r</think>")


def test_majority_pools_equivalent_answers():
    script = seq("3", "1/2", "0.5", "0.50", None)
    r = run_strategy("majority", Fake(script), P, n=5)
    assert r.answer == "1/2" and r.trace["votes"] == {"1/2": 3.0, "3": 1.0}
    assert r.trace["keys"][4] is None  # no answer: no vote
    assert r.text == r.samples[1].text  # the first sample of the winning group
    # without the equivalence the three spellings split and the earliest leader wins
    assert run_strategy("majority", Fake(seq("3", "1/2", "0.5", "0.50")), P, n=4, equal="exact").answer == "3"
    assert run_strategy("majority", Fake(seq("3", "1/2", "0.5", "0.50")), P, n=4, equal="math-fast").answer == "1/2"
    assert r.tokens == sum(len(c.token_ids) for c in r.samples)


def test_majority_with_no_answers_has_no_answer():
    r = run_strategy("majority", Fake(seq(None)), P, n=3)
    assert r.answer is None and r.trace["votes"] == {}


def test_weighted_majority_by_confidence_can_overrule_the_count():
    script = seq("5", "5", "9", lps=[-3.0, -3.0, -0.01])
    assert run_strategy("majority", Fake(script), P, n=3).answer == "5"
    r = run_strategy("weighted_majority", Fake(seq("5", "5", "9", lps=[-3.0, -3.0, -0.01])), P, n=3)
    assert r.answer == "9"
    assert r.trace["votes"]["9"] == pytest.approx(math.exp(-0.01))
    # a scorer with negative scores is squashed into positive weights
    r = run_strategy("weighted_majority", Fake(seq("5", "5", "9")), P, n=3,
                     scorer=lambda p, c: 4.0 if c.answer == "9" else -4.0)
    assert r.answer == "9" and all(w > 0 for w in r.trace["vote_weights"])


def test_best_of_n_takes_the_top_score_and_the_verifier_scorer():
    r = run_strategy("best_of_n", Fake(seq("1", "2", "3")), P, n=3, scorer=lambda p, c: -abs(int(c.answer) - 2))
    assert r.answer == "2" and r.trace["chosen"] == 1 and r.completion is r.samples[1]
    task = get_task("addition")
    ex = next(task.examples())
    wrong, right = str(int(ex["gold"]) + 1), ex["gold"]
    r = run_strategy("best_of_n", Fake(seq(wrong, right, wrong)), P, n=3, scorer="verifier", task=task, example=ex)
    assert r.answer == right and r.trace["scores"] == [0.0, 1.0, 0.0]
    r = run_strategy("best_of_n", Fake(seq("1", "2", lps=[-0.1, -2.0])), P, n=2)  # default: mean log-prob
    assert r.answer == "1"


def test_leader_confidence_matches_the_beta_integral():
    for a, b in [(3, 0), (4, 1), (6, 3), (2, 2)]:
        steps = 20000  # midpoint rule for P(Beta(a+1, b+1) > 1/2)
        xs = [(i + 0.5) / steps for i in range(steps)]
        dens = [x**a * (1 - x) ** b for x in xs]
        assert leader_confidence(a, b) == pytest.approx(sum(d for x, d in zip(xs, dens) if x > 0.5) / sum(dens),
                                                        abs=1e-4)


def test_adaptive_majority_stops_when_the_leader_cannot_be_overtaken():
    r = run_strategy("adaptive_majority", Fake(seq("4")), P, n=16, batch=4, confidence=None)
    full = run_strategy("majority", Fake(seq("4")), P, n=16)
    assert r.answer == full.answer == "4"
    assert r.trace["samples_used"] == 8 and r.trace["stopped"] == "decided"  # 8 - 0 >= 8 left
    assert r.tokens * 2 == full.tokens and r.trace["tokens_saved"] == full.tokens - r.tokens


def test_adaptive_majority_confidence_rule_and_split_votes():
    r = run_strategy("adaptive_majority", Fake(seq("4")), P, n=16, batch=4)  # 4-0: P = 31/32 >= 0.95
    assert r.trace["samples_used"] == 4 and r.trace["stopped"] == "confident"
    r = run_strategy("adaptive_majority", Fake(seq("4", "5")), P, n=16, batch=4)  # never decided
    assert r.trace["samples_used"] == 16 and r.trace["stopped"] == "budget" and r.trace["tokens_saved"] == 0


def test_adaptive_batch_samples_only_undecided_prompts_and_shifts_seeds():
    def script(p, call, j):
        return "r</think>7" if "easy" in p else f"r</think>{j % 2}"

    fake = Fake(script)
    rs = run_batch("adaptive_majority", fake, ["easy <think>", "hard <think>"], n=8, batch=2,
                   sampling=SamplingParams(seed=5))
    assert [r.trace["samples_used"] for r in rs] == [4, 8]  # 2-0 gives P = 7/8 < 0.95; 4-0 gives 31/32
    assert [c["prompts"] for c in fake.calls] == [["easy <think>", "hard <think>"]] * 2 + [["hard <think>"]] * 2
    assert len({c["sampling"].seed for c in fake.calls}) == 4  # each round draws new samples


def test_run_batch_shares_generate_calls():
    fake = Fake(seq("1", "1", "2"))
    rs = run_batch("majority", fake, [P] * 5, n=3, chunk=2)
    assert len(rs) == 5 and all(r.answer == "1" for r in rs)
    assert [len(c["prompts"]) for c in fake.calls] == [2, 2, 1]


# --------------------------------------------------------------------------- refine


def test_refine_revises_with_verifier_feedback_until_correct():
    task = get_task("addition")
    ex = next(task.examples())
    gold = ex["gold"]

    def script(p, call, j):
        return f"r</think>{gold if 'is wrong' in p else int(gold) + 1}"

    fake = Fake(script)
    r = run_strategy("refine", fake, PP, task=task, example=ex, rounds=3)
    assert r.answer == gold and r.trace["accepted"] and len(r.samples) == 2
    revision = fake.calls[1]["prompts"][0]
    assert f"User: Your answer {int(gold) + 1} is wrong." in revision
    # the conversation, rendered again: the first reply's answer only, and the revision thinks again
    assert f"Assistant: {int(gold) + 1}\n" in revision and "r</think>" not in revision
    assert revision.endswith("Assistant: <think>")
    assert r.tokens == sum(len(c.token_ids) for c in r.samples)


def test_refine_stops_after_r_rounds_and_quotes_failing_tests():
    task = get_task("code")
    ex = next(task.examples())  # is_palindrome
    buggy = "r</think>```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"
    fake = Fake(lambda p, call, j: buggy)
    r = run_strategy("refine", fake, PP, task=task, example=ex, rounds=1)
    assert len(r.samples) == 2 and not r.trace["accepted"]
    fb = r.trace["rounds"][0]["feedback"]
    assert fb.startswith("Your code fails") and "Panama" in fb  # the failing assert is quoted


def test_refine_with_custom_feedback():
    r = run_strategy("refine", Fake(seq("1", "2", "3")), PP, feedback=lambda c: None if c.answer == "3" else "no")
    assert r.answer == "3" and [h["answer"] for h in r.trace["rounds"]] == ["1", "2", "3"]


# --------------------------------------------------------------------------- search


def steps_script(p, call, j):
    """Step k of a trajectory: 'good' or 'bad' (sample 0 is always 'bad'); step 3 answers."""
    k = p.count("\n") - P.count("\n")
    word = "bad" if j == 0 else "good"
    if k >= 2:
        return ("</think>" + ("1" if p.count("good") >= 2 else "0"), -0.2)
    return (f"{word} step\n", -0.1 if word == "bad" else -1.0)


def test_beam_follows_the_process_scorer():
    good = lambda p, c: c.text.count("good") - c.text.count("bad")  # noqa: E731
    r = run_strategy("beam", Fake(steps_script), P, n=1, expand=2, scorer=good)
    assert r.answer == "1" and r.text.startswith("good step\ngood step\n")
    # the default scorer (token confidence) prefers the confident 'bad' steps
    assert run_strategy("beam", Fake(steps_script), P, n=1, expand=2).answer == "0"


def test_search_counts_the_tokens_of_duplicate_steps():
    fake = Fake(lambda p, call, j: "same step\n" if p.count("\n") < 3 else "</think>1")
    for name in ("beam", "mcts"):
        r = run_strategy(name, fake, P, n=2, expand=3)
        generated = sum(c["n"] * len(c["prompts"]) for c in fake.calls)
        assert len(r.samples) == generated and r.tokens == sum(len(c.token_ids) for c in r.samples)
        fake.calls.clear()


def test_beam_trace_and_stop_strings():
    fake = Fake(steps_script)
    r = run_strategy("beam", fake, P, n=2, expand=2, max_steps=5)
    assert all("\n" in c["sampling"].stop for c in fake.calls)
    assert [len(s) for s in r.trace["steps"]][0] == 2 and sum(x["kept"] for x in r.trace["steps"][1]) == 2
    assert r.tokens == sum(len(c.token_ids) for c in r.samples)


def test_mcts_tree_statistics_and_choice():
    fake = Fake(steps_script)
    good = lambda p, c: c.text.count("good") / max(1, c.text.count("\n"))  # noqa: E731
    r = run_strategy("mcts", fake, P, n=10, expand=2, scorer=good)
    tree = r.trace["tree"]
    assert tree[0]["visits"] == 10  # every iteration backs up through the root
    for node in tree[1:]:  # created with 1 visit, +1 when expanded, +1 per later pass to a child
        kids = [t for t in tree if t["parent"] == node["id"]]
        if kids:
            assert node["visits"] == 2 + sum(k["visits"] - 1 for k in kids)
    assert r.answer == "1" and r.trace["how"] == "best finished"


# --------------------------------------------------------------------------- tools


def tool_script(p, call, j):
    if p.endswith("```python\n"):  # asked for the code itself
        return "print(6 * 7)\n```\n"
    if "```output" not in p:
        return "let me compute\n```python\nprint(6 * 7)\n```\n"
    out = p.rsplit("```output\n", 1)[1].split("\n")[0]
    return f"it printed {out}</think>{out}"


def test_tools_runs_the_code_and_continues():
    fake = Fake(tool_script)
    r = run_strategy("tools", fake, P)
    assert r.answer == "42" and r.trace["tool_calls"][0]["output"] == "42"
    assert "```python\nprint(6 * 7)\n```\n```output\n42\n```\n" in r.text
    assert [c["sampling"].stop for c in fake.calls] == [("```python\n",), ("```",), ("```python\n",)]
    assert r.tokens == sum(len(c.token_ids) for c in r.samples) and r.reasoning_tokens == r.tokens - 3


def test_tools_shows_errors_to_the_model_and_limits_calls():
    def script(p, call, j):
        if p.endswith("```python\n"):
            return "1/0\n```"
        return "```python\n1/0\n```" if p.count("```output") < 3 else "done</think>x"

    r = run_strategy("tools", Fake(script), P, max_calls=2)
    assert len(r.trace["tool_calls"]) == 2 and "ZeroDivisionError" in r.trace["tool_calls"][0]["output"]
    assert not r.trace["tool_calls"][0]["ok"]


# --------------------------------------------------------------------------- router


def test_router_intent_and_difficulty():
    assert intent("Please think hard about this") == "think" and intent("just the answer: 2+2") == "fast"
    assert intent("You first think about the reasoning process") is None
    # a conversation's system prompt is not the user: only the user turn states intent
    thinking = Thinking("on", "prefill", "")
    assert intent(render("what is 2+2?", None, thinking, system="Think hard.")) is None
    assert intent(render("Think carefully: 2+2?", None, thinking, system="Be brief.")) == "think"
    fake = Fake(seq("4"))
    r = run_strategy("router", fake, "User: 2+2? Think carefully.\nAssistant: <think>")
    assert r.trace["route"]["path"] == "think" and fake.calls[-1]["budget"] is None
    r = run_strategy("router", fake, "User: what is 2+2?\nAssistant: <think>", budget=Budget(thinking_budget=50))
    assert r.trace["route"]["path"] == "fast" and fake.calls[-1]["budget"].thinking_budget == 0
    r = run_strategy("router", fake, "User: what is 123456 + 987654?\nAssistant: <think>",
                     budget=Budget(thinking_budget=50))
    assert r.trace["route"]["path"] == "think" and fake.calls[-1]["budget"].thinking_budget == 50


def test_router_entropy_probe_counts_its_tokens():
    fake = Fake(lambda p, call, j: ("x", -2.0) if call == 0 else "r</think>1")
    r = run_strategy("router", fake, P, difficulty="entropy", threshold=1.5, probe=3)
    assert fake.calls[0]["n"] == 3 and fake.calls[0]["sampling"].max_tokens == 1
    assert r.trace["route"]["difficulty"] == pytest.approx(2.0) and r.trace["route"]["path"] == "think"
    assert r.tokens == len(r.samples[0].token_ids) + r.trace["route"]["probe_tokens"]


def test_router_report_compares_paths():
    task = get_task("addition")
    exs = list(task.examples())[:4]
    prompts = [f"User: {e['prompt']}\nAssistant: <think>" for e in exs]
    golds = {p: e["gold"] for p, e in zip(prompts, exs)}

    def script(p, call, j):  # thinking is right, the fast path only on the first two
        fast = call == 0
        ok = not fast or p in prompts[:2]
        return ("</think>" if fast else "r r r</think>") + (golds[p] if ok else "0")

    rep = router_report(Fake(script), task, exs, prompts, difficulty=lambda p: float(p in prompts[2:]),
                        threshold=0.5, budget=Budget(thinking_budget=20))
    assert rep["never_think"]["accuracy"] == 0.5 and rep["always_think"]["accuracy"] == 1.0
    assert rep["router"]["accuracy"] == 1.0 and rep["router"]["think_share"] == 0.5
    assert rep["never_think"]["mean_tokens"] < rep["router"]["mean_tokens"] < rep["always_think"]["mean_tokens"]


def test_traces_are_json_serialisable_for_eval_and_serve():
    import json

    task = get_task("addition")
    ex = next(task.examples())
    runs = {
        "single": {}, "majority": {"n": 3}, "weighted_majority": {"n": 3}, "best_of_n": {"n": 3},
        "adaptive_majority": {"n": 4, "batch": 2}, "refine": {"task": task, "example": ex},
        "beam": {}, "mcts": {"n": 3}, "tools": {}, "router": {},
    }  # fmt: skip
    for name, kw in runs.items():
        script = steps_script if name in ("beam", "mcts") else seq("1", "2")
        r = run_strategy(name, Fake(script), PP, **kw)
        assert r.trace["strategy"] == name
        json.dumps(r.trace, allow_nan=True)


def test_refine_with_n_candidates_stops_at_the_first_accepted():
    fake = Fake(seq("1", "3", "5"))
    r = run_strategy("refine", fake, PP, n=3, feedback=lambda c: None if c.answer == "3" else "no")
    assert r.answer == "3" and r.trace["chosen"] == 1 and len(fake.calls) == 1
    assert r.trace["rounds"][0]["answers"] == ["1", "3", "5"] and r.trace["accepted"]


def test_tools_with_n_trajectories_votes_and_batches_steps():
    def script(p, call, j):
        if p.endswith("```python\n"):
            return "print(40 + 2)\n```" if "odd" not in p else "print(1)\n```"
        if "```output" in p:
            out = p.rsplit("```output\n", 1)[1].split("\n")[0]
            return f"</think>{out}"
        return "```python\n```"

    fake = Fake(script)
    r = run_strategy("tools", fake, P, n=3)
    assert r.answer == "42" and r.trace["votes"] == {"42": 3.0}
    assert [len(c["prompts"]) for c in fake.calls] == [3, 3, 3]  # the trajectories advance together


def test_router_votes_when_n_is_above_one():
    r = run_strategy("router", Fake(seq("4", "4", "5")), P, n=3)
    assert r.trace["inner"] == "majority" and r.answer == "4" and len(r.samples) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["1", "2", "3", None]), min_size=8, max_size=8), st.sampled_from([1, 2, 3, 4]))
def test_adaptive_exact_rule_never_changes_the_majority_answer(answers, batch):
    """Stopping only when the leader cannot be overtaken gives majority@n's answer on the same samples."""
    def replay():
        it = iter(answers)
        return Fake(lambda p, call, j: (lambda a: f"r</think>{a}" if a else "r r")(next(it)))

    full = run_strategy("majority", replay(), P, n=8, equal="exact")
    ad = run_strategy("adaptive_majority", replay(), P, n=8, batch=batch, confidence=None, equal="exact")
    assert ad.answer == full.answer
    assert ad.trace["samples_used"] <= 8 and ad.tokens <= full.tokens


def test_best_of_n_with_code_tests_picks_a_passing_program():
    task = get_task("code")
    ex = next(task.examples())  # is_palindrome
    wrong = "r</think>```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"
    right = f"r</think>```python\n{ex['gold']}```"
    r = run_strategy("best_of_n", Fake(lambda p, call, j: [wrong, wrong, right][j]), P, n=3, scorer="verifier",
                     task=task, example=ex)
    assert r.trace["chosen"] == 2 and r.trace["scores"][2] == 1.0 and 0 < r.trace["scores"][0] < 1.0


def test_a_strategy_of_your_own_by_dotted_path(tmp_path, monkeypatch):
    """The docs' example, as a module outside ponder: no registration, the dotted path is the name."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "strategies.md").read_text()
    code = re.search(r"```python\n(# mystrategies\.py.*?)```", doc, re.S).group(1)
    (tmp_path / "mystrategies.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = Fake(lambda p, call, j: "r" * (4 - j) + "</think>" + ("5" if j else "no answer here"))
    r = run_strategy("mystrategies:shortest", fake, P, n=3)
    assert r.trace["strategy"] == "shortest" and len(r.samples) == 3
    assert r.answer == "5" and r.trace["chosen"] == 2  # the shortest of the two with an answer
    with pytest.raises(StrategyError, match="cannot import"):
        run_strategy("nosuch.module:strategy", fake, P)
