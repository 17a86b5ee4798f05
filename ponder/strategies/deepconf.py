"""DeepConf: confidence-filtered, confidence-weighted voting (Fu et al. 2025, "Deep Think with
Confidence", arXiv:2508.15260).

A trace's confidence is read off its own token log-probs (``Completion.logprobs``):

* token confidence: the log-prob of the token the model chose. The paper uses the negative mean
  log-prob of the top-k candidates (k = 20), which needs the top-k distribution; ponder's
  backends keep the chosen token's log-prob only, so that is the signal here (higher = more
  confident, as in the paper);
* group confidence: the mean token confidence over a sliding window of ``window`` tokens (the
  paper: 2,048 for traces of 10^4 tokens; ponder's tiny models write ~50, so 16 by default);
  a trace shorter than the window is one group;
* trace confidence (``confidence``): ``lowest`` (the lowest group: the weakest step), ``tail``
  (the mean of the last ``window`` tokens: the conclusion), ``bottom`` (the mean of the lowest
  10% of groups) or ``mean`` (the whole trace: the global average the paper argues against).

Offline (``mode="offline"``): ``n`` traces, keep the ``eta`` share with the highest confidence
(DeepConf-high: 0.9, DeepConf-low: 0.1), vote with weight ``exp(confidence)`` (a geometric-mean
token probability in (0, 1]; the paper weights by its positive confidence directly).

Online (``mode="online"``, Algorithm 2): ``warmup`` full traces set the stopping threshold
``s`` = the (1 - eta) quantile of their lowest-group confidences; warm-up traces at or above it
vote. Then ``batch`` traces at a time: a trace whose group confidence (a full window) falls
below ``s`` is stopped there and does not vote; sampling stops when the leading answer holds
``consensus`` (tau) of the vote weight, or at ``n`` traces. Backends with
``Capabilities.stop_hook`` (the local engine) stop the trace while decoding; for others the
finished trace is cut at the same token, so the tokens counted are those an early stop spends.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Sequence

from ponder.generate.types import Completion, make_completion
from ponder.strategies.base import (
    StrategyError,
    answer_of,
    check_float,
    check_int,
    equality,
    result,
    seeded,
)
from ponder.strategies.run import register_batched
from ponder.strategies.voting import examples_for, generate_groups, vote

CONFIDENCES = ("lowest", "tail", "bottom", "mean")


def group_confidences(logprobs: Sequence[float], window: int) -> list[float]:
    """Mean log-prob of every full window of ``window`` tokens (one value per window end); a
    trace shorter than the window is one group (its mean); no tokens: ``[-inf]``."""
    lps = list(logprobs)
    if not lps:
        return [-math.inf]
    if len(lps) <= window:
        return [sum(lps) / len(lps)]
    acc, out = sum(lps[:window]), []
    out.append(acc / window)
    for i in range(window, len(lps)):
        acc += lps[i] - lps[i - window]
        out.append(acc / window)
    return out


def trace_confidence(c: Completion, how: str = "lowest", window: int = 16) -> float:
    """One trace's confidence (module docstring): higher is more confident, ``-inf`` when empty."""
    lps = c.logprobs
    if not lps:
        return -math.inf
    if how == "mean":
        return sum(lps) / len(lps)
    if how == "tail":
        t = lps[-window:]
        return sum(t) / len(t)
    groups = group_confidences(lps, window)
    if how == "lowest":
        return min(groups)
    if how == "bottom":
        low = sorted(groups)[: max(1, math.ceil(0.1 * len(groups)))]
        return sum(low) / len(low)
    raise StrategyError(f"confidence must be one of {', '.join(CONFIDENCES)}, got {how!r}")


