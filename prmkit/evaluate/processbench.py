"""ProcessBench: how well a PRM or a critic finds the earliest wrong step.

Per subset, exactly as the official scripts compute it (percentages):
    error accuracy   = share of erroneous samples (label >= 0) whose prediction equals the label
    correct accuracy = share of correct samples (label == -1) predicted -1
    F1               = harmonic mean of the two (0 when both are 0)
and the headline is the mean F1 over subsets.

Predictions come from either
  * step scores: the earliest step scored *at or below* the threshold is the predicted error
    (-1 when none is): ``prmkit.labels``' one threshold rule, or
  * critiques (a file of them, or written here by a critic model: ``prmkit.evaluate.critic``,
    with ProcessBench's sampling settings), voted on as ProcessBench's official script votes
    (the default, so that a critic's numbers compare with the paper's Table 7: the most common
    raw ``\\boxed{}`` string, ties to the first seen, read as an integer; one that names no
    paragraph is simply wrong) or as prmkit votes (``prmkit.labels``: only step indices vote,
    ties to the earliest error). Each critique's outcome (ok, no index, out of range, cut off
    by the token limit) and each item's are counted per subset; a solution without a
    prediction counts as a miss.

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
from prmkit.backends import BackendConfig, BackendWorkerFactory, stage_backend
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.evaluate import critic as critics
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
from prmkit.labels import positive
from prmkit.records import read_records_with_lines, write_jsonl
from prmkit.runner import ShardedStage, executor_options, stage_config

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
             lines: Mapping[str, int] | None = None, per_item: bool = False,
             vote: str = "official",
             finish_reasons: Mapping[str, list[str]] | None = None) -> dict:
    """ProcessBench metrics for step scores or critiques (exactly one of them).

    ``benchmark``: solution records with ``label``, ``final_answer_correct`` and ``subset``.
    ``tune_on``: a subset on which to pick the best-F1 threshold, then used for all subsets.
    ``per_item``: also ``items``, every item's prediction (at the threshold used) beside its
    label, for error analysis. Steps scored null (past a PRM's context) are unknown
    (``predicted_error``) and counted (``past_context``). Critiques are voted ``vote``
    (``official``: ProcessBench's script; ``prmkit``: ``prmkit.labels``); with their
    ``finish_reasons`` (id -> one a critique), those cut off by the token limit are counted."""
    result = _evaluate(benchmark, step_scores=step_scores, critiques=critiques,
                       threshold=threshold, tune_on=tune_on, subsets=subsets, source=source,
                       lines=lines, vote=vote, finish_reasons=finish_reasons)
    chosen = result.pop("_predictions")
    details = result.pop("_details", {})
    if per_item:
        result["items"] = [{"id": r["id"], "subset": r.get("subset", "all"), "label": r["label"],
                            "prediction": chosen[r["id"]],
                            "hit": chosen[r["id"]] == r["label"], **details.get(r["id"], {})}
                           for r in result.pop("_items")]
    else:
        result.pop("_items")
    return result


def select(benchmark: list[dict], subsets: Iterable[str] | None,
           source: str = "<predictions>") -> list[dict]:
    """The items of the subsets asked for (all with None); an unknown subset or an empty
    benchmark is an error."""
    if subsets is not None:
        wanted = set(subsets)
        unknown = wanted - {r.get("subset", "all") for r in benchmark}
        if unknown:
            raise InputError(f"unknown subset(s) {sorted(unknown)}", field="subset")
        benchmark = [r for r in benchmark if r.get("subset", "all") in wanted]
    if not benchmark:
        raise InputError("the benchmark is empty", path=source)
    return benchmark


def _evaluate(benchmark: list[dict], *, step_scores, critiques, threshold, tune_on, subsets,
              source, lines, vote="official", finish_reasons=None) -> dict:
    if (step_scores is None) == (critiques is None):
        raise InputError("give either step scores or critiques, not both or neither")
    benchmark = select(benchmark, subsets, source)

    if critiques is not None:
        check_alignment(benchmark, critiques, what="critiques", source=source, lines=lines)
        return {**_evaluate_critiques(benchmark, critiques, vote, finish_reasons or {}),
                "_items": benchmark}

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


def _evaluate_critiques(benchmark: list[dict], critiques: Mapping[str, list[str]], how: str,
                        finish_reasons: Mapping[str, list[str]]) -> dict:
    """Every item's prediction voted ``how``, the subsets' metrics (as for step scores), and
    per subset the outcome of every critique and of every prediction
    (``critic.CRITIQUE_OUTCOMES``, ``critic.PREDICTION_OUTCOMES``)."""
    predictions: dict[str, int | None] = {}
    details: dict[str, dict] = {}
    read: dict[str, Counter] = {}
    voted: dict[str, Counter] = {}
    for r in benchmark:
        n = len(r["steps"])
        prediction, outcomes = critics.predict(critiques[r["id"]], n, how=how,
                                               finish_reasons=finish_reasons.get(r["id"]))
        predictions[r["id"]] = prediction
        subset = r.get("subset", "all")
        read.setdefault(subset, Counter()).update(outcomes)
        voted.setdefault(subset, Counter())[critics.outcome(prediction, n)] += 1
        details[r["id"]] = {"critique_outcomes": outcomes}
        if how == "official":  # the strings that voted, as the official script read them
            details[r["id"]]["answers"] = [critics.boxed_string(t) for t in critiques[r["id"]]]
    subsets = {}
    for name, items in _by_subset(benchmark).items():
        subsets[name] = {**subset_metrics(items, predictions),
                         "critiques": {k: read[name][k] for k in critics.CRITIQUE_OUTCOMES},
                         "predictions": {k: voted[name][k] for k in critics.PREDICTION_OUTCOMES}}
    total = sum(read.values(), Counter())
    return {"_predictions": predictions, "_details": details, "mode": "critiques", "vote": how,
            "subsets": subsets, "average_f1": _average_f1(subsets),
            "critique_stats": {"critiques": total.total(),
                               "unparseable": total["no-index"] + total["truncated"],
                               "out_of_range": total["out-of-range"],
                               "solutions_without_prediction": sum(
                                   p is None for p in predictions.values())}}


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


def critiques_file(source):
    """A critiques file, or the one a ``--critic`` run wrote into its folder."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return str(Path(source) / "critiques.jsonl")
    return source


def _finish_reasons(source) -> dict[str, list[str]]:
    """The finish reasons a critiques file gives (``finish_reasons``, one a critique; optional),
    checked: a wrong count or a value that is not a string names the file, line and field."""
    if isinstance(source, Mapping):
        return {}
    out = {}
    for line, r in read_records_with_lines(source, "critique"):
        reasons = r.get("finish_reasons")
        if reasons is None:
            continue
        if not isinstance(reasons, list) or len(reasons) != len(r["critiques"]) or \
                not all(isinstance(x, str) for x in reasons):
            raise InputError(f"expected one finish reason (a string) for each of the "
                             f"{len(r['critiques'])} critiques", path=source, line=line,
                             field="finish_reasons")
        out[r["id"]] = reasons
    return out


def metrics(benchmark: str | Path | list[dict], *,
            step_scores: str | Path | Mapping | None = None,
            critiques: str | Path | Mapping | None = None, threshold: float = DEFAULT_THRESHOLD,
            tune_on: str | None = None, subsets: Iterable[str] | None = None,
            per_item: bool = False, vote: str = "official",
            finish_reasons: Mapping[str, list[str]] | None = None) -> dict:
    """ProcessBench metrics of per-step scores (id -> [score]) or critiques (id -> [text]),
    each a mapping or a JSONL file; with ``per_item``, every item's prediction too
    (``items``). Critiques are voted ``vote`` (``official`` or ``prmkit``); their finish
    reasons come from the file (``finish_reasons``) or the mapping given."""
    items = load_items(benchmark)
    if step_scores is not None:
        scores, lines, source = _predictions(step_scores, "step_scores", "step_scores")
        return evaluate(items, step_scores=scores, threshold=threshold, tune_on=tune_on,
                        subsets=subsets, source=source, lines=lines, per_item=per_item)
    critiques = critiques_file(critiques)
    texts, lines, source = (_predictions(critiques, "critique", "critiques")
                            if critiques is not None else (None, {}, "<predictions>"))
    if finish_reasons is None and critiques is not None:
        finish_reasons = _finish_reasons(critiques)
    return evaluate(items, critiques=texts, subsets=subsets, source=source, lines=lines,
                    per_item=per_item, vote=vote, finish_reasons=finish_reasons)


# --- the command: prmkit eval processbench --------------------------------------------------------

# the settings that only a critic's generation reads: out of the config of the other modes
CRITIC_FIELDS = ("critic", "critic_settings", "samples", "temperature", "top_p", "top_k",
                 "max_new_tokens", "seed", "critic_prompt", "chat", "shard_size")
SCORE_FIELDS = ("scores", "threshold", "tune_on")


@dataclass(frozen=True)
class ProcessBenchConfig:
    benchmark: str = setting(REQUIRED, "ProcessBench: a JSON/JSONL file, a folder of subset "
                             "files, or hub:Qwen/ProcessBench.", short="-b")
    scores: str | None = setting(None, "JSONL of {id, step_scores}, or a `prmkit score` "
                                 "folder.")
    critiques: str | None = setting(None, "JSONL of {id, critiques, finish_reasons?} (lists, "
                                    "one entry a critique), or a --critic run's folder.")
    critic: str | None = setting(None, "A critic model that writes the critiques here, "
                                 "resumably, into --out (critiques.jsonl), on any backend "
                                 "(--backend ...): a folder or hub id (hf, vllm), or the served "
                                 "model's name (openai).")
    critic_settings: str = setting("processbench", "The critic's sampling: processbench (8 "
                                   "samples, temperature 1.0, top-p 0.9: ProcessBench's) or "
                                   "qwen-math (8 samples, temperature 0.7, top-p 0.8, top-k 20: "
                                   "ProcessBench's for Qwen2.5-Math models); at most 8192 new "
                                   "tokens. The flags below override single values.",
                                   choices=tuple(critics.PRESETS))
    samples: int | None = setting(None, "Critiques a solution (default: the settings', 8).",
                                  ge=1)
    temperature: float | None = setting(None, "Sampling temperature (default: the "
                                        "settings').", ge=0)
    top_p: float | None = setting(None, "Nucleus mass (default: the settings').", gt=0, le=1)
    top_k: int | None = setting(None, "Sample among the k likeliest tokens, 0 = all (default: "
                                "the settings').", ge=0)
    max_new_tokens: int | None = setting(None, "Tokens a critique at most (default 8192, "
                                         "ProcessBench's; it gives QwQ 32768).", ge=1)
    seed: int = setting(0, "Seed of the critiques (each solution and sample its own).")
    critic_prompt: str = setting("processbench", "The critique prompt, the user turn: "
                                 "processbench (prmkit's, in ProcessBench's style) or a template "
                                 "file (a format string with {problem} and {tagged_response} or "
                                 "{tagged_paragraphs}: ProcessBench's official template as it "
                                 "is).")
    chat: bool = setting(True, "Send the critique prompt through the critic's chat template "
                         "(as ProcessBench does); false: as raw text.")
    vote: str = setting("official", "How critiques are voted: official (ProcessBench's script: "
                        "the most common raw \\boxed{} string, ties to the first seen; an "
                        "index naming no paragraph is wrong) or prmkit (prmkit.labels: only "
                        "step indices vote, ties to the earliest error).",
                        choices=critics.VOTES)
    shard_size: int = setting(64, "Solutions a resumable shard of the critic.", ge=1)
    threshold: float = setting(0.5, "A step scored at or below this is an error "
                               "(prmkit.labels' one threshold rule).", ge=0, le=1)
    tune_on: str | None = setting(None, "Pick the best-F1 threshold on this subset.")
    subset: list[str] | None = setting(None, "Evaluate only these subsets (repeat).")

    def validate(self) -> "ProcessBenchConfig":
        config.check_values(self)
        given = [s for s in (self.scores, self.critiques, self.critic) if s is not None]
        if len(given) != 1:
            raise InputError("give exactly one of --scores, --critiques and --critic",
                             field="scores")
        if self.critic is None:
            stray = [f for f in ("samples", "temperature", "top_p", "top_k", "max_new_tokens")
                     if getattr(self, f) is not None]
            if stray:
                raise InputError(f"--{stray[0].replace('_', '-')} sets how a critic samples: "
                                 "it needs --critic", field=stray[0])
        return self

    @property
    def sampling(self) -> critics.CriticSampling:
        """The critic's sampling: its preset, with the values given in place."""
        return critics.sampling(self.critic_settings, samples=self.samples,
                                temperature=self.temperature, top_p=self.top_p,
                                top_k=self.top_k, max_new_tokens=self.max_new_tokens,
                                seed=self.seed)


def run(cfg: ProcessBenchConfig, out: str | Path | None = None, *, force: bool = False,
        backend: BackendConfig | None = None, progress: bool = True) -> dict:
    """The metrics of a ``prmkit eval processbench`` config (into ``out`` if given; a critic
    needs it, and ``backend`` says where the critic runs)."""
    cfg.validate()
    if cfg.critic is not None:
        return run_critic(cfg, out, force=force, backend=backend, progress=progress)
    scores, critiques = cfg.scores, critiques_file(cfg.critiques)
    if scores is not None and Path(scores).is_dir():  # a `prmkit score` folder
        scores = str(Path(scores) / "scores.jsonl")
    # a setting that cannot change the metrics stays out of the config hash: a folder made
    # before it existed is still complete for its config
    settings = stage_config("eval.processbench", cfg, drop=CRITIC_FIELDS + (
        ("vote",) if scores is not None else SCORE_FIELDS))
    return into(out, settings, {"benchmark": cfg.benchmark,
                                "predictions": scores or critiques}, force,
                lambda per_item: metrics(cfg.benchmark, step_scores=scores,
                                         critiques=critiques, threshold=cfg.threshold,
                                         tune_on=cfg.tune_on, subsets=cfg.subset,
                                         per_item=per_item, vote=cfg.vote),
                lambda measured: measured.pop("items"))


def run_critic(cfg: ProcessBenchConfig, out: str | Path | None, *, force: bool = False,
               backend: BackendConfig | None = None, progress: bool = True) -> dict:
    """A critic's critiques of the benchmark (``cfg.critic``, in resumable shards), written to
    ``out/critiques.jsonl``, then evaluated: ``metrics.json`` and ``predictions.jsonl``.

    The folder's config is the critic's (model, prompt, sampling, backend), the vote and the
    subsets; to vote otherwise on the same critiques, evaluate the file
    (``--critiques OUT/critiques.jsonl --vote prmkit``)."""
    if out is None:
        raise InputError("a critic writes its critiques into a folder: give --out",
                         field="out")
    critic = critics.Critic(model=cfg.critic, sampling=cfg.sampling, prompt=cfg.critic_prompt,
                            chat=cfg.chat)
    prompt = critics.check_prompt(cfg.critic_prompt)  # before the model is fetched or asked
    backend = stage_backend(backend, cfg.critic)
    held: list[list[dict]] = []

    def read() -> list[dict]:
        held.append(select(load_items(cfg.benchmark), cfg.subset, cfg.benchmark))
        return held[-1]

    def finish(folder: Path, records: list[dict]) -> dict:
        write_jsonl(folder / "critiques.jsonl", records)
        measured = evaluate(
            held[-1], critiques={r["id"]: r["critiques"] for r in records},
            finish_reasons={r["id"]: r["finish_reasons"] for r in records}, vote=cfg.vote,
            source=str(folder / "critiques.jsonl"), per_item=True)
        write_jsonl(folder / "predictions.jsonl", measured.pop("items"))
        return {**measured, "critic": critics.generation_summary(critic, records)}

    return ShardedStage(
        config=stage_config("eval.processbench.critic", critic, benchmark=cfg.benchmark,
                            subset=cfg.subset, vote=cfg.vote,
                            backend=backend.output_relevant()),
        inputs={"benchmark": cfg.benchmark, "critic_prompt": str(prompt)},
        read=read, factory=BackendWorkerFactory(critics.CriticWorker, critic, backend),
        finish=finish, shard_size=cfg.shard_size, executor=executor_options(backend),
        label=f"critiques ({cfg.critic})",
    ).run(out, force=force, progress=progress)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def show(measured: dict, console) -> None:
    """The subsets' table, and for step scores F1 against threshold."""
    title = "ProcessBench"
    if measured["mode"] == "step_scores":
        title += f" (threshold {measured['threshold']:g}, {measured['threshold_source']})"
    else:  # metrics saved before votes had a name were voted as prmkit votes
        title += f" (critiques, {measured.get('vote', 'prmkit')} vote)"
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
        show_critiques(measured, console)
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


def show_critiques(measured: dict, console) -> None:
    """What the critiques said, per subset: each critique's outcome and each prediction's; and
    for a critic, how it wrote them."""
    subsets = measured["subsets"]
    if not all("critiques" in m for m in subsets.values()):  # metrics of an older prmkit
        console.print(f"critiques: {measured['critique_stats']}", markup=False,
                      highlight=False)
        return
    title = "What the critiques gave" + (" (read as ProcessBench's script reads them)"
                                          if measured.get("vote") == "official" else "")
    table = Table(title=title)
    for column in ("", *subsets):
        table.add_column(column, justify="left" if not column else "right")
    for kind, outcomes in (("critiques", critics.CRITIQUE_OUTCOMES),
                           ("predictions", critics.PREDICTION_OUTCOMES)):
        for k in outcomes:
            table.add_row(f"{kind} {k}", *(str(m[kind][k]) for m in subsets.values()))
    console.print(table)
    made = measured.get("critic")
    if made:
        sampling = made["sampling"]
        console.print(f"critic {made['model']}: {made['critiques']} critiques "
                      f"({sampling['samples']} a solution, temperature {sampling['temperature']:g}, "
                      f"top-p {sampling['top_p']:g}, top-k {sampling['top_k'] or 'off'}, at most "
                      f"{sampling['max_new_tokens']} tokens); finish reasons "
                      f"{made['finish_reasons']}", markup=False, highlight=False)


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
