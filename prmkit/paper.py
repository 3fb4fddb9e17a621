"""``prmkit run`` on real data: the paper's pipeline with real models, one resumable folder.

A recipe with ``kind: paper`` (``prmkit/recipes/qwen2.5-math.yaml``) names the policy and the
judge (model folders, hub ids, or names served by an OpenAI-compatible server or vLLM), the
problems, and every stage's settings; each section is checked against the stage's own config.

    problems/        the training problems (the first ``limit``), as prmkit records
    sample/          N solutions a problem, graded               (prmkit sample)
    mc/              Monte Carlo values from every step prefix  (prmkit annotate mc)
    judge/           the judge's earliest error                 (prmkit annotate judge)
    consensus/       where MC and the judge agree               (prmkit annotate consensus)
    prm-*/           one PRM a label source                     (prmkit train)
    processbench/    the benchmark's items (the first ``limit`` of each subset), every PRM's
                     scores and metrics                         (prmkit score, eval processbench)
    bon-<set>/       the policy's N candidates a problem of each evaluation set, every PRM's
                     scores, Best-of-N and within-problem AUC   (prmkit sample, score, eval bon)
    results.json, report.md, report.html, plots/

Every stage is a prmkit command's own resumable stage: a second run, or one after a kill,
redoes only what is missing. The toy world has no part here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from prmkit import config, rundir
from prmkit.annotate.consensus import ConsensusConfig
from prmkit.annotate.judge import JudgeConfig
from prmkit.annotate.mc import MCConfig
from prmkit.backends import BackendConfig
from prmkit.config import REQUIRED, setting
from prmkit.prm.score import ScoreConfig
from prmkit.prm.train import TrainConfig
from prmkit.records import read_records, write_json, write_jsonl
from prmkit.sample import SampleConfig


@dataclass(frozen=True)
class PolicySection:
    model: str = setting(REQUIRED, "The policy: a folder, a hub id, or a served model name.")
    prompt: str = setting("qwen-math", "Its prompt format (prmkit.prompting).")
    backend: dict = setting({}, "Where it runs (prmkit.backends.BackendConfig settings).",
                            schema=BackendConfig)


@dataclass(frozen=True)
class JudgeSection:
    model: str = setting(REQUIRED, "The judge: a folder, a hub id, or a served model name.")
    backend: dict = setting({}, "Where it runs (BackendConfig settings).",
                            schema=BackendConfig)
    settings: dict = setting({}, "prmkit annotate judge settings.", schema=JudgeConfig)


@dataclass(frozen=True)
class DataSection:
    path: str = setting(REQUIRED, "A file, or hub:NAME[:CONFIG]:SPLIT (a folder of subsets, "
                        "or hub:Qwen/ProcessBench, for ProcessBench).")
    format: str = setting("prmkit", "Its format (prmkit formats).")
    limit: int | None = setting(None, "The first N problems (per subset for ProcessBench).",
                                ge=1)


@dataclass(frozen=True)
class PRMsSection:
    model: str = setting(REQUIRED, "The PRMs' backbone (the paper: the instruct policy).")
    sources: dict = setting(REQUIRED, "PRM name -> label field of consensus/annotated.jsonl.")
    soft: list[str] = setting([], "PRM names trained on the label value itself (soft loss).")
    train: dict = setting({}, "prmkit train settings shared by every PRM.", schema=TrainConfig)


@dataclass(frozen=True)
class BestOfNSection:
    sets: dict = setting({}, "Evaluation set name -> {path, format, limit}: the policy samples "
                         "n candidates a problem.")
    n: int = setting(8, "Candidates a problem.", ge=1)
    sample: dict = setting({}, "Sampling settings for the candidates.", schema=SampleConfig)


@dataclass(frozen=True)
class PaperRecipe:
    out: str = setting(REQUIRED, "Run folder.")
    kind: str = setting("paper", "This recipe's pipeline.", choices=("paper",))
    policy: PolicySection = setting(None, "The policy that samples and completes.")
    judge: JudgeSection = setting(None, "The LLM judge.")
    problems: DataSection = setting(None, "Training problems (with answers).")
    sample: dict = setting({}, "prmkit sample settings.", schema=SampleConfig)
    mc: dict = setting({}, "prmkit annotate mc settings.", schema=MCConfig)
    consensus: dict = setting({}, "prmkit annotate consensus settings.",
                              schema=ConsensusConfig)
    prms: PRMsSection = setting(None, "The PRMs: one a label source.")
    score: dict = setting({}, "prmkit score settings for every scoring (batch_size, "
                          "shard_size, executor, actor_gpus, ...).", schema=ScoreConfig)
    processbench: DataSection = setting(None, "ProcessBench (a folder of subsets).")
    bon: BestOfNSection = setting(None, "Best-of-N on evaluation sets.")


def is_paper_recipe(path: str | Path) -> bool:
    from prmkit.records import read_yaml_mapping
    return read_yaml_mapping(path, "sections").get("kind") == "paper"


def load(path: str | Path, overrides: list[str] = ()) -> dict:
    """The recipe, then ``--set`` overrides, each layer checked on its own."""
    from prmkit.records import read_yaml_mapping
    merged = config.typed(PaperRecipe, read_yaml_mapping(path, "sections"), path)
    for item in overrides:
        merged = config.merge(merged, config.typed(PaperRecipe, config.parse_overrides([item]),
                                                   "--set"))
    recipe = config.to_dict(config.build(PaperRecipe, merged, path))
    for name, data in recipe["bon"]["sets"].items():  # each set is a DataSection
        config.build(DataSection, config.typed(DataSection, data or {}, path,
                                               f"bon.sets.{name}."), path, f"bon.sets.{name}.")
    return recipe


# --- the stages ---------------------------------------------------------------------------------

def first_problems(data: dict, out: Path) -> Path:
    """The first ``limit`` problems of a data section as prmkit records in ``out`` (written
    once; the file's content is what the sample stage hashes)."""
    from prmkit.formats import read_as
    problems = read_as(data["path"], data["format"], "problem")[:data["limit"] or None]
    if not problems:
        from prmkit.errors import InputError
        raise InputError("no problems in this file", path=data["path"], field="path")
    write_jsonl(out, problems)
    return out


def first_items(data: dict, out: Path) -> Path:
    """The first ``limit`` items of every ProcessBench subset, one JSONL a subset."""
    from prmkit.formats.processbench import read
    by_subset: dict[str, list[dict]] = {}
    for item in read(data["path"]):
        by_subset.setdefault(item.get("subset") or "all", []).append(item)
    out.mkdir(parents=True, exist_ok=True)
    for subset, items in by_subset.items():
        write_jsonl(out / f"{subset}.jsonl",
                    [{k: v for k, v in i.items() if k != "subset"}
                     for i in items[:data["limit"] or None]])
    return out


def run(recipe: dict, *, progress: bool = True, console=None) -> dict:
    """Run (or resume) a paper recipe; returns what ``results.json`` holds."""
    with rundir.owned(rundir.check_out(recipe["out"])):
        return _run(recipe, progress=progress, console=console)


def _run(recipe: dict, *, progress: bool, console) -> dict:
    from rich.console import Console

    from prmkit import sample
    from prmkit.annotate import consensus, judge, mc
    from prmkit.pipeline import Stages, slug
    from prmkit.prm.train import train
    console = console or Console()
    out = Path(recipe["out"])
    write_json(out / "recipe.json", recipe)
    stages, began = Stages(out, console), time.monotonic()
    policy = recipe["policy"]
    policy_backend = config.build(BackendConfig, policy["backend"])
    judge_backend = config.build(BackendConfig, recipe["judge"]["backend"])

    problems = first_problems(recipe["problems"], out / "problems" / "train.jsonl")
    sample_cfg = config.load(SampleConfig, given={
        **recipe["sample"], "problems": str(problems), "model": policy["model"],
        "prompt": policy["prompt"]})
    sampled = stages("sample", out / "sample", lambda force: sample.run(
        sample_cfg, out / "sample", backend=policy_backend, progress=progress, force=force))
    mc_cfg = config.load(MCConfig, given={
        **recipe["mc"], "solutions": str(out / "sample" / "solutions.jsonl"),
        "model": policy["model"], "prompt": policy["prompt"]})
    mc_metrics = stages("MC estimation", out / "mc", lambda force: mc.run(
        mc_cfg, out / "mc", backend=policy_backend, progress=progress, force=force))
    judge_cfg = config.load(JudgeConfig, given={
        "kind": "model", **recipe["judge"]["settings"],
        "solutions": str(out / "mc" / "annotated.jsonl"), "model": recipe["judge"]["model"]})
    judge_metrics = stages("judge", out / "judge", lambda force: judge.run(
        judge_cfg, out / "judge", backend=judge_backend, progress=progress, force=force))
    consensus_cfg = config.load(ConsensusConfig, given={
        **recipe["consensus"], "inputs": [str(out / "judge" / "annotated.jsonl")]})
    agreement = stages("consensus", out / "consensus", lambda force: consensus.run(
        consensus_cfg, out / "consensus", force=force))
    annotated = out / "consensus" / "annotated.jsonl"

    prms = {}
    for name, field in recipe["prms"]["sources"].items():
        if field is None:
            continue
        if not _has_labels(annotated, field):  # e.g. consensus kept nothing
            stages.skipped[name] = f"no solution has a label in {field}"
            console.print(f"[yellow]PRM ({name}): no solution has a label in {field}; "
                          "skipped[/yellow]")
            continue
        cfg = config.load(TrainConfig, given={
            **recipe["prms"]["train"], "data": str(annotated), "labels": field,
            "model": recipe["prms"]["model"],
            "loss": "soft" if name in recipe["prms"]["soft"] else "hard"})
        folder = out / f"prm-{slug(name)}"
        stages(f"PRM ({name})", folder, lambda force, cfg=cfg, folder=folder: train(
            cfg, folder, progress=progress, force=force))
        prms[name] = folder / "final"

    # what each label source cost: the paper's argument for consensus over more rollouts
    costs = {"sampled solutions": sampled["n_solutions"],
             "MC rollouts": mc_metrics["rollouts"],
             "MC rollouts generated (shared prefixes once)": mc_metrics["rollouts_generated"],
             "judge calls": judge_metrics.get("calls")}
    results = {"policy": policy["model"], "judge": recipe["judge"]["model"],
               "consensus": agreement, "costs": costs, "skipped_prms": stages.skipped,
               "training": {name: _training(folder.parent) for name, folder in prms.items()},
               "processbench": {}, "bon": {}}
    viewer = []
    if recipe["processbench"] is not None:
        results["processbench"], viewer = _processbench(recipe, out, prms, stages, progress)
    for set_name, data in recipe["bon"]["sets"].items():
        results["bon"][set_name] = _best_of_n(recipe, set_name, data, out, prms, stages,
                                              policy_backend, progress)
    write_json(out / "results.json", results)
    from prmkit.report import paper as report
    stages("report", None, lambda force: report.write(out, results, viewer))
    stages.timings["total"] = {"seconds": round(time.monotonic() - began, 1), "reused": False}
    write_json(out / "timings.json", stages.timings)
    return results


def _has_labels(path: Path, field: str) -> bool:
    from prmkit.labels import MISSING, Source
    source = Source.parse(field)
    return any(source.value(r) not in (None, MISSING) for r in read_records(path, "solution"))


def _training(folder: Path) -> dict:
    import json
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"steps": metrics.get("steps"), "history": metrics.get("history", []),
            "final_held_out": metrics.get("final_held_out", {})}


