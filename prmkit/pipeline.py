"""``prmkit run RECIPE`` and ``prmkit demo``: the paper's pipeline in one run folder.

    policy      the toy policy (cached under ~/.cache/prmkit) or a model folder
    problems/   training and held-out problems (toy world: every step's truth is known)
    sample/     N solutions a training problem          (prmkit sample)
    mc/         Monte Carlo values, hard and soft      (prmkit annotate mc)
    judge/      the judge's earliest error             (prmkit annotate judge)
    consensus/  where MC and the judge agree           (prmkit annotate consensus)
    prm-*/      one PRM a label source                 (prmkit train)
    heldout/    N solutions a held-out problem: the toy ProcessBench (bench/) and Best-of-N
    scores/     every PRM's step scores of the held-out solutions and the viewer's share of
                the training solutions
    results.json, report.md, report.html

Every stage folder is marked complete last and skipped when its inputs and settings are
unchanged, so a second run, or one after an interruption, redoes only what is missing.
``timings.json`` says what each stage cost in the latest run.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

from prmkit import config, rundir
from prmkit.records import read_records, write_json, write_jsonl


class Stages:
    """Runs stages in order, timing each and noting the ones found complete."""

    def __init__(self, out: Path, console):
        self.out, self.console, self.timings, self.skipped = out, console, {}, {}

    def __call__(self, name: str, folder: Path | None, work):
        """``work(force)`` runs the stage; ``force`` starts a stage over whose unfinished
        shards were made with other settings (the recipe changed since)."""
        from prmkit.rundir import StaleFolder
        before = rundir.marker_time(folder) if folder is not None else None
        began = time.monotonic()
        try:
            result = work(False)
        except StaleFolder:
            self.console.print(f"[yellow]{name}: the settings changed since the last run; "
                               "starting this stage over[/yellow]")
            result = work(True)
        seconds = time.monotonic() - began
        # finished earlier and not redone: the marker is the one that was there before
        reused = before is not None and rundir.marker_time(folder) == before
        self.timings[name] = {"seconds": round(seconds, 1), "reused": reused}
        self.console.print(f"[green]✓[/green] {name}: {seconds:.1f}s"
                           + (" (finished earlier, reused)" if reused else ""))
        write_json(self.out / "timings.json", self.timings)
        return result


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _policy(recipe: dict, progress: bool) -> Path:
    """The toy policy (a shorter one with ``steps``: quick runs), cached; or a model folder."""
    from dataclasses import replace

    from prmkit.toyworld.policy import PolicyConfig, ensure_policy, resolve_policy
    spec = recipe["policy"]
    if spec["name"] != "toy":
        return resolve_policy(spec["name"], progress=progress)
    cfg = PolicyConfig()
    if spec.get("steps"):  # snapshots past a shorter run are dropped, as `prmkit toy policy`
        steps = int(spec["steps"])
        cfg = replace(cfg, steps=steps, snapshots=tuple(s for s in cfg.snapshots if s < steps))
    return ensure_policy(cfg, progress=progress, evaluate_after=False)


def _problems(recipe: dict, out: Path) -> dict[str, Path]:
    """Training and held-out toy problems: their own splits, apart from the policy's."""
    from prmkit.toyworld.problems import make_problems, preset
    spec, paths = recipe["problems"], {}
    for split in ("train", "heldout"):
        path = out / "problems" / f"{split}.jsonl"
        records = make_problems(preset(spec["preset"]), int(spec[split]), seed=int(spec["seed"]),
                                split=f"prm-{split}")
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if not path.exists() or path.read_text() != text:  # unchanged: later stages reuse
            write_jsonl(path, records)
        paths[split] = path
    return paths


def bench_items(solutions: list[dict], seed: int = 0) -> list[dict]:
    """A toy ProcessBench from held-out solutions, in ProcessBench's format and balanced as it
    is: complete solutions (stopped, with a readable answer), the first correct and the first
    erroneous solution of each problem, as many of each kind. Item ids are solution ids."""
    firsts: dict[tuple[str, bool], dict] = {}
    for s in solutions:
        if s["finish_reason"] != "stop" or s["outcome"] == "unparseable":
            continue
        firsts.setdefault((s["problem_id"], s["truth"]["label"] >= 0), s)
    correct = [s for (_, wrong), s in firsts.items() if not wrong]
    erroneous = [s for (_, wrong), s in firsts.items() if wrong]
    rng = random.Random(seed)
    n = min(len(correct), len(erroneous))
    chosen = {s["id"] for s in rng.sample(correct, n) + rng.sample(erroneous, n)}
    return [{"id": s["id"], "generator": s["generator"], "subset": "toy",
             "problem": s["problem"], "steps": s["steps"],
             "final_answer_correct": s["truth"]["answer_correct"], "label": s["truth"]["label"]}
            for s in solutions if s["id"] in chosen]


