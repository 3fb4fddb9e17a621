"""What other packages plug into prmkit, found by name through Python entry points.

A package (the toy world is one) declares its parts in its ``pyproject.toml``; prmkit finds
them here and never imports such a package by name:

    prmkit.commands   a typer app mounted as ``prmkit NAME``
    prmkit.sources    a problem source: ``NAME:SPEC`` wherever a problems file is read
                      (``toy:mixed:test:100``), like ``hub:NAME:SPLIT``
    prmkit.policies   a policy resolver: ``NAME`` or ``NAME@...`` / ``NAME:...`` wherever the
                      pipeline takes a policy model (``toy``, ``toy@step-400``)
    prmkit.benchmarks a benchmark beside the built-in ones (``prmkit.evaluate.BENCHMARKS``)

A problem source is an object with::

    read(spec: str) -> list[dict]        the problem records that SPEC names (after "NAME:")
    truth: str | None                     the step-truth hook of its problems (module:function,
                                          prmkit.sample's ``truth``), None when it has none
    token_budget(problems) -> int | None  tokens a solution of these problems needs at most,
                                          None when it cannot say

A policy resolver is a function ``resolve(spec: str, progress: bool) -> Path`` that returns a
model folder (training or fetching the policy first if it must).
"""

from __future__ import annotations

import difflib
import re
from importlib.metadata import entry_points

from prmkit.errors import InputError

COMMANDS, SOURCES, POLICIES, BENCHMARKS = ("prmkit.commands", "prmkit.sources",
                                           "prmkit.policies", "prmkit.benchmarks")


def names(group: str) -> list[str]:
    return sorted(point.name for point in entry_points(group=group))


def find(group: str, name: str):
    """The object a package registered under ``name`` in ``group``, or None."""
    for point in entry_points(group=group):
        if point.name == name:
            return point.load()
    return None


def load(group: str, name: str, what: str):
    """Like ``find``, but a miss is an error that lists what is known (and a close name)."""
    found = find(group, name)
    if found is None:
        known = names(group)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"no {what} named {name!r}{hint} (known: {', '.join(known) or 'none'})",
                         field=what)
    return found


def mounted(group: str):
    """(name, object) of every plugin of a group, loaded."""
    return [(point.name, point.load()) for point in entry_points(group=group)]


# --- problem sources -----------------------------------------------------------------------------

def source_of(path: str):
    """(source, spec) when ``path`` names a registered problem source (``toy:mixed:test:100``),
    else None: a file, a folder or ``hub:`` (read by prmkit.formats)."""
    scheme, sep, spec = str(path).partition(":")
    if not sep or not scheme.isidentifier():
        return None
    source = find(SOURCES, scheme)
    return (source, spec) if source is not None else None


def truth_of(path: str) -> str | None:
    """The step-truth hook (``module:function``) of a registered source that knows the truth
    of every step (the toy world), else None."""
    registered = source_of(path)
    return getattr(registered[0], "truth", None) if registered else None


# --- policies -----------------------------------------------------------------------------------

def policy_resolver(model: str):
    """The resolver a package registered for ``model``'s name (``toy`` of ``toy@step-400``),
    or None: a folder, a hub id or a served model's name."""
    name = re.split(r"[@:]", model, maxsplit=1)[0]
    return find(POLICIES, name) if name.isidentifier() else None


def resolve_policy(model: str, *, progress: bool = True) -> str:
    """A registered policy resolved to its model folder (``toy``, ``toy@step-400``,
    ``toy:steps=40``); anything else (a folder, a hub id, a served model's name) as given."""
    resolver = policy_resolver(model)
    return model if resolver is None else str(resolver(model, progress=progress))
