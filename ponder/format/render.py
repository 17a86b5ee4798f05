"""Render a conversation into a model's prompt, and decide whether the model thinks.

Every prompt ponder shows a model -- in pretraining, SFT, GRPO, rejection sampling, evaluation,
strategies, ``ask``, ``chat`` and ``serve`` -- is made here, so one checkpoint is trained and
measured under one prompt. ``render(messages, tokenizer, thinking)`` returns a ``Prompt``: the
text (through the model's own chat template, or ponder's plain layout for a tokenizer without
one), the conversation, and where its completion starts (``ponder.format.parse``).

**Thinking modes** (``--thinking auto|on|off`` on every command that generates) are decided
once per model by ``decide_thinking`` into a concrete ``Thinking.start``:

* ``prefill``: the prompt ends in ``<think>``; the completion starts inside the reasoning.
* ``model``: nothing is added; the model opens ``<think>`` itself if it thinks (ponder's own
  models are trained this way, so "does it reason at all" is a behaviour GRPO can change).
* ``skip``: an empty think block is pre-filled (``<think>\\n</think>\\n``, or the template's own
  ``enable_thinking=False`` form): the model answers without thinking.
* ``server``: an endpoint renders with its own template; ponder cannot see whether it opened a
  think block (``on`` parses as if it did, ``off`` as if not, ``auto`` waits for a ``</think>``).

``on`` -> prefill. ``off`` -> skip when the model knows the think tags, else model (a model that
never heard of the tags needs no empty block). ``auto``, in order: the start a ponder checkpoint
recorded (``ponder_thinking`` in its config); prefill when the chat template itself ends its
generation prompt in ``<think>``; prefill when the template or the vocabulary knows the think
tags (one token for ``<think>``); else model. The model's behaviour is never assumed: a
pre-filled completion that never closes ``</think>`` is reported as such, and its text is still
read as the answer (``Parsed.answer_text``).

**System prompts**: ``system=None`` (or "") sends no system turn. Some chat templates insert a
default system prompt of their own when none is given (SmolLM2: "You are a helpful AI
assistant named SmolLM…"); ``Prompt.template_system`` says so, and passing a system prompt of
your own replaces it.

**History**: earlier assistant turns carry their answer only, never their reasoning (DeepSeek
documents the same rule for R1; ``history_turn``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from ponder.format.parse import Start
from ponder.format.tags import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, ends_in_think

ThinkingMode = Literal["auto", "on", "off"]
MODES = ("auto", "on", "off")
ThinkStart = Literal["prefill", "model", "skip", "server"]
STARTS = ("prefill", "model", "skip")  # the ones a local checkpoint can record

#: What ``skip`` pre-fills when the template has no way of its own to turn thinking off.
EMPTY_THINK = f"{THINK_OPEN}\n{THINK_CLOSE}\n"


class RenderError(ValueError):
    """A conversation that cannot be rendered (bad roles, a template that rejects it)."""


@dataclass(frozen=True)
class Thinking:
    """A model's thinking decision: the ``mode`` asked for, the concrete ``start`` and why."""

    mode: ThinkingMode
    start: ThinkStart
    reason: str

    @property
    def parse_start(self) -> Start:
        """How completions of an endpoint are parsed (local prompts: from the rendered text)."""
        if self.start == "server":
            return {"on": "inside", "off": "plain"}.get(self.mode, "unknown")  # type: ignore[return-value]
        return "inside" if self.start == "prefill" else "plain"


def check_mode(mode: str) -> ThinkingMode:
    if mode not in MODES:
        raise ValueError(f"thinking mode must be auto, on or off, got {mode!r}")
    return mode  # type: ignore[return-value]


def _template(tokenizer) -> str:
    t = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    return t if isinstance(t, str) else ""


def knows_think_tags(tokenizer) -> str | None:
    """Why the tokenizer knows the think tags (its chat template names them, or ``<think>`` is
    one token of its vocabulary), or None."""
    if tokenizer is None:
        return None
    if THINK_OPEN in _template(tokenizer) or THINK_CLOSE in _template(tokenizer):
        return "its chat template uses the think tags"
    try:
        ids = tokenizer.encode(THINK_OPEN, add_special_tokens=False)
    except Exception:  # noqa: BLE001 - an odd tokenizer: treat as not knowing
        return None
    return "<think> is one token of its vocabulary" if len(ids) == 1 else None


