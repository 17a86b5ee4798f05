"""``ponder tune``: the Pareto front, the effort rule, the dev/held-out split, and a whole run on a
scripted backend whose accuracy grows with the thinking budget (its files, its serve config)."""

from __future__ import annotations

import hashlib
import re

import pytest
from typer.testing import CliRunner

from ponder.cli.main import app
from ponder.config import ConfigError, from_dict, load_yaml
from ponder.evaluate.tune import TuneConfig, choose_efforts, pareto_front, run_tune, split_problems
from ponder.generate.types import SamplingParams, make_completion
from ponder.tasks import get_task
from tests.fakes import FakeBackend, question_of

TASK = "addition:min_digits=2,max_digits=3"


def pts(*rows):
    return [{"tokens": t, "accuracy": a, "strategy": s, "n": n, "budget": None, "label": f"{s}@{n}"}
            for t, a, s, n in rows]


def test_pareto_front_keeps_exactly_the_undominated_points():
    points = pts((10, 0.60, "single", 1), (40, 0.80, "majority", 4), (40, 0.70, "best_of_n", 4),
                 (80, 0.80, "majority", 8), (30, 0.75, "deepconf", 4), (160, 0.90, "majority", 16),
                 (30, 0.75, "weighted_majority", 4), (200, 0.85, "adaptive_majority", 16))
    # dominated: best_of_n@4 (by majority@4), majority@8 (same accuracy, more tokens), adaptive (by majority@16),
    # the second of two identical points
    assert pareto_front(points) == [0, 4, 1, 5]


def test_effort_rule_low_medium_high():
    points = pts((10, 0.60, "single", 1), (30, 0.86, "deepconf", 4), (60, 0.895, "adaptive_majority", 16),
                 (160, 0.90, "majority", 16), (300, 0.91, "majority", 32))
    ref = 3  # majority@16
    chosen = choose_efforts(points, ref, low_tolerance=0.05, medium_tolerance=0.01)
    # high: the best; medium: the cheapest within 1 point of majority@16 (0.895 >= 0.89);
    # low: the cheapest within 5 points of high (0.86 >= 0.86)
    assert chosen == {"high": 4, "medium": 2, "low": 1}
    # a stricter medium tolerance moves medium up to the reference itself
    assert choose_efforts(points, ref, 0.05, 0.0)["medium"] == 3
    # low is never dearer than medium
    c = choose_efforts(points, ref, low_tolerance=0.0, medium_tolerance=0.02)
    assert points[c["low"]]["tokens"] <= points[c["medium"]]["tokens"]


def test_dev_and_held_out_are_disjoint_deterministic_and_independent_of_order():
    task = get_task(TASK)
    dev, held = split_problems(task, "dev", 0.5, 200)
    ids_dev, ids_held = {e["id"] for e in dev}, {e["id"] for e in held}
    assert not ids_dev & ids_held and len(ids_dev) + len(ids_held) == 200
    assert 70 < len(dev) < 130  # about half
    again, _ = split_problems(get_task(TASK), "dev", 0.5, 200)
    assert [e["id"] for e in again] == [e["id"] for e in dev]
    # a problem's side depends on its id only: a larger limit keeps every earlier assignment
    dev400, _ = split_problems(task, "dev", 0.5, 400)
    assert ids_dev <= {e["id"] for e in dev400}
    h = lambda i: int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "big") / 2**64
    assert all(h(i) < 0.5 for i in ids_dev)
    with pytest.raises(ConfigError, match="both need one"):
        split_problems(task, "dev", 0.5, 1)


