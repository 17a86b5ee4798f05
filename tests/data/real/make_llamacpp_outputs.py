"""Record what llama-cpp-python's OpenAI-compatible server really answers, for table tests.

    .venv/bin/python tests/data/real/make_llamacpp_outputs.py      # ~5 min on 2 busy cores

Starts the servers of tests/llamacpp.py -- SmolLM2-135M-Instruct (Q4_1) and a tiny ponder model
trained and converted on the spot (f32), each with its own template ("plain") and with one that
opens the think block ("prefill") -- and writes, next to this file:

* ``llamacpp_chat_<model>_<template>.json`` (4 files): for 5 prompts, ``/v1/chat/completions``
  greedy (``temperature: 0``) and sampled with ``n: 2`` (``temperature: 0.8, seed: 1234``), each
  non-streamed (the body) and streamed (every SSE event in order: the chunks, then ``"[DONE]"``).
* ``llamacpp_fields.json``: for each request field, whether the request model declares it, the
  status, and whether the output changed against a baseline request (SmolLM2, prefill template).
* ``llamacpp_errors.json``: status and body of an unknown model id, a base URL without ``/v1``,
  and bad requests, plus what the official ``openai`` client raises for them.

Bodies are as received except ``id`` and ``created``, removed everywhere (they change on every
run; ``meta.removed_keys`` says so). Requests run one at a time; the server has one thread.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for llamacpp

import httpx  # noqa: E402  (after the sys.path line: llamacpp lives in tests/)
import llamacpp as L  # noqa: E402

VOLATILE = ("id", "created")
SMOLLM2_PROMPTS = (
    [{"role": "user", "content": "What is 17 + 25?"}],
    [{"role": "user", "content": "Is 91 a prime number? Answer yes or no, then explain."}],
    [{"role": "user", "content": "Name the capital of France."}],
    [{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": "What is 6 * 7?"}],
    [{"role": "user", "content": "Write one sentence about the sea."}],
)
TINY_PROMPTS = tuple([{"role": "user", "content": q}] for q in L.TINY_PROMPTS)
MAX_TOKENS = {"smollm2": 48, "tiny": 96}  # the tiny model's worked sums take ~60 tokens
GREEDY = {"temperature": 0}
SAMPLED_N2 = {"n": 2, "temperature": 0.8, "seed": 1234}


def clean(obj: Any) -> Any:
    """``obj`` without the per-run keys (``id``, ``created``) at any depth."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [clean(v) for v in obj]
    return obj


def post(http: httpx.Client, url: str, body: dict) -> dict:
    t = time.monotonic()
    try:
        r = http.post(url, json=body)
    except httpx.TransportError as e:  # a server that drops the connection is behaviour worth recording
        return {"transport_error": f"{type(e).__name__}: {e}"}
    try:
        data = r.json()
    except ValueError:
        data = r.text
    return {"status": r.status_code, "content_type": r.headers.get("content-type"), "body": clean(data),
            "seconds": round(time.monotonic() - t, 2)}


def stream(http: httpx.Client, url: str, body: dict) -> dict:
    """Every SSE ``data:`` event of a streamed request, parsed (``"[DONE]"`` kept as the string)."""
    t, events, other = time.monotonic(), [], []
    with http.stream("POST", url, json={**body, "stream": True}) as r:
        status, ctype = r.status_code, r.headers.get("content-type")
        for line in r.iter_lines():
            if line.startswith("data:"):
                data = line[5:].strip()
                events.append(data if data == "[DONE]" else clean(json.loads(data)))
            elif line.strip():
                other.append(line)  # comments (": ping"), event names: none expected
        if status != 200:
            return {"status": status, "content_type": ctype, "body": r.read().decode(errors="replace")}
    return {"status": status, "content_type": ctype, "events": events, "non_data_lines": other,
            "seconds": round(time.monotonic() - t, 2)}


def content(resp: dict) -> list[str | None]:
    body = resp.get("body")
    if not isinstance(body, dict):
        return []
    return [c["message"].get("content") for c in body.get("choices", [])]


