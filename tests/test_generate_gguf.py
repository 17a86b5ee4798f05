"""The in-process llama.cpp backend (``ponder.generate.gguf``) on the real SmolLM2-135M Q4_1 GGUF.

The reference is plain llama-cpp-python on the same file (a second ``Llama``, fresh context for
every comparison, ``logits_all`` for its log-probs). The few-shot system prompt ``FEW_SHOT``
makes SmolLM2 close its think block by itself after 13 tokens on "What is 3+5?" (greedy:
"\\n3 plus 5 is 8.\\n</think>\\nThe answer is 8."), which the budget, forcing and stop-string
tests cut into. Every generation is short: the file takes about 45 s on the shared 2-core machine, most of it
imports and llama.cpp decoding on one thread.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.format import THINK_CLOSE, find_loop
from ponder.format.loops import words
from ponder.generate import Budget, SamplingParams, load_backend, prompt

llama_cpp = pytest.importorskip("llama_cpp")
from ponder.generate.gguf import GGUFBackend  # noqa: E402 - after the skip

runner = CliRunner()
FEW_SHOT = ("Think briefly inside <think> </think>, then give the answer.\nExample: What is 2+2?\n"
            "<think>\n2 plus 2 is 4.\n</think>\nThe answer is 4.")
GREEDY = SamplingParams(temperature=0, max_tokens=24)


@pytest.fixture(scope="module")
def backend(smollm2_gguf):
    return load_backend(str(smollm2_gguf), thinking="on", n_ctx=1024)


@pytest.fixture(scope="module")
def plain(smollm2_gguf):
    return llama_cpp.Llama(str(smollm2_gguf), n_ctx=256, n_threads=1, logits_all=True, verbose=False)


@pytest.fixture(scope="module")
def fs(backend):
    """The few-shot prompt and its free greedy completion."""
    text = prompt(backend, "What is 3+5?", system=FEW_SHOT).text
    return text, backend.generate([text], sampling=GREEDY)[0][0]


def plain_completion(llm, text: str, max_tokens: int) -> dict:
    """Plain llama-cpp-python: greedy from a fresh context, with its own per-token log-probs."""
    llm.reset()
    return llm.create_completion(text, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0, top_k=0,
                                 top_p=1.0, min_p=0.0, logprobs=1)["choices"][0]


def test_it_is_the_backend_for_a_gguf_file_and_declares_what_it_does(backend):
    assert isinstance(backend, GGUFBackend)
    caps = backend.capabilities
    assert caps.local and caps.token_level and caps.logprobs and caps.forcing and caps.loop_guard
    assert not caps.concurrent and backend.budget_honoured
    assert backend.thinking.start == "prefill" and backend.tokenizer.chat_template
    # the ids are llama.cpp's own: what ponder counts is what llama.cpp evaluates
    ids = backend.tokenizer.encode("<|im_start|>user\n2+3?<|im_end|>", add_special_tokens=False)
    assert ids == backend.llm.tokenize(b"<|im_start|>user\n2+3?<|im_end|>", add_bos=False, special=True)
    assert ids[0] == 1 and backend.decode(ids) == "<|im_start|>user\n2+3?<|im_end|>"


def test_greedy_output_and_logprobs_equal_plain_llama_cpp(backend, plain):
    text = prompt(backend, "What is 17 + 25?").text
    ref = plain_completion(plain, text, 16)
    for _ in range(2):  # the second call reuses the cached prompt and must not change a token
        c = backend.generate([text], sampling=SamplingParams(temperature=0, max_tokens=16))[0][0]
        assert c.text == ref["text"] and len(c.token_ids) == 16 and c.finish_reason == "length"
        assert len(c.logprobs) == len(c.token_ids) and all(lp <= 0 for lp in c.logprobs)
        np.testing.assert_allclose(c.logprobs, ref["logprobs"]["token_logprobs"], atol=1e-4)
        assert c.mean_logprob == pytest.approx(sum(ref["logprobs"]["token_logprobs"]) / 16, abs=1e-4)
    assert backend.prompt_evaluated == 2  # the whole prompt was cached: two tokens re-evaluated


def test_the_model_closes_its_own_think_block_on_the_few_shot_prompt(fs):
    _, free = fs
    assert free.think_closed and not free.forced_close and free.answer.strip() == "The answer is 8."
    assert free.reasoning_tokens == 13


def test_a_thinking_budget_cuts_the_reasoning_at_exactly_n_tokens_then_closes(backend, fs):
    text, free = fs
    close = backend.tokenizer.encode("\n" + THINK_CLOSE + "\n", add_special_tokens=False)
    upto = next(j for j in range(1, len(close) + 1) if THINK_CLOSE in backend.decode(close[:j]))
    for n in (0, 6):
        c = backend.generate([text], sampling=GREEDY, budget=Budget(thinking_budget=n))[0][0]
        assert c.forced_close and c.think_closed
        assert c.token_ids[:n] == free.token_ids[:n]  # the model's own reasoning up to the budget
        assert c.token_ids[n : n + len(close)] == close  # then the forced close
        assert c.reasoning_tokens == n + upto and c.answer.strip()


def test_budget_forcing_replaces_an_early_close_with_wait(backend, fs):
    text, free = fs
    c = backend.generate([text], sampling=GREEDY, budget=Budget(min_thinking=20, max_waits=1))[0][0]
    assert c.waits == 1 and "Wait" in c.reasoning
    # the tag's pieces were taken back: the text goes on from just before "</think>"
    assert c.text.startswith(free.text.split(THINK_CLOSE)[0] + "Wait")
    assert c.reasoning_tokens > free.reasoning_tokens


def test_stop_strings_cut_the_text_before_them(backend, fs):
    text, free = fs
    c = backend.generate([text], sampling=SamplingParams(temperature=0, max_tokens=24, stop=["plus"]))[0][0]
    assert c.finish_reason == "stop" and c.text == free.text[: free.text.index("plus")]
    assert c.token_ids == free.token_ids[: len(c.token_ids)] and "plus" in backend.decode(c.token_ids)


def test_seeds_reproduce_and_n_samples_come_grouped(backend, fs):
    text, free = fs
    sp = SamplingParams(temperature=1.0, max_tokens=8, seed=3)
    a = backend.generate([text, text], n=2, sampling=sp)
    b = backend.generate([text, text], n=2, sampling=sp)
    assert [len(g) for g in a] == [2, 2] and all(len(c.logprobs) == len(c.token_ids) for g in a for c in g)
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]
    other = backend.generate([text], n=2, sampling=SamplingParams(temperature=1.0, max_tokens=8, seed=4))
    assert [c.token_ids for c in other[0]] != [c.token_ids for c in a[0]]
    # greedy samples of one prompt are all the free completion (each reuses the cached prompt)
    g = backend.generate([text], n=2, sampling=GREEDY)[0]
    assert all(c.token_ids == free.token_ids for c in g)


def test_a_shared_prefix_is_not_evaluated_again(backend, plain):
    first = [{"role": "user", "content": "Name three colours of the rainbow, please."}]
    second = first + [{"role": "assistant", "content": "Red, orange and yellow."},
                      {"role": "user", "content": "And two more?"}]
    backend.generate([prompt(backend, first).text], sampling=SamplingParams(temperature=0, max_tokens=2))
    text = prompt(backend, second).text
    n = backend.count_tokens(text)
    llama_cpp.llama_perf_context_reset(backend.llm.ctx)
    c = backend.generate([text], sampling=SamplingParams(temperature=0, max_tokens=6))[0][0]
    perf = llama_cpp.llama_perf_context(backend.llm.ctx)
    # the system prompt and the first question came from the KV cache; llama.cpp counts the same
    assert backend.prompt_evaluated == perf.n_p_eval and backend.prompt_evaluated < n - 30
    assert c.text == plain_completion(plain, text, 6)["text"]  # reuse changes no token


def test_the_loop_guard_stops_a_real_loop(backend):
    # SmolLM2 goes on repeating it (eight times: after five, the plain kernels' greedy path breaks off)
    text = " ".join(["I am happy."] * 8)
    free = backend.generate([text], sampling=SamplingParams(temperature=0, max_tokens=40))[0][0]
    assert free.finish_reason == "length" and find_loop(words(free.text)) is not None and free.loop_breaks == 0
    guarded = backend.generate([text], sampling=SamplingParams(temperature=0, max_tokens=40),
                               budget=Budget(loop_guard="stop"))[0][0]
    assert guarded.finish_reason == "stop" and guarded.loop_breaks == 1
    assert len(guarded.token_ids) < 40 and free.token_ids[: len(guarded.token_ids)] == guarded.token_ids


def test_ask_streams_a_gguf_file_through_the_cli(smollm2_gguf):
    r = runner.invoke(app, ["ask", str(smollm2_gguf), "What is 3+5?", "--temperature", "0", "--thinking", "on",
                            "--thinking-budget", "4", "--max-tokens", "6"])
    assert r.exit_code == 0, r.output
    shown = " ".join(r.output.split())  # rich wraps long lines
    assert "tokens: 8 reasoning + 6 answer" in shown and "budget cut off the thinking" in shown
    r = runner.invoke(app, ["ask", str(smollm2_gguf), "What is 3+5?", "--json", "--temperature", "0",
                            "--thinking", "off", "--max-tokens", "6"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["reasoning_tokens"] == 0 and out["answer_tokens"] <= 6 and out["text"].strip()


def test_eval_runs_a_gguf_file_on_a_few_problems(smollm2_gguf, tmp_path):
    out = tmp_path / "ev"
    r = runner.invoke(app, ["eval", str(smollm2_gguf), "--task", "addition:digits=1,n_test=3", "--n", "1",
                            "--temperature", "0", "--max-tokens", "8", "--thinking", "off", "--out", str(out)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and all(x["tokens"] <= 8 for x in recs)
    assert "pass@1" in json.dumps(json.loads((out / "metrics.json").read_text()))


def test_a_missing_or_broken_gguf_is_a_one_line_error(smollm2_gguf, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    cut = tmp_path / "cut.gguf"
    with open(smollm2_gguf, "rb") as f:
        cut.write_bytes(f.read(1 << 16))  # a real header, cut off inside the vocabulary
    for path, says in ((tmp_path / "missing.gguf", "does not exist"), (junk, "not a GGUF file"), (cut, str(cut))):
        r = runner.invoke(app, ["ask", str(path), "hi", "--max-tokens", "2"])
        assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output


def test_serve_runs_a_gguf_file_with_exact_budgets(backend):
    import openai

    from ponder.serve import Running, ServeConfig, create_app

    close = backend.tokenizer.encode("\n" + THINK_CLOSE + "\n", add_special_tokens=False)
    upto = next(j for j in range(1, len(close) + 1) if THINK_CLOSE in backend.decode(close[:j]))
    with Running(create_app(backend, ServeConfig(log_requests=False), "smol")) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        r = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "What is 3+5?"}],
                                           temperature=0, max_tokens=4,
                                           extra_body={"thinking": {"type": "enabled", "budget_tokens": 3}})
    u, msg = r.usage, r.choices[0].message
    assert u.completion_tokens_details.reasoning_tokens == 3 + upto and msg.model_extra["reasoning_content"].strip()
    assert u.completion_tokens <= 3 + len(close) + 4 and msg.content.strip()


def test_a_fresh_process_decodes_the_quantised_file_with_the_backends_defaults(smollm2_gguf):
    """Without the suite's plain-kernel override: on an AMX-flagged CPU llama.cpp's weight repacking
    segfaulted at the first decode of this Q4_1 file, so the backend's default turns it off there."""
    import os
    import subprocess
    import sys

    code = ("import sys; from ponder.generate.gguf import GGUFBackend; from ponder.generate import SamplingParams\n"
            "b = GGUFBackend(sys.argv[1], n_ctx=256, thinking='off')\n"
            "c = b.generate(['The capital of France is'], sampling=SamplingParams(temperature=0, max_tokens=4))[0][0]\n"
            "print(b.repack, len(c.text) > 0)")
    env = {k: v for k, v in os.environ.items() if k != "PONDER_GGUF_REPACK"}
    r = subprocess.run([sys.executable, "-c", code, str(smollm2_gguf)], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    amx = " amx_tile" in next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "")
    assert r.stdout.split() == [str(not amx), "True"]


def test_the_repack_setting_reads_its_environment_variable(monkeypatch):
    from ponder.generate.gguf import GGUFLoadError, default_repack

    for value, want in (("0", False), ("1", True)):
        monkeypatch.setenv("PONDER_GGUF_REPACK", value)
        assert default_repack() is want
    monkeypatch.setenv("PONDER_GGUF_REPACK", "yes")
    with pytest.raises(GGUFLoadError, match="PONDER_GGUF_REPACK must be 0 or 1"):
        default_repack()
