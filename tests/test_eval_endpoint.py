"""ponder eval against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server (``ponder.testing.scripted_server``) answers arithmetic questions correctly
after a fixed latency, so accuracy must be exactly 100%, and the number of requests in flight at
once shows whether the harness really runs them concurrently (bounded by --concurrency).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.evaluate.harness import EndpointError, EvalConfig, read_records, run_eval
from ponder.testing import scripted_server

TASK = "addition:digits=2,n_test=12"


def test_endpoint_eval_concurrent_and_exact(tmp_path):
    with scripted_server(latency=0.1) as srv:
        res = run_eval(EvalConfig(model=srv.spec, task=TASK, n=2, concurrency=4, out=str(tmp_path / "r")), progress=False)
    m = res.metrics
    assert m["complete_problems"] == 12 and m["pass@1"]["mean"] == 1.0 and m["maj@k"]["2"] == 1.0
    assert srv.requests == 24  # seeded: one request per sample, each with its own seed
    assert 2 <= srv.max_in_flight <= 4
    recs = read_records(res.out / "samples.jsonl")
    # the question as one user message: the server applies its chat template
    assert recs[0]["prompt"] == [{"role": "user", "content": recs[0]["prompt"][0]["content"]}]
    assert recs[0]["prompt"][0]["content"].startswith("What is")
    assert len({r["seed"] for r in recs}) == 12  # every problem its own seed
    assert all(r["reasoning_tokens"] > 0 and r["reasoning"].startswith("I compute") for r in recs)


def test_failing_endpoint_stops_with_clear_error_keeps_samples_and_resumes(tmp_path):
    out = tmp_path / "r"
    cfg = dict(task=TASK, n=1, concurrency=1, retries=1, max_failures=2, out=str(out))
    with scripted_server() as srv:
        srv.fail_after = 3  # the server breaks down after 3 requests
        with pytest.raises(EndpointError) as err:
            run_eval(EvalConfig(model=srv.spec, **cfg), progress=False)
        assert "2 requests in a row failed" in str(err.value) and "--resume" in str(err.value)
        assert len(read_records(out / "samples.jsonl")) == 3  # finished samples are kept
        srv.fail_after = None  # repaired: resume finishes the 9 missing problems only
        before = srv.requests
        res = run_eval(EvalConfig(model=srv.spec, resume=True, **cfg), progress=False)
    assert srv.requests - before == 9 and res.new_samples == 9
    assert res.metrics["complete_problems"] == 12 and res.metrics["pass@1"]["mean"] == 1.0


def test_failing_endpoint_via_cli(tmp_path):
    with scripted_server(failing=True) as srv:
        r = CliRunner().invoke(app, ["eval", srv.spec, "--task", TASK, "--n", "1", "--retries", "0",
                                     "--max-failures", "2", "--concurrency", "1", "--out", str(tmp_path / "r")])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "requests in a row failed" in text and "500" in text


def test_kill_9_loses_nothing_and_resume_finishes(tmp_path):
    """A real `ponder eval` process killed with SIGKILL mid-run: every record on disk is intact,
    and --resume asks the server only for the problems not yet recorded."""
    out = tmp_path / "r"
    with scripted_server(latency=0.2) as srv:
        args = [sys.executable, "-m", "ponder.cli.main", "eval", srv.spec, "--task", TASK, "--n", "1",
                "--concurrency", "1", "--out", str(out)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                f = out / "samples.jsonl"
                if f.is_file() and f.read_text().count("\n") >= 3:
                    break
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        kept = read_records(out / "samples.jsonl")
        assert 3 <= len(kept) < 12 and len({r["id"] for r in kept}) == len(kept)
        before = srv.requests
        res = run_eval(EvalConfig(model=srv.spec, task=TASK, n=1, concurrency=1, out=str(out), resume=True),
                       progress=False)
        assert srv.requests - before == 12 - len(kept)
    assert res.metrics["complete_problems"] == 12 and res.metrics["pass@1"]["mean"] == 1.0
    assert len(read_records(out / "samples.jsonl")) == 12


def test_eval_against_ponder_serve(tmp_path):
    """The project's own server (ponder serve, tiny random model): the thinking budget reaches the
    server, token counts come back from it, and every sample is recorded and scored."""
    from ponder.serve import Running, ServeConfig, create_app
    from ponder.testing import tiny_engine

    with Running(create_app(tiny_engine(), ServeConfig(log_requests=False), "tiny")) as s:
        cfg = EvalConfig(model=f"openai:tiny@{s.url}/v1", task="addition:digits=1,n_test=3", n=2, max_tokens=6,
                         thinking_budget=5, concurrency=2, out=str(tmp_path / "r"))
        res = run_eval(cfg, progress=False)
    recs = read_records(res.out / "samples.jsonl")
    assert len(recs) == 6 and res.metrics["complete_problems"] == 3
    # seeded samples are one request each, so the server's usage is exact per sample: the budget
    # bounds each one's own reasoning, plus the forced "\n</think>" (two tokens)
    assert all(0 < r["reasoning_tokens"] <= 5 + 2 for r in recs) and not any(r["tokens_estimated"] for r in recs)
    assert all(r["thinking_budget"] == 5 and r["tokens"] > 0 for r in recs)
    assert all(r["reason"] for r in recs) and res.metrics["tokens_per_second"] > 0