class Adder(FakeBackend):
    """A local scripted model: it thinks ``budget`` characters (20 without a budget) and is right
    when a hash of (question, seed, sample) falls under 0.4 + budget/40; right samples are
    confident (log-prob -0.05 per token), wrong ones unsure (-1.5)."""

    def __init__(self):
        super().__init__(remote=False)

    def generate(self, prompts, n=1, sampling=None, budget=None):
        sp = sampling or SamplingParams()
        tb = budget.thinking_budget if budget is not None and budget.thinking_budget is not None else 20
        out = []
        for p in prompts:
            a, b = map(int, re.findall(r"\d+", question_of(p))[:2])
            group = []
            for j in range(n):
                u = int.from_bytes(hashlib.blake2b(f"{a},{b},{sp.seed},{j}".encode(), digest_size=4).digest(),
                                   "big") / 2**32
                ok = u < 0.4 + tb / 40
                ans = a + b if ok else a + b + 1 + int(u * 3)
                text = "<think>" + "r" * tb + f"</think>{ans}"
                ids = [ord(c) for c in text]
                lps = [-0.05 if ok else -1.5] * len(ids)
                group.append(make_completion(ids, self.decode, "stop", lps, False, (), frozenset()))
            out.append(group)
        return out


def test_a_whole_run_writes_report_plot_json_and_a_serve_config_serve_loads(tmp_path):
    from ponder.serve.config import ServeConfig
    from ponder.serve.protocol import ChatRequest, plan_request

    cfg = TuneConfig(model="scripted", task=TASK, limit=40, ns=[2, 4, 8], budgets=[4, 16], out=str(tmp_path))
    data = run_tune(cfg, backend=Adder())
    points = data["points"]
    assert len(points) == 2 * (1 + 5 * 3)  # budgets x (single + 5 strategies x 3 n)
    assert set(data["dev_ids"]).isdisjoint(data["held_out_ids"])
    # more thinking is more accurate here, and voting over 8 beats one sample
    acc = {p["label"]: p["accuracy"] for p in points}
    assert acc["majority@8 b=16"] > acc["single b=4"]
    # the chosen levels are front points, ordered by tokens, and were run on held-out
    chosen = [next(p for p in points if p["label"] == data["efforts"][lvl]["point"]) for lvl in ("low", "medium", "high")]
    assert all(p["front"] for p in chosen)
    assert chosen[0]["tokens"] <= chosen[1]["tokens"] <= chosen[2]["tokens"]
    assert all(data["efforts"][lvl]["held_out"]["problems"] == len(data["held_out_ids"]) for lvl in data["efforts"])
    png = (tmp_path / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    report = (tmp_path / "report.md").read_text()
    assert "held-out accuracy" in report and data["reference"] in report
    # serve reads the mapping: reasoning_effort "high" runs the tuned point
    sc = from_dict(ServeConfig, load_yaml(tmp_path / "serve.yaml"))
    high = sc.efforts["high"]
    assert high == {"strategy": chosen[2]["strategy"], "n": chosen[2]["n"], "thinking_budget": chosen[2]["budget"]}
    req = ChatRequest(model="m", messages=[{"role": "user", "content": "What is 1 + 2?"}], reasoning_effort="high")
    plan = plan_request(req, sc, Adder(), None)
    assert plan.budget.resolve() == high["thinking_budget"]
    assert (plan.strategy, plan.strategy_n) == ((None, 1) if high["strategy"] == "single" else (high["strategy"], high["n"]))


def test_serve_config_rejects_a_bad_efforts_entry():
    from ponder.serve.config import ServeConfig

    with pytest.raises(ConfigError, match="efforts.medium.n must be"):
        ServeConfig(efforts={"medium": {"strategy": "majority", "n": 99}})
    with pytest.raises(ConfigError, match="unknown key"):
        ServeConfig(efforts={"low": {"strategy": "majority", "budget": 3}})


@pytest.mark.parametrize("args, match", [
    (["tune", "m"], "no task given"),
    (["tune", "m", "--task", TASK, "--split", "test"], "split must be 'dev' or 'A:B'"),
    (["tune", "m", "--task", TASK, "--strategies", "majority,beam"], "beam cannot be swept"),
    (["tune", "m", "--task", TASK, "--dev-frac", "1.5"], "dev_frac must be in"),
    (["tune", "/no/such/model", "--task", TASK, "--limit", "8"], "does not exist"),
])  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2(args, match):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    out = r.output.strip()
    assert re.search(match, out) and "Traceback" not in out and len(out.splitlines()) == 1
