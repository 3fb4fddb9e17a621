"""prmkit: build and evaluate process reward models (PRMs) for math reasoning.

Importing prmkit is cheap: submodules that need torch or math-verify load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("evaluate", "grading", "records", "formats")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"prmkit.{name}")
    raise AttributeError(f"module 'prmkit' has no attribute {name!r}")
