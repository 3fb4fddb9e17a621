"""The chain of a run, top to bottom: policy, problems, sampling, labels, PRMs, evaluation,
results and report. ``Run`` is what the stages share, and what a benchmark may ask of the run
(``prmkit.evaluate.benchmark.PipelineRun``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from prmkit import config, plugins, rundir, sample
from prmkit.annotate.quality import label_quality, present_sources
from prmkit.backends import BackendConfig
from prmkit.errors import InputError
from prmkit.evaluate.diagnostics import final_step_errors
from prmkit.formats.data import first_problems
from prmkit.pipeline import labels
from prmkit.pipeline.evaluation import evaluate_prms
from prmkit.pipeline.judges import evaluate_judge
from prmkit.pipeline.prms import compared_models, train_prms, training_record
from prmkit.pipeline.recipe import check_available
from prmkit.pipeline.searches import search_with_prms
from prmkit.pipeline.stages import Stages
from prmkit.records import read_records, write_json
from prmkit.report import page as report
from prmkit.report.viewer import viewer_subset
from prmkit.sample import SampleConfig


class Run:
    """One run folder: the recipe, the resolved policy and where it runs, the stages so far,
    and the groups of solutions the benchmarks made."""

    def __init__(self, recipe: dict, stages: Stages, progress: bool):
        self.recipe, self.stages, self.progress = recipe, stages, progress
        self.out = Path(recipe["out"])
        self.prompt = recipe["policy"]["prompt"]
        self.backend = config.build(BackendConfig, recipe["policy"]["backend"])
        model = recipe["policy"]["model"]
        self.policy = stages("policy", None, lambda force: plugins.resolve_policy(
            model, progress=progress))
        self.groups: dict[str, dict[str, list[dict]]] = {}
        self.sampled: dict[str, dict] = {}  # each sample stage's metrics, by its label

    def sample(self, label: str, data: dict, folder: Path, settings: dict) -> list[dict]:
        """The policy's graded solutions of a data section's first ``limit`` problems
        (``folder/problems.jsonl``), in a resumable sample stage (``folder/sample``). Problems
        of a source that knows the truth of every step (the toy world) carry it."""
        problems = first_problems(data, folder / "problems.jsonl")
        # the problems file is the source's records: their truth hook goes with them
        truth = self.recipe["sample"].get("truth") or plugins.truth_of(data["path"])
        cfg = config.load(SampleConfig, given={
            **self.recipe["sample"], **settings, "problems": str(problems),
            "model": self.policy, "prompt": self.prompt, "truth": truth})
        self.sampled[label] = self.stages(label, folder / "sample", lambda force: sample.run(
            cfg, folder / "sample", backend=self.backend, progress=self.progress, force=force))
        return read_records(folder / "sample" / "solutions.jsonl", "solution")

    def group(self, benchmark: str, name: str) -> list[dict]:
        return self.groups[benchmark][name]

    def token_budget(self) -> int | None:
        """Tokens a solution of the training problems needs, where their source can say."""
        registered = plugins.source_of(self.recipe["problems"]["path"])
        budget = getattr(registered[0], "token_budget", None) if registered else None
        return budget(read_records(self.out / "problems.jsonl", "problem")) if budget else None


def run(recipe: dict, *, progress: bool = True, console: Console | None = None,
        force: bool = False, source: str | Path | None = None) -> dict:
    """Run (or resume) a recipe (loaded from ``source``); returns what ``results.json`` holds.
    Every model and data source it names is checked first. The run folder is held by this
    process (``rundir.owned``): a second run on it is refused. A folder that holds a run of
    other settings is refused too, left as it is; ``force`` redoes the stages they touch."""
    check_available(recipe, source)
    with rundir.owned(rundir.check_out(recipe["out"])) as out:
        if not force:
            refuse_another_recipe(out, recipe)
        return _run(recipe, progress, console or Console(), force)


# what may change on a folder without redoing any stage: where it is, how the report looks,
# the judge's own evaluation and the search (stages of their own, each refused alone when its
# settings change)
FREE = ("out", "report", "quick", "judge_eval", "search")


def refuse_another_recipe(out: Path, recipe: dict) -> None:
    """The settings a folder's stages were made with (``recipe.json``) are the recipe's, or
    nothing is done: a changed setting would otherwise redo and replace finished stages."""
    saved = out / "recipe.json"
    if not saved.exists():
        others = sorted(p.name for p in out.iterdir() if p.name != rundir.LOCK)
        if others:  # not a run folder: the user's own files would be overwritten
            raise InputError(f"holds files of its own ({', '.join(others[:3])}"
                             f"{', ...' if len(others) > 3 else ''}) and no recipe.json: not a "
                             "run folder; choose another --out (or --force)", path=out,
                             field="out")
        return
    try:
        before = json.loads(saved.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("damaged (not JSON): use --force to start this run over, or "
                         "another --out", path=saved) from None
    changed = [key for key in _differences(before, recipe) if key.split(".")[0] not in FREE]
    if changed:
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6
                                          else "")
        raise InputError(f"holds a run made with other settings (changed: {shown}); use "
                         "--force to redo the stages they touch, or another --out",
                         path=out, field="out")


def _differences(before, after, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested mappings."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return [] if before == after else [prefix.rstrip(".") or "(whole recipe)"]
    return [key for name in sorted(set(before) | set(after), key=str)
            for key in _differences(before.get(name), after.get(name), f"{prefix}{name}.")]


def _run(recipe: dict, progress: bool, console: Console, force: bool) -> dict:
    began = time.monotonic()
    out = Path(recipe["out"])
    write_json(out / "recipe.json", recipe)
    stages = Stages(out, console, force)
    run = Run(recipe, stages, progress)
    run.sample("sample", recipe["problems"], out, {})
    annotated, label_metrics = labels.annotate(run, out / "sample" / "solutions.jsonl")
    training = read_records(annotated, "solution")
    prms = train_prms(run, annotated, training)
    label_results = labelled(annotated, training, label_metrics,
                             run.sampled["sample"]["n_solutions"])
    viewer = viewer_subset(training, list(label_results["sources"].values()),
                           recipe["report"]["viewer_solutions"])
    compared, own_settings = compared_models(recipe)
    evaluation = evaluate_prms(run, {**prms, **compared}, viewer, own_settings)
    judge_evaluation = evaluate_judge(run)
    searched = search_with_prms(run, {**prms, **compared}, own_settings)
    results = {
        "policy": run.policy,
        "judge": (recipe["labels"].get("judge") or {}).get("model"),
        "counts": {"train_solutions": len(training), "viewer_solutions": len(viewer)},
        "labels": label_results,
        "training": {name: training_record(folder) for name, folder in prms.items()},
        "prms": evaluation.measured,
        "benchmarks": evaluation.summaries,
        "ceiling": recipe["prms"]["ceiling"],
        "baselines": [recipe["prms"]["baseline"]] if recipe["prms"]["baseline"] else [],
        "references": list(compared),
        "skipped_prms": stages.skipped,
        "mc_sources": [name for name, field in recipe["prms"]["sources"].items()
                       if field and field.startswith("mc.")],
        "prm_sources": recipe["prms"]["sources"],
        "judge_eval": judge_evaluation,
        "search": searched,
    }
    write_json(out / "results.json", results)
    stages("report", None, lambda force: report.write(out, results, evaluation, stages.timings,
                                                      recipe["report"]["viewer_items"]))
    stages.total(time.monotonic() - began)
    return results


def labelled(annotated: Path, training: list[dict], metrics: dict, sampled: int) -> dict:
    """What the label stages did: the named label sources they wrote, their agreement
    (consensus), what each cost, and where the solutions carry their step truth, each
    source's quality against it and how often it puts the first error on the final step."""
    costs = {"sampled solutions": sampled}
    for name, stage_metrics in metrics.items():
        costs.update(labels.LABELERS[name].cost(stage_metrics))
    sources = present_sources(training)
    out = {"sources": sources, "agreement": metrics.get("consensus"), "costs": costs,
           "quality": None, "final_step_errors": None}
    if sources and training and all(isinstance(r.get("truth"), dict) for r in training):
        out["quality"] = label_quality(annotated, sources)
        out["final_step_errors"] = final_step_errors(
            training, {"truth": out["quality"]["reference"], **sources})
    return out