def stop_point(logprobs: Sequence[float], window: int, threshold: float) -> int | None:
    """Tokens kept when a trace stops at the first full window whose mean is below
    ``threshold`` (None: it never does). A trace shorter than the window is judged at its end."""
    lps = list(logprobs)
    if not lps:
        return None
    if len(lps) <= window:
        return len(lps) if sum(lps) / len(lps) < threshold else None
    for i, g in enumerate(group_confidences(lps, window)):
        if g < threshold:
            return i + window
    return None


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation (numpy's default), ``values`` non-empty."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    if pos == lo or v[lo] == v[hi]:  # also keeps -inf out of the arithmetic
        return v[lo]
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def cut(c: Completion, keep: int, decode: Callable[[list[int]], str] | None) -> Completion:
    """``c`` stopped after ``keep`` tokens (finish "length"): what an early stop would return.
    A trace judged only at its end (shorter than a window) is returned whole."""
    if keep >= len(c.token_ids):
        return c
    ids, lps = c.token_ids[:keep], c.logprobs[:keep]
    if decode is not None:
        return replace(make_completion(ids, decode, "length", lps, c.prefilled, (), frozenset(),
                                       forced_close=c.forced_close, waits=c.waits), prompt_tokens=c.prompt_tokens)
    r = min(c.reasoning_tokens, keep)  # no tokenizer: the text is cut in proportion
    text = c.text[: round(len(c.text) * keep / max(1, len(c.token_ids)))]
    return replace(c, text=text, token_ids=ids, logprobs=lps, reasoning_tokens=r, answer_tokens=keep - r,
                   finish_reason="length", answer="", think_closed=c.think_closed and keep > r)


def _weights(confs: Sequence[float]) -> list[float]:
    return [math.exp(x) if x > -math.inf else 0.0 for x in confs]


def _top(confs: Sequence[float], share: float) -> list[int]:
    """Indices of the ``share`` most confident traces (at least one; ties: the earlier)."""
    k = max(1, math.ceil(share * len(confs) - 1e-9))
    return sorted(sorted(range(len(confs)), key=lambda i: (-confs[i], i))[:k])


def _vote(strategy, comps, confs, voters, task, ex, eq, **trace):
    answers = [answer_of(c, task, ex) if i in voters else None for i, c in enumerate(comps)]
    w = _weights(confs)
    chosen, keys, votes = vote(answers, [w[i] if i in voters else 0.0 for i in range(len(comps))], eq)
    total = sum(votes.values())
    agree = max(votes.values()) / total if total > 0 else 0.0
    final = comps[chosen] if chosen is not None else (comps[0] if comps else None)
    return result(strategy, final, comps, answers[chosen] if chosen is not None else None,
                  chosen=chosen if chosen is not None else 0, answers=answers, keys=keys, votes=votes,
                  confidences=[round(x, 4) if x > -math.inf else None for x in confs],
                  voters=sorted(voters), consensus=round(agree, 4), **trace)


@register_batched("deepconf")
def deepconf_batch(backend, prompts, *, n: int = 16, sampling=None, budget=None, task=None, examples=None,
                   scorer=None, equal: str | Callable = "math", mode: str = "online", eta: float = 0.9,
                   confidence: str = "lowest", window: int = 16, warmup: int = 4, batch: int = 1,
                   consensus: float = 0.95):
    """DeepConf (module docstring): confidence-filtered, confidence-weighted voting over at most
    ``n`` traces; ``online`` stops weak traces and, at ``consensus``, sampling."""
    if scorer is not None:
        raise StrategyError("deepconf scores traces by their own log-probs; it does not use a scorer")
    if mode not in ("online", "offline"):
        raise StrategyError(f"mode must be 'online' or 'offline', got {mode!r}")
    if confidence not in CONFIDENCES:
        raise StrategyError(f"confidence must be one of {', '.join(CONFIDENCES)}, got {confidence!r}")
    check_float("eta", eta, 1e-9, 1.0)
    check_float("consensus", consensus, 0.5, 1.0)
    check_int("window", window)
    check_int("batch", batch)
    check_int("warmup", warmup)
    warmup = min(warmup, n)  # the warm-up traces are part of the n (n <= warmup: offline with a threshold)
    eq = equality(equal)
    exs = examples_for(prompts, examples)
    if not prompts:
        return []
    comps = [list(g) for g in generate_groups(backend, prompts, warmup if mode == "online" else n, sampling, budget)]
    confs = [[trace_confidence(c, confidence, window) for c in g] for g in comps]
    if mode == "offline":
        return [_vote("deepconf", comps[i], confs[i], set(_top(confs[i], eta)), task, exs[i], eq, mode=mode, eta=eta)
                for i in range(len(prompts))]
    # online: the threshold from the warm-up's lowest-group confidences
    lowest = [[trace_confidence(c, "lowest", window) for c in g] for g in comps]
    thresh = [quantile(lo, 1.0 - eta) for lo in lowest]
    voters = [{j for j, x in enumerate(lo) if x >= t} for lo, t in zip(lowest, thresh)]
    stopped: list[list[int]] = [[] for _ in prompts]
    decode = getattr(backend, "decode", None)
    done = [None] * len(prompts)
    rounds = 0

    def check(i: int) -> None:
        answers = [answer_of(c, task, exs[i]) if j in voters[i] else None for j, c in enumerate(comps[i])]
        w = _weights(confs[i])
        _, _, votes = vote(answers, [w[j] if j in voters[i] else 0.0 for j in range(len(answers))], eq)
        total = sum(votes.values())
        if total > 0 and max(votes.values()) / total >= consensus:
            done[i] = "consensus"
        elif len(comps[i]) >= n:
            done[i] = "budget"

    for i in range(len(prompts)):
        check(i)
    while True:
        active = [i for i in range(len(prompts)) if done[i] is None]
        if not active:
            break
        k = min(batch, n - len(comps[active[0]]))  # every active prompt has the same trace count
        rounds += 1
        kw = {}
        if getattr(backend.capabilities, "stop_hook", False):
            row_t = [thresh[i] for i in active for _ in range(k)]
            # the same rule as stop_point, on the window ending at the newest token
            kw["stop_row"] = lambda row, lps: len(lps) >= window and sum(lps[-window:]) / window < row_t[row]
        got = generate_groups(backend, [prompts[i] for i in active], k, seeded(sampling, rounds), budget, **kw)
        for i, g in zip(active, got):
            for c in g:
                at = stop_point(c.logprobs, window, thresh[i])
                j = len(comps[i])
                if at is not None:
                    c = cut(c, at, decode)
                    stopped[i].append(j)
                else:
                    voters[i].add(j)
                comps[i].append(c)
                confs[i].append(trace_confidence(c, confidence, window))
            check(i)
    out = []
    for i in range(len(prompts)):
        out.append(_vote("deepconf", comps[i], confs[i], voters[i], task, exs[i], eq, mode=mode, eta=eta,
                         threshold=round(thresh[i], 4) if thresh[i] > -math.inf else None, stopped=done[i],
                         early_stopped=stopped[i], samples_used=len(comps[i]), n=n))
    return out