def streamed_text(resp: dict) -> dict[int, str]:
    out: dict[int, str] = {}
    for ev in resp.get("events", []):
        if isinstance(ev, dict):
            for c in ev.get("choices", []):
                out[c["index"]] = out.get(c["index"], "") + (c.get("delta", {}).get("content") or "")
    return out


# --------------------------------------------------------------------------- (i) chat recordings


def record_chats(srv: L.Server, model: str, template: str, prompts) -> dict:
    url = f"{srv.base_url}/chat/completions"
    runs = []
    with httpx.Client(timeout=600) as http:
        for messages in prompts:
            row = {"messages": messages}
            for name, params in (("greedy", GREEDY), ("n2", SAMPLED_N2)):
                body = {"model": srv.model_id, "messages": messages, "max_tokens": MAX_TOKENS[model], **params}
                row[name] = {"request": body, "response": post(http, url, body), "stream": stream(http, url, body)}
            runs.append(row)
    return {"model": model, "template": template, "model_id": srv.model_id, "chat_template": srv.chat_template,
            "prompts": runs}


# --------------------------------------------------------------------------- (ii) request fields


def declared_fields() -> set[str]:
    from llama_cpp.server.types import CreateChatCompletionRequest

    return set(CreateChatCompletionRequest.model_fields)