def viewer_subset(solutions: list[dict], specs: list[str], n: int, seed: int = 0) -> list[dict]:
    """The training solutions the step viewer shows: those whose label sources disagree on the
    first error come first (a seeded draw when there are more than ``n``), then a seeded draw of
    the others; in file order."""
    from prmkit.labels import Source
    sources = [Source.parse(spec) for spec in specs]

    def disagree(s: dict) -> bool:
        verdicts = set()
        for source in sources:
            try:
                verdicts.add(source.first_error(s))
            except ValueError:
                continue
        return len(verdicts - {None}) > 1
    rng = random.Random(seed)
    split = [s for s in solutions if disagree(s)], [s for s in solutions if not disagree(s)]
    chosen = rng.sample(split[0], min(n, len(split[0])))
    chosen += rng.sample(split[1], min(n - len(chosen), len(split[1])))
    ids = {s["id"] for s in chosen}
    return [s for s in solutions if s["id"] in ids]


def final_step_errors(solutions: list[dict], specs: dict[str, str]) -> dict[str, dict]:
    """For each label source (and the truth): among solutions of 2+ steps it calls wrong, the
    share whose first error is the final step. A PRM can only learn to blame the final step if
    its labels do."""
    from prmkit.labels import Source
    out = {}
    for name, spec in specs.items():
        source, wrong, final = Source.parse(spec), 0, 0
        for s in solutions:
            try:
                first = source.first_error(s)
            except ValueError:
                continue
            if first is not None and first >= 0 and len(s["steps"]) >= 2:
                wrong += 1
                final += first == len(s["steps"]) - 1
        out[name] = {"wrong": wrong, "share": 100.0 * final / wrong if wrong else None}
    return out


def candidate_sets(solutions: list[dict], scores: dict[str, list]) -> list[dict]:
    """Best-of-N sets: a problem's solutions in sample order, graded, with one PRM's scores."""
    sets: dict[str, dict] = {}
    for s in solutions:
        entry = sets.setdefault(s["problem_id"], {"id": s["problem_id"],
                                                  "gold_answer": s["gold_answer"],
                                                  "candidates": []})
        entry["candidates"].append({"answer": s["final_answer"], "steps": s["steps"],
                                    "correct": s["final_answer_correct"],
                                    "step_scores": scores[s["id"]]})
    return list(sets.values())


def _train_prms(recipe: dict, out: Path, data: Path, policy: Path, stages: Stages,
                progress: bool) -> dict[str, Path]:
    from prmkit.labels import MISSING, Source
    from prmkit.prm.train import TrainConfig, train, untrained
    spec, folders = recipe["prms"], {}
    records = read_records(data, "solution")
    for name, field in spec["sources"].items():
        if field is None:
            continue
        if all(Source(field).value(r) in (None, MISSING) for r in records):
            # e.g. consensus kept nothing: say so instead of failing the run
            stages.console.print(f"[yellow]PRM ({name}): no solution has a label in {field}; "
                                 "skipped[/yellow]")
            stages.skipped[name] = f"no solution has a label in {field}"
            continue
        cfg = config.load(TrainConfig, given={
            **spec["train"], "data": str(data), "labels": field, "model": str(policy),
            "loss": "soft" if name in spec["soft"] else "hard",
            "feature_cache": str(out / "features")})
        folder = out / f"prm-{slug(name)}"
        stages(f"PRM ({name})", folder,
               lambda force, cfg=cfg, folder=folder: train(cfg, folder, progress=progress,
                                                           force=force))
        folders[name] = folder / "final"
    if spec.get("baseline"):  # the PRM before training, with the settings the others start from
        name = spec["baseline"]
        # labels are required of a training config; the untrained PRM reads none
        cfg = config.load(TrainConfig, given={**spec["train"], "data": str(data),
                                              "labels": "-", "model": str(policy)})
        folder = out / f"prm-{slug(name)}"
        stages(f"PRM ({name})", folder, lambda force: untrained(cfg, folder, force=force))
        folders[name] = folder / "final"
    return folders


