"""Tool-augmented GRPO rollouts: python blocks written while reasoning run in the sandbox.

The same loop as the inference-time ``tools`` strategy (``ponder.strategies.tools``, whose
fences, ``run_python`` and ``output_block`` own the tool-call format, the sandbox call and its
limits): generate until the opening fence, then until the closing fence, run the code in
``ponder.verify.sandbox``, append after the closing fence::

    ```output
    <stdout, or the error>
    ```

and continue, up to ``max_calls`` executions per rollout. What TRL's GRPOTrainer needs back
is one completion per row plus ``env_mask`` (TRL's name for a rollout_func's tool mask): 1 for
tokens the policy sampled, 0 for tokens ponder inserted. TRL multiplies it into the loss mask,
so inserted tokens are context but carry no policy-gradient, ratio or KL term.

Where ponder differs from TRL's own ``tools=`` path (chat-template tool calls, JSON arguments):
the tool is code in a fenced block inside the think block, as the ``tools`` strategy reads it,
and the fences the model writes are its own sampled tokens, trained like the rest (opening a
block is the decision to call the tool); only the ``output`` block after the closing fence is
inserted and masked. Each piece is generated from the text so far, re-tokenised by the engine,
so token boundaries at a fence or the output may differ from the ids TRL trains on (the usual
multi-turn re-tokenisation drift; the text is the same).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class _Row:
    text: str  # prompt + completion so far (the next call's prompt)
    ids: list[int] = field(default_factory=list)
    lps: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)  # run_python's record of each execution
    want_code: bool = False
    done: bool = False


def tool_rollouts(engine, tokenizer, texts: list[str], sampling, max_tokens: int, max_calls: int,
                  timeout: float = 5.0, max_output_chars: int = 1000, workers: int = 4) -> tuple[list, list, list, list]:
    """Completion ids, log-probs, env masks and executions for each of ``texts`` (one rollout each).

    The executions of a rollout are ``run_python``'s records (``code``, ``output``, ``ok``,
    ``reason``), one per sandbox run.

    ``sampling`` is a ``SamplingParams`` without stop strings; ``max_tokens`` caps each rollout's
    total length (sampled plus inserted tokens), as ``max_completion_length`` does in TRL; up to
    ``workers`` sandbox runs go at once.
    """
    from dataclasses import replace

    from ponder.strategies.tools import CLOSE_FENCE, by_next_stop, output_block, run_python

    rows = [_Row(t) for t in texts]
    step = 0
    while any(not r.done for r in rows):
        for stop, rs in by_next_stop(rows, max_calls).items():
            # one call for the group, so one token limit: the most any row has left (a row that runs
            # past its own is done and cut to max_tokens below), never cutting the others short
            left = max(max_tokens - len(r.ids) for r in rs)
            sp = replace(sampling, stop=list(stop), max_tokens=max(1, left), seed=(sampling.seed or 0) + step)
            step += 1
            outs = engine.generate([r.text for r in rs], n=1, sampling=sp)
            closed = []  # (row, code) of the pieces that closed a block: run together below
            for r, (c,) in zip(rs, outs):
                # the tokens include the fence that stopped the piece (its text is cut before it): the
                # model sampled that fence, so it is trained -- opening a block is the decision to call
                r.ids += list(c.token_ids)
                r.lps += list(c.logprobs)
                r.mask += [1] * len(c.token_ids)
                if c.finish_reason != "stop" or not stop or len(r.ids) >= max_tokens:
                    r.text += c.text
                    r.done = True
                    continue
                r.text += c.text + stop[0]
                r.want_code = not r.want_code
                if not r.want_code:  # the closing fence: run the block; at an opening one the code comes next
                    closed.append((r, c.text))
            # each sandbox run is a process that mostly waits on its start-up: run a batch's side by side
            with ThreadPoolExecutor(max(1, min(len(closed), workers))) as pool:
                results = list(pool.map(lambda rc: run_python(rc[1], timeout, max_output_chars), closed))
            for (r, _), (output, record) in zip(closed, results):
                r.calls.append(record)
                insert = output_block(output)[len(CLOSE_FENCE):]  # the model wrote the closing fence
                ins = tokenizer.encode(insert, add_special_tokens=False)
                r.ids += ins
                r.lps += [0.0] * len(ins)  # not sampled: masked out of the loss and the ratio
                r.mask += [0] * len(ins)
                r.text += insert
                if len(r.ids) >= max_tokens:
                    r.done = True
    for r in rows:
        del r.ids[max_tokens:], r.lps[max_tokens:], r.mask[max_tokens:]
    return [r.ids for r in rows], [r.lps for r in rows], [r.mask for r in rows], [r.calls for r in rows]


#: per-step tool metrics (``ponder/<name>`` in TRL's log; metrics.jsonl drops the prefix)
STATS = ("tool_calls", "tool_use_share", "tool_error_share", "masked_share")


def rollout_stats(calls: list[list[dict]], masks: list[list[int]]) -> dict[str, float | None]:
    """One step's tool metrics from ``tool_rollouts``' executions and env masks.

    ``tool_calls``: executions per rollout; ``tool_use_share``: rollouts with at least one;
    ``tool_error_share``: executions that failed (error, timeout, limit), None without any;
    ``masked_share``: inserted (env_mask 0) tokens among all completion tokens.
    """
    runs = [c for cs in calls for c in cs]
    tokens = sum(len(m) for m in masks)
    return {
        "tool_calls": len(runs) / len(calls) if calls else 0.0,
        "tool_use_share": sum(bool(cs) for cs in calls) / len(calls) if calls else 0.0,
        "tool_error_share": sum(not c["ok"] for c in runs) / len(runs) if runs else None,
        "masked_share": sum(m.count(0) for m in masks) / tokens if tokens else 0.0,
    }