def probe_fields(srv: L.Server) -> dict:
    url = f"{srv.base_url}/chat/completions"
    msgs = [{"role": "user", "content": "Write a short poem about the sea."}]
    base = {"model": srv.model_id, "messages": msgs, "max_tokens": 32}
    greedy = {**base, "temperature": 0}
    sampled = {**base, "temperature": 1.0, "seed": 1}
    declared = declared_fields()
    out: dict[str, Any] = {"baselines": {}, "fields": {}}
    with httpx.Client(timeout=600) as http:
        def run(body):
            return post(http, url, body)

        g1, g2, s1, s2 = run(greedy), run(greedy), run(sampled), run(sampled)
        out["baselines"] = {
            "greedy": {"request": greedy, "response": g1, "repeat_gives_same_output": content(g1) == content(g2)},
            "sampled": {"request": sampled, "response": s1, "repeat_gives_same_output": content(s1) == content(s2)},
        }

        def probe(field: str, extra: dict, baseline: dict, base_resp: dict, note: str = "") -> dict:
            body = {**baseline, **extra}
            resp = run(body)
            changed = resp["status"] == 200 and content(resp) != content(base_resp)
            verdict = ("rejected" if resp["status"] != 200 else
                       "changes the output" if changed else "accepted, output unchanged")
            rec = {"declared_in_request_model": field in declared, "request_extra": extra, "baseline":
                   "greedy" if baseline is greedy else "sampled", "status": resp["status"], "verdict": verdict,
                   "content": content(resp), "baseline_content": content(base_resp),
                   "usage": resp["body"].get("usage") if isinstance(resp["body"], dict) else None,
                   "baseline_usage": base_resp["body"].get("usage")}
            if note:
                rec["note"] = note
            if resp["status"] != 200:
                rec["body"] = resp["body"]
            return rec

        f = out["fields"]
        f["seed"] = probe("seed", {"seed": 2}, sampled, s1, "seed 1 twice gives the sampled baseline twice "
                          f"({out['baselines']['sampled']['repeat_gives_same_output']}); this is seed 2")
        unseeded = {k: v for k, v in sampled.items() if k != "seed"}
        u1, u2 = run(unseeded), run(unseeded)
        f["seed"]["unseeded_twice_same_output"] = content(u1) == content(u2)
        f["thinking_budget_tokens"] = probe("thinking_budget_tokens", {"thinking_budget_tokens": 4}, greedy, g1)
        f["thinking"] = probe("thinking", {"thinking": {"type": "enabled", "budget_tokens": 4}}, greedy, g1)
        f["reasoning_effort"] = probe("reasoning_effort", {"reasoning_effort": "low"}, greedy, g1)
        f["chat_template_kwargs"] = probe(
            "chat_template_kwargs", {"chat_template_kwargs": {"enable_thinking": False}}, greedy, g1,
            "the prefill template writes an empty think block when enable_thinking is false: a forwarded "
            "kwarg would change prompt_tokens")
        f["top_k"] = probe("top_k", {"top_k": 1}, sampled, s1)
        f["repeat_penalty"] = probe("repeat_penalty", {"repeat_penalty": 1.0}, greedy, g1,
                                    "the server's default is 1.1; 1.0 turns the penalty off")
        f["repeat_penalty"]["at_1.5"] = content(run({**greedy, "repeat_penalty": 1.5}))
        f["min_p"] = probe("min_p", {"min_p": 0.9}, sampled, s1, "the server's default is 0.05")
        n2 = run({**sampled, "n": 2})
        f["n"] = {"declared_in_request_model": "n" in declared, "request_extra": {"n": 2}, "status": n2["status"],
                  "choices": len(n2["body"].get("choices", [])), "content": content(n2),
                  "usage_n2": n2["body"].get("usage"), "usage_n1": s1["body"].get("usage"),
                  "verdict": "accepted, ignored: one choice" if len(n2["body"].get("choices", [])) == 1
                  else f"{len(n2['body'].get('choices', []))} choices"}
        lp = run({**greedy, "logprobs": True, "top_logprobs": 2})
        lp_field = lp["body"]["choices"][0].get("logprobs") if lp["status"] == 200 else None
        f["logprobs"] = {"declared_in_request_model": "logprobs" in declared,
                         "request_extra": {"logprobs": True, "top_logprobs": 2}, "status": lp["status"],
                         "returned": lp_field is not None,
                         "first_entries": (lp_field or {}).get("content", [])[:3] if isinstance(lp_field, dict)
                         else lp_field,
                         "same_content_as_greedy": content(lp) == content(g1)}
        f["logprobs"]["verdict"] = ("rejected" if lp["status"] != 200 else
                                    "logprobs returned" if lp_field else "accepted, no logprobs returned")
        st = stream(http, url, {**greedy, "stream_options": {"include_usage": True}})
        st0 = stream(http, url, greedy)
        with_usage = [e for e in st.get("events", []) if isinstance(e, dict) and e.get("usage")]
        f["stream_options.include_usage"] = {
            "declared_in_request_model": "stream_options" in declared, "request_extra":
            {"stream_options": {"include_usage": True}}, "status": st["status"],
            "chunks_with_usage": len(with_usage), "usage_chunk": with_usage[-1] if with_usage else None,
            "chunks": len(st.get("events", [])), "chunks_without_the_option": len(st0.get("events", [])),
            "same_text": streamed_text(st) == streamed_text(st0),
            "verdict": "usage chunk sent" if with_usage else "accepted, ignored: no usage in any chunk"}
    return out


# --------------------------------------------------------------------------- (iii) errors


def openai_error(base_url: str, model: str, **kw) -> dict:
    from openai import OpenAI

    cl = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
    try:
        r = cl.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, **kw)
        return {"raised": None, "response_model": r.model}
    except Exception as e:  # noqa: BLE001 -- recording whatever the client raises is the point
        return {"raised": type(e).__name__, "status_code": getattr(e, "status_code", None), "message": str(e)[:600],
                "body": getattr(e, "body", None)}


