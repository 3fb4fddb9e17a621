"""Paired comparisons between PRMs: is one better than another by more than the noise?

The comparisons that matter for the paper's question (what does a label source add?):

- every PRM trained on labels against the same PRM before training (the baseline, "no labels");
- the consensus PRM against the MC-hard one (lesson 1: consensus filtering);
- the judge PRM against the MC-hard one (judge labels against MC labels).

Each is measured on the same solutions, with a paired bootstrap over problems
(``prmkit.evaluate.paired``): within-problem AUC (sound against flawed process, and against
flawed by the first error's origin where the truth says it: a slip the policy would doubt or a
misconception it believes), Best-of-N accuracy (min aggregation, the largest N) and
ProcessBench F1 at each PRM's best threshold (overall and on the erroneous items of each
origin, with every correct item).
"""

from __future__ import annotations

from prmkit.evaluate.benchmark import ReportTable
from prmkit.evaluate.paired import ratio_gap, significance
from prmkit.evaluate.processbench import f1_gap, subset_metrics

BON_METHOD = "min"
ORIGINS = ("misconception", "slip")


# --- what the results hold ------------------------------------------------------------------------

def headline_set(results: dict) -> str | None:
    """The recipe's first Best-of-N set, the one findings and comparisons read."""
    return next(iter(results["benchmarks"].get("bon", {})), None)


def _ranking(results: dict, prm: str) -> dict:
    name = headline_set(results)
    return results["prms"][prm]["bon"][name]["ranking"] if name else {}


def auc_of(results: dict, prm: str, origin: str | None = None) -> dict | None:
    """A PRM's within-problem AUC: sound against flawed (against the flawed of one origin),
    or right against wrong answer where the run has no step truth."""
    ranking = _ranking(results, prm)
    if origin is not None:
        return (ranking.get("process_by_origin") or {}).get(origin)
    return ranking.get("process") or ranking.get("answer")


def origins(results: dict) -> list[str]:
    """The first-error origins the run's truth names, misconceptions first."""
    first = next(iter(results["prms"]), None)
    found = (_ranking(results, first).get("process_by_origin") or {}) if first else {}
    return [o for o in ORIGINS if o in found]


def _items(results: dict, origin: str | None) -> list[dict]:
    """The ProcessBench items: all, or the correct ones and the erroneous of one origin."""
    items = (results["benchmarks"].get("processbench") or {}).get("items") or []
    if origin is None:
        return items
    return [r for r in items if r["label"] < 0 or r.get("first_error_origin") == origin]


def _predictions(results: dict, prm: str) -> dict | None:
    measured = results["prms"][prm].get("processbench")
    return measured["at_best"]["predictions"] if measured else None


def f1_of(results: dict, prm: str, origin: str | None = None) -> float | None:
    """ProcessBench F1 at the PRM's best threshold, on all items or one origin's."""
    predictions, items = _predictions(results, prm), _items(results, origin)
    if predictions is None or not items:
        return None
    return subset_metrics(items, predictions)["f1"]


# --- the gaps -------------------------------------------------------------------------------------

def auc_gap(results: dict, first: str, second: str, origin: str | None = None) -> dict:
    a, b = auc_of(results, first, origin), auc_of(results, second, origin)
    if not a or not b or a.get("auc") is None or b.get("auc") is None:
        return {"gap": None, "low": None, "high": None, "problems": 0}
    return ratio_gap(a["per_problem"], b["per_problem"])


def bon_picks(results: dict, prm: str, method: str = BON_METHOD) -> dict:
    """problem -> [right pick, 1] at the largest N of the first Best-of-N set."""
    name = headline_set(results)
    items = results["prms"][prm]["bon"][name]["bon"].get("items", []) if name else []
    return {r["id"]: [int(r["picks"][method]["correct"]), 1] for r in items
            if method in r["picks"]}


def bon_gap(results: dict, first: str, second: str) -> dict:
    """Best-of-N accuracy (points) of ``first`` minus ``second``."""
    gap = ratio_gap(bon_picks(results, first), bon_picks(results, second))
    return {k: (100 * v if k != "problems" and v is not None else v) for k, v in gap.items()}


def f1_gap_of(results: dict, first: str, second: str, origin: str | None = None) -> dict:
    a, b, items = _predictions(results, first), _predictions(results, second), \
        _items(results, origin)
    if a is None or b is None or not any(r["label"] >= 0 for r in items):
        return {"gap": None, "low": None, "high": None}
    return f1_gap(items, a, b)


def final_share_gap(results: dict, first: list[str], second: list[str]) -> dict:
    """The share (points) of responses whose lowest step score is the final one, pooled over
    the PRMs of ``first`` minus over those of ``second``, paired by problem."""
    name = headline_set(results)

    def pooled(prms: list[str]) -> dict:
        out: dict[str, list[int]] = {}
        for prm in prms:
            for problem, (hits, n) in results["prms"][prm]["bon"][name]["bon"][
                    "min_on_final_step"].get("per_problem", {}).items():
                row = out.setdefault(problem, [0, 0])
                row[0] += hits
                row[1] += n
        return out
    gap = ratio_gap(pooled(first), pooled(second))
    return {k: (100 * v if k != "problems" and v is not None else v) for k, v in gap.items()}


# --- which comparisons --------------------------------------------------------------------------

