"""Rewards behind one registry: names TRL logs, specs with weights, a user's reward by dotted
path or over HTTP, TRL's GRPOTrainer wiring, batched code judging and the gold columns of TRL
and open-r1 datasets.
"""

from __future__ import annotations

import json
import math
import pickle

import pytest
from fastapi import Request  # module level: FastAPI resolves the (string) annotation of the test server here

from ponder.rewards import (
    REWARDS,
    Cosine,
    Format,
    RewardSpecError,
    TagCount,
    UnknownRewardError,
    accuracy,
    combine,
    get_reward,
    parse_reward_spec,
)

# completions as models write them (the same texts as test_rewards.py)
GSM_GOOD = (
    "<think>\nJanet's ducks lay 16 eggs a day. She eats 3 and bakes with 4, so she sells "
    "16 - 3 - 4 = 9 eggs. At $2 each she makes 9 * 2 = $18.\n</think>\n"
    "She makes 9 * 2 = 18 dollars every day.\n#### 18"
)
ZERO_GOOD = "<think>\n2 bolts of blue, half that of white: 1. Total 2 + 1 = 3.\n</think>\n<answer>3</answer>"


# ============================================================================ registry


def test_registry_names_are_what_trl_logs_and_rewards_pickle():
    from trl.trainer.utils import get_callable_name

    for name in REWARDS:
        func = get_reward(name)
        assert get_callable_name(func) == name
        clone = pickle.loads(pickle.dumps(func))  # TRL's async worker pickles reward funcs
        assert clone([ZERO_GOOD], prompts=["q"], gold=["3"]) == func([ZERO_GOOD], prompts=["q"], gold=["3"])


def test_parse_reward_spec_builds_funcs_and_weights():
    funcs, weights = parse_reward_spec(
        "accuracy=1, format=0.5, cosine(max_len=2048, min_value_wrong=-2)=2, language_consistency(script=cjk)"
    )
    assert [f.__name__ for f in funcs] == ["accuracy", "format", "cosine", "language_consistency"]
    assert weights == [1.0, 0.5, 2.0, 1.0]
    assert (funcs[2].max_len, funcs[2].min_value_wrong) == (2048, -2.0)
    assert funcs[3].script == "cjk"
    funcs, weights = combine({"accuracy": 1, "tag_count": 0.25})
    assert funcs[0] is accuracy and isinstance(funcs[1], TagCount) and weights == [1.0, 0.25]


@pytest.mark.parametrize("spec,error,match", [
    ("accuracy=1, acuracy=2", UnknownRewardError, "known: accuracy, format"),
    ("accuracy=high", RewardSpecError, "weight of 'accuracy' must be a number"),
    ("accuracy, accuracy=2", RewardSpecError, "listed twice"),
    ("accuracy(strict=True)", RewardSpecError, "takes no parameters"),
    ("cosine(max_len=2048", RewardSpecError, "unbalanced"),
    ("cosine(max_length=2048)", RewardSpecError, "bad parameters"),
    ("language_consistency(script=klingon)", RewardSpecError, "unknown script"),
    ("accuracy,,format", RewardSpecError, "empty item"),
])
def test_bad_reward_spec_is_rejected(spec, error, match):
    with pytest.raises(error, match=match):
        parse_reward_spec(spec)


def test_get_reward_error_is_a_value_error_listing_names():
    with pytest.raises(ValueError, match="unknown reward 'acc'; known: .*cosine"):
        get_reward("acc")


# ============================================================================ TRL wiring


