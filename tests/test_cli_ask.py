"""``ponder ask`` and ``ponder chat`` (typer CliRunner), and token streaming from a local model.

Two kinds of MODEL: a tiny random Llama saved to a temp dir (built here, nothing downloaded),
and the scripted OpenAI-compatible server of ponder.testing (model ``rc``), whose replies are known
("thinking about Q step 0" / "ans:Q:0"), so what is shown or hidden can be checked exactly.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.generate import Budget, SamplingParams, load_backend, prompt
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


@pytest.mark.parametrize("thinking", ["auto", "on", "off"])
def test_local_stream_equals_generate(model_dir, thinking):
    engine = load_backend(model_dir, thinking=thinking)
    p = prompt(engine, "What is 2 + 3?").payload
    sp, b = SamplingParams(temperature=1.0, seed=1, max_tokens=24), Budget(thinking_budget=10)
    ref = engine.generate([p], 1, sp, b)[0][0]
    events = list(engine.stream(p, sp, b))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and len(kinds) >= 4, ref.text  # token by token, not one piece
    done = events[-1][1]
    assert done.token_ids == ref.token_ids
    # exactly the non-streamed split, whatever the random model writes
    assert "".join(t for k, t in events if k == "reasoning") == ref.reasoning
    assert "".join(t for k, t in events if k == "answer") == ref.answer


def test_ask_local_streams_and_counts_tokens(model_dir, engine):
    res = runner.invoke(app, ["ask", model_dir, "What is 2 + 3?", "--temperature", "0", "--thinking-budget", "10",
                              "--max-tokens", "6"])
    assert res.exit_code == 0, res.output
    ref = engine.generate([prompt(engine, "What is 2 + 3?").payload], 1, SamplingParams(temperature=0, max_tokens=6),
                          Budget(thinking_budget=10))[0][0]
    total = ref.reasoning_tokens + ref.answer_tokens
    assert f"tokens: {ref.reasoning_tokens} reasoning + {ref.answer_tokens} answer = {total}" in res.output
    assert ("budget cut off" in res.output) == ref.forced_close
    assert (ref.reasoning or ref.answer)[:20] in res.output


def test_ask_local_json_equals_the_engine(model_dir, engine):
    res = runner.invoke(app, ["ask", model_dir, "What is 7 + 1?", "--json", "--temperature", "0", "--effort", "low",
                              "--max-tokens", "4"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    ref = engine.generate([prompt(engine, "What is 7 + 1?").payload], 1, SamplingParams(temperature=0, max_tokens=4),
                          Budget(effort="low"))[0][0]
    assert (out["text"], out["reasoning_tokens"], out["answer_tokens"]) == (ref.text, ref.reasoning_tokens,
                                                                           ref.answer_tokens)
    assert (out["reasoning"], out["answer_text"], out["think_closed"]) == (ref.reasoning, ref.answer, ref.think_closed)


def test_ask_server_shows_or_hides_thinking(url):
    res = runner.invoke(app, ["ask", f"openai:rc@{url}", "q?"])
    assert res.exit_code == 0, res.output
    assert "thinking about q? step 0" in res.output and "ans:q?:0" in res.output
    assert "tokens: 9 reasoning + 3 answer = 12" in res.output
    assert res.output.index("thinking about") < res.output.index("ans:q?:0")
    res = runner.invoke(app, ["ask", f"openai:tags@{url}", "q?", "--hide-thinking"])
    assert res.exit_code == 0, res.output
    assert "thinking about" not in res.output and "thinking…" in res.output and "ans:q?:0" in res.output


def test_ask_with_a_strategy_votes(url, srv):
    res = runner.invoke(app, ["ask", f"openai:const@{url}", "q", "--strategy", "majority", "--n", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["answer"] == "42" and out["samples"] == 3 and out["strategy"] == "majority"
    assert srv.bodies[-1]["n"] == 3
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


def test_chat_toggles_thinking_and_keeps_history(url, srv):
    res = runner.invoke(app, ["chat", f"openai:rc@{url}"],
                        input="hello\n/think off\nagain\n/budget 5\n/frob\n/exit\n")
    assert res.exit_code == 0, res.output
    first, second = res.output.split("thinking hidden")
    assert "thinking about hello step 0" in first and "ans:hello:0" in first
    assert "thinking about" not in second and "ans:again:0" in second
    assert "thinking budget 5 tokens" in second and "unknown command '/frob'" in second
    body = srv.bodies[-1]  # the second turn carries the first answer, without its reasoning
    assert body["messages"] == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "ans:hello:0"},
                                {"role": "user", "content": "again"}]


def test_chat_local_model_and_multi_turn_prompt(model_dir, engine):
    res = runner.invoke(app, ["chat", model_dir, "--max-tokens", "4", "--thinking-budget", "6", "--temperature", "0"],
                        input="What is 1 + 1?\n")  # ends with EOF, like Ctrl-D
    assert res.exit_code == 0, res.output
    assert "tokens:" in res.output
    msgs = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "2+2?"}]
    p = prompt(engine, msgs).text
    assert p.index("1+1?") < p.index("Assistant: 2") < p.index("2+2?") and p.endswith("Assistant: ")
    assert not p.startswith("You are")  # no system turn the model was never trained with


def test_closing_a_local_stream_stops_the_engine(engine, monkeypatch):
    results = []
    real = engine.generate

    def spy(*a, **kw):
        results.append(real(*a, **kw))
        return results[-1]

    monkeypatch.setattr(engine, "generate", spy)
    sp = SamplingParams(temperature=1.0, seed=1, max_tokens=900, ignore_eos=True)
    events = engine.stream(prompt(engine, "What is 1 + 2?").payload, sp)
    first = [next(events) for _ in range(3)]
    assert all(k in ("reasoning", "answer") for k, _ in first)
    events.close()  # what Ctrl-C in chat does: the worker is told to stop and joined
    assert len(results) == 1 and len(results[0][0][0].token_ids) < 900
    assert results[0][0][0].finish_reason == "length"


def test_every_inference_path_prompts_a_local_model_in_its_training_layout(engine):
    """eval, ask/chat, budget-curve, serve and the training stages render one prompt for one
    model: ponder.format.render under the checkpoint's recorded thinking start."""
    from ponder.evaluate.harness import EvalConfig  # noqa: F401  (eval renders through ponder.generate.prompt)
    from ponder.serve.protocol import ChatRequest, render_messages
    from ponder.train.common import prompt_for as training_prompt
    from ponder.train.common import thinking_for

    q = "What is 2 + 3?"
    trained = training_prompt(q, engine.tokenizer, thinking_for(engine.tokenizer, engine.model.config))
    assert engine.thinking.start == "model"  # the checkpoint records how ponder trains its models
    assert prompt(engine, q).text == trained == "User: What is 2 + 3?\nAssistant: "
    served = render_messages(ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": q}]})
                             .messages, engine, think=True)
    assert served.text == trained
    # an explicit system prompt is still honoured
    assert prompt(engine, q, system="Be brief.").text.startswith("Be brief.")
