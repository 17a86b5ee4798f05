"""The int8 decode paths of ``LocalEngine`` (``quantize="int8"`` weight-only, ``"int8-dynamic"``)
on the real SmolLM2-135M-Instruct: they run, stay close to float32's greedy output on GSM8K
questions, and bad input is a one-line error. Their speed is measured in bench/generate.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.generate import GenerationError, LocalEngine, SamplingParams, load_backend, prompt
from ponder.generate.backends import ModelSpecError

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
NEW = 24


@pytest.fixture(scope="module")
def model_tok(smollm2_dir):
    from ponder.models import load

    model, tok = load(smollm2_dir)
    return model.eval(), tok


@pytest.fixture(scope="module")
def reference(model_tok):
    """8 GSM8K questions under SmolLM2's chat template and float32's greedy tokens for them."""
    if not GSM8K.is_file():
        pytest.skip(f"{GSM8K} not found")
    engine = LocalEngine(*model_tok, num_threads=1, prefix_cache=0)
    questions = [json.loads(line)["question"] for line in GSM8K.read_text().splitlines()[:8]]
    texts = [prompt(engine, q).text for q in questions]
    sp = SamplingParams(temperature=0, max_tokens=NEW, ignore_eos=True)
    return texts, [c[0].token_ids for c in engine.generate(texts, sampling=sp)]


def common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


@pytest.mark.parametrize("quantize", ["int8", "int8-dynamic"])
def test_int8_greedy_stays_close_to_float32(model_tok, reference, quantize):
    texts, ref = reference
    engine = LocalEngine(*model_tok, num_threads=1, prefix_cache=0, quantize=quantize)
    assert engine.path == "fast" and engine.quantize == quantize and "int8" in engine.path_reason
    sp = SamplingParams(temperature=0, max_tokens=NEW, ignore_eos=True)
    got = [c[0] for c in engine.generate(texts, sampling=sp)]
    prefixes = [common_prefix(c.token_ids, r) for c, r in zip(got, ref)]
    # the first token comes from the float32 prefill; a broken int8 matmul (wrong scale or layout)
    # derails every row by its second token, while per-channel int8 keeps most rows on float32's
    # path for many tokens (measured: mean 15-20 of 24; llama.cpp Q8_0 is in bench/generate.py)
    assert all(p >= 1 for p in prefixes), prefixes
    assert sum(prefixes) / len(prefixes) >= 10, prefixes
    assert all(len(c.token_ids) == NEW and len(c.logprobs) == NEW and c.text for c in got)
    single = engine.generate(texts[:1], sampling=sp)[0][0]  # the one-row step takes the same weights
    assert common_prefix(single.token_ids, ref[0]) >= 4


def test_quantize_bad_input_is_a_one_line_error(model_tok, smollm2_dir, smollm2_gguf):
    with pytest.raises(GenerationError, match="quantize must be one of int8, int8-dynamic"):
        LocalEngine(*model_tok, quantize="int4")
    with pytest.raises(GenerationError, match="runs in the fast decode step.*fast=False was requested"):
        LocalEngine(*model_tok, quantize="int8", fast=False)
    with pytest.raises(ModelSpecError, match="GGUF file"):
        load_backend(str(smollm2_gguf), quantize="int8")
    with pytest.raises(ModelSpecError, match="endpoint"):
        load_backend("openai:m@http://127.0.0.1:9/v1", quantize="int8")
    r = CliRunner().invoke(app, ["ask", str(smollm2_dir), "What is 2+3?", "--quantize", "int4"])
    assert r.exit_code == 2 and "quantize must be one of" in r.output and "Traceback" not in r.output


def test_cli_ask_runs_int8(smollm2_dir):
    r = CliRunner().invoke(app, ["ask", str(smollm2_dir), "What is 2+3?", "--quantize", "int8", "--temperature", "0",
                                 "--max-tokens", "24", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert "5" in out["answer"], out


def test_served_int8_answers_concurrent_requests(model_tok):
    """``ponder serve --quantize int8`` decodes in the continuous batch: concurrent requests join
    the int8 step and each gets its own answer to its own question."""
    import threading

    import httpx

    from ponder.serve import Running, ServeConfig, create_app

    engine = LocalEngine(*model_tok, quantize="int8")
    questions = {"What is 2+3?": "5", "What is the capital of France?": "Paris"}
    out: dict[str, str] = {}
    with Running(create_app(engine, ServeConfig(log_requests=False, batch_window_ms=200), "smollm2-int8")) as s:
        def ask(q: str) -> None:
            body = {"model": "smollm2-int8", "messages": [{"role": "user", "content": q}], "max_tokens": 24,
                    "temperature": 0}
            r = httpx.post(s.url + "/v1/chat/completions", json=body, timeout=120)
            out[q] = r.json()["choices"][0]["message"]["content"]

        threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for q, want in questions.items():
        assert want in out[q], (q, out[q])
