"""Continuous batching on ``LocalEngine``: requests join a running decode batch between steps and
leave it when they are done, instead of forming a batch that runs to its end.

    batch = ContinuousBatch(engine)
    a = batch.add(prompts, n, sampling, budget, on_token)   # prefills now, decodes from the next step
    while batch.rows:
        for done in batch.step():                            # one token for every row
            done.completions                                 # as engine.generate would return them

A request's rows are decoded by the engine's own per-row logic (``LocalEngine._advance``: forced
tokens, budget forcing, thinking budgets, stop strings, the loop guard) under the request's own
``SamplingParams`` and ``Budget``, so one batch mixes requests with different limits and
settings. Sampling runs once per group of rows with equal temperature/top-k/top-p (and, for a
seeded request, its own generator: the request's draws then do not depend on its neighbours).
A request alone in a fresh batch decodes exactly as ``engine.generate`` does (same cache layout,
compaction schedule and sampler calls).

Cache layout (``FastLlama``: per layer k, v [B, KV, S, hd], additive mask [B, S]; ``HFRunner``:
the DynamicCache's [B, KV, t, hd] per layer, a 0/1 mask [B, S]). All rows share the column t the
next token goes to, as in ``generate``; a row's prompt ends at column t - 1. A newcomer of Ln
prompt tokens is prefilled alone (its own HF forward, left-padded among the prompts that join
together) and its rows are appended to the batch with the prompt in columns [t - Ln, t), the
columns before it masked and zero-filled (a masked column's value must not be NaN: 0 x NaN is
NaN in attention). Keys are cached already rotated at each row's own positions, so moving columns
changes nothing: when Ln > t every row is shifted right (``_realign``), and once a quarter or more
of the leading columns belong to no row still in the batch they are dropped (shift left). Rows
that finished leave at the engine's compaction points (an eighth of the batch finished, or every
32 steps). Capacity S grows when a newcomer's worst case (prompt + max tokens + budget + forcing
columns) would pass it.

One ``ContinuousBatch`` owns the engine's runner while it steps; several batches over one
engine (the server keeps seeded requests in batches of their own) swap their cache state in and
out of the runner around every call (``_CACHE``), so they interleave step by step. Not
re-entrant: one thread drives all batches of an engine.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from ponder.format import ends_in_think
from ponder.generate.decode import FastLlama, ThreadTuner, forward, sample
from ponder.generate.local import PRE, THINK, LocalEngine, _Row
from ponder.generate.types import Budget, Completion, GenerationError, SamplingParams, check_generate

_CACHE = ("k", "v", "bias", "masked", "t", "past", "keep")  # runner attributes that hold one batch's cache


class _CRow(_Row):
    """A row of a continuous batch: the engine's row state plus who owns it and where it lives."""

    __slots__ = ("req", "index", "first", "limit", "simple")


class Request:
    """One ``add`` call: ``prompts`` x ``n`` rows; ``completions`` (grouped by prompt, as
    ``generate`` returns them) is set when every row has finished."""

    def __init__(self, prompts: list[str], n: int, sp: SamplingParams, budget: Budget, plan, pre: list[bool],
                 on_token: Callable[[int, list[int]], bool | None] | None):
        self.prompts, self.n, self.sp, self.budget, self.plan, self.pre = prompts, n, sp, budget, plan, pre
        self.on_token = on_token
        self.gen = torch.Generator().manual_seed(sp.seed) if sp.seed is not None else None
        self.rows: list[_CRow] = []
        self.left = 0  # rows not finished yet
        self.completions: list[list[Completion]] | None = None
        self.joined = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.completions is not None


