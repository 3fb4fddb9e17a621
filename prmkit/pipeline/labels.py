"""The label stages of a run, in the order its recipe lists them (``labels:``): each reads the
solutions as the stage before left them and adds its own field.

    mc         Monte Carlo estimation with the policy (prmkit annotate mc): mc.hard, mc.values
    judge      a judge's earliest error: the arithmetic rule or a model (prmkit annotate judge)
    consensus  where the label sources agree (prmkit annotate consensus)

A new kind of label is one stage here: its recipe section, how it runs (a prmkit command's own
resumable stage) and what it cost. Its field is then a label source like any other
(``prms.sources``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
    extra: dict = field(default_factory=dict)            # recipe settings beside the config's

    @cached_property
    def section(self) -> type:
        """Its recipe settings: the stage's own, but those the pipeline fills in."""
        return config.section_of(self.config, drop=tuple(self.filled),
                                 name=f"{self.config.__name__}Section", **self.extra)

    def check(self, settings: dict, path, where: str) -> None:
        """The stage's config built from the recipe's settings, before any work."""
        own = {k: v for k, v in settings.items() if k not in self.extra}
        config.build(self.config, {**own, **self.filled}, path, where)
        for key in self.extra:
            config.build(self.extra[key][1].metadata["schema"], settings.get(key) or {}, path,
                         f"{where}{key}.")


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


BACKEND = (dict, setting({}, "Where a model judge runs (BackendConfig settings).",
                        schema=BackendConfig))

LABELERS: dict[str, Labeler] = {
    "mc": Labeler("MC estimation", mc.MCConfig,
                  {"solutions": "-", "model": "-", "prompt": "plain"}, _mc,
                  lambda m: {"MC rollouts": m["rollouts"],
                             "MC rollouts generated (shared prefixes once)":
                                 m["rollouts_generated"]}),
    "judge": Labeler("judge", judge.JudgeConfig, {"solutions": "-"}, _judge,
                     lambda m: {"judge calls": m["calls"]}, extra={"backend": BACKEND}),
    "consensus": Labeler("consensus", consensus.ConsensusConfig, {"inputs": ("-",)},
                         _consensus, lambda m: {}),
}


def annotate(run, solutions: Path) -> tuple[Path, dict[str, dict]]:
    """Every label stage of the recipe, in order; returns the last stage's annotated solutions
    and every stage's metrics."""
    metrics, current = {}, solutions
    for name, settings in run.recipe["labels"].items():
        labeler, folder = LABELERS[name], run.out / name
        metrics[name] = run.stages(
            labeler.title, folder,
            lambda force, labeler=labeler, current=current, folder=folder, settings=settings:
            labeler.run(run, settings, current, folder, force))
        current = folder / "annotated.jsonl"
    return current, metrics
