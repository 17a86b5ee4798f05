"""Batching: requests from many clients share the local backend's decode steps.

On a ``LocalEngine`` the batcher does **continuous batching** (``ponder.generate.continuous``):
every request joins the running decode batch at the next step boundary (its prompt is prefilled,
its rows appended to the batch's KV cache) and leaves it as soon as its own rows are done, so a
short request never waits for a long one. Requests with any mix of ``max_tokens``, sampling
settings, stop strings and budgets share the batch (each row decodes under its own request's
settings); a seeded request decodes in a batch of its own, stepped in turn with the shared one,
so the same seed gives the same completion whatever else the server is doing. At most
``max_rows`` rows decode at once (a larger single request still runs when nothing else does);
later requests wait in the queue. ``window``: when the server is idle, the first request waits
that long for others to start with it.

Every other backend (remote endpoints, or ``continuous=False``) gets the **dynamic batching**
below. A single worker thread owns the backend (one model, one batch at a time: two concurrent batches on
2 CPU cores only fight over them). Handlers ``submit`` jobs; the worker takes the first pending
job, waits ``window`` seconds for more to arrive (or until ``max_rows`` rows are pending), groups
the jobs whose generation settings are identical — same ``n``, ``SamplingParams`` and ``Budget``
(frozen dataclasses, so they hash), except ``max_tokens`` on a streaming engine — and runs each
group as **one** ``backend.generate`` call over all the group's prompts. Different ``max_tokens``
share a call at the largest one; each row is stopped at its own request's limit through
``on_token`` (finish "length", exactly where the engine would have stopped it). Requests that arrive meanwhile wait for the next round (dynamic, not
continuous batching: a short request batched with a long one returns when the batch ends).

Limits and choices:

* A request with a ``seed`` is batched alone: its rows then draw from their own generator, so
  the same seed gives the same completion whatever else the server is doing.
* Streaming: when the backend decodes token by token in this process (``capabilities.local``
  and ``token_level``: ``LocalEngine``, whose ``generate`` takes ``on_token(row, ids)``), the
  worker routes each row's tokens to the job that owns it. A cancelled job (client gone) stops
  receiving tokens; if ``on_token`` returning True stops a row in the engine, its rows stop at
  once, otherwise they run to their own limits inside the batch.
* A cancelled job still pending when its round starts is dropped before generation.
"""

from __future__ import annotations

import itertools
import logging
import queue
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Callable

from ponder.format import ends_in_think
from ponder.generate.types import Budget, Completion, SamplingParams

log = logging.getLogger("ponder.serve")


@dataclass(eq=False)
class Job:
    """One request's generation: ``prompts`` x ``n`` rows, resolved in ``future``."""

    prompts: list[str]
    n: int
    sampling: SamplingParams
    budget: Budget
    on_token: Callable[[int, list[int]], None] | None = None  # (row within the job, ids so far)
    future: Future = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)
    uid: int = 0

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.n

    def key(self, merge_lengths: bool) -> tuple:
        """Jobs with equal keys share a ``generate`` call. Seeded jobs get a key of their own;
        ``merge_lengths``: ignore ``max_tokens`` (the batcher stops each row at its own)."""
        budgeted = self.budget.thinking_budget is not None or self.budget.effort is not None
        if merge_lengths and (not budgeted or all(ends_in_think(p) for p in self.prompts)):
            sp = replace(self.sampling, max_tokens=1)
        else:
            sp = self.sampling
        return (self.n, sp, self.budget, self.uid if self.sampling.seed is not None else None)

    def cancel(self) -> None:
        self.cancelled.set()


def is_local_engine(backend) -> bool:
    """True for a ``LocalEngine`` that declares continuous batching (its subclass ``GGUFBackend``
    decodes in llama.cpp and does not; a wrapper around one has a ``generate`` of its own)."""
    local = sys.modules.get("ponder.generate.local")
    return (local is not None and isinstance(backend, local.LocalEngine)
            and getattr(backend.capabilities, "continuous", False))


