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

Steps past a PRM's context (scored null: ``prmkit score`` drops whole steps from the end) are
unknown, never scored as present (``predicted_error``): a step at or below the threshold
before any unknown step is still the earliest error (every step before it was read), but a
solution whose read steps all pass has no prediction, neither -1 nor an error: the PRM never
saw the rest. Such items count as misses, as a critic's unparseable solutions do, and
``past_context`` counts them (``no_prediction``, at the threshold used) beside the items with
unscored steps and those steps. A subset where no item has a prediction measured nothing: its
accuracies and F1 are null (a note says why), not 0; ``nothing_fit`` says no item of the
benchmark has one, and ``prmkit eval processbench`` then warns and exits 1.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table

from prmkit import config
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.evaluate.benchmark import (
    Benchmark,
    PipelineRun,
    ReportTable,
    into,
    percent,
    png,
)
from prmkit.evaluate.paired import BOOTSTRAP, interval, resampled_sums
from prmkit.evaluate.ranking import past_context
from prmkit.formats.processbench import read as read_processbench
from prmkit.labels import parse_critique, positive, vote
from prmkit.records import read_records_with_lines, write_jsonl
from prmkit.runner import stage_config

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


def predicted_error(step_scores: Iterable[float | None], threshold: float) -> int | None:
    """The earliest step scored at or below the threshold, -1 when every step is above it, and
    None (no prediction) when a step past the PRM's context (null) comes before any such step:
    the error may be in the steps it did not read."""
    for i, value in enumerate(step_scores):
        if value is None:
            return None
        if not positive(value, threshold):
            return i
    return -1


def predictions_at(items: list[dict], step_scores: Mapping[str, list], threshold: float
                   ) -> dict[str, int | None]:
    return {r["id"]: predicted_error(step_scores[r["id"]], threshold) for r in items}


def step_metrics(items: list[dict], predictions: Mapping[str, int | None]) -> dict:
    """``subset_metrics`` of a PRM's predictions; where no item has one (every item has a
    step past the PRM's context before any error it found), nothing was measured: null
    accuracies and F1, with a note, rather than a 0 the PRM never earned."""
    out = subset_metrics(items, predictions)
    if items and all(predictions[r["id"]] is None for r in items):
        out.update(error_acc=None, correct_acc=None, f1=None,
                   flawed_correct_answer={**out["flawed_correct_answer"], "acc": None},
                   note="no item has a prediction: every one has steps past the PRM's "
                        "context before any error it found")
    return out