def decide_thinking(mode: str = "auto", tokenizer=None, config: Any = None, *, remote: bool = False) -> Thinking:
    """The concrete thinking decision for a model (see the module docstring).

    ``tokenizer``/``config``: the local model's (``config.ponder_thinking`` is a ponder
    checkpoint's record). ``remote``: an endpoint (start ``server``)."""
    mode = check_mode(mode)
    if remote:
        why = {"auto": "the server renders the prompt: a reasoning split is read only where a </think> shows one",
               "on": "thinking on: the server's template is taken to open the think block",
               "off": "thinking off: completions are answers (the server is asked not to think)"}[mode]
        return Thinking(mode, "server", why)
    knows = knows_think_tags(tokenizer)
    if mode == "on":
        return Thinking(mode, "prefill", "thinking on: <think> is pre-filled")
    if mode == "off":
        if knows:
            return Thinking(mode, "skip", f"thinking off: an empty think block is pre-filled ({knows})")
        return Thinking(mode, "model", "thinking off: the model knows no think tags, nothing is added")
    recorded = getattr(config, "ponder_thinking", None) if config is not None else None
    if recorded in STARTS:
        return Thinking(mode, recorded, f"the checkpoint records how it was trained: {recorded}")
    if tokenizer is not None and _template(tokenizer):
        try:
            probe = tokenizer.apply_chat_template([{"role": "user", "content": "?"}], tokenize=False,
                                                  add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - a template that needs more than one user turn
            probe = ""
        if ends_in_think(probe):
            return Thinking(mode, "prefill", "the chat template opens the think block itself")
    if knows:
        return Thinking(mode, "prefill", f"the model knows the think tags ({knows}): <think> is pre-filled")
    return Thinking(mode, "model", "the model knows no think tags: its text is its answer")


# --------------------------------------------------------------------------- messages

R1_SYSTEM = (
    "You are a helpful assistant. You first think about the reasoning process in your mind "
    "and then provide the user with the answer. The reasoning process is enclosed within "
    "<think> </think> and the answer follows it."
)
R1_ZERO_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think><answer> answer here </answer>."
)
#: Named system prompts a ``--system`` option accepts as a shorthand.
SYSTEMS = {"r1": R1_SYSTEM, "r1-zero": R1_ZERO_SYSTEM}
TEMPLATES = ("think", "r1-zero")
ROLES = ("system", "user", "assistant")


def system_text(system: str | None) -> str | None:
    """A ``--system`` value: a name of ``SYSTEMS``, literal text, or None/"" for none."""
    if not system:
        return None
    return SYSTEMS.get(system, system)


def conversation(messages: str | Sequence[dict], system: str | None = None) -> list[dict]:
    """Chat messages from a question or a message list, with ``system`` (when given) first.

    ``developer`` turns count as ``system``; an assistant turn keeps its answer only (a message's
    ``reasoning_content``/``reasoning`` fields are dropped, never shown to the model again).
    """
    if isinstance(messages, str):
        msgs = [{"role": "user", "content": messages}]
    elif isinstance(messages, (list, tuple)) and messages:
        msgs = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                raise RenderError(f"messages[{i}] must be a {{'role', 'content': str}} dict, got {m!r:.80}")
            role = "system" if m.get("role") == "developer" else m.get("role")
            if role not in ROLES:
                raise RenderError(f"messages[{i}] has role {m.get('role')!r}; expected system, user or assistant")
            msgs.append({"role": role, "content": m["content"]})
    else:
        raise RenderError(f"a prompt must be a question string or a non-empty message list, got {messages!r:.80}")
    sys_text = system_text(system)
    if sys_text:
        msgs = [{"role": "system", "content": sys_text}] + [m for m in msgs if m["role"] != "system"]
    return msgs


def build_messages(question: str, system: str | None = None) -> list[dict]:
    """``[system?, user]`` messages for one question (``system``: see ``system_text``)."""
    return conversation(question, system)


def history_turn(answer: str, text: str = "") -> dict:
    """The assistant turn a conversation keeps: the answer (``Completion.answer_text()``), or,
    when the completion gave none, its whole text without the think tags -- never an empty turn."""
    if answer.strip():
        return {"role": "assistant", "content": answer.strip()}
    return {"role": "assistant", "content": re.sub(r"</?think>", "", text).strip()}


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt.

    text: the prompt string for a local model (None for an endpoint, which gets ``messages``).
    messages: the conversation it renders.
    start: where its completion starts (``ponder.format.parse``): from the text itself for a
        local prompt (``inside`` exactly when it ends in ``<think>``), from the thinking mode
        for an endpoint.
    thinking: the decision it was rendered under.
    template_system: the chat template inserted a system prompt of its own.
    """

    text: str | None
    messages: list[dict]
    start: Start
    thinking: Thinking
    template_system: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def prefilled(self) -> bool | None:
        """The completion starts inside ``<think>`` (None: unknown, an endpoint's template)."""
        return {"inside": True, "plain": False}.get(self.start)

    @property
    def payload(self) -> str | list[dict]:
        """What ``Backend.generate`` takes: the text, or the messages for an endpoint."""
        return self.text if self.text is not None else self.messages


_SPECIAL = re.compile(r"<\|[^|>]*\|>|<｜[^｜>]*｜>|<s>|</s>")


def template_inserts_system(tokenizer) -> bool:
    """True when the chat template writes a system prompt of its own for a conversation
    without one (more than a role marker before the user's text)."""
    template = _template(tokenizer)
    if not template:
        return False
    cached = getattr(tokenizer, "_ponder_inserts_system", None)
    if cached is not None and cached[0] == template:  # rendering twice per prompt adds up over a dataset
        return cached[1]
    found = _inserts_system(tokenizer)
    try:
        tokenizer._ponder_inserts_system = (template, found)
    except AttributeError:
        pass
    return found


def _inserts_system(tokenizer) -> bool:
    marker = "\x07QUESTION\x07"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": marker}], tokenize=False,
                                             add_generation_prompt=False)
    except Exception:  # noqa: BLE001
        return False
    head = _SPECIAL.sub(" ", text.split(marker)[0])
    return len(re.findall(r"[A-Za-z]{2,}", head)) > 3