class ContinuousBatch:
    """A decode batch that requests join and leave at step boundaries (see the module docstring)."""

    def __init__(self, engine: LocalEngine):
        if not isinstance(engine, LocalEngine):
            raise GenerationError(f"continuous batching needs a LocalEngine, got {type(engine).__name__}")
        self.engine, self.runner = engine, engine.runner
        self.fast = isinstance(self.runner, FastLlama)
        self.active: list[_CRow] = []  # batch position -> row
        self.logits: torch.Tensor | None = None  # [B, V]: the next token's logits of every row
        self.state: dict = {}
        self.since = 0  # steps since the last compaction
        self.groups: list[tuple[SamplingParams, torch.Generator | None, torch.Tensor | None]] = []
        self.tuner: ThreadTuner | None = None
        self.tuner_k = 0
        self.steps = 0

    def reset(self) -> None:
        """Drop every row (after a failed step): the next ``add`` starts a fresh batch."""
        self.active, self.logits, self.groups, self.state = [], None, [], {}
        self._release()

    @property
    def rows(self) -> int:
        """Rows in the batch (finished rows count until they are compacted away)."""
        return len(self.active)

    @property
    def live(self) -> int:
        """Rows still decoding."""
        return sum(1 for r in self.active if r.finish is None)

    # ------------------------------------------------------------------ cache state swapping

    def _enter(self) -> None:
        for name, value in self.state.items():
            setattr(self.runner, name, value)

    def _leave(self) -> None:
        self.state = {name: getattr(self.runner, name) for name in _CACHE if hasattr(self.runner, name)}

    def _threads(self, rows: int) -> ThreadTuner:
        """The thread tuner for steps of ``rows`` rows (``generate``'s rule, a new tuner when the
        rule's answer changes). It stays entered between steps (entering and leaving around every
        step would count as a thread switch each time, and a switched step is not timed); the
        thread count it replaced is restored when the batch empties."""
        e = self.engine
        k = e.num_threads or (1 if rows * e.n_params < 2e7 else torch.get_num_threads())
        if self.tuner is None or self.tuner_k != k:
            self._release()
            self.tuner, self.tuner_k = ThreadTuner(k, tune=e.num_threads is None), k
            self.tuner.__enter__()
        return self.tuner

    def _release(self) -> None:
        if self.tuner is not None:
            self.tuner.__exit__(None, None, None)
            self.tuner, self.tuner_k = None, 0

    # ------------------------------------------------------------------ joining

    def add(self, prompts: list[str], n: int = 1, sampling: SamplingParams | None = None,
            budget: Budget | None = None, on_token: Callable[[int, list[int]], bool | None] | None = None
            ) -> Request:
        """Prefill ``prompts`` and append their ``n`` rows each to the batch; they decode from the
        next ``step``. Arguments as ``LocalEngine.generate`` (``on_token(row, ids)`` with the row
        index within this request); bad arguments raise ``GenerationError`` before anything joins."""
        e = self.engine
        prompts, sp, budget = check_generate(prompts, n, sampling, budget)
        if not prompts:
            raise GenerationError("a request needs at least one prompt")
        enc = e._encode_all(prompts)
        plan = e._plan(sp, budget)
        req = Request(prompts, n, sp, budget, plan, [ends_in_think(p) for p in prompts], on_token)
        P, L = len(enc), max(map(len, enc))
        ids = torch.full((P, L), e.pad_id, dtype=torch.long)  # [P, L] left-padded
        valid = torch.zeros(P, L, dtype=torch.bool)
        for i, x in enumerate(enc):
            ids[i, L - len(x):] = torch.tensor(x)
            valid[i, L - len(x):] = True
        rows_of = torch.arange(P).repeat_interleave(n)  # [Bn] prompt of each new row
        # the most cache columns a row can use (as in LocalEngine._run)
        m = len(e.close_ids)
        max_gen = sp.max_tokens + budget.max_waits * (m - 1 if plan.forcing else 0)
        if plan.tb is not None:
            max_gen += plan.tb + len(plan.close_q) + sp.max_tokens
        simple = plan.tb is None and not plan.forcing and not sp.stop and budget.loop_guard is None
        new: list[_CRow] = []
        for k, p in enumerate(rows_of.tolist()):
            r = _CRow(len(enc[p]), THINK if req.pre[p] else PRE)
            r.req, r.index, r.simple = req, k, simple
            if plan.tb == 0 and r.phase == THINK:  # no thinking at all: close the pre-filled block now
                r.forced.extend(plan.close_q)
                r.forced_close = True
            new.append(r)
        req.rows, req.left = new, len(new)
        self._enter()
        try:
            self._threads(len(self.active) + len(new))  # prefill on generate's thread count too
            with torch.inference_mode():
                logits, past = forward(e.model, ids, valid.long(), (valid.long().cumsum(-1) - 1).clamp(min=0))
                logits = logits[rows_of]  # [Bn, V]
                if self.fast:
                    self.runner._tables(L + max_gen + 1)  # RoPE by position: a row's own length bounds it
                if not self.active:  # a fresh batch: exactly generate's start
                    self.runner.start(past, rows_of, valid, L + max_gen + 1)
                    self.logits, self.since = logits, 0
                    for r in new:
                        r.first, r.limit = L - r.plen, L + max_gen + 1
                else:
                    self._join(past, rows_of, valid, L, max_gen, new)
                    self.logits = torch.cat([self.logits, logits])
        finally:
            self._leave()
        self.active += new
        self._regroup()
        return req

    def _capacity(self) -> int:
        return self.runner.k[0].shape[2] if self.fast else self.runner.keep.shape[1]

    def _join(self, past, rows_of: torch.Tensor, valid: torch.Tensor, L: int, max_gen: int, new: list[_CRow]) -> None:
        """Append the prefilled rows (their prompts end at column t - 1), realigning first if needed."""
        t = self.runner.t
        lo = min(r.first for r in self.active)  # leading columns no row uses
        if lo * 4 < t:
            lo = 0  # not worth a copy
        lo = min(lo, t - L)  # negative: the newcomer's prompt is longer than the batch's history
        need = max([r.limit for r in self.active] + [t + max_gen + 1]) - lo
        if lo != 0 or need > self._capacity():
            self._realign(lo, max(need, self._capacity() - lo))
            t = self.runner.t
        Bn, S = len(rows_of), self._capacity()
        a = t - L  # first column of the newcomers' (left-padded) prompts
        for r in new:
            r.first, r.limit = t - r.plen, t + max_gen + 1
        w = valid[rows_of]  # [Bn, L]
        run = self.runner
        if self.fast:
            for i in range(len(run.k)):
                lay = past.layers[i]
                for cache, src in ((run.k, lay.keys), (run.v, lay.values)):
                    add = torch.zeros(Bn, *cache[i].shape[1:])  # [Bn, KV, S, hd]
                    add[:, :, a:t] = src.index_select(0, rows_of)
                    cache[i] = torch.cat([cache[i], add])
            bias = torch.full((Bn, S), float("-inf"))
            bias[:, a:t] = torch.zeros(Bn, L).masked_fill_(~w, float("-inf"))
            bias[:, t:] = 0
            run.bias, run.masked = torch.cat([run.bias, bias]), True
        else:
            for lay, new_lay in zip(run.past.layers, past.layers):
                for name in ("keys", "values"):
                    src = getattr(new_lay, name).index_select(0, rows_of)  # [Bn, KV, L, hd]
                    pad = src.new_zeros(Bn, src.shape[1], a, src.shape[3])
                    setattr(lay, name, torch.cat([getattr(lay, name), torch.cat([pad, src], 2)]))
            keep = torch.zeros(Bn, S, dtype=torch.long)
            keep[:, a:t] = w.long()
            run.keep = torch.cat([run.keep, keep])

    def _realign(self, lo: int, S: int) -> None:
        """Move cache columns [lo, t) to [0, t - lo) in a cache of S columns (lo < 0 pads left)."""
        run, t = self.runner, self.runner.t
        src, dst, end = max(lo, 0), max(-lo, 0), t - lo
        if self.fast:
            for cache in (run.k, run.v):
                for i, c in enumerate(cache):
                    x = torch.empty(c.shape[0], c.shape[1], S, c.shape[3])
                    x[:, :, :dst] = 0
                    x[:, :, dst:end] = c[:, :, src:t]
                    cache[i] = x
            bias = torch.zeros(run.bias.shape[0], S)
            bias[:, :dst] = float("-inf")
            bias[:, dst:end] = run.bias[:, src:t]
            run.bias, run.masked = bias, run.masked or dst > 0
        else:
            for lay in run.past.layers:
                for name in ("keys", "values"):
                    x = getattr(lay, name)[:, :, src:]
                    if dst:
                        x = torch.cat([x.new_zeros(x.shape[0], x.shape[1], dst, x.shape[3]), x], 2)
                    setattr(lay, name, x)
            keep = torch.zeros(run.keep.shape[0], S, dtype=torch.long)
            keep[:, dst:end] = run.keep[:, src:t]
            run.keep = keep
        run.t = end
        for r in self.active:
            r.first, r.limit = r.first - lo, r.limit - lo
            r.cols[:] = [c - lo for c in r.cols]

    def _regroup(self) -> None:
        """Rows that sample together: one group per (temperature, top-k, top-p, generator)."""
        by: dict[tuple, list[int]] = {}
        first: dict[tuple, SamplingParams] = {}
        for j, r in enumerate(self.active):
            sp = r.req.sp
            key = (sp.temperature, sp.top_k, sp.top_p, id(r.req.gen) if r.req.gen is not None else None)
            by.setdefault(key, []).append(j)
            first.setdefault(key, sp)
        if len(by) == 1:
            key = next(iter(by))
            self.groups = [(first[key], self.active[0].req.gen, None)]
        else:
            self.groups = [(first[k], self.active[idx[0]].req.gen, torch.tensor(idx)) for k, idx in by.items()]

    # ------------------------------------------------------------------ decoding

    def step(self) -> list[Request]:
        """Decode one token for every row; returns the requests that finished at this step."""
        if not self.active:
            return []
        e = self.engine
        self._enter()
        try:
            with torch.inference_mode():
                return self._step(e, self._threads(len(self.active)))
        finally:
            self._leave()

    def _step(self, e: LocalEngine, tuner: ThreadTuner) -> list[Request]:
        logits = self.logits
        if len(self.groups) == 1 and self.groups[0][2] is None:
            sp, gen, _ = self.groups[0]
            chosen = sample(logits, sp, gen)  # [B]
        else:
            chosen = torch.empty(len(self.active), dtype=torch.long)
            for sp, gen, idx in self.groups:
                chosen[idx] = sample(logits[idx], sp, gen)
        toks = chosen.tolist()
        col = self.runner.t  # the cache column these tokens will occupy
        changed, emitted, dead = False, [], 0
        for j, r in enumerate(self.active):
            if r.finish is not None:
                dead += 1
                continue
            emitted.append(j)
            if r.simple:
                tok = toks[j]
                r.ids.append(tok)
                if tok in r.req.plan.eos:
                    r.finish = "eos"
                elif len(r.ids) >= r.req.sp.max_tokens:
                    r.finish = "length"
                continue
            tok = e._advance(r, j, toks[j], col, r.req.plan)
            if tok != toks[j]:
                toks[j], changed = tok, True
        done: list[Request] = []
        if emitted:  # log p(token) under the raw model distribution
            picked = torch.tensor(toks) if changed else chosen
            lp = torch.log_softmax(logits, -1).gather(1, picked[:, None]).squeeze(1).tolist()
            for j in emitted:
                r = self.active[j]
                r.lps.append(lp[j])
                if r.req.on_token is not None and r.req.on_token(r.index, r.ids) is True and r.finish is None:
                    r.finish = "length"  # the caller stopped the row (its client left)
                if r.finish is not None:
                    dead += 1
                    r.req.left -= 1
                    if r.req.left == 0:
                        self._complete(r.req)
                        done.append(r.req)
        self.steps += 1
        if dead == len(self.active):  # everyone left: the next add starts a fresh batch
            self.active, self.logits, self.groups = [], None, []
            self._release()
            return done
        self.since += 1
        if dead and (dead * 8 >= len(self.active) or self.since >= 32):  # compact: drop finished rows
            keep = [j for j, r in enumerate(self.active) if r.finish is None]
            self.runner.select(torch.tensor(keep))
            self.active, toks, self.since = [self.active[j] for j in keep], [toks[j] for j in keep], 0
            lo = min(r.first for r in self.active)
            if lo * 4 >= self.runner.t:  # a quarter of the columns belong to rows that left
                self._realign(lo, self._capacity() - lo)
            self._regroup()
        pos = [r.plen + len(r.ids) - 1 for r in self.active]
        tuner.before()
        t0 = time.perf_counter()
        self.logits = self.runner.step(torch.tensor(toks), torch.tensor(pos))
        tuner.after(time.perf_counter() - t0, len(self.active))
        return done

    def _complete(self, req: Request) -> None:
        req.completions = self.engine._grouped(req.rows, req.pre, req.n, req.sp.stop)
