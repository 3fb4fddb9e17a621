"""Typed settings: one dataclass a stage, every field with its help; one loader for all of them.

A stage's settings are a frozen dataclass whose fields are declared with ``setting``::

    @dataclass(frozen=True)
    class MCConfig:
        k: int = setting(8, "Completions from each step prefix.")
        mode: str = setting("linear", "linear or binary.", choices=("linear", "binary"))

and everything else is made from it, so a setting is written down once:

    load(MCConfig, yaml, overrides, given)   defaults < a YAML file < given values < ``--set``;
                                             unknown keys and mistyped values are errors naming
                                             the file and the field
    typed(cls, mapping) / build(cls, mapping)  the same checks for a layer of settings (a
                                             recipe file, ``--quick``, one ``--set``), and the
                                             instance, nested sections included (recipes)
    prmkit.cli.options                       the command's flags, one a field, with the help

Values are coerced from what YAML and the command line give (``--set lr=5e-4`` is a string,
YAML 1.1 reads ``1e-4`` as one too): ``int``, ``float``, ``bool``, ``str``, ``X | None``
(``null``/``none``), tuples and lists of those, and plain dicts.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from prmkit.errors import InputError
from prmkit.records import read_yaml_mapping

REQUIRED = dataclasses.MISSING


def setting(default: Any = REQUIRED, help: str = "", *, choices: Iterable[str] | None = None,
            positional: bool = False, schema: type | None = None, each: type | None = None,
            short: str | None = None, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None):
    """A dataclass field with its help text; optionally its allowed values or bounds (``ge``,
    ``gt``, ``le``, ``lt``: a number, or every number of a list), that it is the command's
    positional argument (or its short flag), or for a mapping the dataclass whose fields its
    keys must be (``schema``: a recipe's ``mc`` section holds ``MCConfig`` settings) or that
    each of its values is (``each``: Best-of-N sets, name -> data section)."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    metadata = {"help": help, "choices": tuple(choices) if choices else None,
                "positional": positional, "schema": schema, "each": each, "short": short,
                "bounds": bounds}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def fields(cls) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def hints(cls) -> dict[str, Any]:
    """Field types as objects (the modules use ``from __future__ import annotations``)."""
    return typing.get_type_hints(cls)


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not REQUIRED:
        return f.default
    if f.default_factory is not REQUIRED:
        return f.default_factory()
    return REQUIRED