def test_rewards_plug_into_trl_grpo_trainer(tmp_path):
    """One real GRPO step with a tiny random Llama: TRL's own call convention reaches our rewards.

    The tokenizer is a byte-level BPE trained in memory on a few lines (no hub download); the
    model is random, so its completions are noise. What is checked is the wiring: TRL accepts the
    functions and weights, calls them with its keywords (prompts, completion_ids, dataset columns,
    trainer_state, log_extra ...), and logs each under its registry name.
    """
    import torch
    from datasets import Dataset
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([GSM_GOOD, ZERO_GOOD, "What is 2 + 3? <think>"], vocab_size=300,
                            special_tokens=["<|eos|>", "<|pad|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|eos|>", pad_token="<|pad|>")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(config)
    data = Dataset.from_list([
        {"prompt": "What is 2 + 3? <think>", "gold": "5", "meta": json.dumps({"level": 1})},
        {"prompt": "What is 4 + 4? <think>", "gold": "8", "meta": json.dumps({"level": 1})},
    ])
    funcs, weights = parse_reward_spec("accuracy=1, format=0.5, tag_count=0.25, overlong(max_len=12, cache=8)=1")
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=8, max_steps=1, use_cpu=True, bf16=False,
                      activation_checkpointing=False, report_to=[], logging_steps=1, save_strategy="no",
                      reward_weights=weights, disable_tqdm=True)
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=data, processing_class=tok)
    assert trainer.reward_func_names == ["accuracy", "format", "tag_count", "overlong"]
    trainer.train()
    logs = trainer.state.log_history[0]
    for name, (lo, hi) in {"accuracy": (0, 1), "format": (0, 1), "tag_count": (0, 1), "overlong": (-1, 0)}.items():
        value = logs[f"rewards/{name}/mean"]
        assert math.isfinite(value) and lo <= value <= hi, (name, value)
    # The prompts end in <think>: TRL passed them, so the pre-fill was detected and its tag counted
    # (random text rarely repeats "<think>"; with this seed it does not).
    assert logs["rewards/tag_count/mean"] >= 0.25
    # overlong was measured in tokens (TRL's completion_ids), not characters
    soft = funcs[3]
    shortest, longest = logs["completions/min_length"], logs["completions/max_length"]
    assert soft.value(longest) <= logs["rewards/overlong/mean"] <= soft.value(shortest)


def test_accuracy_for_code_judges_a_batch_in_parallel_and_keeps_the_order(monkeypatch):
    """Code completions are judged by running them in the sandbox, several at once: the verdicts
    must come back in the completions' order, the same as one at a time."""
    from ponder.rewards import functions
    from ponder.tasks import get_task

    problems = {e["id"]: e for e in get_task("code").examples()}
    pal, fizz = problems["code/is_palindrome"], problems["code/fizzbuzz"]
    right_pal = f"<think>normalise then compare</think>\n```python\n{pal['gold']}```"
    wrong_pal = "<think>just reverse</think>\n```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"
    right_fizz = f"<think>loop to n</think>\n```python\n{fizz['gold']}```"
    crash = "<think>hmm</think>\n```python\nprint(1 / 0)\n```"
    rows = [(right_pal, pal, 1.0), (wrong_pal, pal, 0.0), (right_fizz, fizz, 1.0), (crash, fizz, 0.0),
            (right_fizz, None, None), (right_pal, pal, 1.0), ("<think>no code yet", fizz, 0.0)]
    columns = dict(
        gold=[None if ex is None else ex["gold"] for _, ex, _ in rows],
        task=["code"] * len(rows),
        meta=[json.dumps((ex or fizz)["meta"]) for _, ex, _ in rows],
        id=[(ex or fizz)["id"] for _, ex, _ in rows],
    )
    expected = [want for _, _, want in rows]
    functions._judge.cache_clear()
    assert accuracy([c for c, _, _ in rows], **columns) == expected
    monkeypatch.setattr(functions, "JUDGE_THREADS", 1)
    functions._judge.cache_clear()
    assert accuracy([c for c, _, _ in rows], **columns) == expected


# ============================================================================ the contract's guarantees


def test_ponder_grpo_prompts_give_no_format_credit_to_a_completion_that_never_opens_think():
    """ponder's GRPO prompts end in "Assistant: " (the model opens <think> itself): a completion
    that closes a block it never opened is not the format, and earns nothing for it."""
    prompts = ["User: What is 2 + 3?\nAssistant: "] * 2
    hack = ["2 + 3 = 5</think>5", "2 + 3 = 5</think><answer>5</answer>"]
    assert Format()(hack, prompts=prompts) == [0.0, 0.0]
    assert TagCount("think")(hack[:1], prompts=prompts[:1]) == [0.0]
    assert TagCount("r1-zero")(hack[1:], prompts=prompts[1:]) == [0.5]  # the <answer> pair only: nobody opened <think>
    good = ["<think>2 + 3 = 5</think>5"]
    assert Format()(good, prompts=prompts[:1]) == [1.0] and TagCount("think")(good, prompts=prompts[:1]) == [1.0]


