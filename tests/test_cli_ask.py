"""``ponder ask`` and ``ponder chat`` (typer CliRunner), and token streaming from a local model.

Two kinds of MODEL: a tiny random Llama saved to a temp dir (built here, nothing downloaded),
and the fake OpenAI-compatible server of tests/fake_openai_server.py, whose replies are known
("thinking about Q step 0" / "ans:Q:0"), so what is shown or hidden can be checked exactly.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fake_openai_server import REQUESTS, serve
from ponder.cli.chat import chat_prompt
from ponder.cli.main import app
from ponder.format import THINK_OPEN, build_prompt
from ponder.generate import Budget, SamplingParams
from ponder.generate.backends import load_backend, prompt_for, stream
from ponder.models.build import build_model, save
from ponder.models.tokenizer import train_tokenizer

runner = CliRunner()
TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    texts = [f"User: What is {a} + {b}?\nAssistant: <think>{a}+{b}</think>{a + b}" for a in range(30) for b in range(9)]
    tok = train_tokenizer(texts, vocab_size=300)
    d = tmp_path_factory.mktemp("tiny")
    save(build_model(TINY, tok, seed=0), tok, d)
    return str(d)


@pytest.fixture(scope="module")
def engine(model_dir):
    return load_backend(model_dir)


@pytest.fixture(scope="module")
def url():
    with serve() as u:
        yield u


def test_local_stream_matches_generate(engine):
    prompt = prompt_for(engine, "What is 2 + 3?")
    from ponder.train.common import prompt_for as training_prompt

    # the layout the training stages use (no system turn), with <think> pre-filled
    assert prompt == training_prompt("What is 2 + 3?", engine.tokenizer) + "<think>"
    sp, b = SamplingParams(temperature=0, max_tokens=6), Budget(thinking_budget=10)
    ref = engine.generate([prompt], 1, sp, b)[0][0]
    events = list(stream(engine, prompt, sp, b))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and kinds.count("reasoning") >= 3  # token by token, not one piece
    done = events[-1][1]
    assert done.token_ids == ref.token_ids
    # the random model writes stray <think> tags; parse() drops what precedes one, the stream
    # (which cannot take back printed text) shows it, so compare without them
    streamed = "".join(t for k, t in events if k == "reasoning").replace(THINK_OPEN, "").strip()
    assert streamed.endswith(ref.reasoning.replace(THINK_OPEN, "").strip())
    assert "".join(t for k, t in events if k == "answer").strip() == ref.answer


def test_ask_local_streams_and_counts_tokens(model_dir, engine):
    res = runner.invoke(app, ["ask", model_dir, "What is 2 + 3?", "--temperature", "0", "--thinking-budget", "10",
                              "--max-tokens", "6"])
    assert res.exit_code == 0, res.output
    ref = engine.generate([prompt_for(engine, "What is 2 + 3?")], 1, SamplingParams(temperature=0, max_tokens=6),
                          Budget(thinking_budget=10))[0][0]
    total = ref.reasoning_tokens + ref.answer_tokens
    assert f"tokens: {ref.reasoning_tokens} reasoning + {ref.answer_tokens} answer = {total}" in res.output
    assert ref.reasoning_tokens <= 10 and ("budget cut off" in res.output) == ref.forced_close
    assert ref.reasoning[:20] in res.output


def test_ask_local_json_equals_the_engine(model_dir, engine):
    res = runner.invoke(app, ["ask", model_dir, "What is 7 + 1?", "--json", "--temperature", "0", "--effort", "low",
                              "--max-tokens", "4"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    ref = engine.generate([prompt_for(engine, "What is 7 + 1?")], 1, SamplingParams(temperature=0, max_tokens=4),
                          Budget(effort="low"))[0][0]
    assert (out["text"], out["reasoning_tokens"], out["answer_tokens"]) == (ref.text, ref.reasoning_tokens,
                                                                           ref.answer_tokens)


def test_ask_server_shows_or_hides_thinking(url):
    res = runner.invoke(app, ["ask", f"openai:rc@{url}", "q?"])
    assert res.exit_code == 0, res.output
    assert "thinking about q? step 0" in res.output and "ans:q?:0" in res.output
    assert "tokens: 9 reasoning + 3 answer = 12" in res.output
    assert res.output.index("thinking about") < res.output.index("ans:q?:0")
    res = runner.invoke(app, ["ask", f"openai:tags@{url}", "q?", "--hide-thinking"])
    assert res.exit_code == 0, res.output
    assert "thinking about" not in res.output and "thinking…" in res.output and "ans:q?:0" in res.output


def test_ask_with_a_strategy_votes(url):
    res = runner.invoke(app, ["ask", f"openai:const@{url}", "q", "--strategy", "majority", "--n", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["answer"] == "42" and out["samples"] == 3 and out["strategy"] == "majority"
    assert REQUESTS[-1]["n"] == 3
    res = runner.invoke(app, ["ask", f"openai:const@{url}", "q", "--strategy", "majority", "--n", "3"])
    assert res.exit_code == 0, res.output
    assert "answer: 42" in res.output and "over 3 samples" in res.output and "votes 42: 2" in res.output


@pytest.mark.parametrize("args, message", [
    (["ask", "/no/such/model", "q"], "does not exist"),
    (["ask", "openai:m", "q"], "openai:<model>@<base_url>"),
    (["ask", "/no/such/model", "q", "--effort", "huge"], "effort must be"),
    (["ask", "/no/such/model", "q", "--thinking-budget", "4", "--min-thinking", "8"], "exceeds thinking_budget"),
    (["chat", "/no/such/model"], "does not exist"),
])
def test_user_errors_are_one_line(args, message):
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_ask_unknown_strategy(url):
    res = runner.invoke(app, ["ask", f"openai:rc@{url}", "q", "--strategy", "nope"])
    assert res.exit_code == 2 and "unknown strategy 'nope'" in res.output


def test_chat_toggles_thinking_and_keeps_history(url):
    res = runner.invoke(app, ["chat", f"openai:rc@{url}"],
                        input="hello\n/think off\nagain\n/budget 5\n/frob\n/exit\n")
    assert res.exit_code == 0, res.output
    first, second = res.output.split("thinking hidden")
    assert "thinking about hello step 0" in first and "ans:hello:0" in first
    assert "thinking about" not in second and "ans:again:0" in second
    assert "thinking budget 5 tokens" in second and "unknown command '/frob'" in second
    body = REQUESTS[-1]  # the second turn carries the first answer, without its reasoning
    assert body["messages"] == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "ans:hello:0"},
                                {"role": "user", "content": "again"}]


def test_chat_local_model_and_multi_turn_prompt(model_dir, engine):
    res = runner.invoke(app, ["chat", model_dir, "--max-tokens", "4", "--thinking-budget", "6", "--temperature", "0"],
                        input="What is 1 + 1?\n")  # ends with EOF, like Ctrl-D
    assert res.exit_code == 0, res.output
    assert "tokens:" in res.output
    msgs = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "2+2?"}]
    p = chat_prompt(engine, msgs)
    assert p.endswith(THINK_OPEN) and p.index("1+1?") < p.index("Assistant: 2") < p.index("2+2?")
    assert chat_prompt(engine, msgs[:1]) == build_prompt("1+1?", system="", tokenizer=engine.tokenizer)
    assert not p.startswith("You are")  # no system turn the model was never trained with


def test_closing_a_local_stream_stops_the_engine(engine, monkeypatch):
    results = []
    real = engine.generate

    def spy(*a, **kw):
        results.append(real(*a, **kw))
        return results[-1]

    monkeypatch.setattr(engine, "generate", spy)
    sp = SamplingParams(temperature=0, max_tokens=900, ignore_eos=True)
    events = stream(engine, prompt_for(engine, "What is 1 + 2?"), sp)
    first = [next(events) for _ in range(3)]
    assert all(k in ("reasoning", "answer") for k, _ in first)
    events.close()  # what Ctrl-C in chat does: the worker is told to stop and joined
    assert len(results) == 1 and len(results[0][0][0].token_ids) < 900
    assert results[0][0][0].finish_reason == "length"


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from(["<think>", "</think>", "<", "/", "think", ">", "a", " ", "\n"]), max_size=12)
       .map("".join), cuts=st.lists(st.integers(0, 60), max_size=6), prefilled=st.booleans())
def test_think_splitter_does_not_depend_on_chunking(text, cuts, prefilled):
    """Deltas can split a tag anywhere: the pieces must not depend on where, and once the
    think block closed the answer is exactly what follows the first </think>."""
    from ponder.format import THINK_CLOSE
    from ponder.generate.backends import ThinkSplitter

    def run(chunks):
        s = ThinkSplitter(prefilled)
        out = [e for c in chunks for e in s.feed(c)] + s.flush()
        return "".join(t for k, t in out if k == "reasoning"), "".join(t for k, t in out if k == "answer"), s.closed

    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0] + points, points + [len(text)])]
    whole = run([text])
    assert run(chunks) == whole
    body = text.lstrip()
    if prefilled or body.startswith("<think>"):  # a think block: split exactly at the first </think>
        inner = text if prefilled else body[len("<think>"):]
        head, close, tail = inner.partition(THINK_CLOSE)
        assert whole == ((head, tail, True) if close else (inner, "", False))
    elif body:
        assert whole == ("", text, False)  # plain text: all answer


def test_every_inference_path_prompts_a_local_model_in_its_training_layout(engine):
    """eval, ask/chat and budget-curve must not add a system turn the model never saw in training."""
    from ponder.evaluate.harness import EvalConfig
    from ponder.evaluate.harness import prompt_for as eval_prompt
    from ponder.train.common import prompt_for as training_prompt

    trained = training_prompt("What is 2 + 3?", engine.tokenizer)
    text, prefilled = eval_prompt(engine, "What is 2 + 3?", EvalConfig(model="m", task="addition"))
    assert prefilled and text == trained + THINK_OPEN
    assert prompt_for(engine, "What is 2 + 3?") == trained + THINK_OPEN
    assert chat_prompt(engine, [{"role": "user", "content": "What is 2 + 3?"}]) == trained + THINK_OPEN
    # an explicit system prompt is still honoured
    assert prompt_for(engine, "What is 2 + 3?", system="Be brief.").startswith("Be brief.")
