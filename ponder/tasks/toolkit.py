"""What every task shares: disjoint train/test splits, sampling without repeats, options.

* **Disjoint splits.** Every problem has a canonical key (``addition:68,457``: operands sorted,
  so ``457+68`` and ``68+457`` are the same problem). A salted BLAKE2 hash of the key puts one
  problem in ten into ``test`` and the rest into ``train`` (``split_of``). The partition depends
  on the problem alone -- not on the seed, the sizes or the difficulty options -- so *any* train
  set and *any* test set of the same task are disjoint, however large.
* **Sampling.** ``sample_unique`` draws problems from a seeded ``random.Random`` and keeps
  those of the requested split not seen before, so problems within a split are distinct.
* **Options.** ``build_options`` reads a task's options dataclass from a spec's values, with
  the error naming the task.
* **Files.** A task whose problems come from a file (``FileTask``) takes ``path`` and ``split``
  (``FileOptions``): a path with ``{split}`` in it serves both splits, any other path holds the
  one split ``split`` names.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ponder.config import ConfigError, check_choice, from_dict, option
from ponder.tasks.base import BaseTask, TaskError

SPLITS = ("train", "test")
TEST_ONE_IN = 10  # one problem in ten belongs to the test split
_SALT = "ponder-split-v1"  # changing it re-partitions every synthetic task: don't
MAX_MISSES = 20_000  # consecutive useless draws before concluding a split is exhausted

O = TypeVar("O")
T = TypeVar("T")


def build_options(cls: type[O], options: dict[str, Any], task: str) -> O:
    """Options dataclass ``cls`` from keyword/string values; bad input is a ``TaskError``."""
    try:
        return from_dict(cls, options, where=task)
    except ConfigError as e:
        raise TaskError(str(e)) from None


def check_split(split: str, task: str) -> None:
    """Refuse a split other than train/test, naming the task."""
    if split not in SPLITS:
        raise TaskError(f"{task}: unknown split {split!r}; choose train or test")


@dataclass
class FileOptions:
    """Where a file-based task reads its problems (subclasses add their own options)."""

    path: str | None = option(None, "JSONL file; may contain {split} to serve both splits.")
    split: str = option("test", "The split a path without {split} holds.")

    def __post_init__(self) -> None:
        check_choice(self, "split", SPLITS, error=TaskError)

    def file(self, split: str, task: str) -> Path:
        """The file of ``split``: ``path`` with ``{split}`` filled in, or ``path`` if it holds ``split``."""
        if "{split}" in self.path:
            return Path(self.path.replace("{split}", split)).expanduser()
        if split != self.split:
            raise TaskError(f"{task}: {self.path} holds the {self.split} split, not {split} "
                            "(use {split} in path for both)")
        return Path(self.path).expanduser()


class FileTask(BaseTask):
    """A task whose ``Options`` are ``FileOptions``; ``path`` may also come first, positionally."""

    Options = FileOptions

    def __init__(self, path: str | Path | None = None, **options: Any) -> None:
        if path is not None:
            options["path"] = str(path)
        self.options = build_options(self.Options, options, self.name)


def split_of(key: str) -> str:
    """The split a problem belongs to, from its canonical key (stable across runs and seeds)."""
    digest = hashlib.blake2b(f"{_SALT}:{key}".encode(), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") % TEST_ONE_IN == 0 else "train"


def sample_unique(
    draw: Callable[[random.Random], tuple[str, T] | None],
    split: str,
    n: int,
    rng: random.Random,
    what: str,
) -> Iterator[T]:
    """Yield ``n`` distinct problems of ``split`` from ``draw(rng) -> (key, problem) | None``.

    ``draw`` returns None for a rejected attempt (e.g. a Countdown target out of range).
    Raises ``TaskError`` after ``MAX_MISSES`` consecutive draws that give nothing new.
    """
    seen: set[str] = set()
    misses = 0
    while len(seen) < n:
        got = draw(rng)
        if got is None or got[0] in seen or split_of(got[0]) != split:
            misses += 1
            if misses > MAX_MISSES:
                raise TaskError(
                    f"{what}: found only {len(seen)} distinct {split} problems of {n} requested; "
                    "ask for fewer or widen the difficulty range"
                )
            continue
        misses = 0
        seen.add(got[0])
        yield got[1]