#: ponder's plain layout, the R1 paper's: ``SYSTEM\nUser: Q\nAssistant: ``. It is the chat
#: template of ponder's tokenizers and the layout for a tokenizer without one. Assistant turns end
#: in eos (the model must learn to stop); a newline separates an assistant turn from a following
#: turn but never trails the last one, so rendering prompt+completion starts with the rendered
#: prompt (TRL relies on it).
PLAIN_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{- message['content'] + '\\n' -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- 'User: ' + message['content'] + '\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- 'Assistant: ' -}}"
    "{%- generation -%}{{- message['content'] + eos_token -}}{%- endgeneration -%}"
    "{%- if not loop.last -%}{{- '\\n' -}}{%- endif -%}"
    "{%- else -%}"
    "{{- raise_exception('unknown chat role ' ~ message['role'] ~ '; expected system, user or assistant') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant: ' -}}{%- endif -%}"
)


@functools.lru_cache(maxsize=1)
def _plain_template():
    """``PLAIN_TEMPLATE`` compiled the way transformers compiles chat templates."""
    from transformers.utils.chat_template_utils import _compile_jinja_template

    return _compile_jinja_template(PLAIN_TEMPLATE)


def _plain_layout(msgs: list[dict]) -> str:
    """ponder's layout for a tokenizer without a chat template (``PLAIN_TEMPLATE``); history
    turns carry no eos (there is no tokenizer to name one)."""
    return _plain_template().render(messages=msgs, add_generation_prompt=True, eos_token="")


def render(messages: str | Sequence[dict], tokenizer=None, thinking: Thinking | None = None, *,
           system: str | None = None) -> Prompt:
    """The prompt for ``messages`` (a question or a conversation) under ``thinking``.

    ``tokenizer``: the local model's (its chat template is used when it has one; None with a
    local ``thinking`` means ponder's plain layout). ``thinking``: from ``decide_thinking``
    (default: ``auto`` for this tokenizer). For an endpoint (``thinking.start == "server"``)
    the result carries the messages and no text.
    """
    msgs = conversation(messages, system)
    if thinking is None:
        thinking = decide_thinking("auto", tokenizer)
    if thinking.start == "server":
        return Prompt(None, msgs, thinking.parse_start, thinking)
    kwargs = {"enable_thinking": False} if thinking.start == "skip" else {}
    if _template(tokenizer):
        try:
            text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kwargs)
        except Exception as e:  # jinja raise_exception: the conversation does not fit the template
            raise RenderError(f"the model's chat template rejected the conversation: {e}") from None
    else:
        text = _plain_layout(msgs)
    if thinking.start == "prefill" and not ends_in_think(text):
        text += THINK_OPEN
    elif thinking.start == "skip":
        if ends_in_think(text):
            text = text.rstrip()[: -len(THINK_OPEN)] + EMPTY_THINK
        elif not text.rstrip().endswith(THINK_CLOSE):
            text += EMPTY_THINK
    has_system = any(m["role"] == "system" for m in msgs)
    return Prompt(text, msgs, "inside" if ends_in_think(text) else "plain", thinking,
                  template_system=not has_system and template_inserts_system(tokenizer))


def render_text(text: str, thinking: Thinking) -> Prompt:
    """A prompt of raw ``text`` (no chat template: few-shot layouts of evaluation protocols) under
    a local model's ``thinking`` decision: ``<think>`` appended for a pre-filled start, an empty
    think block for a skipped one, so the completion's start is known as for ``render``."""
    start: Start = "plain"
    if thinking.start == "prefill":
        text, start = text + THINK_OPEN, "inside"
    elif thinking.start == "skip":
        text += EMPTY_THINK
    return Prompt(text, [{"role": "user", "content": text}], start, thinking)


def completion_after(prompt_text: str, completion: str) -> str:
    """An SFT target as it follows ``prompt_text``: its opening ``<think>`` is dropped when the
    prompt already opened the think block (prompt + completion must spell the tag once)."""
    if ends_in_think(prompt_text) and completion.lstrip().startswith(THINK_OPEN):
        return completion.lstrip()[len(THINK_OPEN):]
    return completion


def format_completion(reasoning: str, answer: str, template: str = "think") -> str:
    """The target text a model should write, for SFT data: the inverse of ``parse``."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    if template == "r1-zero":
        return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{answer}"
