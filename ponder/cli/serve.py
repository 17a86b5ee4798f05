"""``ponder serve MODEL``: an OpenAI-compatible API (and a playground page) for a reasoning model.

MODEL is a local checkpoint directory, a ``.gguf`` file or ``openai:<model>@<url>`` (see
``ponder.generate.backends.load_backend``). The common options are flags; every option of
``ponder.serve.ServeConfig`` can also come from ``--config serve.yaml`` or ``--set key=value``.
Precedence: defaults < --config < flags < --set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer

from ponder.cli.common import err_console, user_errors
from ponder.config import apply_overrides, from_dict, help_of, load_yaml
from ponder.serve.config import ServeConfig


def _h(name: str) -> str:
    return help_of(ServeConfig, name)


@user_errors
def serve(
    model: str = typer.Argument(..., help="Local checkpoint directory, a .gguf file (llama.cpp in-process), or openai:<model>@<url> (a remote server)."),
    host: Optional[str] = typer.Option(None, help=_h("host") + " [default: 127.0.0.1]"),
    port: Optional[int] = typer.Option(None, help=_h("port") + " [default: 8000]"),
    api_key: Optional[str] = typer.Option(None, "--api-key", help=_h("api_key")),
    reasoning: Optional[str] = typer.Option(None, help=_h("reasoning") + " [default: full]"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help=_h("model_name")),
    thinking: str = typer.Option("auto", help="Thinking mode: auto (decided from the model), on (pre-fill <think>), off."),
    extra_body: Optional[str] = typer.Option(None, "--extra-body", help="Remote MODEL: a JSON object merged into every upstream request."),
    timeout: Optional[float] = typer.Option(None, min=1, help="Remote MODEL: seconds per upstream request."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Remote MODEL: its tokenizer (directory or .gguf): ponder renders prompts and uses /v1/completions."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="Local checkpoint: decode on int8 weights, int8 (weight-only) or int8-dynamic; close to, not equal to, float32's output."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of ServeConfig options (field: value)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override any ServeConfig option: --set max_n=32."),
) -> None:
    """Serve MODEL over HTTP until Ctrl-C."""
    data: dict[str, Any] = load_yaml(config) if config is not None else {}
    flags = {"host": host, "port": port, "api_key": api_key, "reasoning": reasoning, "model_name": model_name}
    data.update({k: v for k, v in flags.items() if v is not None})
    cfg = from_dict(ServeConfig, apply_overrides(data, set_ or []), where="serve")

    import uvicorn

    from ponder.generate.backends import load_backend
    from ponder.serve import create_app, model_name_for

    with err_console.status(f"loading {model} …"):
        backend = load_backend(model, thinking=thinking, extra_body=extra_body, timeout=timeout, tokenizer=tokenizer,
                               quantize=quantize)
    app = create_app(backend, cfg, model_name_for(model))
    name = app.state.ponder.model_name
    err_console.print(f"[bold]ponder serve[/]: model [cyan]{name}[/] on http://{cfg.host}:{cfg.port} "
                      f"(playground at /, API at /v1, reasoning {cfg.reasoning}"
                      f"{', API key required' if cfg.api_key else ''})", highlight=False)
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", timeout_graceful_shutdown=5)
