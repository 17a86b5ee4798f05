"""Checkpoints that survive a kill: atomic final saves and resumable trainer checkpoints.

Two rules make every stage resumable after ``kill -9`` at any instant:

1. A final model is written into ``<dir>.tmp-<pid>`` and renamed into place (``os.replace`` is
   atomic on one filesystem), so ``<dir>`` is either absent or complete.
2. transformers' Trainer writes ``checkpoint-N/`` file by file and ``trainer_state.json`` last.
   A checkpoint counts only when that file parses; ``last_complete_checkpoint`` skips (and
   ``discard_incomplete`` deletes) the others, so a run killed while saving resumes from the
   previous checkpoint and loses at most the steps since then.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_CKPT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
DONE_FILE = "ponder_done.json"


def _is_complete(ckpt: Path) -> bool:
    try:
        json.loads((ckpt / STATE_FILE).read_text())
        return True
    except (OSError, ValueError):
        return False


def checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """All ``checkpoint-N`` directories of ``run_dir`` as (step, path), oldest first."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if p.is_dir() and (m := _CKPT.match(p.name))]
    return sorted(found)


def last_complete_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint whose trainer state was fully written, or None."""
    for _, path in reversed(checkpoints(run_dir)):
        if _is_complete(path):
            return path
    return None


def discard_incomplete(run_dir: str | os.PathLike) -> list[Path]:
    """Delete checkpoints (and stale ``*.tmp-*`` dirs) a kill left half-written; return them."""
    gone = [p for _, p in checkpoints(run_dir) if not _is_complete(p)]
    d = Path(run_dir)
    if d.is_dir():
        gone += [p for p in d.iterdir() if ".tmp-" in p.name]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging directory; on success it replaces ``target`` in one rename.

    On an exception the staging directory is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)  # a directory cannot be replaced by rename while non-empty
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def is_done(stage_dir: str | os.PathLike) -> bool:
    """A stage is done when its final model (a checkpoint, or a LoRA adapter's
    ``adapter_config.json``) and its done-marker exist (a re-run skips it)."""
    final = Path(stage_dir) / "final"
    return ((final / "config.json").is_file() or (final / "adapter_config.json").is_file()) \
        and (Path(stage_dir) / DONE_FILE).is_file()
