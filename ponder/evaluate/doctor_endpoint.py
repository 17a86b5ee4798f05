"""The endpoint checks of ``ponder doctor`` (``ponder.evaluate.doctor``): what a client can see of
an OpenAI-compatible server -- ``GET /v1/models`` and where a chat response puts the reasoning.

Each check takes the doctor's ``Report`` (``add``, ``facts``), the parsed ``ModelSpec`` and the
``DoctorConfig`` (``timeout``, ``max_tokens``, ``extra_body``); none is imported here, which keeps
the two modules free of a cycle.
"""

from __future__ import annotations

from ponder.format import THINK_CLOSE, THINK_OPEN


def check_endpoint(report, spec, cfg) -> bool:
    """endpoint-models; False when the server cannot be reached (the sample checks are skipped)."""
    from openai import APIConnectionError, APIStatusError, OpenAI

    from ponder.generate.openai_wire import api_key_from

    client = OpenAI(api_key=api_key_from(None), base_url=spec.base_url, max_retries=0, timeout=min(cfg.timeout, 10))
    try:
        ids = [m.id for m in client.models.list().data]
    except APIStatusError as e:
        hint = "" if spec.base_url.endswith("/v1") else f" (servers usually serve under /v1: {spec.base_url}/v1)"
        report.add("endpoint-models", "WARN", f"GET /models answered HTTP {e.status_code}{hint}: the model id cannot "
                                              "be checked", "check the base URL, or ignore for a server without "
                                                            "/v1/models")
        return True
    except APIConnectionError as e:
        report.add("endpoint-models", "FAIL", f"cannot reach {spec.base_url} ({type(e).__name__}: {e})",
                   "start the server, or fix the base URL (openai:<model>@http://HOST:PORT/v1)")
        return False
    finally:
        client.close()
    report.facts["served_models"] = ids[:20]
    if spec.model in ids or spec.model == "auto":
        report.add("endpoint-models", "PASS", f"/v1/models lists {spec.model!r}")
    else:
        report.add("endpoint-models", "FAIL", f"/v1/models lists {ids[:5]}, not {spec.model!r}: requests may fail or "
                                              "reach another model",
                   " or ".join(f"openai:{i}@{spec.base_url}" for i in ids[:3]) or "serve the model first")
    return True


def check_split(report, spec, question: str, cfg) -> None:
    """reasoning-split: one greedy chat request; where does the reasoning come back?"""
    from openai import OpenAI

    from ponder.generate.backends import parse_extra_body
    from ponder.generate.openai_wire import api_key_from, reasoning_field

    client = OpenAI(api_key=api_key_from(None), base_url=spec.base_url, max_retries=1, timeout=cfg.timeout)
    try:
        r = client.chat.completions.create(model=spec.model, messages=[{"role": "user", "content": question}],
                                           max_tokens=cfg.max_tokens, temperature=0,
                                           extra_body=parse_extra_body(cfg.extra_body) or None)
    except Exception as e:  # noqa: BLE001 - reported as a finding, the run goes on
        report.add("reasoning-split", "FAIL", f"a chat request failed ({type(e).__name__}: {str(e)[:160]})",
                   "check the model id and the server's log")
        return
    finally:
        client.close()
    msg = r.choices[0].message
    reasoning, content = reasoning_field(msg), msg.content or ""
    name = "reasoning_content" if getattr(msg, "reasoning_content", None) else "reasoning"
    if reasoning:
        report.add("reasoning-split", "PASS", f"the server returns the reasoning apart ({name}: {len(reasoning)} "
                                              f"characters, content: {len(content)})")
    elif THINK_CLOSE in content:
        report.add("reasoning-split", "PASS", "the reasoning comes inline in content; ponder splits it at </think>"
                   + (" (the template opened the block: no <think> in the text)" if THINK_OPEN not in content else ""))
    elif THINK_OPEN in content:
        report.add("reasoning-split", "WARN", f"content opens <think> but never closes it in {cfg.max_tokens} tokens",
                   "a larger --max-tokens, or --thinking off")
    else:
        report.add("reasoning-split", "PASS", "no reasoning in content or a reasoning field: the model answers "
                                              "directly (ponder reads the whole content as the answer)")
