"""Every PRM on every benchmark of the recipe (``evaluate:``), found by name in the registry
(``prmkit.evaluate.BENCHMARKS``).

Three steps: each benchmark says which solutions the PRMs must score (reading its items, or
having the policy sample candidates); every PRM scores all of them at once, each solution once
however many benchmarks (and the step viewer) use it, through ``prmkit score``'s resumable
stage; then each benchmark measures each PRM from its scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prmkit import config, evaluate, rundir
from prmkit.prm import score
from prmkit.prm.score import ScoreConfig
from prmkit.records import read_records, write_jsonl


@dataclass
class Evaluation:
    measured: dict[str, dict]      # PRM -> benchmark -> its metrics
    summaries: dict[str, dict]     # benchmark -> what the report needs beside them
    groups: dict[str, dict]        # benchmark -> group -> solutions
    scores: dict[str, dict]        # PRM -> benchmark -> group -> id -> step scores
    viewer: dict[str, dict]        # PRM -> id -> step scores of the viewer's solutions
    viewer_solutions: list[dict]   # the training solutions the step viewer shows


def benchmarks(recipe: dict) -> dict:
    """name -> (benchmark, its built section), in the registry's order."""
    return {name: (evaluate.benchmark(name),
                   config.build(evaluate.benchmark(name).section, recipe["evaluate"][name]))
            for name in evaluate.names() if name in recipe["evaluate"]}


def evaluate_prms(run, prms: dict[str, Path | str], viewer: list[dict],
                  own_settings: dict[str, dict] | None = None) -> Evaluation:
    """``prms``: name -> a PRM folder or hub id; ``own_settings``: name -> the score settings
    of that PRM alone, over the recipe's (a compared model's format, its device map)."""
    chosen = benchmarks(run.recipe)
    for name, (bench, section) in chosen.items():
        run.groups[name] = bench.solutions(section, run)
    scores, viewer_scores = score_everything(run, prms, run.groups, viewer, own_settings or {})

    def measure(force: bool) -> dict:
        return {prm: {name: bench.measure(section, run.groups[name], scores[prm][name])
                      for name, (bench, section) in chosen.items()} for prm in prms}
    measured = run.stages("evaluation", None, measure)
    summaries = {name: bench.summary(section, run.groups[name])
                 for name, (bench, section) in chosen.items()}
    return Evaluation(measured, summaries, run.groups, scores, viewer_scores, viewer)


def score_everything(run, prms: dict[str, Path | str], groups: dict[str, dict],
                     viewer: list[dict], own_settings: dict[str, dict]) -> tuple[dict, dict]:
    """Every PRM's step scores of every group's solutions and of the viewer's. Solutions with
    the same problem and steps (a ProcessBench built from Best-of-N candidates) are scored
    once: ``scores/solutions.jsonl`` holds each once, in order of first use."""
    unique: dict[tuple, str] = {}      # (problem, steps) -> its id in the scored file
    scored_file: list[dict] = []

    def place(solution: dict, where: str) -> str:
        key = (solution["problem"], tuple(solution["steps"]))
        if key not in unique:
            unique[key] = f"{where}/{solution['id']}"
            scored_file.append({"id": unique[key], "problem": solution["problem"],
                                "steps": solution["steps"]})
        return unique[key]

    places = {name: {group: {s["id"]: place(s, f"{name}/{group}") for s in solutions}
                     for group, solutions in by_group.items()}
              for name, by_group in groups.items()}
    viewer_places = {s["id"]: place(s, "training") for s in viewer}
    path = write_jsonl(run.out / "scores" / "solutions.jsonl", scored_file)
    scores, viewer_scores = {}, {}
    for prm, folder in prms.items():
        by_place = _score(run, prm, folder, path, own_settings.get(prm) or {})
        scores[prm] = {name: {group: {sid: by_place[p] for sid, p in ids.items()}
                              for group, ids in by_group.items()}
                       for name, by_group in places.items()}
        viewer_scores[prm] = {sid: by_place[p] for sid, p in viewer_places.items()}
    return scores, viewer_scores


def _score(run, prm: str, folder: Path | str, solutions: Path, own: dict) -> dict[str, list]:
    cfg = config.load(ScoreConfig, given={**run.recipe["score"], **own,
                                          "solutions": str(solutions), "model": str(folder)})
    out = run.out / "scores" / rundir.slug(prm)
    run.stages(f"scores ({prm})", out, lambda force: score.run(cfg, out, force=force,
                                                               progress=run.progress))
    return {r["id"]: r["step_scores"] for r in read_records(out / "scores.jsonl",
                                                            "step_scores")}