def help_of(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


# --- coercion ------------------------------------------------------------------------------------

def _optional(kind) -> tuple[Any, bool]:
    args = typing.get_args(kind)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return kind, False


def coerce(value: Any, kind: Any, name: str, path=None) -> Any:
    """``value`` as the field type ``kind``; an InputError naming the field when it is not."""
    base, nullable = _optional(kind)
    if value is None or (nullable and isinstance(value, str)
                         and value.strip().lower() in ("null", "none", "~")):
        if nullable:
            return None
        raise InputError("must be given (null is not allowed here)", path=path, field=name)
    origin = typing.get_origin(base)

    def bad(what: str):
        return InputError(f"{value!r}: expected {what}", path=path, field=name)
    if origin in (tuple, list):
        item = typing.get_args(base)[0]
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        if item is not str:  # numbers may come as "1,2,4" from one flag
            value = [part for v in value for part in
                     (v.split(",") if isinstance(v, str) else [v]) if part != ""]
        items = [coerce(v, item, f"{name}[{i}]", path) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or base is dict:
        if not isinstance(value, Mapping):
            raise bad("a mapping")
        return dict(value)
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise bad("true or false")
    if base is int:
        if isinstance(value, bool):
            raise bad("an integer")
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        except (TypeError, ValueError, OverflowError):
            raise bad("an integer") from None
    if base is float:
        if isinstance(value, bool):
            raise bad("a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
        if not math.isfinite(number):
            raise bad("a finite number")
        return number
    if base is str:
        if isinstance(value, (dict, list)):
            raise bad("a string")
        return str(value)
    return value


# --- building a config ---------------------------------------------------------------------------

def _section(kind) -> type | None:
    """The dataclass a field holds (a nested section), if any."""
    base, _ = _optional(kind)
    return base if dataclasses.is_dataclass(base) else None


def typed(cls, values: Mapping[str, Any], path=None, where: str = "") -> dict:
    """``values`` checked against ``cls``: known keys, coerced types, allowed choices. Nested
    sections (a field holding a dataclass, or a mapping with a ``schema``) are checked key by
    key; nothing needs to be complete (a layer of a YAML file, a ``--set``)."""
    if not isinstance(values, Mapping):
        raise InputError("expected a mapping", path=path, field=where.rstrip(".") or None)
    known = {f.name: f for f in fields(cls)}
    types = hints(cls)
    out = {}
    for key, value in values.items():
        name = f"{where}{key}"
        if key not in known:
            raise InputError(f"unknown setting {name!r} (known here: "
                             f"{', '.join(sorted(known))})", path=path, field=name)
        section = _section(types[key]) or known[key].metadata.get("schema")
        if section is not None and value is not None:
            if not isinstance(value, Mapping):
                raise InputError("expected a mapping", path=path, field=name)
            out[key] = typed(section, value, path, f"{name}.")
            continue
        each = known[key].metadata.get("each")
        if each is not None and value is not None:
            if not isinstance(value, Mapping):
                raise InputError("expected a mapping of names to sections", path=path,
                                 field=name)
            # null drops an entry a layer below set (a recipe's base)
            out[key] = {k: None if v is None else typed(each, v, path, f"{name}.{k}.")
                        for k, v in value.items()}
            continue
        out[key] = coerce(value, types[key], name, path)
        choices = known[key].metadata.get("choices")
        if choices and out[key] is not None and out[key] not in choices:
            raise InputError(f"{out[key]!r}: choose one of {list(choices)}", path=path,
                             field=name)
    return out


_BOUND_WORDS = {"ge": ("at least", lambda v, b: v >= b), "gt": ("above", lambda v, b: v > b),
                "le": ("at most", lambda v, b: v <= b), "lt": ("below", lambda v, b: v < b)}


def check_values(obj, path=None, where: str = ""):
    """Every field of a config instance within its bounds and choices (a config made in Python
    is checked as strictly as one from the command line); returns ``obj``."""
    for f in fields(type(obj)):
        value, name = getattr(obj, f.name), f"{where}{f.name}"
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise InputError(f"{value!r}: choose one of {list(choices)}", path=path, field=name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            for kind, bound in f.metadata.get("bounds", {}).items():
                word, holds = _BOUND_WORDS[kind]
                if not holds(item, bound):
                    raise InputError(f"{item!r}: must be {word} {bound:g}", path=path,
                                     field=name)
    return obj


def build(cls, values: Mapping[str, Any], path=None, where: str = ""):
    """An instance of ``cls`` from checked values, nested sections built too; a required
    setting left out is an error naming it."""
    values = dict(values)
    for f in fields(cls):
        section, each = _section(hints(cls)[f.name]), f.metadata.get("each")
        if section is not None:
            values[f.name] = build(section, values.get(f.name) or {}, path, f"{where}{f.name}.")
        elif each is not None and values.get(f.name):  # kept as mappings, defaults filled in
            values[f.name] = {k: to_dict(build(each, v, path, f"{where}{f.name}.{k}."))
                              for k, v in values[f.name].items() if v is not None}
        elif f.name not in values and default_of(f) is REQUIRED:
            raise InputError("required setting missing", path=path, field=f"{where}{f.name}")
    made = check_values(cls(**values), path, where)
    try:
        return made.validate() if hasattr(made, "validate") else made
    except InputError as e:
        if not where:
            raise
        raise located(e, path, where) from None


def located(error: InputError, path, where: str) -> InputError:
    """A config's own check (``validate``) names its field; inside a recipe the error names
    the recipe file and the section (``labels.judge.judge_prompt``), keeping the file the check
    was about (a prompt template, a model folder) in the message."""
    about = f" ({error.path})" if error.path and error.path != str(path) else ""
    field = error.field or ""
    if not field.startswith(where):  # a check that already names its section keeps it
        field = f"{where}{field}"
    return InputError(f"{error.message}{about}", path=path, field=field.rstrip("."))


def section_of(cls, *, drop: Iterable[str] = (), name: str | None = None, **extra) -> type:
    """A recipe section that holds the settings of ``cls`` but ``drop`` (those the pipeline
    fills in itself, like a stage's input file), and ``extra`` fields (name -> (type,
    setting(...))). Such a section is a mapping of what the recipe gives; the stage's own
    config is built from it, defaults and all, when the stage runs."""
    kinds, dropped = hints(cls), set(drop)
    spec = [(f.name, kinds[f.name], dataclasses.field(default=None, metadata=f.metadata))
            for f in fields(cls) if f.name not in dropped]
    spec += [(key, kind, made) for key, (kind, made) in extra.items()]
    return dataclasses.make_dataclass(name or f"{cls.__name__}Section", spec, frozen=True)


def merge(base: Mapping, update: Mapping) -> dict:
    """``update`` laid over ``base``, mappings merged key by key (sections never replaced)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: Iterable[str]) -> dict:
    """``a.b=value`` strings as a nested mapping; values are read as YAML (numbers, booleans,
    null, lists keep their types; ``typed`` checks them against the fields)."""
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or any(not k for k in key.strip().split(".")):
            raise InputError(f"{item!r}: expected key=value (section.key=value in a recipe)",
                             field="set")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        for part in reversed(key.strip().split(".")):
            value = {part: value}
        out = merge(out, value)
    return out


def load(cls, yaml_path: str | Path | None = None, overrides: Iterable[str] = (),
         given: Mapping[str, Any] | None = None):
    """Defaults, then a YAML file, then ``given`` (command-line flags), then ``key=value``
    overrides; then the config's own ``validate()`` where it has one."""
    values: dict = {}
    if yaml_path:
        values.update(typed(cls, read_yaml_mapping(yaml_path), yaml_path))
    values.update(typed(cls, {k: v for k, v in (given or {}).items() if v is not None}))
    values.update(typed(cls, parse_overrides(overrides), "--set"))
    missing = [f.name for f in fields(cls) if default_of(f) is REQUIRED and f.name not in values]
    if missing:
        flag = "--" + missing[0].replace("_", "-")
        raise InputError(f"required: give {flag} (or {missing[0]}: in a config file)",
                         path=yaml_path, field=missing[0])
    return build(cls, values, yaml_path)


def to_dict(config) -> dict:
    """A config as plain JSON values (tuples as lists), for ``config.json``."""
    return json_ready(dataclasses.asdict(config))


def json_ready(value):
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
