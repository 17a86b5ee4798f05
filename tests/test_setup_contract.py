"""The set-up contract: `make test` / `make demo` create .venv when missing and install first;
`.ci/run` calls `make test`. Checked with `make -n` (prints, runs nothing) in a copy of the
Makefile, so no venv is created or touched."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(tmp_path: Path, target: str, with_venv: bool) -> list[str]:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    if with_venv:  # an installed venv, newer than pyproject.toml
        (tmp_path / ".venv" / "bin").mkdir(parents=True)
        (tmp_path / ".venv" / "bin" / "python").touch()
        (tmp_path / ".venv" / ".installed").touch()
    p = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def position(lines: list[str], needle: str) -> int:
    hits = [i for i, line in enumerate(lines) if needle in line]
    assert hits, f"{needle!r} not in the plan:\n" + "\n".join(lines)
    return hits[0]


@needs_make
@pytest.mark.parametrize("target,runs", [("test", "-m pytest"), ("demo", "ponder demo")])
def test_fresh_checkout_creates_the_venv_and_installs_before_running(tmp_path, target, runs):
    plan = dry_run(tmp_path, target, with_venv=False)
    # what matters, not how the Makefile spells it: a venv, an install into it, then the command
    assert position(plan, "venv") < position(plan, "pip install") < position(plan, runs), plan


@needs_make
def test_installed_venv_is_not_reinstalled(tmp_path):
    plan = dry_run(tmp_path, "test", with_venv=True)
    assert not any("pip install" in line or "-m venv" in line for line in plan), plan
    assert any("-m pytest" in line for line in plan)


def test_ci_entry_point_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.startswith("#!") and "set -e" in ci and "make test" in ci
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111, ".ci/run must be executable"
