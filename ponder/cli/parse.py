"""``ponder parse FILE.jsonl``: split completions into reasoning and answer, as ponder does.

Reads one ``{"text": str, "prefilled": bool}`` object per line (``prefilled`` optional: false;
null means unknown, an endpoint's own template; ``finish_reason`` optional) and writes one
``{"reasoning", "answer", "final_answer", "final_answer_rule", "think_closed"}`` object per line
-- the contract of ``ponder.format``: ``parse``, ``Parsed.answer_text`` and ``final_answer``.
``--task T`` uses the task's extraction (its fallback, e.g. the last number for numeric tasks);
a ``gold`` field then adds the judge's verdict (``correct``, ``reason``). ``--stream N`` feeds
each text to the streaming splitter in N-character chunks (1: character by character); the
output is identical to the non-streamed one for every N, by construction.

Every line is checked before anything is written: a line that is not JSON, lacks ``text`` or has
a field of the wrong type stops with one error naming it (exit 2) and no output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ponder.cli.common import fail, user_errors
from ponder.io import json_objects


def _split(text: str, start, stream: int | None) -> tuple[str, str, bool, bool, bool]:
    from ponder.format import ReasoningSplitter, parse

    if not stream:
        p = parse(text, start)
        return p.reasoning, p.answer, p.think_closed, p.think_open, p.start == "inside"
    sp = ReasoningSplitter(start)
    pieces = []
    for i in range(0, len(text), stream):
        pieces += sp.feed(text[i:i + stream])
    pieces += sp.finish()
    return ("".join(s for k, s in pieces if k == "reasoning"), "".join(s for k, s in pieces if k == "answer"),
            sp.closed, sp.opened, sp.start == "inside")


def parse_line(row: dict, where: str, task=None, stream: int | None = None) -> dict[str, Any]:
    """The output object for one input object (``ValueError`` naming ``where`` on bad input)."""
    from ponder.format import Parsed, final_answer, start_of
    from ponder.tasks import judge

    text = row.get("text")
    if not isinstance(text, str):
        raise ValueError(f"{where}: field \"text\" must be a string, got {type(text).__name__}")
    pre = row.get("prefilled", False)
    if pre is not None and not isinstance(pre, bool):
        raise ValueError(f"{where}: field \"prefilled\" must be true, false or null, got {pre!r}")
    finish = row.get("finish_reason")
    if finish is not None and finish not in ("stop", "length", "eos"):
        raise ValueError(f"{where}: field \"finish_reason\" must be stop, length or eos, got {finish!r}")
    start = start_of(pre)
    reasoning, answer, closed, opened, inside = _split(text, start, stream)
    parsed = Parsed(reasoning, answer, "inside" if inside else start, opened, closed)
    part = parsed.answer_text(finish)
    if task is not None:
        value, rule = task.extract(part), "task"
    else:
        found = final_answer(part)
        value, rule = (found.value, found.rule) if found else (None, None)
    out: dict[str, Any] = {"reasoning": reasoning, "answer": answer, "final_answer": value,
                           "final_answer_rule": rule, "think_closed": closed}
    if "gold" in row:
        if task is None:
            from ponder.tasks import cached_task

            task = cached_task("math")
        ex = {"id": str(row.get("id", where)), "prompt": row.get("prompt", ""), "gold": str(row["gold"]),
              "meta": row.get("meta") or {}}
        v = judge(task, text, ex, start=start, finish_reason=finish)
        out.update(correct=v.correct, reason=v.reason)
    return out


@user_errors
def parse(
    file: Path = typer.Argument(..., help='JSONL, one {"text": …, "prefilled": false} object per line.'),
    stream: Optional[int] = typer.Option(None, "--stream", min=1, help="Feed the streaming splitter N characters at a time."),
    task: Optional[str] = typer.Option(None, help="Task spec whose extraction (and, with gold, verdict) to use."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of stdout (atomically)."),
) -> None:
    """Split completions into reasoning and answer and extract the final answer, one JSON object per line."""
    from ponder.io import write_text_atomic
    from ponder.tasks import get_task

    if not file.is_file():
        fail(f"{file}: no such file")
    t = get_task(task) if task else None
    lines = []
    for n, row in json_objects(file):
        lines.append(json.dumps(parse_line(row, f"{file}:{n}", t, stream), ensure_ascii=False) + "\n")
    text = "".join(lines)
    if out is not None:
        write_text_atomic(out, text)
    else:
        sys.stdout.write(text)