def _by_field(results: dict, prefix: str) -> list[str]:
    fields = results.get("prm_sources", {})
    return [name for name, field in fields.items()
            if field and field.startswith(prefix) and name in results["prms"]]


def pairs(results: dict) -> list[tuple[str, str]]:
    """(first, second): every trained PRM against each baseline, consensus against MC-hard,
    judge against MC-hard."""
    baselines = [b for b in results.get("baselines", []) if b in results["prms"]]
    trained = [k for k in results["prms"]
               if k not in baselines and k not in results.get("references", [])]
    out = [(k, b) for b in baselines for k in trained]
    mc_hard = _by_field(results, "mc.hard")
    for prefix in ("consensus.", "judge."):
        out += [(k, m) for k in _by_field(results, prefix) for m in mc_hard]
    return out


# --- in the report --------------------------------------------------------------------------------

def gap_text(gap: dict, digits: int = 2) -> str:
    if gap.get("gap") is None:
        return "–"
    mark = {"+": " ▲", "-": " ▼", "0": ""}[significance(gap)]
    return (f"{gap['gap']:+.{digits}f} [{gap['low']:+.{digits}f}, {gap['high']:+.{digits}f}]"
            f"{mark}")


def comparison_table(results: dict) -> list[ReportTable]:
    chosen = pairs(results)
    if not chosen or headline_set(results) is None:
        return []
    found = origins(results)
    head = ["comparison", "AUC gap", *[f"AUC gap: {o}s" for o in found], f"BoN gap ({BON_METHOD})",
            "F1 gap", *[f"F1 gap: {o}s" for o in found]]
    rows = []
    for a, b in chosen:
        rows.append([f"{a} − {b}", gap_text(auc_gap(results, a, b)),
                     *[gap_text(auc_gap(results, a, b, o)) for o in found],
                     gap_text(bon_gap(results, a, b), 1), gap_text(f1_gap_of(results, a, b), 1),
                     *[gap_text(f1_gap_of(results, a, b, o), 1) for o in found]])
    return [ReportTable(
        "Paired comparisons (first PRM minus second, 95% paired bootstrap interval over problems)",
        head, rows,
        "Within-problem AUC (sound against flawed process; by origin: against the flawed "
        "solutions whose first error is a slip or a misconception), Best-of-N accuracy in "
        "points, ProcessBench F1 at each PRM's best threshold (by origin: the correct items "
        "with the erroneous items of that origin). ▲/▼: the interval excludes zero.")]


def origin_table(results: dict) -> list[ReportTable]:
    """Every PRM against each kind of first error: what its labels taught it to catch."""
    found = origins(results)
    if not found:
        return []

    def auc(prm: str, origin: str) -> str:
        measured = auc_of(results, prm, origin)
        if not measured or measured.get("auc") is None:
            return "–"
        return f"{measured['auc']:.2f} [{measured['low']:.2f}, {measured['high']:.2f}]"

    def f1(prm: str, origin: str) -> str:
        value = f1_of(results, prm, origin)
        return "–" if value is None else f"{value:.1f}"
    head = ["PRM", *[f"AUC: sound vs {o}" for o in found], *[f"F1: {o}s" for o in found]]
    rows = [[prm, *[auc(prm, o) for o in found], *[f1(prm, o) for o in found]]
            for prm in results["prms"]]
    n = {o: sum(r.get("first_error_origin") == o for r in _items(results, None)) for o in found}
    return [ReportTable(
        "What each PRM catches, by where the first error came from", head, rows,
        "A slip is an error the policy makes against its own belief (its likelihood can flag "
        "it); a misconception is a wrong rule it was taught and applies with confidence (only "
        "labels can teach a PRM to catch it). AUC: within-problem, sound solutions against "
        "those whose first error has that origin. F1: ProcessBench at the PRM's best threshold "
        "on the correct items and the erroneous items of that origin ("
        + ", ".join(f"{n[o]} {o}s" for o in found) + ").")]


def label_origin_table(results: dict) -> list[ReportTable]:
    """Label quality split by the first error's origin (where the truth says it)."""
    quality = results["labels"]["quality"]
    if quality is None or not any("by_origin" in r for r in quality["rows"]):
        return []
    kinds = sorted({o for r in quality["rows"] for o in r.get("by_origin", {})},
                   key=lambda o: (o != "sound", o))
    head = ["label source", *[f"first-error accuracy: {k}" for k in kinds],
            *[f"sound step blamed: {k}" for k in kinds]]

    def share(row: dict, kind: str, field: str) -> str:
        value = row.get("by_origin", {}).get(kind, {}).get(field)
        return "–" if value is None else f"{100 * value:.1f}%"
    rows = [[r["source"], *[share(r, k, "first_error_accuracy") for k in kinds],
             *[share(r, k, "sound_step_blamed") for k in kinds]] for r in quality["rows"]]
    return [ReportTable(
        "Label quality by the first error's origin", head, rows,
        "Sound: solutions with no wrong step; slip and misconception: by the true first "
        "error's origin. Sound step blamed: the source names a first error before the true "
        "one (MC does so where completions from a sound prefix repeat a misconception).")]


def tables(results: dict) -> list[ReportTable]:
    return [*comparison_table(results), *origin_table(results), *label_origin_table(results)]
