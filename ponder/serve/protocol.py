"""The OpenAI chat-completions wire format: request validation, prompts, response bodies, errors.

Requests are validated strictly (pydantic strict mode: ``"0.5"`` is not a temperature, ``2.0``
is not an ``n``) and **unknown fields are rejected** with a 400 that names the field: a typo such
as ``max_token`` must not silently fall back to a default. Known OpenAI fields that change nothing
here (``user``, ``metadata``, ``store``, ``service_tier``) are accepted; known fields ponder cannot
honour (``tools``, ``response_format``, ``top_logprobs`` > 0, non-zero penalties, ``logit_bias``)
are a 400 saying so. Every error is an ``ApiError`` rendered as OpenAI's
``{"error": {"message", "type", "param", "code"}}``.

Reasoning controls (one of them per request):

* ``reasoning_effort``: ``low | medium | high`` -> ``Budget(effort=…)`` (the model's effort
  table), or the level's entry of ``ServeConfig.efforts`` (a strategy, its n and a thinking
  budget: what ``ponder tune`` chose), ``none`` -> no thinking (the prompt is rendered with thinking off: an empty think block
  is pre-filled for a model that knows the tags).
* ``thinking: {"type": "enabled", "budget_tokens": N}`` (Anthropic style) -> ``Budget(thinking_budget=N)``;
  ``{"type": "disabled"}`` -> no thinking.
* ``ponder: {"loop_guard": "close"}`` (extension): the reasoning-loop breaker (``Budget.loop_guard``;
  usage then carries ``loop_breaks``).
* ``ponder: {"strategy": "majority", "n": 8, "min_thinking": 0}`` (extension): a test-time
  strategy of ``ponder.strategies`` runs per request.

``max_tokens``/``max_completion_tokens`` bound the whole completion when there is no thinking
budget (as OpenAI's ``max_completion_tokens`` includes reasoning); with a budget they bound the
answer, and the reasoning is bounded by the budget.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ponder.format import Prompt, RenderError, decide_thinking, render
from ponder.generate.types import Budget, GenerationError, SamplingParams


class ApiError(ValueError):
    """A request the server refuses; rendered as an OpenAI error object with ``status``."""

    def __init__(self, message: str, status: int = 400, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.type, self.param, self.code = message, status, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# --------------------------------------------------------------------------- request schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    # clients that echo a previous assistant turn back may include its reasoning: accepted, not
    # shown to the model (DeepSeek's guidance: reasoning is not fed back into the next turn)
    reasoning_content: str | None = None
    reasoning: str | None = None


class Thinking(_Strict):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = None


class PonderOptions(_Strict):
    strategy: str | None = None  # None: plain generation (with the options below)
    n: int = 1
    min_thinking: int = 0
    loop_guard: Literal["close", "stop"] | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    model: str
    messages: list[Message]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    reasoning_effort: Literal["none", "low", "medium", "high"] | None = None
    thinking: Thinking | None = None
    ponder: PonderOptions | None = None
    # accepted, no effect
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    logprobs: bool | None = None  # per-token log-probs of every generated token (not with stream)
    top_logprobs: int | None = None  # only 0: alternatives are not returned
    # accepted only at their neutral values
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


UNSUPPORTED = {
    "tools": "tool calling is not supported",
    "tool_choice": "tool calling is not supported",
    "functions": "function calling is not supported",
    "function_call": "function calling is not supported",
    "response_format": "structured output (response_format) is not supported",
    "logit_bias": "logit_bias is not supported",
    "audio": "audio output is not supported",
    "modalities": "only text output is supported",
    "prediction": "predicted outputs are not supported",
}

_TYPE_NAMES = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|literal\[.*\]|function-.*|[A-Z]\w*)$")


def _param(loc: tuple) -> str | None:
    """``('messages', 0, 'content', 'str')`` -> ``messages[0].content`` (union branch names dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _TYPE_NAMES.match(str(part)):
            out += ("." if out else "") + str(part)
    return out or None


def parse_request(raw: bytes) -> ChatRequest:
    """Bytes of a request body -> a validated ``ChatRequest`` (``ApiError`` naming the problem)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(f"the request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    for key, why in UNSUPPORTED.items():
        if key in data and data[key] is not None:
            raise ApiError(f"{key}: {why} by ponder serve", param=key, code="unsupported_parameter")
    try:
        req = ChatRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = _param(err["loc"])
        if err["type"] == "extra_forbidden":
            raise ApiError(f"unknown field {param!r} (ponder rejects unknown fields so typos are not ignored)",
                           param=param, code="unknown_field") from None
        if err["type"] == "missing":
            raise ApiError(f"missing required field {param!r}", param=param, code="missing_required_parameter") from None
        got = err.get("input")
        got = json.dumps(got)[:80] if not isinstance(got, (dict, list)) else type(got).__name__
        raise ApiError(f"{param}: {err['msg'].lower()} (got {got})", param=param, code="invalid_type") from None
    if req.top_logprobs:
        raise ApiError("top_logprobs is not supported (only 0): ponder returns the chosen tokens' log-probs",
                       param="top_logprobs", code="unsupported_parameter")
    if req.logprobs and (req.stream or (req.ponder is not None and req.ponder.strategy) or req.model == "auto"):
        raise ApiError("logprobs are returned for plain non-streamed requests only (not with stream, "
                       "ponder strategies or model auto)", param="logprobs", code="unsupported_parameter")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(req, name):
            raise ApiError(f"{name} is not supported (only 0)", param=name, code="unsupported_parameter")
    return req


# --------------------------------------------------------------------------- request -> generation plan


@dataclass(frozen=True)
class Plan:
    """What to generate for one request."""

    prompt: Prompt  # rendered for the backend (``prompt.payload`` is what it generates from)
    prompt_tokens: int
    n: int
    sampling: SamplingParams
    budget: Budget
    strategy: str | None = None
    strategy_n: int = 1
    logprobs: bool = False


def message_text(m: Message, i: int) -> str:
    if m.content is None:
        if m.role == "assistant":
            return ""
        raise ApiError(f"messages[{i}].content is required for a {m.role} message", param=f"messages[{i}].content",
                       code="invalid_value")
    if isinstance(m.content, str):
        return m.content
    return "".join(p.text for p in m.content)


def render_messages(messages: list[Message], backend, think: bool) -> Prompt:
    """The backend's prompt for a conversation (``ponder.format.render``: its chat template and
    thinking decision; ``think=False`` renders with thinking off). Earlier assistant turns keep
    their content only: reasoning a client echoes back is never shown to the model."""
    msgs = [{"role": m.role, "content": message_text(m, i)} for i, m in enumerate(messages)]
    thinking = backend.thinking
    if not think:
        thinking = decide_thinking("off", backend.tokenizer, remote=not backend.capabilities.local)
    try:
        return render(msgs, backend.tokenizer, thinking)
    except RenderError as e:
        raise ApiError(f"messages: {e}", param="messages", code="invalid_value") from None


def plan_request(req: ChatRequest, cfg, backend, max_positions: int | None) -> Plan:
    """Check the request against the server's limits and turn it into a generation ``Plan``.

    ``backend``: what serves it (its tokenizer, thinking decision, effort table and token count);
    ``max_positions``: the model's context length (None: unknown). The steps, in order: the
    limits, the thinking (effort or budget), the ``ponder`` extension, the prompt, the room the
    context leaves, the sampling.
    """
    stop = _check_limits(req, cfg)
    think, budget_tokens, effort = _thinking(req, cfg, backend.capabilities.local)
    strategy, strategy_n, budget = _extension(req, cfg, budget_tokens, effort)
    prompt = render_messages(req.messages, backend, think)
    if prompt.text is not None:
        n_prompt = backend.count_tokens(prompt.text)
    else:  # a remote backend applies its own chat template: its count is an estimate until it reports
        n_prompt = backend.count_tokens("\n".join(m["content"] for m in prompt.messages))
    tb = budget.resolve(backend.effort_table) if think else None
    requested = _max_tokens(req, cfg, n_prompt, tb, max_positions)
    try:
        sampling = SamplingParams(
            temperature=1.0 if req.temperature is None else float(req.temperature),
            top_p=1.0 if req.top_p is None else float(req.top_p),
            max_tokens=requested, stop=tuple(stop), seed=req.seed)
    except GenerationError as e:
        raise ApiError(str(e), param=str(e).split(" ", 1)[0], code="invalid_value") from None
    return Plan(prompt, n_prompt, req.n, sampling, budget, strategy, strategy_n, bool(req.logprobs))


def _check_limits(req: ChatRequest, cfg) -> list[str]:
    """The request's shape against the server's limits; returns its stop strings."""
    if not req.messages:
        raise ApiError("messages must contain at least one message", param="messages", code="invalid_value")
    if len(req.messages) > cfg.max_messages:
        raise ApiError(f"too many messages: {len(req.messages)} > {cfg.max_messages}", param="messages",
                       code="invalid_value")
    if not any(m.role == "user" for m in req.messages):
        raise ApiError("messages must contain a user message", param="messages", code="invalid_value")
    if req.max_tokens is not None and req.max_completion_tokens is not None and req.max_tokens != req.max_completion_tokens:
        raise ApiError("give max_tokens or max_completion_tokens, not both with different values",
                       param="max_completion_tokens", code="invalid_value")
    if not 1 <= req.n <= cfg.max_n:
        raise ApiError(f"n must be between 1 and {cfg.max_n}, got {req.n}", param="n", code="invalid_value")
    if req.temperature is not None and not 0 <= req.temperature <= 2:
        raise ApiError(f"temperature must be in [0, 2], got {req.temperature}", param="temperature", code="invalid_value")
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > 4 or any(not s for s in stop):
        raise ApiError("stop must be at most 4 non-empty strings", param="stop", code="invalid_value")
    return stop


def _thinking(req: ChatRequest, cfg, local: bool) -> tuple[bool, int | None, str | None]:
    """``(think, budget_tokens, effort)`` from ``reasoning_effort`` or ``thinking``."""
    if req.reasoning_effort is not None and req.thinking is not None:
        raise ApiError("give reasoning_effort or thinking, not both", param="thinking", code="invalid_value")
    if req.reasoning_effort == "none" or (req.thinking is not None and req.thinking.type == "disabled"):
        return False, (None if local else 0), None  # a remote backend: ask its server for a zero budget
    if req.reasoning_effort is not None:
        return True, None, req.reasoning_effort
    if req.thinking is not None:
        if req.thinking.budget_tokens is None:
            raise ApiError("thinking.budget_tokens is required when thinking.type is 'enabled'",
                           param="thinking.budget_tokens", code="missing_required_parameter")
        if not 0 <= req.thinking.budget_tokens <= cfg.max_tokens_limit:
            raise ApiError(f"thinking.budget_tokens must be in 0..{cfg.max_tokens_limit}, got "
                           f"{req.thinking.budget_tokens}", param="thinking.budget_tokens", code="invalid_value")
        return True, req.thinking.budget_tokens, None
    return True, None, cfg.default_effort


def _extension(req: ChatRequest, cfg, budget_tokens: int | None, effort: str | None) -> tuple[str | None, int, Budget]:
    """``(strategy, strategy_n, budget)``: the ``ponder`` extension (and model ``auto``)."""
    strategy, strategy_n, min_thinking, loop_guard = None, 1, 0, None
    if req.ponder is not None:
        strategy, strategy_n, min_thinking = req.ponder.strategy, req.ponder.n, req.ponder.min_thinking
        loop_guard = req.ponder.loop_guard
        if not 1 <= strategy_n <= cfg.max_n:
            raise ApiError(f"ponder.n must be between 1 and {cfg.max_n}, got {strategy_n}", param="ponder.n",
                           code="invalid_value")
        if req.n != 1 and strategy is not None:
            raise ApiError("a ponder strategy returns one answer: use ponder.n for samples, not n", param="n",
                           code="invalid_value")
    tuned = (cfg.efforts or {}).get(effort) if effort is not None and budget_tokens is None else None
    if tuned is not None and strategy is None:  # the level's tuned point (``ponder tune``)
        strategy = None if tuned.get("strategy", "single") == "single" else tuned["strategy"]
        strategy_n, budget_tokens, effort = tuned.get("n", 1), tuned.get("thinking_budget"), None
        if strategy is not None and req.n != 1:
            raise ApiError(f"reasoning_effort {req.reasoning_effort or cfg.default_effort!r} runs the strategy "
                           f"{strategy!r}, which returns one answer: n must be 1", param="n", code="invalid_value")
    if req.model == "auto" and strategy is None:
        strategy = "auto"
    try:
        budget = Budget(thinking_budget=budget_tokens, effort=effort, min_thinking=min_thinking, loop_guard=loop_guard)
    except GenerationError as e:
        raise ApiError(str(e), param="ponder.min_thinking" if min_thinking else "thinking", code="invalid_value") from None
    return strategy, strategy_n, budget


def _max_tokens(req: ChatRequest, cfg, n_prompt: int, tb: int | None, max_positions: int | None) -> int:
    """The request's ``max_tokens`` (or the default), checked against the room the context leaves
    after the prompt and the thinking budget."""
    requested = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if requested is not None and not 1 <= requested <= cfg.max_tokens_limit:
        raise ApiError(f"max_tokens must be between 1 and {cfg.max_tokens_limit}, got {requested}",
                       param="max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens",
                       code="invalid_value")
    extra = 0 if tb is None else tb + 8  # reasoning, its forced close, then max_tokens of answer
    if max_positions is not None:
        room = max_positions - n_prompt - extra
        if requested is None and room >= 1:
            requested = min(cfg.default_max_tokens, room)
        if room < 1 or requested > room:
            raise ApiError(
                f"too many tokens: the prompt has {n_prompt} tokens"
                + (f", the thinking budget {tb}" if tb is not None else "")
                + f" and max_tokens {requested}, but the model's context is {max_positions} tokens",
                param="messages" if room < 1 else "max_tokens", code="context_length_exceeded")
    return requested or cfg.default_max_tokens


# --------------------------------------------------------------------------- responses

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def summarize(reasoning: str, max_chars: int = 200) -> str:
    """A short extractive summary of the reasoning: its first and last sentences (the first
    alone when there are at most two), at most ``max_chars`` characters. No second model is
    involved; a reasoning shorter than that limit in one sentence is its own summary."""
    sentences = [s.strip() for s in _SENTENCE.split(reasoning.strip()) if s.strip()]
    if not sentences:
        return ""
    text = sentences[0] if len(sentences) <= 2 else f"{sentences[0]} … {sentences[-1]}"
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def shown_reasoning(reasoning: str, mode: str) -> str | None:
    """What a response carries of the reasoning in server mode ``mode`` (None: nothing)."""
    if mode == "hidden":
        return None
    return reasoning if mode == "full" else summarize(reasoning)


def message(answer: str, reasoning: str, mode: str) -> dict:
    msg: dict[str, Any] = {"role": "assistant", "content": answer}
    shown = shown_reasoning(reasoning, mode)
    if shown is not None:  # both names: DeepSeek's reasoning_content and vLLM's reasoning
        msg["reasoning_content"] = msg["reasoning"] = shown
    return msg


def finish(reason: str) -> str:
    """Engine finish reasons -> OpenAI's (an EOS or a stop string are both "stop")."""
    return "length" if reason == "length" else "stop"


def usage(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int, loop_breaks: int | None = None) -> dict:
    """OpenAI's usage object; ``loop_breaks`` (ponder's, only when the request set a loop guard):
    the loops ``ponder.loop_guard`` broke."""
    u = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
         "total_tokens": prompt_tokens + completion_tokens,
         "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}}
    if loop_breaks is not None:
        u["loop_breaks"] = loop_breaks
    return u


def chunk(rid: str, model: str, created: int, index: int | None = None, delta: dict | None = None,
          finish_reason: str | None = None, usage_: dict | None = None) -> str:
    """One SSE event of a streamed response (``choices`` empty in the final usage chunk)."""
    body: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": []}
    if index is not None:
        body["choices"] = [{"index": index, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
    if usage_ is not None:
        body["usage"] = usage_
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def now() -> int:
    return int(time.time())