def _score(out: Path, prms: dict[str, Path], solutions: dict[str, list[dict]], *,
           force: bool = False) -> dict:
    """Every PRM's scores of every solution set, one backbone pass for PRMs sharing one."""
    from prmkit.prm.score import score_many
    everything = [s for group in solutions.values() for s in group]

    def work(_folder: Path, _config: dict) -> dict:
        scored = score_many([s["problem"] for s in everything],
                            [s["steps"] for s in everything], prms)
        return {name: {s["id"]: row for s, row in zip(everything, rows)}
                for name, rows in scored.items()}
    stage_config = {"stage": "scores",
                    "solutions": {k: [s["id"] for s in v] for k, v in solutions.items()}}
    return rundir.run_stage(out / "scores", stage_config, work, inputs=prms,
                            result="scores.json", force=force)


def ranking(solutions: list[dict], by_id: dict[str, list], aggregation: str = "min") -> dict:
    """How a PRM ranks the solutions of one problem (``prmkit.evaluate.ranking``), its step
    scores aggregated as Best-of-N does: right answer against wrong, and where the exact truth
    is known, sound process against flawed."""
    from prmkit.evaluate.bon import AGGREGATIONS
    from prmkit.evaluate.ranking import solution_groups, within_problem_auc
    aggregate = AGGREGATIONS[aggregation]
    scores = {}
    for s in solutions:  # steps past the context have no score (None)
        row = [x for x in by_id.get(s["id"]) or [] if x is not None]
        scores[s["id"]] = aggregate(row) if row else None
    out = {"aggregation": aggregation,
           "answer": within_problem_auc(solution_groups(
               solutions, scores, lambda s: s["final_answer_correct"]))}
    if all(isinstance(s.get("truth"), dict) for s in solutions):
        out["process"] = within_problem_auc(solution_groups(
            solutions, scores, lambda s: s["truth"]["label"] < 0))
    return out


def _evaluate(recipe: dict, bench: list[dict], heldout: list[dict], scores: dict) -> dict:
    from prmkit.evaluate import bon as bon_eval
    from prmkit.evaluate import processbench
    from prmkit.evaluate.processbench import cross_fitted
    from prmkit.labels import first_at_or_below
    ns = recipe["bon"]["ns"]
    results = {}
    for name, by_id in scores.items():
        pb = None
        if bench:  # empty when the policy wrote no correct or no erroneous complete solution
            bench_scores = {b["id"]: by_id[b["id"]] for b in bench}
            pb = processbench(bench, step_scores=bench_scores)
            best = pb["best_threshold_per_subset"]["toy"]["threshold"]
            pb["at_best"] = processbench(bench, step_scores=bench_scores,
                                         threshold=best)["subsets"]["toy"]
            # per item, so the report can bootstrap the F1 gap between two PRMs
            pb["at_best"]["predictions"] = {b["id"]: first_at_or_below(bench_scores[b["id"]], best)
                                            for b in bench}
            pb["cross_fitted"] = cross_fitted(bench, bench_scores)
        sets = candidate_sets(heldout, by_id)
        bon = bon_eval({"toy": sets}, ns=ns, group_by="string")["benchmarks"]["toy"]
        results[name] = {"processbench": pb, "bon": bon, "ranking": ranking(heldout, by_id)}
    return results


def run(recipe: dict, *, progress: bool = True, console=None) -> dict:
    """Run (or resume) a recipe; returns the results written to ``results.json``. The run
    folder is held by this process (``rundir.owned``): a second run on it is refused."""
    with rundir.owned(rundir.check_out(recipe["out"])):
        return _run(recipe, progress=progress, console=console)