def _score(recipe: dict, prm: Path, solutions: Path, fmt: str, out: Path, stages, label: str,
           progress: bool) -> Path:
    from prmkit.prm.score import run as score_run
    cfg = config.load(ScoreConfig, given={**recipe["score"], "solutions": str(solutions),
                                          "model": str(prm), "format": fmt})
    stages(label, out, lambda force: score_run(cfg, out, force=force, progress=progress))
    return out / "scores.jsonl"


def _processbench(recipe: dict, out: Path, prms: dict, stages,
                  progress: bool) -> tuple[dict, list[dict]]:
    """Every PRM's ProcessBench metrics, and the step viewer's rows (the items some PRM gets
    wrong)."""
    import json

    from prmkit.evaluate import ProcessBenchConfig, run_processbench
    from prmkit.formats.processbench import read
    from prmkit.pipeline import slug
    from prmkit.report.paper import viewer_rows
    bench = first_items(recipe["processbench"], out / "processbench" / "items")
    results, scores = {}, {}
    for name, prm in prms.items():
        folder = out / "processbench" / slug(name)
        scores_file = _score(recipe, prm, bench, "processbench", folder / "scores", stages,
                             f"ProcessBench scores ({name})", progress)
        cfg = ProcessBenchConfig(benchmark=str(bench), scores=str(scores_file))
        results[name] = stages(f"ProcessBench ({name})", folder / "eval",
                               lambda force, cfg=cfg, folder=folder: run_processbench(
                                   cfg, folder / "eval", force=force))
        scores[name] = {r["id"]: r["step_scores"] for r in map(
            json.loads, scores_file.read_text().splitlines())}
    return results, viewer_rows(read(bench), scores)


