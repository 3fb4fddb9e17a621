"""ProcessBench: how well a PRM or a critic finds the earliest wrong step.

Per subset, exactly as the official scripts compute it (percentages):
    error accuracy   = share of erroneous samples (label >= 0) whose prediction equals the label
    correct accuracy = share of correct samples (label == -1) predicted -1
    F1               = harmonic mean of the two (0 when both are 0)
and the headline is the mean F1 over subsets.

Predictions come from either
  * step scores: the earliest step scored *at or below* the threshold is the predicted error
    (-1 when none is): ``prmkit.labels``' one threshold rule, or
  * critiques: the last ``\\boxed{k}`` of each generated critique, parsed and voted on by
    ``prmkit.labels`` (ties: the earliest error). A critique with no boxed integer is counted
    as unparseable; one whose index is not -1 or a step index is counted as out of range;
    neither votes. A solution whose critiques all fail to parse has no prediction and so counts
    as a miss.

We also report accuracy on erroneous samples whose final answer is nevertheless correct, the
paper's "correct answer, flawed process" samples that outcome-based labels miss.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from prmkit.errors import InputError
from prmkit.labels import first_at_or_below, parse_critique, vote

DEFAULT_THRESHOLD = 0.5
SWEEP = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def _pct(hits: list[bool]) -> float | None:
    return 100.0 * sum(hits) / len(hits) if hits else None


def f1_score(error_acc: float | None, correct_acc: float | None) -> float | None:
    if error_acc is None or correct_acc is None:
        return None
    if error_acc + correct_acc == 0:
        return 0.0
    return 2 * error_acc * correct_acc / (error_acc + correct_acc)


def subset_metrics(items: list[dict], predictions: Mapping[str, int | None]) -> dict:
    erroneous = [predictions[r["id"]] == r["label"] for r in items if r["label"] != -1]
    correct = [predictions[r["id"]] == -1 for r in items if r["label"] == -1]
    flawed = [predictions[r["id"]] == r["label"] for r in items
              if r["label"] != -1 and r.get("final_answer_correct")]
    error_acc, correct_acc = _pct(erroneous), _pct(correct)
    out = {
        "n": len(items), "n_error": len(erroneous), "n_correct": len(correct),
        "error_acc": error_acc, "correct_acc": correct_acc,
        "f1": f1_score(error_acc, correct_acc),
        "flawed_correct_answer": {"n": len(flawed), "acc": _pct(flawed)},
    }
    if not erroneous:
        out["note"] = "no erroneous samples: error accuracy and F1 undefined"
    elif not correct:
        out["note"] = "no correct samples: correct accuracy and F1 undefined"
    return out


def _by_subset(benchmark: list[dict]) -> dict[str, list[dict]]:
    subsets: dict[str, list[dict]] = {}
    for r in benchmark:
        subsets.setdefault(r.get("subset", "all"), []).append(r)
    return subsets


def _average_f1(subsets: Mapping[str, dict]) -> float | None:
    f1s = [m["f1"] for m in subsets.values() if m["f1"] is not None]
    return sum(f1s) / len(f1s) if f1s else None


def score_metrics(benchmark: list[dict], step_scores: Mapping[str, list[float]],
                  threshold: float) -> dict:
    subsets = {name: subset_metrics(items, {r["id"]: first_at_or_below(step_scores[r["id"]], threshold)
                                            for r in items})
               for name, items in _by_subset(benchmark).items()}
    return {"subsets": subsets, "average_f1": _average_f1(subsets)}


def check_alignment(benchmark: list[dict], predictions: Mapping[str, list],
                    *, what: str, source: str = "<predictions>",
                    lines: Mapping[str, int] | None = None, per_step: bool = False) -> None:
    """Every benchmark id has a prediction and every prediction a benchmark id."""
    lines = lines or {}
    ids = {r["id"]: r for r in benchmark}
    for pid in predictions:
        if pid not in ids:
            raise InputError(f"id {pid!r} is not in the benchmark", path=source,
                             line=lines.get(pid), field="id")
    missing = [r["id"] for r in benchmark if r["id"] not in predictions]
    if missing:
        raise InputError(f"{len(missing)} benchmark ids have no {what} (first: {missing[0]!r}); "
                         "pass subsets to evaluate only part of the benchmark", path=source,
                         field="id")
    if per_step:
        for pid, values in predictions.items():
            n = len(ids[pid]["steps"])
            if len(values) != n:
                raise InputError(f"{len(values)} scores for {n} steps of {pid!r}", path=source,
                                 line=lines.get(pid), field="step_scores")


def evaluate(benchmark: list[dict], *, step_scores: Mapping[str, list[float]] | None = None,
             critiques: Mapping[str, list[str]] | None = None,
             threshold: float = DEFAULT_THRESHOLD, tune_on: str | None = None,
             subsets: Iterable[str] | None = None, source: str = "<predictions>",
             lines: Mapping[str, int] | None = None, per_item: bool = False) -> dict:
    """ProcessBench metrics for step scores or critiques (exactly one of them).

    ``benchmark``: solution records with ``label``, ``final_answer_correct`` and ``subset``.
    ``tune_on``: a subset on which to pick the best-F1 threshold, then used for all subsets.
    ``per_item``: also ``items``, every item's prediction (at the threshold used) beside its
    label, for error analysis. Steps scored null (past a PRM's context) are skipped and counted
    (``unscored``)."""
    result = _evaluate(benchmark, step_scores=step_scores, critiques=critiques,
                       threshold=threshold, tune_on=tune_on, subsets=subsets, source=source,
                       lines=lines)
    chosen = result.pop("_predictions")
    if per_item:
        result["items"] = [{"id": r["id"], "subset": r.get("subset", "all"), "label": r["label"],
                            "prediction": chosen[r["id"]],
                            "hit": chosen[r["id"]] == r["label"]} for r in result.pop("_items")]
    else:
        result.pop("_items")
    return result


def _evaluate(benchmark: list[dict], *, step_scores, critiques, threshold, tune_on, subsets,
              source, lines) -> dict:
    if (step_scores is None) == (critiques is None):
        raise InputError("give either step scores or critiques, not both or neither")
    if subsets is not None:
        wanted = set(subsets)
        unknown = wanted - {r.get("subset", "all") for r in benchmark}
        if unknown:
            raise InputError(f"unknown subset(s) {sorted(unknown)}", field="subset")
        benchmark = [r for r in benchmark if r.get("subset", "all") in wanted]
    if not benchmark:
        raise InputError("the benchmark is empty", path=source)

    if critiques is not None:
        check_alignment(benchmark, critiques, what="critiques", source=source, lines=lines)
        return {**_evaluate_critiques(benchmark, critiques), "_items": benchmark}

    check_alignment(benchmark, step_scores, what="step scores", source=source, lines=lines,
                    per_step=True)
    sweep = {t: score_metrics(benchmark, step_scores, t) for t in sorted({*SWEEP, threshold})}
    threshold_source = "given"
    if tune_on is not None:
        if tune_on not in _by_subset(benchmark):
            raise InputError(f"cannot tune on unknown subset {tune_on!r}", field="tune_on")
        threshold = max(sweep, key=lambda t: (sweep[t]["subsets"][tune_on]["f1"] or -1, -abs(t - 0.5)))
        threshold_source = f"tuned on {tune_on}"
        sweep.setdefault(threshold, score_metrics(benchmark, step_scores, threshold))
    chosen = sweep[threshold]
    best = {}
    for name in chosen["subsets"]:
        t_best = max(sweep, key=lambda t: (sweep[t]["subsets"][name]["f1"] or -1, -abs(t - 0.5)))
        best[name] = {"threshold": t_best, "f1": sweep[t_best]["subsets"][name]["f1"]}
    unscored = {r["id"]: step_scores[r["id"]].count(None) for r in benchmark}
    return {
        "_items": benchmark,
        "_predictions": {r["id"]: first_at_or_below(step_scores[r["id"]], threshold)
                         for r in benchmark},
        "unscored": {"steps": sum(unscored.values()),
                     "items": sum(1 for n in unscored.values() if n)},
        "mode": "step_scores",
        "threshold": threshold,
        "threshold_source": threshold_source,
        **chosen,
        "sweep": [{"threshold": t, "average_f1": m["average_f1"],
                   "f1": {name: s["f1"] for name, s in m["subsets"].items()}}
                  for t, m in sorted(sweep.items())],
        "best_threshold_per_subset": best,  # an upper bound: tuned on the data it scores
    }


def _evaluate_critiques(benchmark: list[dict], critiques: Mapping[str, list[str]]) -> dict:
    stats = Counter()
    predictions: dict[str, int | None] = {}
    for r in benchmark:
        indices = []
        for text in critiques[r["id"]]:
            index, status = parse_critique(text, len(r["steps"]))
            stats["critiques"] += 1
            stats[{"ok": "ok", "no-index": "unparseable", "out-of-range": "out_of_range"}[
                status]] += 1
            indices.append(index)
        predictions[r["id"]] = vote(indices)
        if predictions[r["id"]] is None:
            stats["solutions_without_prediction"] += 1
    subsets = {name: subset_metrics(items, predictions)
               for name, items in _by_subset(benchmark).items()}
    return {"_predictions": predictions, "mode": "critiques", "subsets": subsets, "average_f1": _average_f1(subsets),
            "critique_stats": {k: stats[k] for k in ("critiques", "unparseable", "out_of_range",
                                                      "solutions_without_prediction")}}


def best_threshold(items: list[dict], step_scores: Mapping[str, list[float]]) -> float:
    """The sweep threshold with the best F1 on ``items`` (ties: the one nearest 0.5)."""
    f1 = {t: subset_metrics(items, {r["id"]: first_at_or_below(step_scores[r["id"]], t)
                                    for r in items})["f1"] or -1.0 for t in SWEEP}
    return max(f1, key=lambda t: (f1[t], -abs(t - 0.5)))


def cross_fitted(items: list[dict], step_scores: Mapping[str, list[float]], *,
                 group=lambda r: r["problem"], seed: int = 0) -> dict:
    """F1 at a threshold chosen on other data: the items are split in two halves by ``group``
    (by problem: the solutions of one problem never tune their own threshold); each half is
    read at the best threshold of the other. No item's threshold saw that item, unlike the best
    threshold of the benchmark itself (an upper bound)."""
    import random
    groups = sorted({group(r) for r in items})
    random.Random(seed).shuffle(groups)
    half = {g: i % 2 for i, g in enumerate(groups)}
    folds = [[r for r in items if half[group(r)] == k] for k in (0, 1)]
    if not all(folds):
        return {"thresholds": [], **subset_metrics(items, {r["id"]: None for r in items})}
    thresholds = [best_threshold(folds[1 - k], step_scores) for k in (0, 1)]
    predictions = {r["id"]: first_at_or_below(step_scores[r["id"]], thresholds[k])
                   for k in (0, 1) for r in folds[k]}
    return {"thresholds": thresholds, **subset_metrics(items, predictions)}


def f1_gap(items: list[dict], first: Mapping[str, int | None], second: Mapping[str, int | None],
           *, group=lambda r: r["problem"], bootstrap: int = 1000, seed: int = 0,
           confidence: float = 0.95) -> dict:
    """F1(first) - F1(second) on the same items, with a paired bootstrap interval over groups
    (problems): whether one set of predictions finds first errors better than another by more
    than the benchmark's sampling noise."""
    import random
    groups: dict = {}
    for r in items:
        groups.setdefault(group(r), []).append(r)
    keys = sorted(groups)

    def gap(chosen: list) -> float:
        drawn = [r for k in chosen for r in groups[k]]
        return ((subset_metrics(drawn, first)["f1"] or 0.0)
                - (subset_metrics(drawn, second)["f1"] or 0.0))
    rng = random.Random(seed)
    draws = sorted(gap([keys[rng.randrange(len(keys))] for _ in keys]) for _ in range(bootstrap))
    tail = (1 - confidence) / 2
    return {"gap": gap(keys), "low": draws[int(tail * (bootstrap - 1))],
            "high": draws[int((1 - tail) * (bootstrap - 1))]}
