"""Rejection sampling: selection (keep all/shortest, dedup), provenance, resume after a kill, CLI.

Most tests use a *scripted* backend whose completions are chosen per prompt from the example's gold
answer, so which samples are correct is known independently of the code under test. One test runs
the real ``LocalEngine`` on a tiny random checkpoint to check the CLI plumbing end to end.
"""

from __future__ import annotations

import json
import re
from itertools import islice

import pytest
from fakes import FakeBackend
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.config import ConfigError
from ponder.generate import Completion
from ponder.tasks import get_task
from ponder.train.sample import SampleConfig, SampleError, paths, rejection_sample, run

TASK = "addition:digits=2,n_train=12"
runner = CliRunner()


def Fake(text: str, token_ids: list[int] | None = None):
    """A completion with the given text and token ids (split as the engine would)."""
    from ponder.format import parse

    p = parse(text)
    ids = list(token_ids or [])
    return Completion(text=text, token_ids=ids, reasoning=p.reasoning, answer=p.answer, reasoning_tokens=0,
                      answer_tokens=len(ids), finish_reason="eos", think_closed=p.think_closed)


def _gold_of(prompt: str) -> int:
    a, b = map(int, re.findall(r"(\d+) ?\+ ?(\d+)", prompt)[-1])
    return a + b