def _best_of_n(recipe: dict, set_name: str, data: dict, out: Path, prms: dict, stages,
               backend: BackendConfig, progress: bool) -> dict:
    import json

    from prmkit import sample
    from prmkit.evaluate import bon
    from prmkit.pipeline import candidate_sets, ranking, slug
    folder = out / f"bon-{slug(set_name)}"
    problems = first_problems(data, folder / "problems.jsonl")
    cfg = config.load(SampleConfig, given={
        **recipe["sample"], **recipe["bon"]["sample"], "n": recipe["bon"]["n"],
        "problems": str(problems), "model": recipe["policy"]["model"],
        "prompt": recipe["policy"]["prompt"]})
    stages(f"Best-of-N candidates ({set_name})", folder / "sample", lambda force: sample.run(
        cfg, folder / "sample", backend=backend, progress=progress, force=force))
    solutions = read_records(folder / "sample" / "solutions.jsonl", "solution")
    results = {}
    for name, prm in prms.items():
        scores_file = _score(recipe, prm, folder / "sample" / "solutions.jsonl", "prmkit",
                             folder / slug(name), stages, f"Best-of-N scores ({set_name}, "
                             f"{name})", progress)
        by_id = {r["id"]: r["step_scores"] for r in map(json.loads, scores_file.read_text()
                                                        .splitlines())}
        metrics = bon({set_name: candidate_sets(solutions, by_id)},
                      ns=None)["benchmarks"][set_name]
        results[name] = {"bon": metrics, "ranking": ranking(solutions, by_id)}
    return results