def test_a_list_that_ends_alike_is_not_the_gold_list():
    # "and"-lists once collapsed to their last item: \boxed{1, 2, and 82} paid 1.0 against 19, 46, and 82
    comps = ["<think>r</think>\\boxed{1, 2, and 82}", "<think>r</think>\\boxed{82}",
             "<think>r</think>\\boxed{46, 19, and 82}", "<think>r</think>\\boxed{19, 46, and 82}"]
    assert accuracy(comps, gold=["19, 46, and 82"] * 4) == [0.0, 0.0, 1.0, 1.0]


def test_trl_and_open_r1_datasets_name_the_gold_solution(caplog):
    comps = ["<think>r</think>\\boxed{18}", "<think>r</think>\\boxed{17}"]
    assert accuracy(comps, solution=["18", "18"]) == [1.0, 0.0]
    assert Cosine(max_len=100)(comps, solution=["18", "18"])[0] > 0
    import logging

    from ponder.rewards import _inputs

    _inputs._warned.discard("missing")
    with caplog.at_level(logging.WARNING, logger="ponder.rewards"):
        assert accuracy(comps) == [None, None]
    assert any("no gold column" in m for m in caplog.messages)


def test_an_unverifiable_gold_gives_none_as_trl_does():
    comps = ["<think>r</think>\\boxed{5}"] * 2
    assert accuracy(comps, gold=["\\frac{", "5"]) == [None, 1.0]
    assert Cosine(max_len=100)(comps, gold=["\\frac{", "5"])[0] is None


def test_bare_words_in_a_spec_are_strings():
    funcs, _ = parse_reward_spec("format(template=r1-zero)=0.5, tag_count(template=think)")
    assert funcs[0].template == "r1-zero" and funcs[1].template == "think"


def test_a_reward_of_your_own_by_dotted_path(tmp_path, monkeypatch):
    (tmp_path / "myrewards.py").write_text(
        "def brevity(completions, **kw):\n"
        "    return [1.0 / (1 + len(c)) for c in completions]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    funcs, weights = parse_reward_spec("accuracy=1, myrewards:brevity=0.1")
    assert funcs[1](["ab", "abcd"]) == [1 / 3, 1 / 5] and weights == [1.0, 0.1]
    with pytest.raises(UnknownRewardError, match="cannot import module 'nope.rewards'"):
        parse_reward_spec("nope.rewards:brevity")


def test_a_reward_served_over_http(tmp_path):
    """A FastAPI reward server on loopback: the batch goes out with its columns, the floats come
    back; a 5xx is retried, a wrong answer is an error naming the server."""
    import threading

    import uvicorn
    from fastapi import FastAPI

    from ponder.rewards.remote import RemoteReward, RemoteRewardError
    from ponder.testing import free_port

    app, seen, fails = FastAPI(), [], {"n": 1}

    @app.post("/score")
    async def score(request: Request):
        body = await request.json()
        seen.append(body)
        if fails["n"]:
            fails["n"] -= 1
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": "warming up"}, status_code=503)
        return {"rewards": [float(c == body["gold"][i]) for i, c in enumerate(body["completions"])]}

    @app.post("/short")
    async def short(request: Request):
        return {"rewards": [1.0]}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        import time

        time.sleep(0.02)
    try:
        funcs, weights = parse_reward_spec(f"http://127.0.0.1:{port}/score(timeout=5, backoff=0.01, name=judge)=0.5")
        r = funcs[0]
        assert r.__name__ == "judge" and weights == [0.5]
        assert r(["5", "6"], gold=["5", "5"], prompts=["q", "q"], trainer_state=object()) == [1.0, 0.0]
        assert len(seen) == 2 and seen[-1]["prompts"] == ["q", "q"] and "trainer_state" not in seen[-1]
        import pickle

        assert pickle.loads(pickle.dumps(r)).url == r.url
        with pytest.raises(RemoteRewardError, match="must answer 2 rewards"):
            RemoteReward(f"http://127.0.0.1:{port}/short")(["a", "b"])
        with pytest.raises(RemoteRewardError, match="kept failing"):
            RemoteReward(f"http://127.0.0.1:{free_port()}/x", retries=1, backoff=0.01, timeout=2)(["a"])
    finally:
        server.should_exit = True
        t.join(5)