def _run(recipe: dict, *, progress: bool, console) -> dict:
    from rich.console import Console

    from prmkit.annotate import consensus, judge, mc
    from prmkit.annotate.quality import label_quality
    from prmkit.backends import BackendConfig
    from prmkit.sample import SampleConfig
    from prmkit.sample import run as sample_run
    from prmkit.toyworld.policy import PROMPT
    from prmkit.toyworld.problems import budget_for
    from prmkit.toyworld.truth import TRUTH_HOOK
    console = console or Console()
    out = Path(recipe["out"])
    write_json(out / "recipe.json", recipe)
    stages = Stages(out, console)
    began = time.monotonic()
    backend = BackendConfig(workers=int(recipe["workers"]), batch_size=64)

    policy = stages("policy", None, lambda force: _policy(recipe, progress))
    problems = _problems(recipe, out)
    for split, folder in (("train", "sample"), ("heldout", "heldout")):
        # the toy world comes in here, from the top: its prompt layout and its step truth
        cfg = config.load(SampleConfig, given={
            "seed": int(recipe["problems"]["seed"]), **recipe["sample"],
            "problems": str(problems[split]), "model": str(policy), "prompt": PROMPT,
            "truth": TRUTH_HOOK})
        stages(f"sample ({split})", out / folder,
               lambda force, cfg=cfg, folder=folder: sample_run(
                   cfg, out / folder, backend=backend, progress=progress, force=force))
    # one token budget for every rollout: enough for the longest toy problem's solution
    budget = budget_for(read_records(problems["train"], "problem"))
    mc_cfg = config.load(mc.MCConfig, given={
        "max_new_tokens": budget, **recipe["mc"],
        "solutions": str(out / "sample" / "solutions.jsonl"), "model": str(policy),
        "prompt": PROMPT})
    stages("MC estimation", out / "mc",
           lambda force: mc.run(mc_cfg, out / "mc", backend=backend, progress=progress,
                                force=force))
    judge_cfg = config.load(judge.JudgeConfig, given={
        **recipe["judge"], "solutions": str(out / "mc" / "annotated.jsonl")})
    stages("judge", out / "judge", lambda force: judge.run(judge_cfg, out / "judge",
                                                           progress=progress, force=force))
    consensus_cfg = config.load(consensus.ConsensusConfig, given={
        **recipe["consensus"], "inputs": [str(out / "judge" / "annotated.jsonl")]})
    stages("consensus", out / "consensus",
           lambda force: consensus.run(consensus_cfg, out / "consensus", force=force))
    annotated = out / "consensus" / "annotated.jsonl"
    quality = label_quality(annotated)

    prms = _train_prms(recipe, out, annotated, policy, stages, progress)
    heldout = read_records(out / "heldout" / "solutions.jsonl", "solution")
    training = read_records(annotated, "solution")
    bench = bench_items(heldout, seed=int(recipe["problems"]["seed"]))
    write_json(out / "bench" / "toy.json", bench)
    viewer = viewer_subset(training, [r["spec"] for r in quality["rows"]],
                           int(recipe["report"]["viewer_solutions"]),
                           seed=int(recipe["problems"]["seed"]))
    scores = stages("scoring", out / "scores",
                    lambda force: _score(out, prms, {"heldout": heldout, "viewer": viewer},
                                         force=force))
    evaluation = stages("evaluation", None,
                        lambda force: _evaluate(recipe, bench, heldout, scores))
    results = {
        "policy": str(policy),
        "counts": {"train_solutions": len(training), "heldout_solutions": len(heldout),
                   "viewer_solutions": len(viewer),
                   "bench_items": len(bench),
                   "bench_erroneous": sum(b["label"] >= 0 for b in bench)},
        "bench": [{"id": b["id"], "problem": b["problem"], "label": b["label"],
                   "final_answer_correct": b["final_answer_correct"]} for b in bench],
        "label_quality": quality,
        "final_step_errors": final_step_errors(
            training, {"exact truth": quality["reference"],
                       **{r["source"]: r["spec"] for r in quality["rows"]}}),
        "prms": evaluation,
        "ceiling": recipe["prms"]["ceiling"],
        "baselines": [recipe["prms"]["baseline"]] if recipe["prms"].get("baseline") else [],
        "skipped_prms": stages.skipped,
        "mc_sources": [n for n, f in recipe["prms"]["sources"].items()
                       if f and f.startswith("mc.")],
    }
    write_json(out / "results.json", results)

    from prmkit.report import demo as report
    stages("report", None, lambda force: report.write(out, results, recipe, viewer, scores,
                                                      stages.timings))
    stages.timings["total"] = {"seconds": round(time.monotonic() - began, 1), "reused": False}
    write_json(out / "timings.json", stages.timings)
    return results
