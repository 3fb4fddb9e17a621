"""Test-time search with the run's PRMs (``search:`` in a recipe): each PRM guides the policy
on the problems of a Best-of-N set, by every method at every budget (``prmkit.search``), and
what each costs and finds is measured side by side: accuracy against the tokens the policy
generated, beside majority voting over the same Best-of-N samples, and, where the problems
carry the truth of every step (the toy world), the share of picks whose process is sound.

Each (PRM, method, budget) is a resumable stage, ``search/<prm>/<method>-<budget>/``. Best-of-N
samples do not depend on the PRM (the same prompts, the same seeds), so maj@N is read from any
PRM's Best-of-N tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from prmkit import plugins, rundir
from prmkit.backends import load_backend
from prmkit.config import setting
from prmkit.errors import InputError
from prmkit.evaluate.bon import GROUP_BY, group_answers, vote
from prmkit.grading import extract_answer, grade_many
from prmkit.records import read_records, write_jsonl
from prmkit.sample import truth_hook
from prmkit.search import METHODS, RANKINGS, Loaded, SearchConfig, prm_scorer
from prmkit.search import run as run_search


@dataclass(frozen=True)
class SearchSection:
    set: str | None = setting(None, "The Best-of-N set (evaluate.bon.sets) whose problems "
                              "are searched; none: no search.")
    limit: int | None = setting(None, "The first N of its problems (all: null).", ge=1)
    methods: list[str] = setting(list(METHODS), "Methods, each at every budget: "
                                 f"{', '.join(METHODS)}.")
    budgets: list[int] = setting([4, 8], "Budgets n (candidates a step, or solutions).", ge=1)
    width: int = setting(2, "beam, dvts: expansions of each beam a step (n / width beams).",
                         ge=1)
    prms: list[str] = setting([], "The PRMs that guide (default: every PRM of the run).")
    aggregation: str = setting("last", "How partial solutions rank: last, min or prod.",
                               choices=RANKINGS)
    temperature: float = setting(1.0, "Sampling temperature of the steps.", ge=0)
    step_tokens: int = setting(256, "Tokens a step at most.", ge=1)
    solution_tokens: int = setting(1024, "best_of_n: tokens a solution at most.", ge=1)
    max_steps: int = setting(20, "Steps a solution at most.", ge=1)

    def validate(self) -> "SearchSection":
        for method in self.methods:
            if method not in METHODS:
                raise InputError(f"{method!r}: choose among {list(METHODS)}", field="methods")
        for budget in self.budgets:
            if budget % min(self.width, budget):
                raise InputError(f"budget {budget} is not a multiple of width {self.width}",
                                 field="budgets")
        return self


def check(recipe: dict, path) -> None:
    spec = recipe["search"]
    if spec["set"] is None:
        return
    sets = (recipe["evaluate"].get("bon") or {}).get("sets") or {}
    if spec["set"] not in sets:
        raise InputError(f"{spec['set']!r} is not a Best-of-N set (evaluate.bon.sets)",
                         path=path, field="search.set")


def search_with_prms(run, prms: dict, own_settings: dict) -> dict | None:
    """Every (PRM, method, budget): its accuracy, tokens, PRM calls and sound share; and maj@N
    over the Best-of-N samples. None when the recipe searches nothing. ``own_settings``: a
    compared model's score settings (its format, where it is served)."""
    spec, recipe = run.recipe["search"], run.recipe
    if spec["set"] is None:
        return None
    data = recipe["evaluate"]["bon"]["sets"][spec["set"]]
    source = run.out / f"bon-{rundir.slug(spec['set'])}" / "problems.jsonl"
    problems = read_records(source, "problem")[:spec["limit"] or None]
    path = write_jsonl(run.out / "search" / "problems.jsonl", problems)
    truth_spec = recipe["sample"].get("truth") or plugins.truth_of(data["path"])
    truth = truth_hook(truth_spec) if truth_spec else None
    by_id = {p["id"]: p for p in problems}
    chosen = spec["prms"] or list(prms)
    out: dict = {"set": spec["set"], "n_problems": len(problems), "budgets": spec["budgets"],
                 "by_prm": {}, "skipped": [name for name in chosen if name not in prms]}
    group_by = (recipe["evaluate"]["bon"] or {}).get("group_by") or GROUP_BY
    policy = None
    for name in [n for n in chosen if n in prms]:
        out["by_prm"][name] = {}
        loaded = None  # the policy and this PRM, loaded once for all its methods and budgets
        for method in spec["methods"]:
            out["by_prm"][name][method] = {}
            for budget in spec["budgets"]:
                cfg = _config(run, spec, path, prms[name], own_settings.get(name) or {},
                              method, budget)
                folder = run.out / "search" / rundir.slug(name) / f"{method}-{budget}"
                if loaded is None and not is_complete_folder(folder):
                    policy = policy or load_backend(run.backend.backend, cfg.model,
                                                    **run.backend.options())
                    loaded = Loaded(policy, prm_scorer(cfg))
                run.stages(f"search ({name}, {method}, n={budget})", folder,
                           lambda force, cfg=cfg, folder=folder, loaded=loaded: run_search(
                               cfg, folder, backend=run.backend, force=force,
                               progress=run.progress, loaded=loaded))
                records = _records(folder)
                out["by_prm"][name][method][budget] = measure(records, by_id, truth)
                if method == "best_of_n" and "maj" not in out:
                    out["maj"] = {}
                if method == "best_of_n" and budget not in out["maj"]:
                    out["maj"][budget] = majority(records, group_by)
    if policy is not None:
        policy.close()
    return out