class Batcher:
    """The worker thread that batches jobs for ``backend`` (see the module docstring).
    ``continuous``: continuous batching when the backend is a ``LocalEngine``."""

    def __init__(self, backend, window: float = 0.005, max_rows: int = 64, stats=None, continuous: bool = True):
        self.backend, self.window, self.max_rows, self.stats = backend, window, max_rows, stats
        caps = backend.capabilities
        self.streams = caps.local and caps.token_level  # LocalEngine: generate(..., on_token=...)
        self.continuous = continuous and is_local_engine(backend)
        self._q: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._pending: list[Job] = []
        self._stop = False
        self.busy = False
        loop = self._loop_continuous if self.continuous else self._loop
        self._thread = threading.Thread(target=loop, name="ponder-batcher", daemon=True)
        self._thread.start()

    def submit(self, prompts: list[str], n: int, sampling: SamplingParams, budget: Budget,
               on_token: Callable[[int, list[int]], None] | None = None) -> Job:
        job = Job(list(prompts), n, sampling, budget, on_token, uid=next(self._ids))
        self._q.put(job)
        return job

    def pending(self) -> int:
        return self._q.qsize() + len(self._pending)

    def close(self, timeout: float = 5.0) -> None:
        self._stop = True
        self._q.put(None)
        self._thread.join(timeout)

    # ----------------------------------------------------------------- worker

    def _take(self, job: Job | None) -> bool:
        """Add a dequeued job to ``_pending``; False for the stop sentinel ``close`` puts (None)."""
        if job is None:
            self._stop = True
            return False
        self._pending.append(job)
        return True

    def _collect(self) -> list[Job]:
        """Block for a first job, then gather more for ``window`` seconds or until ``max_rows``."""
        if not self._pending and not self._take(self._q.get()):
            return []
        deadline = time.perf_counter() + self.window
        while sum(j.rows for j in self._pending) < self.max_rows:
            left = deadline - time.perf_counter()
            try:
                job = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if not self._take(job):
                break
        jobs, self._pending = self._pending, []
        return jobs

    def _loop(self) -> None:
        while not self._stop:
            jobs = self._collect()
            groups: dict[tuple, list[Job]] = {}
            for j in jobs:
                if j.cancelled.is_set():
                    j.future.cancel()
                    continue
                groups.setdefault(j.key(self.streams), []).append(j)
            for members in groups.values():
                batch: list[Job] = []
                for j in members:  # split a group above max_rows (a single large job still runs)
                    if batch and sum(b.rows for b in batch) + j.rows > self.max_rows:
                        self._run(batch)
                        batch = []
                    batch.append(j)
                if batch:
                    self._run(batch)

    def _run(self, jobs: list[Job]) -> None:
        owner: list[tuple[Job, int]] = [(j, r) for j in jobs for r in range(j.rows)]  # global row -> (job, row)
        prompts = [p for j in jobs for p in j.prompts]
        first = jobs[0]
        limit = max(j.sampling.max_tokens for j in jobs)
        sampling = first.sampling if first.sampling.max_tokens == limit else replace(first.sampling, max_tokens=limit)
        budgeted = first.budget.resolve(self.backend.effort_table) is not None
        close = list(self.backend.close_ids) if self.streams else []  # LocalEngine's </think> token ids
        answer_from: dict[int, int] = {}  # row -> its token count when </think> completed
        kw = {}
        if self.streams:
            def on_token(row: int, ids: list[int]) -> bool:
                job, r = owner[row]
                if job.cancelled.is_set():
                    return True  # stop this row (engines that honour it)
                if job.on_token is not None:
                    job.on_token(r, ids)
                own = job.sampling.max_tokens
                if own == limit:
                    return False
                # a row whose request asked for fewer tokens than the batch's max_tokens: stop it
                # where the engine would have with its own max_tokens (with a thinking budget,
                # max_tokens counts the answer, from the token that completes </think>)
                if not budgeted:
                    return len(ids) >= own
                if row not in answer_from:
                    if close and ids[-len(close):] == close:
                        answer_from[row] = len(ids)
                    return False
                return len(ids) - answer_from[row] >= own

            kw["on_token"] = on_token
        t0 = time.perf_counter()
        self.busy = True
        try:
            groups = self.backend.generate(prompts, first.n, sampling, first.budget, **kw)
        except BaseException as e:  # noqa: BLE001 - handed to every waiting request
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        finally:
            self.busy = False
        seconds = time.perf_counter() - t0
        if self.stats is not None:
            self.stats.batch(len(jobs), len(owner), seconds)
        log.debug("batch of %d requests, %d rows in %.3fs", len(jobs), len(owner), seconds)
        i = 0
        for j in jobs:
            mine: list[list[Completion]] = groups[i : i + len(j.prompts)]
            i += len(j.prompts)
            if not j.future.done():
                j.future.set_result(mine)


    # ----------------------------------------------------------------- continuous batching

    def _drain(self) -> None:
        """Move every queued job to ``_pending`` without waiting."""
        while True:
            try:
                job = self._q.get_nowait()
            except queue.Empty:
                return
            if not self._take(job):
                return

    def _loop_continuous(self) -> None:
        from ponder.generate.continuous import ContinuousBatch

        shared = ContinuousBatch(self.backend)
        own: list[ContinuousBatch] = []  # seeded requests, one batch each
        owner: dict[int, Job] = {}  # id(Request) -> its job
        while not self._stop:
            if not owner:
                self._pending = self._collect()  # idle: block for a job, then wait ``window`` for more
            else:
                self._drain()
            if self._stop:
                break
            t0 = time.perf_counter()
            self._admit(shared, own, owner, ContinuousBatch)
            for batch in (shared, *own):
                if batch.rows:
                    self._step(batch, owner)
            own = [b for b in own if b.rows]
            if self.stats is not None and owner:
                self.stats.busy(time.perf_counter() - t0)

    def _admit(self, shared, own: list, owner: dict, make) -> None:
        """Join pending jobs to a batch, first come first served, while ``max_rows`` allows."""
        live = sum(b.live for b in (shared, *own))
        while self._pending:
            job = self._pending[0]
            if job.cancelled.is_set():
                self._pending.pop(0)
                job.future.cancel()
                continue
            if live and live + job.rows > self.max_rows:
                return  # it waits for rows to leave
            self._pending.pop(0)
            batch = shared
            if job.sampling.seed is not None:
                batch = make(self.backend)
                own.append(batch)
            fresh = batch.rows == 0
            try:
                req = batch.add(job.prompts, job.n, job.sampling, job.budget, self._hook(job))
            except Exception as e:  # noqa: BLE001 - a bad request fails alone
                job.future.set_exception(e)
                continue
            owner[id(req)] = job
            live += job.rows
            if self.stats is not None:
                self.stats.joined(1, job.rows, fresh)

    @staticmethod
    def _hook(job: Job) -> Callable[[int, list[int]], bool]:
        def on_token(row: int, ids: list[int]) -> bool:
            if job.cancelled.is_set():
                return True  # its client left: the row stops now, the others go on
            if job.on_token is not None:
                job.on_token(row, ids)
            return False

        return on_token

    def _step(self, batch, owner: dict) -> None:
        t0 = time.perf_counter()
        rows = batch.rows
        self.busy = True
        try:
            done = batch.step()
        except BaseException as e:  # noqa: BLE001 - handed to every request of the batch
            log.exception("decode step failed")
            for key in {id(row.req) for row in batch.active}:
                job = owner.pop(key, None)
                if job is not None and not job.future.done():
                    job.future.set_exception(e)
            batch.reset()  # start over empty
            if not isinstance(e, Exception):
                raise
            return
        finally:
            self.busy = False
        if self.stats is not None:
            self.stats.decode_step(rows, time.perf_counter() - t0)
        for req in done:
            job = owner.pop(id(req))
            if not job.future.done():
                job.future.set_result(req.completions)


class BatchedBackend:
    """A ``Backend`` whose ``generate`` goes through the batcher, so that test-time strategies
    running for concurrent requests share batches too; everything else is the wrapped backend's."""

    def __init__(self, batcher: Batcher):
        self._batcher = batcher
        b = batcher.backend
        self.capabilities, self.thinking, self.tokenizer = b.capabilities, b.thinking, b.tokenizer
        self.effort_table, self.name, self.max_positions = b.effort_table, b.name, b.max_positions
        self.eos_ids, self.budget_honoured = b.eos_ids, b.budget_honoured
        self.decode, self.count_tokens, self.stream = b.decode, b.count_tokens, b.stream

    def refresh_weights(self) -> None:
        self._batcher.backend.refresh_weights()

    def generate(self, prompts: list[str], n: int = 1, sampling: SamplingParams | None = None,
                 budget: Budget | None = None) -> list[list[Completion]]:
        if not prompts:
            return []
        job = self._batcher.submit(prompts, n, sampling or SamplingParams(), budget or Budget())
        return job.future.result()
