"""The label stages of a run (``labels:`` in a recipe), in the order of ``LABELERS`` whatever
order the recipe lists them in (a tool that writes YAML may sort its keys): each reads the
solutions as the stage before left them and adds its own field, and consensus comes after the
sources it reads.

    mc         Monte Carlo estimation with the policy (prmkit annotate mc): mc.hard, mc.values
    judge      a judge's earliest error: the arithmetic rule or a model (prmkit annotate judge)
    consensus  where the label sources agree (prmkit annotate consensus)

A new kind of label is one entry here, in its place in the order: its stage's config, how it
runs (a prmkit command's own resumable stage) and what it cost. Its field is then a label source like any other
(``prms.sources``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from prmkit import config
from prmkit.annotate import consensus, judge, mc
from prmkit.backends import BackendConfig
from prmkit.config import setting


@dataclass(frozen=True)
class Labeler:
    title: str                 # the stage's name in the run's log and timings
    config: type               # the stage's own config
    filled: dict               # what the pipeline fills in (placeholders to check a recipe)
    run: Callable[[Any, dict, Path, Path, bool], dict]  # (run, settings, solutions, out, force)
    cost: Callable[[dict], dict]                         # what it spent, from its metrics
    own_backend: bool = False  # runs its own model (a judge), with a ``backend`` section
    # the label fields it writes (under its ``name`` setting), and those it reads
    writes: tuple[str, ...] = ()
    reads: Callable[[dict], list[str]] = lambda settings: []

    def fields(self, settings: dict) -> list[str]:
        """The label sources its output offers, as ``prms.sources`` names them."""
        name = settings.get("name") or self.config.__dataclass_fields__["name"].default
        return [f"{name}.{field}" for field in self.writes]

    @cached_property
    def section(self) -> type:
        """Its recipe settings: the stage's own, but those the pipeline fills in."""
        backend = {"backend": (dict, setting({}, "Where its model runs (BackendConfig "
                                                 "settings).", schema=BackendConfig))}
        return config.section_of(self.config, drop=tuple(self.filled),
                                 name=f"{self.config.__name__}Section",
                                 **(backend if self.own_backend else {}))

    def check(self, settings: dict, path, where: str) -> None:
        """The stage's config (and backend) built from the recipe's settings, before any
        work."""
        own = {k: v for k, v in settings.items() if k != "backend"}
        config.build(self.config, {**own, **self.filled}, path, where)
        if self.own_backend:
            config.build(BackendConfig, settings.get("backend") or {}, path, f"{where}backend.")


def _mc(run, settings: dict, solutions: Path, out: Path, force: bool) -> dict:
    """Rollouts by the policy, as it sampled: its model, prompt and backend. A problem source
    that knows how long its solutions are sets the rollouts' token budget."""
    budget = run.token_budget()
    cfg = config.load(mc.MCConfig, given={
        **({"max_new_tokens": budget} if budget else {}), **settings,
        "solutions": str(solutions), "model": run.policy, "prompt": run.prompt})
    return mc.run(cfg, out, backend=run.backend, progress=run.progress, force=force)


def _judge(run, settings: dict, solutions: Path, out: Path, force: bool) -> dict:
    settings = dict(settings)
    backend = config.build(BackendConfig, settings.pop("backend", None) or {})
    cfg = config.load(judge.JudgeConfig, given={**settings, "solutions": str(solutions)})
    return judge.run(cfg, out, backend=backend, progress=run.progress, force=force)


def _consensus(run, settings: dict, solutions: Path, out: Path, force: bool) -> dict:
    cfg = config.load(consensus.ConsensusConfig, given={**settings, "inputs": [str(solutions)]})
    return consensus.run(cfg, out, force=force)


LABELERS: dict[str, Labeler] = {
    "mc": Labeler("MC estimation", mc.MCConfig,
                  {"solutions": "-", "model": "-", "prompt": "plain"}, _mc,
                  lambda m: {"MC rollouts": m["rollouts"],
                             "MC rollouts generated (shared prefixes once)":
                                 m["rollouts_generated"]},
                  writes=("hard", "values", "first_error")),
    "judge": Labeler("judge", judge.JudgeConfig, {"solutions": "-"}, _judge,
                     lambda m: {"judge calls": m["calls"]}, own_backend=True,
                     writes=("first_error",)),
    "consensus": Labeler("consensus", consensus.ConsensusConfig, {"inputs": ("-",)},
                         _consensus, lambda m: {},
                         writes=("first_error", "step_labels", "kept"),
                         reads=lambda settings: list(
                             settings.get("sources")
                             or consensus.ConsensusConfig.__dataclass_fields__["sources"].default)),
}


def annotate(run, solutions: Path) -> tuple[Path, dict[str, dict]]:
    """Every label stage of the recipe, in the registry's order; returns the last stage's
    annotated solutions and every stage's metrics."""
    metrics, current = {}, solutions
    for name in [n for n in LABELERS if n in run.recipe["labels"]]:
        labeler, folder, settings = LABELERS[name], run.out / name, run.recipe["labels"][name]
        metrics[name] = run.stages(
            labeler.title, folder,
            lambda force, labeler=labeler, current=current, folder=folder, settings=settings:
            labeler.run(run, settings, current, folder, force))
        current = folder / "annotated.jsonl"
    return current, metrics
