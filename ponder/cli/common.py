"""Shared CLI plumbing: one way to report a user error and stop."""

from __future__ import annotations

import functools
from typing import Callable, NoReturn

import typer
from rich.console import Console

err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (no traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)  # one line, never wrapped
    raise typer.Exit(code)


def user_errors(fn: Callable) -> Callable:
    """Turn library ValueErrors/OSErrors (bad input the user can fix) into ``fail``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError) as e:
            fail(str(e))

    return wrapper
