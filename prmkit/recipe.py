"""Recipes: one YAML file that says what ``prmkit run`` does, from the policy to the report.

A recipe is a mapping of sections (``policy``, ``problems``, ``sample``, ``mc``, ``judge``,
``consensus``, ``prms``, ``bon``, ``out``); every key must be one the defaults below have, so a
typo is an error naming the file and the key, never a silently ignored setting. Overrides
(``--set mc.k=4``) are read as YAML values, so numbers and booleans keep their types.

The demo is the shipped recipe ``prmkit/recipes/demo.yaml``; ``--quick`` applies its
``quick`` section, a configuration small enough for CI.
"""

from __future__ import annotations

import copy
from pathlib import Path

from prmkit.errors import InputError

RECIPES = Path(__file__).parent / "recipes"

DEFAULTS: dict = {
    "out": "runs/demo",
    "policy": {"name": "toy", "steps": None},   # steps: a shorter toy policy (quick runs)
    "problems": {"preset": "mixed", "train": 100, "heldout": 100, "seed": 0},
    "sample": {"n": 8, "temperature": 1.0},
    "mc": {"k": 8, "mode": "linear"},
    "judge": {"kind": "rule"},
    "consensus": {"sources": ["mc.hard", "judge.first_error"]},
    "prms": {
        # name -> label field; a name in ``soft`` trains on the field's values (soft loss)
        "sources": {"exact truth": "truth.step_labels", "MC-hard": "mc.hard",
                    "MC-soft": "mc.values", "judge": "judge.first_error",
                    "consensus": "consensus.first_error"},
        "soft": ["MC-soft"],
        "ceiling": "exact truth",                  # the reference PRM, named in the findings
        "baseline": None,                          # a name: also the untrained PRM (no labels)
        "train": {},                                # prmkit.prm.train.TrainConfig settings
    },
    "bon": {"ns": None},                            # None: 1, 2, 4, ... up to sample.n
    "report": {"viewer_solutions": 240},
    "workers": 2,
    "quick": {},                                    # overrides applied by --quick
}

# sections whose keys are free: PRM names (null drops one), TrainConfig settings (checked by
# TrainConfig), the quick overlay (checked when applied)
FREE = {("prms", "sources"), ("prms", "train"), ("quick",)}


def _merge(base: dict, update: dict, where: tuple, path) -> dict:
    """``update`` laid over ``base``, section by section; keys outside FREE sections must be
    known."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        here = (*where, key)
        if where in FREE:
            out[key] = value
        elif key not in base:
            known = ", ".join(sorted(base))
            raise InputError(f"unknown setting {'.'.join(here)!r} (known here: {known})",
                             path=path, field=".".join(here))
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputError("expected a mapping", path=path, field=".".join(here))
            out[key] = _merge(base[key], value, here, path)
        else:
            out[key] = value
    return out


def _override(item: str) -> dict:
    import yaml
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise InputError(f"{item!r}: expected section.key=value", field="set")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    nested: dict = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def load(path: str | Path | None = None, overrides: list[str] = (), *, quick: bool = False
         ) -> dict:
    """The defaults, then the recipe file, then ``--quick``, then the overrides."""
    from prmkit.records import read_yaml_mapping
    recipe = copy.deepcopy(DEFAULTS)
    if path is not None:
        recipe = _merge(recipe, read_yaml_mapping(path, "sections"), (), path)
    if quick:
        recipe = _merge(recipe, recipe["quick"], (), f"{path} (quick)")
    for item in overrides:
        recipe = _merge(recipe, _override(item), (), "--set")
    return recipe


def demo_path() -> Path:
    return RECIPES / "demo.yaml"
