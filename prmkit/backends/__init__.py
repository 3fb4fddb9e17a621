"""Generation backends behind one batch-first interface (see ``prmkit.backends.base``).

A registry of ``name -> "module:Class"`` strings, so that importing prmkit never imports torch.
"""

from __future__ import annotations

import difflib
import importlib

from prmkit.backends.base import Backend, Completion, SamplingParams, check_outputs
from prmkit.errors import InputError

BACKENDS = {
    "hf": "prmkit.backends.hf:HFBackend",
    "openai": "prmkit.backends.openai_compat:OpenAIBackend",
}

__all__ = ["BACKENDS", "Backend", "Completion", "SamplingParams", "check_outputs", "load_backend"]


def load_backend(name: str, model: str, **options) -> Backend:
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown backend {name!r}{hint} (known: {sorted(BACKENDS)})",
                         field="backend")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **options)