def record_errors(srv: L.Server) -> dict:
    """Each request on a fresh connection: after some errors the server closes a kept-alive one."""
    ok = {"model": srv.model_id, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0}
    chat = f"{srv.base_url}/chat/completions"

    def fresh(url: str, body: dict) -> dict:
        with httpx.Client(timeout=600) as http:
            return post(http, url, body)

    def raw(method: str, url: str, **kw) -> dict:
        with httpx.Client(timeout=600) as http:
            r = http.request(method, url, **kw)
            return {"status": r.status_code, "content_type": r.headers.get("content-type"), "body": r.text}

    unknown = {**ok, "model": "no-such-model"}
    bad_t = {**ok, "temperature": "hot"}
    bad_role = {**ok, "messages": [{"role": "wizard", "content": "Hi"}]}
    long_msgs = [{"role": "user", "content": "sea " * 3000}]  # > the default n_ctx of 2048 tokens
    return {
        "unknown_model_id": {"request": unknown, "response": fresh(chat, unknown),
                             "openai_client": openai_error(srv.base_url, "no-such-model")},
        "base_url_without_v1": {"post_chat_completions": fresh(f"{srv.root}/chat/completions", ok),
                                "get_models": raw("GET", f"{srv.root}/models"),
                                "openai_client": openai_error(srv.root, srv.model_id)},
        "missing_messages": {"request": {"model": srv.model_id},
                             "response": fresh(chat, {"model": srv.model_id})},
        "bad_temperature_type": {"request": bad_t, "response": fresh(chat, bad_t),
                                 "openai_client": openai_error(srv.base_url, srv.model_id,
                                                               extra_body={"temperature": "hot"})},
        "unknown_role": {"request": bad_role, "response": fresh(chat, bad_role)},
        "malformed_json": raw("POST", chat, content=b"{not json", headers={"content-type": "application/json"}),
        "context_length_exceeded": {"request": {**ok, "messages": "[{'role': 'user', 'content': 'sea ' * 3000}]"},
                                    "response": fresh(chat, {**ok, "messages": long_msgs})},
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    import llama_cpp

    t0 = time.monotonic()
    meta = {"llama_cpp_python": llama_cpp.__version__, "server": "python -m llama_cpp.server --n_threads 1",
            "removed_keys": list(VOLATILE), "recorded": time.strftime("%Y-%m-%d"),
            "defaults_note": "server sampling defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, "
                             "repeat_penalty 1.1, n_ctx 2048"}
    smollm2 = L.smollm2_gguf()
    with tempfile.TemporaryDirectory(prefix="tiny-reasoner-") as work:
        _, tiny = L.tiny_reasoner_gguf(work)
        plan = [("smollm2", smollm2, L.SMOLLM2_OPENER, SMOLLM2_PROMPTS),
                ("tiny", tiny, L.PONDER_OPENER, TINY_PROMPTS)]
        for model, gguf, opener, prompts in plan:
            for template, tmpl in L.templates(gguf, opener).items():
                with L.start_server(gguf, chat_template=tmpl, alias=f"{model}-{template}") as srv:
                    data = {"meta": meta, **record_chats(srv, model, template, prompts)}
                    if model == "smollm2" and template == "prefill":
                        write("llamacpp_fields.json", {"meta": {**meta, "server": srv.model_id}, **probe_fields(srv)})
                        write("llamacpp_errors.json", {"meta": {**meta, "server": srv.model_id}, **record_errors(srv)})
                write(f"llamacpp_chat_{model}_{template}.json", data)
    print(f"done in {time.monotonic() - t0:.0f} s")


def write(name: str, data: dict) -> None:
    """Indented JSON, except that each SSE event of an ``events`` list takes one line."""
    path = HERE / name
    path.write_text(_dumps(data) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parents[2])} ({path.stat().st_size // 1024} KB)", flush=True)


def _dumps(obj: Any, pad: str = "") -> str:
    inner = pad + " "
    if isinstance(obj, dict) and obj:
        items = []
        for k, v in obj.items():
            if k == "events" and isinstance(v, list) and v:
                lines = ",\n".join(inner + "  " + json.dumps(e, ensure_ascii=False) for e in v)
                items.append(f"{inner}{json.dumps(k)}: [\n{lines}\n{inner}]")
            else:
                items.append(f"{inner}{json.dumps(k)}: {_dumps(v, inner)}")
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj:
        return "[\n" + ",\n".join(inner + _dumps(v, inner) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


if __name__ == "__main__":
    main()
