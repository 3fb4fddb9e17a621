"""The step viewer's data: which solutions it shows, and each one's steps, labels and scores.

Two groups: training solutions (the ones whose label sources disagree first: where the choice
of labels matters) with every label source's verdict, and the ProcessBench items some PRM gets
wrong at its best threshold. Every PRM's step scores come with both.
"""

from __future__ import annotations

import random

from prmkit.labels import MISSING, Source, first_at_or_below


def viewer_subset(solutions: list[dict], specs: list[str], n: int, seed: int = 0) -> list[dict]:
    """The training solutions the step viewer shows: those whose label sources disagree on the
    first error come first (a seeded draw when there are more than ``n``), then a seeded draw of
    the others; in file order."""
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


def _rounded(scores: list | None) -> list:
    return [None if x is None else round(x, 3) for x in scores or []]


def training_rows(solutions: list[dict], sources: dict[str, str],
                  scores: dict[str, dict[str, list]]) -> list[dict]:
    """Training solutions with the true first error (where known), each label source's
    verdict and every PRM's step scores."""
    parsed = {name: Source.parse(spec) for name, spec in sources.items()}
    rows = []
    for s in solutions:
        verdicts = {}
        for name, source in parsed.items():
            try:
                verdicts[name] = source.first_error(s)
            except ValueError:
                verdicts[name] = None
        truth = s["truth"].get("label") if isinstance(s.get("truth"), dict) else None
        if truth is None and Source("label").value(s) is not MISSING:
            truth = s["label"]
        rows.append({"id": s["id"], "group": "training", "problem": s["problem"],
                     "steps": s["steps"], "truth": truth,
                     "answer_correct": s.get("final_answer_correct"), "verdicts": verdicts,
                     "scores": {prm: _rounded(by_id.get(s["id"]))
                                for prm, by_id in scores.items()}})
    return rows


def benchmark_rows(items: list[dict], scores: dict[str, dict[str, list]],
                   thresholds: dict[str, dict[str, float]], limit: int) -> list[dict]:
    """The ProcessBench items some PRM gets wrong (its first step at or below its threshold for
    the item's subset is not the labelled first error), at most ``limit``."""
    rows = []
    for item in items:
        by_prm = {prm: by_id.get(item["id"]) or [] for prm, by_id in scores.items()}
        subset = item.get("subset", "all")
        if all(first_at_or_below(s, thresholds[prm].get(subset, 0.5)) == item["label"]
               for prm, s in by_prm.items()):
            continue
        if len(rows) == limit:
            break
        rows.append({"id": item["id"], "group": "ProcessBench", "subset": subset,
                     "problem": item["problem"], "steps": item["steps"], "truth": item["label"],
                     "answer_correct": item.get("final_answer_correct"), "verdicts": {},
                     "scores": {prm: _rounded(s) for prm, s in by_prm.items()}})
    return rows
