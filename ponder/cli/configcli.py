"""Turn a config dataclass into a typer command: one ``--option`` per field, with its help text.

The dataclass stays the single source of truth for names, types, defaults and help, so the CLI,
the YAML recipes and the saved ``ponder_config.json`` can never drift apart. Precedence:
dataclass default < (a command's ``base``, e.g. an eval protocol) < ``--config FILE.yaml`` <
explicit ``--option`` flags < ``--set key=value``.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ponder.cli.common import err_console, user_errors
from ponder.config import _base_type, apply_overrides, from_dict, load_yaml


def _cli_type(tp: Any) -> Any:
    base = _base_type(tp)
    if base in (int, float, bool):
        return Optional[base]
    return Optional[str]  # str, lists (comma-separated) and anything else arrive as text


def command(cls: type, run: Callable[[Any], Any], doc: str, positional: str | tuple[str, ...] | None = None,
            deprecated_flag: bool = True, base: Callable[[dict], dict] | None = None) -> Callable:
    """A function with a typer-readable signature that builds ``cls`` and calls ``run(cfg)``.

    ``positional``: fields given as arguments, in this order, instead of flags (``MODEL`` first,
    as every command that takes a model has it). With ``deprecated_flag`` the first one's old
    ``--flag`` still works, with a deprecation note. A field's ``flag`` metadata (``option(...,
    flag="--show-thinking/--hide-thinking")``) replaces its generated flag name. ``base(data)``
    puts defaults under the assembled values (``ponder eval --protocol``: the protocol's fields).
    """
    args = (positional,) if isinstance(positional, str) else tuple(positional or ())
    positional = args[0] if args and deprecated_flag else None
    hints = typing.get_type_hints(cls)
    params = [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, "--config", help="YAML file of options (field: value)."),
            annotation=Optional[Path],
        ),
        inspect.Parameter(
            "set_",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, "--set", help="Override any option: --set key=value (repeatable)."),
            annotation=Optional[list[str]],
        ),
    ]
    for f in fields(cls):
        default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING else None)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        flag = "--" + f.name.replace("_", "-")
        if f.name in args:
            params.insert(args.index(f.name), inspect.Parameter(
                f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str],
                default=typer.Argument(None, help=f.metadata.get("help", ""), show_default=False)))
            if f.name == positional:
                params.append(inspect.Parameter(
                    f"{f.name}_flag", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                    default=typer.Option(None, flag, hidden=True, help=f"Deprecated: give {f.name.upper()} first.")))
            continue
        if "flag" in f.metadata:
            flag = f.metadata["flag"]
        elif _base_type(hints[f.name]) is bool:
            flag = f"{flag}/--no-{f.name.replace('_', '-')}"
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(None, flag, help=f"{f.metadata.get('help', '')} \\[default: {shown}]", show_default=False),
                annotation=_cli_type(hints[f.name]),
            )
        )

    @user_errors
    def cmd(**kwargs):
        data: dict[str, Any] = {}
        config_path = kwargs.pop("config")
        overrides = kwargs.pop("set_") or []
        if config_path is not None:
            data.update(load_yaml(config_path))
        if positional is not None:
            flagged = kwargs.pop(f"{positional}_flag", None)
            if flagged is not None:
                err_console.print(f"note: --{positional.replace('_', '-')} is deprecated; give "
                                  f"{positional.upper()} as the first argument", style="yellow", highlight=False)
                if kwargs.get(positional) is None:
                    kwargs[positional] = flagged
        data.update({k: v for k, v in kwargs.items() if v is not None})
        data = apply_overrides(data, overrides)
        if base is not None:
            data = base(data)
        cfg = from_dict(cls, data, where=cls.__name__)
        return run(cfg)

    cmd.__signature__ = inspect.Signature(params)
    cmd.__doc__ = doc
    cmd.__name__ = cls.__name__
    return cmd
