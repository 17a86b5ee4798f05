"""The reasoning-format contract: render -> generate -> parse -> extract -> judge.

One owner for how a model's text becomes a verdict (docs/format.md):

* ``render`` (``ponder.format.render``): messages + a thinking decision -> the prompt, and where
  its completion starts (inside a pre-filled ``<think>``, plain, or unknown for an endpoint).
* ``parse`` (``ponder.format.parse``): one state machine for whole texts and streams splits a
  completion into reasoning and answer; ``Parsed.answer_text`` is the text an answer is read from.
* ``final_answer`` (``ponder.format.extract``): the documented extraction rules.
* the judge (``ponder.tasks.judge``) turns an answer into a ``Verdict`` against a task's gold.
* ``find_loop`` / ``tail_loop`` (``ponder.format.loops``): a cycle repeated inside the reasoning.

Nothing else in ponder builds a prompt or splits a completion.
"""

from ponder.format.extract import (
    FALLBACKS,
    Extraction,
    after_equals,
    answer_like,
    boxes,
    canonical,
    canonical_groups,
    clean,
    final_answer,
    last_boxed,
    last_number,
    statements,
)
from ponder.format.loops import Loop, find_loop, looped, tail_loop
from ponder.format.parse import STARTS, Parsed, ReasoningSplitter, Start, parse, start_of
from ponder.format.render import (
    EMPTY_THINK,
    MODES,
    R1_SYSTEM,
    R1_ZERO_SYSTEM,
    SYSTEMS,
    TEMPLATES,
    Prompt,
    RenderError,
    Thinking,
    ThinkingMode,
    build_messages,
    completion_after,
    conversation,
    decide_thinking,
    format_completion,
    history_turn,
    knows_think_tags,
    render,
    render_text,
    system_text,
    template_inserts_system,
)
from ponder.format.tags import ANSWER_CLOSE, ANSWER_OPEN, TAGS, THINK_CLOSE, THINK_OPEN, ends_in_think


def extract_answer(completion: str, start: Start | bool | None = "plain", fallback=None,
                   finish_reason: str | None = None) -> str | None:
    """The final answer of a whole completion: ``parse``, then ``Parsed.answer_text``, then
    ``final_answer`` (its value, or None)."""
    found = final_answer(parse(completion, start).answer_text(finish_reason), fallback)
    return found.value if found else None


__all__ = [
    "ANSWER_CLOSE", "ANSWER_OPEN", "EMPTY_THINK", "Extraction", "FALLBACKS", "Loop", "MODES", "Parsed", "Prompt",
    "R1_SYSTEM", "R1_ZERO_SYSTEM", "ReasoningSplitter", "RenderError", "STARTS", "SYSTEMS", "Start", "TAGS",
    "TEMPLATES", "THINK_CLOSE", "THINK_OPEN", "Thinking", "ThinkingMode", "after_equals", "answer_like", "boxes",
    "build_messages", "canonical", "completion_after", "canonical_groups", "clean", "conversation", "decide_thinking", "ends_in_think", "extract_answer",
    "final_answer", "find_loop", "format_completion", "looped", "tail_loop", "history_turn", "knows_think_tags", "last_boxed", "last_number", "parse",
    "render", "render_text", "start_of", "statements", "system_text", "template_inserts_system",
]