def _config(run, spec: dict, problems, prm, own: dict, method: str, budget: int
            ) -> SearchConfig:
    return SearchConfig(problems=str(problems), model=str(run.policy), prm=str(prm),
                       prm_format=own.get("model_format"), prm_base_url=own.get("base_url"),
                       prm_tokenizer=own.get("tokenizer"),
                       method=method, prompt=run.prompt, n=budget,
                       width=min(spec["width"], budget), aggregation=spec["aggregation"],
                       temperature=spec["temperature"], step_tokens=spec["step_tokens"],
                       solution_tokens=spec["solution_tokens"], max_steps=spec["max_steps"],
                       seed=run.recipe["sample"].get("seed", 0))


def is_complete_folder(folder) -> bool:
    """Whether a search stage finished (its marker written): nothing need be loaded for it
    (its settings are checked when it is asked for)."""
    return (folder / "COMPLETE").exists()


def _records(folder) -> list[dict]:
    lines = (folder / "solutions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def measure(records: list[dict], problems: dict, truth) -> dict:
    n = len(records)
    sound = None
    if truth is not None and n:
        sound = sum(bool(r["steps"]) and r["final_answer_correct"]
                    and truth(problems[r["problem_id"]], r["steps"])["label"] == -1
                    for r in records) / n
    return {"accuracy": 100 * sum(r["final_answer_correct"] for r in records) / n if n else None,
            "tokens": sum(r["search"]["tokens"] for r in records) / n if n else None,
            "prm_calls": sum(r["search"]["prm_calls"] for r in records) / n if n else None,
            "sound": None if sound is None else 100 * sound}


def majority(records: list[dict], group_by: str) -> dict:
    """maj@N over a Best-of-N search's N samples (the answers of its tree's solutions)."""
    answers = [[extract_answer(node["step"]) for node in r["search"]["tree"]] for r in records]
    picks = []
    for found in answers:
        pick = vote(group_answers(found, group_by))
        picks.append(found[pick if pick is not None else 0])
    grades = grade_many([(a, r["gold_answer"]) for a, r in zip(picks, records)])
    n = len(records)
    return {"accuracy": 100 * sum(g.correct for g in grades) / n if n else None,
            "tokens": sum(r["search"]["tokens"] for r in records) / n if n else None}
