"""torch CPU thread choice on a shared machine: one rule for every stage that computes.

``set_threads(n)``: ``n`` threads if ``n > 0``, else ``auto_threads`` for the machine now (torch's
own count cut to the cores no other runnable task uses). Training stages, sampling, evaluation
and the recipe report all decide through it; training re-checks it per step
(``ponder.train.common.ThreadGuard``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def other_runnable(proc: Path = Path("/proc")) -> int | None:
    """Tasks runnable on the machine right now that are not this process's threads (``/proc``'s
    running count minus this process's threads in state R); None where ``/proc`` is missing."""
    try:
        running = int((proc / "loadavg").read_text().split()[3].split("/")[0])
        own = 0
        for task in (proc / "self" / "task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:  # the thread ended meanwhile
                continue
            own += stat[stat.rindex(")") + 2] == "R"
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def auto_threads(cores: int, default: int, others: int | None, load: float | None = None) -> int:
    """Auto's thread count: ``default`` (torch's), cut to the cores nobody else is running on.

    ``others`` is the count of other runnable tasks now (``other_runnable``). A k-thread OpenMP
    step waits at every barrier for its slowest thread, so one thread sharing a core with another
    job stalls them all: on the shared 2-core machine, with one other busy process, two threads
    made GRPO steps ~9x slower than one (0.38 vs 3.5 steps/s, micro model), while on an idle
    machine two threads gained at most ~1.7x. Where ``others`` is unknown the 1-minute ``load``
    average stands in for it (it lags a job started seconds ago, hence not the first choice).
    """
    if others is None:
        others = int(load) if load is not None else 0
    return max(1, min(default, cores - others))


def _others_now(samples: int = 3) -> int | None:
    """The most other runnable tasks seen in a few samples 10 ms apart (a job between two
    bursts of work is missed by one sample)."""
    seen = []
    for i in range(samples):
        if i:
            time.sleep(0.01)
        seen.append(other_runnable())
    return None if None in seen else max(seen)


def set_threads(threads: int) -> int:
    """Set torch's CPU threads: ``threads`` if > 0, else ``auto_threads`` for the machine now;
    returns the count in use. The count is always set explicitly, so what runs is what was
    decided (and what a stage records)."""
    import torch

    default_threads()  # read before the first change
    if threads <= 0:
        threads = decide(_others_now())
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def decide(others: int | None) -> int:
    """Auto's count on this machine now, given ``others`` other runnable tasks (``other_runnable``;
    None: unknown, the load average stands in)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return auto_threads(os.cpu_count() or 1, default_threads(), others, load)


_DEFAULT: list[int] = []


def default_threads() -> int:
    """torch's own thread count for this machine, as it was before ponder first changed it."""
    import torch

    if not _DEFAULT:
        _DEFAULT.append(torch.get_num_threads())
    return _DEFAULT[0]
