"""Recipes: one YAML file that says what ``prmkit run`` does, from the policy to the report.

A recipe is a ``Recipe`` (below), loaded by ``prmkit.config`` like every other setting: each
section is a dataclass, or a mapping of a stage's own settings (``mc`` holds ``MCConfig``
fields, ``prms.train`` holds ``TrainConfig`` fields), so a typo or a mistyped value is an error
naming the file and the key, never a silently ignored setting. Overrides (``--set mc.k=4``)
are read as YAML values, so numbers and booleans keep their types. A stage setting the recipe
leaves out takes the stage's own default.

The demo is the shipped recipe ``prmkit/recipes/demo.yaml``; ``--quick`` applies its
``quick`` section, a configuration small enough for CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prmkit import config
from prmkit.annotate.consensus import ConsensusConfig
from prmkit.annotate.judge import JudgeConfig
from prmkit.annotate.mc import MCConfig
from prmkit.config import REQUIRED, setting
from prmkit.prm.train import TrainConfig
from prmkit.sample import SampleConfig

RECIPES = Path(__file__).parent / "recipes"


@dataclass(frozen=True)
class PolicySection:
    name: str = setting(REQUIRED, "toy (the toy policy, trained once and cached) or a model "
                        "folder.")
    steps: int | None = setting(None, "toy: a shorter training run (quick runs).", ge=1)


@dataclass(frozen=True)
class ProblemsSection:
    train: int = setting(REQUIRED, "Training problems (x sample.n solutions: annotated, then "
                         "trained on).", ge=1)
    heldout: int = setting(REQUIRED, "Held-out problems (x sample.n solutions: the toy "
                           "ProcessBench and Best-of-N).", ge=1)
    preset: str = setting("mixed", "Toy problem preset: easy, medium, hard, long or mixed.")
    seed: int = setting(0, "Seed of the problems and of sampling.")


@dataclass(frozen=True)
class PRMSection:
    sources: dict = setting(REQUIRED, "PRM name -> label field (null drops one).")
    soft: list[str] = setting([], "PRM names trained on the label value itself (soft loss).")
    ceiling: str | None = setting(None, "The reference PRM, named in the findings.")
    baseline: str | None = setting(None, "A name: also the PRM before training (no labels).")
    train: dict = setting({}, "prmkit train settings shared by every PRM.", schema=TrainConfig)


@dataclass(frozen=True)
class BonSection:
    ns: list[int] | None = setting(None, "N values (default: 1, 2, 4, ... up to sample.n).")


@dataclass(frozen=True)
class ReportSection:
    viewer_solutions: int = setting(240, "Training solutions in the step viewer.", ge=0)


@dataclass(frozen=True)
class Recipe:
    out: str = setting(REQUIRED, "Run folder.")
    policy: PolicySection = setting(None, "The policy that samples and completes.")
    problems: ProblemsSection = setting(None, "Toy problems.")
    sample: dict = setting({}, "prmkit sample settings.", schema=SampleConfig)
    mc: dict = setting({}, "prmkit annotate mc settings.", schema=MCConfig)
    judge: dict = setting({}, "prmkit annotate judge settings.", schema=JudgeConfig)
    consensus: dict = setting({}, "prmkit annotate consensus settings.",
                              schema=ConsensusConfig)
    prms: PRMSection = setting(None, "The PRMs: one a label source.")
    bon: BonSection = setting(None, "Best-of-N.")
    report: ReportSection = setting(None, "The report.")
    workers: int = setting(2, "Generation worker processes (2 on a 2-core CPU).", ge=1)
    quick: dict = setting({}, "Overrides applied by --quick (a recipe layer of their own).")


def load(path: str | Path | None = None, overrides: list[str] = (), *, quick: bool = False
         ) -> dict:
    """The recipe file, then its ``quick`` section (with ``quick``), then the overrides, each
    layer checked on its own (so an error names where the bad key came from); returned as a
    plain mapping with every section and default filled in."""
    from prmkit.records import read_yaml_mapping
    layers = [(read_yaml_mapping(path, "sections") if path is not None else {}, path)]
    if quick:
        layers.append((layers[0][0].get("quick") or {}, f"{path} (quick)"))
    layers += [(config.parse_overrides([item]), "--set") for item in overrides]
    merged: dict = {}
    for values, where in layers:
        merged = config.merge(merged, config.typed(Recipe, values, where))
    return config.to_dict(config.build(Recipe, merged, path))


def demo_path() -> Path:
    return RECIPES / "demo.yaml"
