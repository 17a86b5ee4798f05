"""Auto thread choice (ponder.threads, re-checked per step by ponder.train.common.ThreadGuard): the decision,
its inputs, the re-check."""

from __future__ import annotations

import pytest
import torch

from ponder import threads
from ponder.train import common


@pytest.fixture
def two_cores(monkeypatch):
    """A 2-core machine whose torch default is 2 threads; torch's real count restored after."""
    old = torch.get_num_threads()
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "_DEFAULT", [2])
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("cores, default, others, load, want", [
    (2, 2, 0, None, 2),      # idle: torch's default
    (2, 2, 1, None, 1),      # one other busy process on 2 cores: one thread, not two stalled ones
    (2, 2, 6, None, 1),      # never below one
    (16, 16, 3, None, 13),   # the free cores
    (16, 8, 0, None, 8),     # never above torch's default
    (2, 2, None, 1.4, 1),    # no /proc: the load average stands in
    (2, 2, None, 0.3, 2),
    (2, 2, None, None, 2),
])
def test_auto_threads_uses_only_the_cores_no_other_job_runs_on(cores, default, others, load, want):
    assert threads.auto_threads(cores, default, others, load) == want


def _proc(root, running, states):
    (root / "self" / "task").mkdir(parents=True)
    (root / "loadavg").write_text(f"1.95 1.50 1.20 {running}/97 4242\n")
    for i, st in enumerate(states):
        (root / "self" / "task" / str(i)).mkdir()
        # a thread name with a space and parentheses: the state is the field after the last ")"
        (root / "self" / "task" / str(i) / "stat").write_text(f"{i} (pt main (x)) {st} 1 2 3\n")


def test_other_runnable_subtracts_this_process_running_threads(tmp_path):
    _proc(tmp_path, 3, ["R", "S", "R", "S"])
    assert threads.other_runnable(tmp_path) == 1
    assert threads.other_runnable(tmp_path / "missing") is None


def test_other_runnable_on_this_machine_counts_a_busy_child(tmp_path):
    import subprocess
    import sys
    import time

    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        seen = [threads.other_runnable() for _ in range(20)]
    finally:
        spin.kill()
        spin.wait()
    assert max(seen) >= 1


def test_set_threads_auto_sets_the_decided_count_explicitly(two_cores, monkeypatch):
    monkeypatch.setattr(threads, "other_runnable", lambda: 1)
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    assert threads.set_threads(0) == 1 and torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "other_runnable", lambda: 0)
    assert threads.set_threads(0) == 2
    # torch's default count is set explicitly too (what runs is what was decided and recorded)
    assert calls == [1, 2]
    assert threads.set_threads(1) == 1


def test_thread_guard_drops_at_once_and_climbs_back_after_quiet_steps(two_cores, monkeypatch):
    seen = iter([0, 1, 0, 0, 0, 1, 0, 0, 0])
    monkeypatch.setattr(threads, "other_runnable", lambda: next(seen))
    torch.set_num_threads(2)
    guard = common.ThreadGuard(patience=3)
    assert [guard.step() for _ in range(9)] == [2, 1, 1, 1, 2, 1, 1, 1, 2]
    assert common.thread_guards(2) == [] and len(common.thread_guards(0)) == 1
