"""Tool-augmented GRPO rollouts: python blocks written while reasoning run in the sandbox.

The same loop as the inference-time ``tools`` strategy (``ponder.strategies.tools``, whose
``run_python`` owns the sandbox call, limits and output format): generate until the opening
fence, then until the closing fence, run the code in ``ponder.verify.sandbox``, append::

    ```
    ```output
    <stdout, or the error>
    ```

and continue, up to ``max_calls`` executions per rollout. What TRL's GRPOTrainer needs back
is one completion per row plus ``env_mask`` (TRL's name for a rollout_func's tool mask): 1 for
tokens the policy sampled, 0 for tokens ponder inserted. TRL multiplies it into the loss mask,
so inserted tokens are context but carry no policy-gradient, ratio or KL term.

Where ponder differs from TRL's own ``tools=`` path (chat-template tool calls, JSON arguments):
the tool is code in a fenced block inside the think block, as the ``tools`` strategy reads it,
and the fence text the stop string cut off is re-tokenised with the output, so it is masked
too (the model's sampled tokens up to the fence are trained; the fence itself is not).
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPEN_FENCE, CLOSE_FENCE = "```python\n", "```"


@dataclass
class _Row:
    text: str  # prompt + completion so far (the next call's prompt)
    ids: list[int] = field(default_factory=list)
    lps: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    calls: int = 0
    want_code: bool = False
    done: bool = False


def tool_rollouts(engine, tokenizer, texts: list[str], sampling, max_tokens: int, max_calls: int,
                  timeout: float = 5.0, max_output_chars: int = 1000) -> tuple[list, list, list, list]:
    """Completion ids, log-probs, env masks and tool-call counts for each of ``texts`` (one rollout each).

    ``sampling`` is a ``SamplingParams`` without stop strings; ``max_tokens`` caps each rollout's
    total length (sampled plus inserted tokens), as ``max_completion_length`` does in TRL.
    """
    from dataclasses import replace

    from ponder.strategies.tools import run_python

    rows = [_Row(t) for t in texts]
    step = 0
    while any(not r.done for r in rows):
        groups: dict[tuple, list[_Row]] = {}
        for r in rows:
            if not r.done:
                stop = (CLOSE_FENCE,) if r.want_code else ((OPEN_FENCE,) if r.calls < max_calls else ())
                groups.setdefault(stop, []).append(r)
        for stop, rs in groups.items():
            left = min(max_tokens - len(r.ids) for r in rs)
            sp = replace(sampling, stop=list(stop), max_tokens=max(1, left), seed=(sampling.seed or 0) + step)
            step += 1
            outs = engine.generate([r.text for r in rs], n=1, sampling=sp)
            for r, (c,) in zip(rs, outs):
                r.ids += list(c.token_ids)
                r.lps += list(c.logprobs)
                r.mask += [1] * len(c.token_ids)
                r.text += c.text
                if c.finish_reason != "stop" or not stop or len(r.ids) >= max_tokens:
                    r.done = True
                    continue
                if not r.want_code:
                    insert, r.want_code = OPEN_FENCE, True
                else:
                    output, _ = run_python(c.text, timeout, max_output_chars)
                    r.calls += 1
                    insert = f"{CLOSE_FENCE}\n{CLOSE_FENCE}output\n{output}\n{CLOSE_FENCE}\n"
                    r.want_code = False
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
