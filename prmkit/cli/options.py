"""Command-line flags made from a stage's config dataclass (``prmkit.config``).

Every field becomes a flag with its help and its default (``--max-new-tokens``), a boolean a
``--x/--no-x`` pair, a list a repeatable flag, a field marked ``positional`` the argument.
A flag left out stays out: the value then comes from ``--config FILE``, ``--set key=value``
or the field's default, in that order of precedence below the flag (``prmkit.config.load``).
So a setting is declared once, and ``prmkit train --help`` lists every training setting.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from prmkit import config

# the flags every stage command shares, with one meaning each (README: the CLI vocabulary)
OUT_HELP = "Output folder: the stage's files, config.json and the COMPLETE marker (last)."


def _flag_type(kind) -> Any:
    base, _ = config._optional(kind)
    if typing.get_origin(base) in (list, tuple):
        return Optional[list[str]]  # each value coerced by the config ("1,2,4" for numbers)
    return Optional[base]


def _param(f, kind) -> inspect.Parameter:
    meta = f.metadata
    default = config.default_of(f)
    required = default is config.REQUIRED
    help_text = meta.get("help", "")
    if meta.get("positional"):
        annotation = _flag_type(kind)
        if typing.get_origin(config._optional(kind)[0]) in (list, tuple):
            annotation = list[str]
        info = typer.Argument(... if required else None, help=help_text, show_default=False)
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                                 annotation=annotation)
    name = "--" + f.name.replace("_", "-")
    base, _ = config._optional(kind)
    decls = [f"{name}/--no-{f.name.replace('_', '-')}"] if base is bool else [name]
    if meta.get("short"):
        decls.append(meta["short"])
    shown = "required" if required else (
        ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default))
    info = typer.Option(None, *decls, help=help_text, show_default=shown)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=_flag_type(kind))


def extra(name: str, annotation, info) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=annotation)


def out_option(help_text: str = OUT_HELP) -> inspect.Parameter:
    return extra("out", Path, typer.Option(..., "--out", help=help_text))


def force_option() -> inspect.Parameter:
    return extra("force", bool, typer.Option(False, "--force", help=(
        "Start over instead of resuming (a complete folder is redone).")))


def file_options() -> list[inspect.Parameter]:
    return [extra("config_file", Optional[Path], typer.Option(None, "--config", help=(
                "YAML file of settings; flags override it."))),
            extra("set_", Optional[list[str]], typer.Option(None, "--set", help=(
                "key=value setting (repeat); applied last.")))]


def command(app: typer.Typer, name: str, configs: list[type], run: Callable[..., None], *,
            help: str, extras: list[inspect.Parameter] = ()) -> None:
    """Register ``name`` on ``app`` with one flag a field of each config class (and
    ``extras``). ``run`` gets the flags given, grouped by class (``{cls: {field: value}}``),
    and every extra by name."""
    params, owner = [], {}
    for cls in configs:
        kinds = config.hints(cls)
        for f in config.fields(cls):
            if f.name in owner:
                raise ValueError(f"flag {f.name!r} of {cls.__name__} is also "
                                 f"{owner[f.name].__name__}'s")
            owner[f.name] = cls
            params.append(_param(f, kinds[f.name]))
    params += list(extras)
    # positional arguments first, as the signature of a function must have them
    params.sort(key=lambda p: not isinstance(p.default, typer.models.ArgumentInfo))

    def invoke(**kwargs) -> None:
        given = {cls: {} for cls in configs}
        for key in list(kwargs):
            if key in owner:
                value = kwargs.pop(key)
                if value is not None:
                    given[owner[key]][key] = value
        run(given, **kwargs)

    invoke.__signature__ = inspect.Signature(params)
    invoke.__annotations__ = {p.name: p.annotation for p in params}
    invoke.__doc__ = help
    invoke.__name__ = name.replace("-", "_")
    app.command(name, help=help)(invoke)


def load_configs(given: dict, stage: type, config_file, overrides, *others: type) -> tuple:
    """The stage's config (defaults < ``--config`` < flags < ``--set``) and each other config
    from its flags (``BackendConfig``)."""
    first = config.load(stage, config_file, overrides or [], given[stage])
    return (first, *(config.load(cls, given=given[cls]) for cls in others))