def score_metrics(benchmark: list[dict], step_scores: Mapping[str, list[float]],
                  threshold: float) -> dict:
    subsets = {name: step_metrics(items, predictions_at(items, step_scores, threshold))
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
    label, for error analysis. Steps scored null (past a PRM's context) are unknown
    (``predicted_error``) and counted (``past_context``)."""
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
    predictions = predictions_at(benchmark, step_scores, threshold)
    without = sum(p is None for p in predictions.values())
    return {
        "_items": benchmark,
        "_predictions": predictions,
        "past_context": {**past_context((step_scores[r["id"]] for r in benchmark), "items"),
                         "no_prediction": without, "nothing_fit": without == len(benchmark)},
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
    f1 = {t: step_metrics(items, predictions_at(items, step_scores, t))["f1"] or -1.0
          for t in SWEEP}
    return max(f1, key=lambda t: (f1[t], -abs(t - 0.5)))


def cross_fitted(items: list[dict], step_scores: Mapping[str, list[float]], *,
                 group=lambda r: r["problem"], seed: int = 0) -> dict:
    """F1 at a threshold chosen on other data: the items are split in two halves by ``group``
    (by problem: the solutions of one problem never tune their own threshold); each half is
    read at the best threshold of the other. No item's threshold saw that item, unlike the best
    threshold of the benchmark itself (an upper bound)."""
    groups = sorted({group(r) for r in items})
    random.Random(seed).shuffle(groups)
    half = {g: i % 2 for i, g in enumerate(groups)}
    folds = [[r for r in items if half[group(r)] == k] for k in (0, 1)]
    if not all(folds):
        return {"thresholds": [], **subset_metrics(items, {r["id"]: None for r in items})}
    thresholds = [best_threshold(folds[1 - k], step_scores) for k in (0, 1)]
    predictions = {r["id"]: predicted_error(step_scores[r["id"]], thresholds[k])
                   for k in (0, 1) for r in folds[k]}
    return {"thresholds": thresholds, **step_metrics(items, predictions)}


def f1_gap(items: list[dict], first: Mapping[str, int | None], second: Mapping[str, int | None],
           *, group=lambda r: r["problem"], bootstrap: int = BOOTSTRAP, seed: int = 0,
           confidence: float = 0.95) -> dict:
    """F1(first) - F1(second) on the same items, with a paired bootstrap interval over groups
    (problems): whether one set of predictions finds first errors better than another by more
    than the benchmark's sampling noise."""
    counts: dict = {}  # group -> [errors found by first, by second, erroneous, correct found
    for r in items:    #           by first, by second, correct]
        row = counts.setdefault(group(r), [0] * 6)
        base = 0 if r["label"] != -1 else 3
        row[base] += first[r["id"]] == r["label"]
        row[base + 1] += second[r["id"]] == r["label"]
        row[base + 2] += 1
    sums = resampled_sums([counts[k] for k in sorted(counts)], bootstrap=bootstrap, seed=seed)

    def f1(found_errors, found_correct) -> np.ndarray:  # F1 of a draw; 0 where undefined
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = 100 * found_errors / sums[:, 2], 100 * found_correct / sums[:, 5]
            out = 2 * a * b / (a + b)
        return np.nan_to_num(out, nan=0.0)
    low, high = interval(f1(sums[:, 0], sums[:, 3]) - f1(sums[:, 1], sums[:, 4]), confidence)
    gap = ((subset_metrics(items, first)["f1"] or 0.0)
           - (subset_metrics(items, second)["f1"] or 0.0))
    return {"gap": gap, "low": low, "high": high}


# --- the items ------------------------------------------------------------------------------------

def load_items(source: str | Path | list[dict]) -> list[dict]:
    """ProcessBench items from a file, a folder of subsets, ``hub:Qwen/ProcessBench``, or
    records."""
    return source if isinstance(source, list) else read_processbench(source)


def first_of_each_subset(items: list[dict], limit: int | None) -> list[dict]:
    """The first ``limit`` items of every subset (all with None), subsets in their order."""
    return [r for group in _by_subset(items).values() for r in group[:limit]]


def items_from_truth(solutions: list[dict], *, subset: str, seed: int = 0) -> list[dict]:
    """A ProcessBench of sampled solutions that carry their step truth (``truth.label`` and
    ``truth.answer_correct``, from a world that knows it), in ProcessBench's format and
    balanced as it is: complete solutions (stopped, with a readable answer), the first correct
    and the first erroneous solution of each problem, as many of each kind (a seeded draw).
    Item ids are the solutions' ids, in the solutions' order; where the truth says where a first
    error came from (``first_error_origin``), the item keeps it."""
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
    return [{"id": s["id"], "generator": s["generator"], "subset": subset,
             "problem": s["problem"], "steps": s["steps"],
             "final_answer_correct": s["truth"]["answer_correct"], "label": s["truth"]["label"],
             **({"first_error_origin": s["truth"]["first_error_origin"]}
                if "first_error_origin" in s["truth"] else {})}
            for s in solutions if s["id"] in chosen]


def _predictions(source, kind: str, field: str) -> tuple[dict, dict, str]:
    if isinstance(source, Mapping):
        return dict(source), {}, "<predictions>"
    rows = read_records_with_lines(source, kind)
    return ({r["id"]: r[field] for _, r in rows}, {r["id"]: line for line, r in rows}, str(source))


def metrics(benchmark: str | Path | list[dict], *,
            step_scores: str | Path | Mapping | None = None,
            critiques: str | Path | Mapping | None = None, threshold: float = DEFAULT_THRESHOLD,
            tune_on: str | None = None, subsets: Iterable[str] | None = None,
            per_item: bool = False) -> dict:
    """ProcessBench metrics of per-step scores (id -> [score]) or critiques (id -> [text]),
    each a mapping or a JSONL file; with ``per_item``, every item's prediction too
    (``items``)."""
    items = load_items(benchmark)
    if step_scores is not None:
        scores, lines, source = _predictions(step_scores, "step_scores", "step_scores")
        return evaluate(items, step_scores=scores, threshold=threshold, tune_on=tune_on,
                        subsets=subsets, source=source, lines=lines, per_item=per_item)
    texts, lines, source = (_predictions(critiques, "critique", "critiques")
                            if critiques is not None else (None, {}, "<predictions>"))
    return evaluate(items, critiques=texts, subsets=subsets, source=source, lines=lines,
                    per_item=per_item)


# --- the command: prmkit eval processbench --------------------------------------------------------

@dataclass(frozen=True)
class ProcessBenchConfig:
    benchmark: str = setting(REQUIRED, "ProcessBench: a JSON/JSONL file, a folder of subset "
                             "files, or hub:Qwen/ProcessBench.", short="-b")
    scores: str | None = setting(None, "JSONL of {id, step_scores}, or a `prmkit score` "
                                 "folder.")
    critiques: str | None = setting(None, "JSONL of {id, critiques: [text]}.")
    threshold: float = setting(0.5, "A step scored at or below this is an error "
                               "(prmkit.labels' one threshold rule).", ge=0, le=1)
    tune_on: str | None = setting(None, "Pick the best-F1 threshold on this subset.")
    subset: list[str] | None = setting(None, "Evaluate only these subsets (repeat).")

    def validate(self) -> "ProcessBenchConfig":
        config.check_values(self)
        if (self.scores is None) == (self.critiques is None):
            raise InputError("give exactly one of --scores and --critiques", field="scores")
        return self


def run(cfg: ProcessBenchConfig, out: str | Path | None = None, *, force: bool = False) -> dict:
    """The metrics of a ``prmkit eval processbench`` config (into ``out`` if given)."""
    cfg.validate()
    scores = cfg.scores
    if scores is not None and Path(scores).is_dir():  # a `prmkit score` folder
        scores = str(Path(scores) / "scores.jsonl")
    settings = stage_config("eval.processbench", cfg)
    return into(out, settings, {"benchmark": cfg.benchmark,
                                "predictions": scores or cfg.critiques}, force,
                lambda per_item: metrics(cfg.benchmark, step_scores=scores,
                                         critiques=cfg.critiques, threshold=cfg.threshold,
                                         tune_on=cfg.tune_on, subsets=cfg.subset,
                                         per_item=per_item),
                lambda measured: measured.pop("items"))


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def show(measured: dict, console) -> None:
    """The subsets' table, and for step scores F1 against threshold."""
    title = "ProcessBench"
    if measured["mode"] == "step_scores":
        title += f" (threshold {measured['threshold']:g}, {measured['threshold_source']})"
    table = Table(title=title)
    for column in ("subset", "n", "error acc", "correct acc", "F1",
                   "flawed-process, right answer"):
        table.add_column(column, justify="left" if column == "subset" else "right")
    for name, m in measured["subsets"].items():
        flawed = m["flawed_correct_answer"]
        table.add_row(name, str(m["n"]), _fmt(m["error_acc"]), _fmt(m["correct_acc"]),
                      _fmt(m["f1"]), f"{_fmt(flawed['acc'])} (n={flawed['n']})")
    table.add_row("average", "", "", "", _fmt(measured["average_f1"]), "", style="bold")
    console.print(table)
    if measured["mode"] != "step_scores":
        console.print(f"critiques: {measured['critique_stats']}")
        return
    for line in past_context_warnings(measured):
        console.print(f"warning: {line}", style="bold yellow", markup=False, highlight=False)
    subsets = list(measured["subsets"])
    sweep = Table(title="F1 against threshold (best per subset is an upper bound)")
    for column in ["threshold", *subsets, "average"]:
        sweep.add_column(column, justify="right")
    for row in measured["sweep"]:
        sweep.add_row(f"{row['threshold']:g}", *(_fmt(row["f1"][s]) for s in subsets),
                      _fmt(row["average_f1"]))
    best = measured["best_threshold_per_subset"]
    sweep.add_row("best", *(f"{_fmt(best[s]['f1'])} @{best[s]['threshold']:g}"
                            for s in subsets), "", style="bold")
    console.print(sweep)


def past_context_warnings(measured: dict) -> list[str]:
    """What the steps past the PRM's context did to the metrics, in words (nothing when every
    item fit)."""
    cut = measured.get("past_context") or {}
    if not cut.get("items"):
        return []
    if cut.get("nothing_fit"):
        return [f"no item has a prediction: all {cut['items']} have steps past the PRM's "
                f"context ({cut['steps']} steps) before any error it found; the metrics are null"]
    return [f"{cut['items']} items have {cut['steps']} steps past the PRM's context; "
            f"{cut['no_prediction']} of them have no prediction at threshold "
            f"{measured['threshold']:g} (no error among the steps it read) and count as misses"]


# --- in a recipe: evaluate: {processbench: ...} ---------------------------------------------------

@dataclass(frozen=True)
class ProcessBenchSection:
    path: str | None = setting(None, "ProcessBench: a folder of subset files, a file, or "
                               "hub:Qwen/ProcessBench.")
    limit: int | None = setting(None, "The first N items of each subset (all: null).", ge=1)
    from_truth: str | None = setting(None, "Instead of a file: a ProcessBench built from the "
                                     "step truth of this Best-of-N set's solutions (a world "
                                     "that knows every step's truth, like the toy world).")
    seed: int = setting(0, "Seed of the balanced draw of from_truth.")

    def validate(self) -> "ProcessBenchSection":
        if (self.path is None) == (self.from_truth is None):
            raise InputError("give exactly one of path and from_truth",
                             field="evaluate.processbench.path")
        return self


def solutions(section: ProcessBenchSection, run: PipelineRun) -> dict[str, list[dict]]:
    """The items every PRM scores, kept in ``processbench/`` as read."""
    if section.from_truth is not None:
        items = items_from_truth(run.group("bon", section.from_truth), subset=section.from_truth,
                                 seed=section.seed)
    else:
        items = first_of_each_subset(read_processbench(section.path), section.limit)
    write_jsonl(run.out / "processbench" / "items.jsonl", items)
    return {"items": items}


def at_best(items: list[dict], step_scores: Mapping[str, list], best: Mapping[str, dict]) -> dict:
    """Every subset read at its own best threshold: its metrics, and every item's prediction
    (for a paired bootstrap of the F1 gap between two PRMs)."""
    out: dict = {"subsets": {}, "predictions": {}}
    for subset, chosen in _by_subset(items).items():
        threshold = best[subset]["threshold"]
        predicted = predictions_at(chosen, step_scores, threshold)
        out["subsets"][subset] = {**step_metrics(chosen, predicted), "threshold": threshold}
        out["predictions"].update(predicted)
    out["average_f1"] = _average_f1(out["subsets"])
    return out


def measure(section: ProcessBenchSection, groups: dict[str, list[dict]],
            scores: dict[str, dict[str, list]]) -> dict | None:
    """One PRM: metrics at 0.5 with the threshold sweep, each subset at its best threshold (an
    upper bound, alike for every PRM), and at a threshold chosen on other problems."""
    items, by_id = groups["items"], scores["items"]
    if not items:  # no complete correct or no erroneous solution to build items from
        return None
    measured = evaluate(items, step_scores=by_id)
    measured["at_best"] = at_best(items, by_id, measured["best_threshold_per_subset"])
    measured["cross_fitted"] = {name: cross_fitted(chosen, by_id)
                                for name, chosen in _by_subset(items).items()}
    return measured


def summary(section: ProcessBenchSection, groups: dict[str, list[dict]]) -> dict:
    """The items' labels, for the report's paired bootstrap over problems."""
    items = groups["items"]
    return {"n_items": len(items), "n_erroneous": sum(r["label"] >= 0 for r in items),
            "items": [{"id": r["id"], "subset": r.get("subset", "all"), "problem": r["problem"],
                       "label": r["label"], "final_answer_correct": r["final_answer_correct"],
                       **({"first_error_origin": r["first_error_origin"]}
                          if "first_error_origin" in r else {})}
                      for r in items]}


# --- in the report --------------------------------------------------------------------------------

def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def headline_f1(measured: dict | None) -> float | None:
    """A PRM's ProcessBench F1 for comparisons: the mean over subsets of each subset's F1 at its
    own best threshold (hard and soft labels calibrate scores differently, so every PRM is read
    at its best: an upper bound, computed alike for every PRM). None: not measured."""
    return None if not measured else (measured["at_best"]["average_f1"] or 0.0)


def tables(results: dict) -> list[ReportTable]:
    prms = {name: prm.get("processbench") for name, prm in results["prms"].items()}
    measured = [m for m in prms.values() if m]
    if not measured:
        return []
    subsets = list(measured[0]["subsets"])
    several = len(subsets) > 1
    head = ["PRM", *([f"{s} F1 @0.5" for s in subsets] if several else []),
            "average F1 @0.5" if several else "F1 @0.5", "best F1 (threshold)",
            "F1, threshold from other problems", "flawed-process found"]
    rows = []
    for name, m in prms.items():
        if not m:
            rows.append([name, *["–"] * (len(head) - 1)])
            continue
        best, fitted = m["at_best"]["subsets"], m["cross_fitted"]
        thresholds = "/".join(f"{best[s]['threshold']:g}" for s in subsets)
        cross = _mean(f["f1"] for f in fitted.values())
        folds = [] if several else fitted[subsets[0]]["thresholds"]  # one subset: its folds'
        cross_text = "–" if cross is None else f"{cross:.1f}" + (
            f" ({'/'.join(f'{t:g}' for t in folds)})" if folds else "")
        per_subset = [_fmt(m["subsets"][s]["f1"] or 0) for s in subsets] if several else []
        rows.append([name, *per_subset, _fmt(m["average_f1"] or 0),
                     f"{_fmt(headline_f1(m))} ({thresholds})", cross_text,
                     percent(_mean(best[s]["flawed_correct_answer"]["acc"]
                                    for s in subsets))])
    legend = ("F1 @0.5 reads every PRM at 0.5; best F1 at the threshold that maximises it on "
              "this benchmark (an upper bound, computed alike for every PRM); F1 with a "
              "threshold from other problems reads each half of the problems at the best "
              "threshold of the other half. Flawed-process found: right-answer items whose "
              "first error the PRM names, at its best threshold."
              + (" With several subsets, every column but the first ones is their mean."
                 if several else "") + _past_context_legend(prms))
    n = results["benchmarks"]["processbench"]
    return [ReportTable(f"ProcessBench ({n['n_items']} items, {n['n_erroneous']} erroneous)",
                        head, rows, legend)]


def _past_context_legend(prms: Mapping[str, dict | None]) -> str:
    """A sentence for the PRMs some of whose items did not fit their context ("" when all
    fit)."""
    cut = {name: (m or {}).get("past_context") or {} for name, m in prms.items()}
    cut = {name: c for name, c in cut.items() if c.get("items")}
    if not cut:
        return ""
    return (" Steps past a PRM's context: " + "; ".join(
        f"{name} {c['items']} items ({c['steps']} steps, {c['no_prediction']} without a "
        "prediction at 0.5)" for name, c in cut.items())
        + ". An item with no error among the steps read has no prediction: a miss.")


def plots(results: dict) -> dict[str, bytes]:
    """F1 (mean over subsets) against the threshold, one line a PRM."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    prms = {name: prm.get("processbench") for name, prm in results["prms"].items()}
    if not any(prms.values()):
        return {}
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, m in prms.items():
        if m:
            ax.plot([s["threshold"] for s in m["sweep"]],
                    [float("nan") if s["average_f1"] is None else s["average_f1"]
                     for s in m["sweep"]], marker=".", label=name)
    ax.set(xlabel="threshold (a step at or below it is an error)", ylabel="F1 (mean over "
           "subsets)", title="ProcessBench F1 against threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return {"processbench_threshold": png(fig)}


BENCHMARK = Benchmark(
    name="processbench",
    help="ProcessBench: earliest-error accuracy and F1 of step scores or critiques.",
    config=ProcessBenchConfig, run=run, show=show,
    section=ProcessBenchSection, solutions=solutions, measure=measure, summary=summary,
    tables=tables, plots=plots)
