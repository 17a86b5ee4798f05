"""Step-level search: beam search with a process scorer, and Marco-o1 style MCTS.

A *step* is what the model writes up to the next ``delimiter`` (default a newline): each step
is one ``generate`` call with ``stop=[delimiter]`` and at most ``step_tokens`` tokens, on the
prompt plus the trajectory so far. A trajectory is done when a step ends with EOS (or any
finish other than the delimiter or the step token limit). Partial trajectories are scored
with ``scorer(prompt, partial_completion)`` — a process reward model, or by default the
model's own token confidence.

Limits: the trajectory is re-encoded from text at every step, so a token that spans the
delimiter ("``.\\n``") loses the part after it; thinking budgets are not supported (each step
is its own call), cap the length with ``max_steps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ponder.generate.types import Completion
from ponder.strategies.base import (
    StrategyError,
    answer_of,
    check_float,
    check_int,
    join,
    no_budget,
    relabel,
    result,  # fmt: skip
    seeded,
    text_of,
    with_stop,
)
from ponder.strategies.run import register_strategy
from ponder.strategies.scorers import resolve_scorer, scores


def confidence(prompt: str, c: Completion) -> float:
    """Mean per-token probability exp(log p) over the trajectory (Marco-o1's token confidence,
    without its top-5 renormalisation, which needs logits a backend does not return)."""
    return sum(math.exp(x) for x in c.logprobs) / len(c.logprobs) if c.logprobs else 0.0


def _check_steps(delimiter: Any, step_tokens: Any, max_steps: Any, expand: Any) -> None:
    if not isinstance(delimiter, str) or not delimiter:
        raise StrategyError(f"delimiter must be a non-empty string, got {delimiter!r}")
    check_int("step_tokens", step_tokens)
    check_int("max_steps", max_steps)
    check_int("expand", expand)


def _extend(backend, prompt: str, trajectories: list[tuple[list[Completion], list[str]]], expand: int,
            sampling, delimiter: str, step_tokens: int, call: int, spent: list[Completion]):
    """Generate ``expand`` next steps for each trajectory; returns (parts, suffixes, done, step)
    for each distinct step. Every generated step, duplicates included, is appended to ``spent``
    (the tokens were spent even when a duplicate adds nothing to the search)."""
    so_far = [join(prompt, parts, suff).text if parts else "" for parts, suff in trajectories]
    sp = with_stop(sampling, [delimiter], step_tokens, offset=call)
    groups = backend.generate([prompt + t for t in so_far], n=expand, sampling=sp, budget=None)
    out = []
    for (parts, suff), g, head in zip(trajectories, groups, so_far):
        seen = set()
        for c in map(lambda c: relabel(prompt, head, c, backend.decode), g):
            spent.append(c)
            if c.text in seen:  # identical siblings add nothing to the search
                continue
            seen.add(c.text)
            cont = c.finish_reason in ("stop", "length")
            out.append((parts + [c], suff + [delimiter if c.finish_reason == "stop" else ""], not cont, c))
    return out


# --------------------------------------------------------------------------- beam


@register_strategy("beam")
def beam(backend, prompt: str, *, n: int | None = None, sampling=None, budget=None, task=None, example=None,
         scorer=None, expand: int = 2, max_steps: int = 16, delimiter: str = "\n", step_tokens: int = 64,
         final_scorer=None) -> Any:
    """Step-level beam search: keep the ``n`` (default 2) best partial trajectories by the process
    scorer, extend each by ``expand`` sampled steps; the best finished trajectory by
    ``final_scorer`` (default: the process scorer) is the answer."""
    no_budget("beam", budget)
    prompt = text_of(prompt)
    width = 2 if n is None else n
    _check_steps(delimiter, step_tokens, max_steps, expand)
    score = resolve_scorer(scorer, task, example, default="logprob")
    final = resolve_scorer(final_scorer, task, example) if final_scorer is not None else score
    beams: list[tuple[list[Completion], list[str]]] = [([], [])]
    finished: list[tuple[Completion, float]] = []
    samples: list[Completion] = []
    steps: list[list[dict]] = []
    for step in range(max_steps):
        cands = _extend(backend, prompt, beams, expand, sampling, delimiter, step_tokens, step, samples)
        scored = []
        for parts, suff, done, c in cands:
            traj = join(prompt, parts, suff)
            scored.append((scores(score, prompt, [traj])[0], parts, suff, done, traj))
        order = sorted(range(len(scored)), key=lambda i: -scored[i][0])
        keep = set(order[:width])
        steps.append([{"step": s[1][-1].text, "score": s[0],
                       "kept": i in keep, "done": s[3]} for i, s in enumerate(scored)])
        beams = []
        for i in order[:width]:
            s, parts, suff, done, traj = scored[i]
            if done:
                finished.append((traj, s))
            else:
                beams.append((parts, suff))
        if not beams or len(finished) >= width:
            break
    pool = [t for t, _ in finished] or [join(prompt, p, s) for p, s in beams]
    final_scores = scores(final, prompt, pool)
    best = max(range(len(pool)), key=lambda i: (final_scores[i], -i))
    chosen = pool[best]
    return result("beam", chosen, samples, answer_of(chosen, task, example), width=width, expand=expand,
                  steps=steps, finished=len(finished), final_scores=final_scores)


# --------------------------------------------------------------------------- mcts


@dataclass
class _Node:
    parts: list[Completion]
    suffixes: list[str]
    parent: int | None
    done: bool = False
    visits: int = 0
    value_sum: float = 0.0
    children: list[int] = field(default_factory=list)

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0


@register_strategy("mcts")
def mcts(backend, prompt: str, *, n: int | None = None, sampling=None, budget=None, task=None, example=None,
         scorer=None, expand: int = 2, c_uct: float = 1.0, max_steps: int = 12, delimiter: str = "\n",
         step_tokens: int = 64) -> Any:
    """Monte Carlo tree search over reasoning steps (Marco-o1): ``n`` (default 8) iterations of
    select (UCT) → expand (``expand`` sampled next steps) → evaluate (token confidence of the
    path, or ``scorer``) → back up. The answer is the best-valued finished trajectory; without
    one, the most visited path is completed in one call."""
    no_budget("mcts", budget)
    prompt = text_of(prompt)
    iterations = 8 if n is None else n
    _check_steps(delimiter, step_tokens, max_steps, expand)
    check_float("c_uct", c_uct, 0.0, 100.0)
    value_of = resolve_scorer(scorer, task, example) if scorer is not None else confidence
    nodes = [_Node([], [], None)]
    samples: list[Completion] = []
    calls = 0
    for _ in range(iterations):
        i, depth = 0, 0
        while nodes[i].children and not nodes[i].done:  # selection by UCT (unvisited first)
            parent = nodes[i]
            i = max(parent.children, key=lambda j: math.inf if nodes[j].visits == 0 else
                    nodes[j].q + c_uct * math.sqrt(math.log(parent.visits) / nodes[j].visits))
            depth += 1
        leaf = nodes[i]
        if leaf.done or depth >= max_steps:
            leaf.done, values = True, [leaf.q if leaf.visits else
                                       scores(value_of, prompt, [join(prompt, leaf.parts, leaf.suffixes)])[0]]
        else:
            values = []
            for parts, suff, done, c in _extend(backend, prompt, [(leaf.parts, leaf.suffixes)], expand, sampling,
                                                delimiter, step_tokens, calls, samples):
                v = scores(value_of, prompt, [join(prompt, parts, suff)])[0]
                nodes.append(_Node(parts, suff, i, done, visits=1, value_sum=v))
                leaf.children.append(len(nodes) - 1)
                values.append(v)
            calls += 1
        v = sum(values) / len(values)
        j: int | None = i
        while j is not None:  # back up the mean value of the new children
            nodes[j].visits += 1
            nodes[j].value_sum += v
            j = nodes[j].parent
    done = [k for k, nd in enumerate(nodes) if nd.done and nd.parts]
    if done:
        k = max(done, key=lambda k: (nodes[k].q, -k))
        chosen = join(prompt, nodes[k].parts, nodes[k].suffixes)
        how = "best finished"
    else:
        k = 0
        while nodes[k].children:
            k = max(nodes[k].children, key=lambda j: (nodes[j].visits, nodes[j].q))
        nd = nodes[k]
        head = join(prompt, nd.parts, nd.suffixes).text if nd.parts else ""
        rest = relabel(prompt, head, backend.generate([prompt + head], n=1, sampling=seeded(sampling, calls + 1),
                                                      budget=None)[0][0])
        samples.append(rest)
        chosen = join(prompt, nd.parts + [rest], nd.suffixes + [""])
        how = "completed most visited"
    tree = [{"id": k2, "parent": nd.parent, "step": nd.parts[-1].text if nd.parts else "", "visits": nd.visits,
             "value": nd.q, "done": nd.done} for k2, nd in enumerate(nodes)]
    return result("mcts", chosen, samples, answer_of(chosen, task, example), iterations=iterations, tree=tree,
                  chosen_node=k, how=how)