class Scripted(FakeBackend):
    """Per prompt: wrong, correct long, correct short, correct long again (a duplicate), …"""

    def __init__(self, fail_after: int | None = None, empty_fifth: bool = False):
        super().__init__(remote=False)
        self.calls, self.prompts_seen, self.fail_after = 0, [], fail_after
        self.empty_fifth = empty_fifth

    def generate(self, prompts, n=1, sampling=None, budget=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        self.prompts_seen += prompts
        out = []
        for p in prompts:
            g = _gold_of(p)
            pool = [
                Fake(f"<think>guess</think>{g + 1}", [1] * 5),
                Fake(f"<think>add the ones, then the tens, carefully</think>{g}", [1] * 12),
                Fake(f"<think>add</think>{g}", [1] * 6),
                Fake(f"<think>add the ones, then the tens, carefully</think>{g}", [1] * 12),
            ]
            if self.empty_fifth:
                pool.append(Fake("", []))
            out.append([pool[j % len(pool)] for j in range(n)])
        return out


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A random 2-layer Llama with a tokenizer trained on addition problems (built in ~1 s)."""
    from ponder.models import build_model, save, train_tokenizer
    from ponder.tasks.synthetic import reference_completion

    exs = list(islice(get_task("addition:digits=2").examples("train"), 200))
    tok = train_tokenizer([e["prompt"] + " " + reference_completion(e) for e in exs], vocab_size=300)
    model = build_model({"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}, tok)
    return save(model, tok, tmp_path_factory.mktemp("tiny"))


def _rows(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_prompts_really_are_addition_problems():
    ex = next(get_task(TASK).examples("train"))
    assert _gold_of(ex["prompt"]) == int(ex["gold"])


@pytest.mark.parametrize("keep,dedup,per_prompt", [("all", True, 2), ("all", False, 3), ("shortest", True, 1)])
def test_selection_keeps_only_verified_correct(tmp_path, keep, dedup, per_prompt):
    cfg = SampleConfig(model="scripted", task=TASK, out=str(tmp_path / "s.jsonl"), n=4, keep=keep, dedup=dedup,
                       batch_prompts=5)
    stats = rejection_sample(Scripted(), get_task(TASK), get_task(TASK).examples("train"), cfg, "scripted",
                             progress=False)
    rows = _rows(tmp_path / "s.jsonl")
    assert stats["prompts"] == 12 and stats["samples"] == 48 and stats["correct"] == 36
    assert len(rows) == 12 * per_prompt == stats["kept"]
    task = get_task(TASK)
    by_id = {ex["id"]: ex for ex in task.examples("train")}
    for r in rows:
        ex = by_id[r["provenance"]["id"]]
        assert task.score(r["completion"], ex).correct
        assert r["provenance"]["sample_index"] != 0  # sample 0 is the wrong one
        assert ex["prompt"] in r["prompt"]
        assert set(r["provenance"]) >= {"model", "task", "id", "sample_index", "seed", "temperature"}
    if keep == "shortest":
        assert all(r["completion"].startswith("<think>add</think>") for r in rows)


def test_max_per_prompt_and_unverified_traces(tmp_path):
    cfg = SampleConfig(model="m", task=TASK, out=str(tmp_path / "a.jsonl"), n=4, dedup=False, max_per_prompt=1)
    rejection_sample(Scripted(), get_task(TASK), get_task(TASK).examples("train"), cfg, "m", progress=False)
    assert len(_rows(tmp_path / "a.jsonl")) == 12
    cfg = SampleConfig(model="m", task=TASK, out=str(tmp_path / "b.jsonl"), n=5, dedup=False, verify=False)
    rejection_sample(Scripted(empty_fifth=True), get_task(TASK), get_task(TASK).examples("train"), cfg, "m",
                     progress=False)
    rows = _rows(tmp_path / "b.jsonl")
    # every non-empty sample is kept, wrong ones too; the empty fifth sample never is
    assert len(rows) == 48 and sum(not r["provenance"]["correct"] for r in rows) == 12
    assert all(r["completion"].strip() and r["provenance"]["sample_index"] != 4 for r in rows)


def test_resume_after_kill_skips_finished_prompts(tmp_path):
    out = tmp_path / "s.jsonl"
    cfg = SampleConfig(model="m", task=TASK, out=str(out), n=4, batch_prompts=5)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, backend=Scripted(fail_after=1), progress=False)
    assert len(_rows(paths(out)[1])) == 5 and not paths(out)[2].exists()
    # a kill between the two writes: an orphan sample line (its progress line missing) and a torn line
    with open(out, "a") as f:
        f.write(json.dumps({"prompt": "p", "completion": "c", "provenance": {"id": "orphan"}}) + "\n" + '{"prompt": "to')
    again = Scripted()
    run(cfg, backend=again, progress=False)
    assert len(again.prompts_seen) == 7  # only the unfinished prompts were generated
    fresh_out = tmp_path / "fresh.jsonl"
    run(SampleConfig(**{**cfg.__dict__, "out": str(fresh_out)}), backend=Scripted(), progress=False)
    assert _rows(out) == [dict(r) for r in _rows(fresh_out)]  # same as an uninterrupted run
    calls = Scripted()
    run(cfg, backend=calls, progress=False)  # done: nothing is generated again
    assert calls.calls == 0


def test_changed_settings_on_existing_output_is_an_error(tmp_path):
    cfg = SampleConfig(model="m", task=TASK, out=str(tmp_path / "s.jsonl"), n=2)
    run(cfg, backend=Scripted(), progress=False)
    with pytest.raises(SampleError, match="n: 2 -> 3"):
        run(SampleConfig(**{**cfg.__dict__, "n": 3}), backend=Scripted(), progress=False)


@pytest.mark.parametrize("bad,match", [({"keep": "longest"}, "keep"), ({"n": 0}, "n must"), ({"model": ""}, "model is required"),
                                       ({"split": "dev"}, "split")])
def test_bad_config(bad, match):
    with pytest.raises(ConfigError, match=match):
        SampleConfig(**{"model": "m", **bad}).check()


def test_cli_errors_are_one_line(tmp_path):
    r = runner.invoke(app, ["sample", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split()) and "Traceback" not in r.output
    assert not list(tmp_path.glob("s.jsonl*"))  # nothing written for a run that could not start
    r = runner.invoke(app, ["sample", "x", "--keep", "longest"])
    assert r.exit_code == 2 and "keep must be" in r.output
    # the old --model flag still works, with a note to give MODEL first
    r = runner.invoke(app, ["sample", "--model", "x", "--keep", "longest"])
    assert r.exit_code == 2 and "keep must be" in r.output and "--model is deprecated" in r.output


def test_cli_with_a_real_tiny_checkpoint(tmp_path, tiny_checkpoint):
    out = tmp_path / "s.jsonl"
    r = runner.invoke(app, ["sample", str(tiny_checkpoint), "--task", TASK, "--n", "2", "--limit", "3",
                            "--max-tokens", "8", "--no-verify", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    stats = json.loads(paths(out)[2].read_text())
    assert len(rows) == stats["kept"] and stats["samples"] == 6 and stats["prompts"] == 3
    first_ids = [ex["id"] for ex in islice(get_task(TASK).examples("train"), 3)]
    assert sorted({r["provenance"]["id"] for r in rows}) == sorted(first_ids)


def test_stage_evaluation_metrics_on_a_scripted_backend():
    """Greedy gets sample 0 (wrong); 4 samples are wrong, right, right, right: pass@1 3/4, maj@4 right."""
    from ponder.evaluate.stages import StageEvalConfig, evaluate_backend

    r = evaluate_backend(Scripted(), StageEvalConfig(task="addition:digits=2", limit=10, samples=4, batch_prompts=3))
    assert r["pass1_greedy"]["mean"] == 0 and len(r["rows"]) == 10
    assert r["pass1_sampled"]["mean"] == pytest.approx(0.75) and r["maj@4"]["mean"] == 1.0
    assert all(row["sampled_correct"] == 3 for row in r["rows"])
    with pytest.raises(ConfigError, match="samples must be"):
        StageEvalConfig(samples=1).check()


def test_stage_evaluation_reports_how_often_the_model_reasons():
    """Greedy answers directly; of 4 samples one reasons (empty think blocks do not count)."""
    from ponder.evaluate.stages import StageEvalConfig, evaluate_backend

    class Direct(Scripted):
        def generate(self, prompts, n=1, sampling=None, budget=None):
            pool = lambda g: [Fake(f"<think></think>{g}"), Fake(f"<think>  </think>{g + 1}"),  # noqa: E731
                              Fake(f"<think>4 + 3 = 7</think>{g}"), Fake(f"{g}")]
            return [[pool(_gold_of(p))[j % 4] for j in range(n)] for p in prompts]

    r = evaluate_backend(Direct(), StageEvalConfig(task="addition:digits=2", limit=6, samples=4, batch_prompts=4))
    assert r["reasoning_share_greedy"] == 0.0 and not any(row["reasoned"] for row in r["rows"])
    assert r["reasoning_share_sampled"] == pytest.approx(0.25)
    assert all(row["sampled_reasoned"] == 1 and row["sampled_n"] == 4 for row in r["rows"])
    greedy_only = evaluate_backend(Direct(), StageEvalConfig(task="addition:digits=2", limit=3))
    assert "reasoning_share_sampled" not in greedy_only
