"""Best-of-N: pick one of N sampled responses per problem and score the pick (percentages).

Methods
  maj        majority vote over answers (maj@N); the biggest group wins, ties go to the group
             whose first member comes first; the group's first member is the pick.
  pass       pass@N: whether any of the first N responses is correct (an upper bound).
  random     random pick: the expected accuracy of one of the first N responses drawn
             uniformly (the share of them that is correct; exact, no draw). A PRM that does
             not beat it within problems ranks nothing.
  last, min, prod, mean
             the response whose aggregated step score is highest.
  response   the response with the highest response-level ``score`` (an outcome score, or a
             judge's: ``prmkit.evaluate.judge_bon``); one without a score is never picked.
  vote_<agg> PRM-weighted majority vote: answers grouped as for ``maj``, each group weighted by
             the sum of its members' aggregated scores; the heaviest group wins.
Ties between responses always go to the earliest one (Qwen's rm@k uses ``list.index(max)``).
Accuracy at N uses the first N responses of every problem, as Qwen's evaluation does.

Answers are grouped by equivalence (math-verify; option letters as letters) by default, or by
exact string (``group_by="string"``, which is Qwen's maj@k): ``GROUP_BY`` is the one default of
the command line (``prmkit eval bon --group-by``), a recipe (``evaluate.bon.group_by``) and the
functions here, ``group_by_setting`` the one definition of the setting. An answer that cannot be
read votes for nothing (in equivalence grouping) and is never correct; such answers are counted.
A problem whose gold answer cannot be read is reported and left out of the accuracies.

Several benchmarks: ``average`` is the mean of the per-benchmark accuracies (each benchmark
counts once, whatever its size: the paper's Table 6 "Avg."), at the N values every benchmark
has; null where some benchmark has no value (a PRM method that measured nothing there), since a
mean over fewer benchmarks is not comparable with one over all.

Diagnostic (the paper's): the share of responses of 2+ steps, scored whole, whose lowest step
score is on the final step (ties: the earliest lowest step).

Steps past a PRM's context (null step scores: ``prmkit score`` drops whole steps from the end
of a solution that does not fit) are counted, never silently dropped or scored as present:
  - a candidate with an unscored step has no aggregated score (``ranking.aggregate``): its
    final step is unknown to ``last``, and ``min``, ``prod`` or ``mean`` of a prefix is not the
    solution's score. The PRM methods pick among the candidates the PRM scored whole (a cut
    candidate ranks below every whole one), and a cut candidate weighs nothing in the
    PRM-weighted vote;
  - a problem none of whose first N candidates was scored whole has no PRM pick: it counts as
    a miss, so that the PRM methods are measured on the same problems as maj@N and pass@N.
    When no problem has a PRM pick at some N, the PRM methods' accuracies there are null
    (nothing was measured), not 0;
  - the final-step diagnostic counts only responses scored whole;
  - ``past_context`` in each benchmark's metrics: ``candidates`` with unscored steps, the
    unscored ``steps``, ``no_pick`` (N -> problems without a PRM pick) and ``nothing_fit``
    (no candidate scored whole: the PRM was not evaluated at all). ``prmkit eval bon`` prints
    a warning for each, and exits 1 when nothing fit in any benchmark (metrics.json is still
    written, the PRM methods null beside maj@N and pass@N).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from prmkit import config, rundir
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.evaluate import diagnostics
from prmkit.evaluate.benchmark import (
    Benchmark,
    PipelineRun,
    ReportTable,
    into,
    percent,
    png,
)
from prmkit.evaluate.ranking import (
    AGGREGATIONS,
    aggregate,
    fully_scored,
    past_context,
    ranking,
)
from prmkit.formats import read_as
from prmkit.formats.data import DataSection
from prmkit.grading import Outcome, equivalent, extract_answer, grade_many
from prmkit.models import model_as_input
from prmkit.prm.checks import check_prm
from prmkit.prm.model import load_prm
from prmkit.prm.score import score
from prmkit.prm.served import ServedPRM, score_served
from prmkit.runner import stage_config
from prmkit.steps import split_steps

GROUPINGS = ("equivalence", "string")
GROUP_BY = "equivalence"  # "1/2" and "0.5" are one answer; Qwen's rm_maj_eval compares strings


def group_by_setting():
    """The grouping setting, one definition for ``prmkit eval bon`` and a recipe's section."""
    return setting(GROUP_BY, "maj@N and the PRM-weighted vote group answers by equivalence "
                   "(math-verify: 1/2 and 0.5 vote together; option letters as letters) or by "
                   "exact string (Qwen's rm_maj_eval).", choices=GROUPINGS)


def default_ns(available: int) -> list[int]:
    """1, 2, 4, ... up to ``available``, and ``available`` itself."""
    ns, n = [], 1
    while n < available:
        ns.append(n)
        n *= 2
    return ns + [available]


def argmax_first(values: Sequence[float]) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def group_answers(answers: Sequence[str | None], by: str) -> list[list[int]]:
    """Indices grouped by equal answers, groups in order of first appearance.

    ``by="string"`` compares exact strings (None is its own string); ``by="equivalence"``
    compares with math-verify and leaves unreadable answers (None, empty) out of every group.
    """
    groups: list[list[int]] = []
    keys: list[str | None] = []
    for i, answer in enumerate(answers):
        if by == "string":
            match = next((g for g, k in enumerate(keys) if k == answer), None)
        elif by == "equivalence":
            if answer is None or not answer.strip():
                continue
            match = next((g for g, k in enumerate(keys) if equivalent(k, answer)), None)
        else:
            raise InputError(f"unknown grouping {by!r} ({' or '.join(GROUPINGS)})",
                             field="group_by")
        if match is None:
            groups.append([i])
            keys.append(answer)
        else:
            groups[match].append(i)
    return groups


def argmax_scored(values: Sequence[float | None]) -> int | None:
    """The earliest index of the highest value, None values left out; None when all are."""
    best = None
    for i, v in enumerate(values):
        if v is not None and (best is None or v > values[best]):
            best = i
    return best


def vote(groups: list[list[int]], weights: Sequence[float | None] | None = None) -> int | None:
    """The first member of the winning group (biggest, or heaviest with weights). A member
    weighted None (a candidate the PRM did not score whole) weighs nothing, and a group with
    no weighed member cannot win."""
    if weights is not None:
        groups = [g for g in groups if any(weights[i] is not None for i in g)]
    if not groups:
        return None
    size = [len(g) if weights is None else sum(weights[i] for i in g if weights[i] is not None)
            for g in groups]
    return groups[argmax_first(size)][0]


def _prm_scores(c: dict) -> list[float | None] | None:
    """The scores a response is ranked by: its step scores (null past the PRM's context), else
    its response-level ``score`` as one step; None when it has neither."""
    if c.get("step_scores"):
        return c["step_scores"]
    return [c["score"]] if "score" in c else None


def _answer(c: dict) -> str | None:
    if "answer" in c:
        return c["answer"]
    return extract_answer(c["text"]) if "text" in c else None


def _correctness(sets: list[dict], processes: int) -> list[list[Outcome]]:
    """Outcome of every candidate: its own ``correct`` flag when given, else graded."""
    pairs, where = [], []
    for s, record in enumerate(sets):
        for c, cand in enumerate(record["candidates"]):
            if "correct" not in cand:
                pairs.append((_answer(cand), record.get("gold_answer")))
                where.append((s, c))
    grades = dict(zip(where, grade_many(pairs, processes=processes)))
    out = []
    for s, record in enumerate(sets):
        row = []
        for c, cand in enumerate(record["candidates"]):
            if "correct" in cand:
                row.append(Outcome.CORRECT if cand["correct"] else Outcome.INCORRECT)
            else:
                row.append(grades[(s, c)].outcome if grades[(s, c)].reason != "gold-unparseable"
                           else None)  # None: the gold answer is unreadable
        out.append(row)
    return out


def _picks(cands: list[dict], answers: list[str | None], n: int, group_by: str,
           methods: Iterable[str]) -> dict[str, int | None]:
    """Index picked by each method among the first n candidates."""
    cands, answers = cands[:n], answers[:n]
    picks: dict[str, int | None] = {}
    groups = group_answers(answers, group_by)
    steps = [_prm_scores(c) for c in cands]
    for method in methods:
        if method == "maj":
            picks[method] = vote(groups)
            if picks[method] is None:  # nothing readable: the first response stands
                picks[method] = 0
        elif method == "response":
            # a candidate without a score (a judge with no verdict) is never picked
            picks[method] = argmax_scored([c["score"] for c in cands])
        elif method in AGGREGATIONS:  # None (no pick) when no candidate was scored whole
            picks[method] = argmax_scored([aggregate(method, s) for s in steps])
        elif method.startswith("vote_"):
            weights = [aggregate(method[5:], s) for s in steps]
            picks[method] = vote(groups, weights)
            if picks[method] is None:  # no readable answer scored whole: the best one stands
                picks[method] = argmax_scored(weights)
    return picks


def prm_methods(methods: Iterable[str]) -> list[str]:
    """The methods that rank by a PRM's step scores (and so depend on what fit its context)."""
    return [m for m in methods if m in AGGREGATIONS or m.startswith("vote_")]


def available_methods(sets: list[dict]) -> list[str]:
    cands = [c for record in sets for c in record["candidates"]]
    methods = ["maj"]
    if all(_prm_scores(c) for c in cands):
        methods += list(AGGREGATIONS) + [f"vote_{a}" for a in AGGREGATIONS]
    if all("score" in c for c in cands):
        methods.append("response")
    return methods


def min_on_final_step(sets: list[dict]) -> dict:
    """The paper's diagnostic over every candidate with step scores, scored whole
    (``prmkit.evaluate.diagnostics.min_on_final_step``, with ``past_context``), and per
    problem ([on the final step, responses]) for a paired bootstrap between PRMs."""
    def scored(record: dict) -> list:
        return [_prm_scores(c) for c in record["candidates"] if "step_scores" in c]
    out = diagnostics.min_on_final_step([s for record in sets for s in scored(record)])
    per_problem = {}
    for record in sets:
        one = diagnostics.min_on_final_step(scored(record))
        if one["n_responses"]:
            per_problem[record["id"]] = [round(one["share"] * one["n_responses"] / 100),
                                         one["n_responses"]]
    return {**out, "per_problem": per_problem}


def evaluate_set(sets: list[dict], *, ns: Sequence[int] | None = None,
                 group_by: str = GROUP_BY, processes: int = 1,
                 per_item: bool = False, methods: Sequence[str] | None = None) -> dict:
    """Best-of-N metrics of one benchmark's candidate sets; with ``per_item``, also ``items``:
    each problem's pick by every method at the largest N (for error analysis). ``methods``:
    only these of the available ones (a judge's score is no step score: ``response`` alone);
    pass@N and the random pick are always measured."""
    if not sets:
        raise InputError("no candidate sets")
    available = min(len(r["candidates"]) for r in sets)
    ns = list(ns) if ns else default_ns(available)
    too_big = [n for n in ns if n > available or n < 1]
    if too_big:
        raise InputError(f"N={too_big[0]} but some problem has only {available} candidates",
                         field="n")
    methods = [m for m in available_methods(sets) if methods is None or m in methods]
    ranked_by_prm = prm_methods(methods)
    outcomes = _correctness(sets, processes)
    hits = {m: {n: [] for n in ns} for m in methods + ["pass", "random"]}
    no_pick = {n: 0 for n in ns}  # problems none of whose first n candidates was scored whole
    unparseable = gold_unreadable = 0
    items = []
    for record, outcome in zip(sets, outcomes):
        if any(o is None for o in outcome):
            gold_unreadable += 1
            continue
        unparseable += sum(o is Outcome.UNPARSEABLE for o in outcome)
        answers = [_answer(c) for c in record["candidates"]]
        for n in ns:
            picks = _picks(record["candidates"], answers, n, group_by, methods)
            for method, pick in picks.items():  # no pick: a miss
                hits[method][n].append(pick is not None and outcome[pick] is Outcome.CORRECT)
            if ranked_by_prm and not any(fully_scored(_prm_scores(c))
                                         for c in record["candidates"][:n]):
                no_pick[n] += 1
            if per_item and n == max(ns):
                items.append({"id": record["id"], "n": n, "n_correct": sum(
                    o is Outcome.CORRECT for o in outcome[:n]), "picks": {
                        m: _pick_record(p, answers, outcome) for m, p in picks.items()}})
            hits["pass"][n].append(any(o is Outcome.CORRECT for o in outcome[:n]))
            hits["random"][n].append(sum(o is Outcome.CORRECT for o in outcome[:n]) / n)
    scored = len(sets) - gold_unreadable
    accuracy = {m: {n: (100.0 * sum(h) / len(h)
                        if h and not (m in ranked_by_prm and no_pick[n] == len(h)) else None)
                    for n, h in by_n.items()}
                for m, by_n in hits.items()}
    cut = past_context((c.get("step_scores") for r in sets for c in r["candidates"]),
                       "candidates")
    return {
        "n_problems": len(sets), "n_scored": scored, "gold_unparseable": gold_unreadable,
        "unparseable_answers": unparseable, "ns": ns, "group_by": group_by,
        "accuracy": accuracy, "min_on_final_step": min_on_final_step(sets),
        "past_context": {**cut, "no_pick": no_pick if ranked_by_prm else {},
                         "nothing_fit": bool(ranked_by_prm) and scored > 0
                         and no_pick[max(ns)] == scored},
        **({"items": items} if per_item else {}),
    }


def _pick_record(pick: int | None, answers: list, outcome: list) -> dict:
    """A method's pick for predictions.jsonl; no pick (nothing scored whole) is a miss."""
    if pick is None:
        return {"index": None, "answer": None, "correct": False,
                "reason": "no candidate has a score (none fits the PRM's context, or the "
                          "judge gave none a verdict)"}
    return {"index": pick, "answer": answers[pick], "correct": outcome[pick] is Outcome.CORRECT}


def average(per: Mapping[str, dict]) -> dict[str, dict[int, float | None]]:
    """Method -> N -> the mean of the benchmarks' accuracies (the paper's "Avg."), for the
    methods and N values every benchmark has; null where some benchmark has no value."""
    if not per:
        return {}
    shared_ns = sorted(set.intersection(*({int(n) for n in m["ns"]} for m in per.values())))
    shared_methods = set.intersection(*(set(m["accuracy"]) for m in per.values()))
    out = {}
    for method in sorted(shared_methods):
        out[method] = {}
        for n in shared_ns:
            values = [at(m, method, n) for m in per.values()]
            out[method][n] = (None if any(v is None for v in values)
                              else sum(values) / len(values))
    return out


def evaluate(benchmarks: Mapping[str, list[dict]], *, ns: Sequence[int] | None = None,
             group_by: str = GROUP_BY, processes: int = 1,
             per_item: bool = False, methods: Sequence[str] | None = None) -> dict:
    """Best-of-N metrics per benchmark and their ``average`` over benchmarks (see the module
    docstring)."""
    per = {name: evaluate_set(sets, ns=ns, group_by=group_by, processes=processes,
                              per_item=per_item, methods=methods)
           for name, sets in benchmarks.items()}
    return {"benchmarks": per, "average": average(per), "past_context": {
        "candidates": sum(m["past_context"]["candidates"] for m in per.values()),
        "steps": sum(m["past_context"]["steps"] for m in per.values()),
        "nothing_fit": all(m["past_context"]["nothing_fit"] for m in per.values())}}


# --- candidate sets ------------------------------------------------------------------------------

def load_candidates(source: str | Path | list[dict], fmt: str = "prmkit") -> list[dict]:
    """Candidate sets from prmkit's JSONL, another format (e.g. ``qwen_eval``), or records."""
    return source if isinstance(source, list) else read_as(source, fmt, "candidates")


def candidate_sets(solutions: list[dict], scores: Mapping[str, list]) -> list[dict]:
    """Sampled solutions as Best-of-N sets: a problem's solutions in sample order, graded,
    with one PRM's step scores."""
    sets: dict[str, dict] = {}
    for s in solutions:
        entry = sets.setdefault(s["problem_id"], {"id": s["problem_id"],
                                                  "gold_answer": s["gold_answer"],
                                                  "candidates": []})
        entry["candidates"].append({"answer": s["final_answer"], "steps": s["steps"],
                                    "correct": s["final_answer_correct"],
                                    "step_scores": scores[s["id"]]})
    return list(sets.values())


def metrics(benchmarks: Mapping[str, str | Path | list[dict]] | str | Path, *,
            fmt: str = "prmkit", ns: Sequence[int] | None = None,
            group_by: str = GROUP_BY, processes: int = 1, per_item: bool = False) -> dict:
    """Best-of-N metrics; ``benchmarks`` maps names to candidate files or records; with
    ``per_item``, each benchmark's picks per problem too (``items``)."""
    if not isinstance(benchmarks, Mapping):
        benchmarks = {Path(benchmarks).stem: benchmarks}
    sets = {name: load_candidates(src, fmt) for name, src in benchmarks.items()}
    return evaluate(sets, ns=ns, group_by=group_by, processes=processes, per_item=per_item)


# --- the command: prmkit eval bon ---------------------------------------------------------------

@dataclass(frozen=True)
class BonConfig:
    candidates: list[str] = setting(REQUIRED, "Candidate-set files, one a benchmark (named "
                                    "by its file stem).", positional=True)
    format: str = setting("prmkit", "Format of the candidate files: prmkit or qwen_eval.")
    n: list[int] | None = setting(None, "N values, e.g. 1,2,4,8 (default: 1, 2, 4, ... up to "
                                  "the set size).", ge=1)
    group_by: str = group_by_setting()
    processes: int = setting(1, "Worker processes for grading.", ge=1)
    model: str | None = setting(None, "A PRM folder: score every candidate's steps with it "
                                "first (their `steps`, or their `text` split on blank lines).")
    model_format: str | None = setting(None, "With --model: the PRM's input format (default: "
                                       "from the folder; a folder that records its format "
                                       "refuses another).")
    batch_size: int = setting(16, "With --model: solutions a forward batch.", ge=1)
    device: str = setting("auto", "With --model: auto (a GPU when there is one), cpu, cuda.")
    device_map: str | None = setting(None, "With --model: spread a PRM too large for one GPU "
                                     "over all of them (auto, balanced, sequential).")
    dtype: str = setting("auto", "With --model: auto (bfloat16 on a GPU, float32 on the CPU), "
                         "float32, bfloat16 or float16.",
                         choices=("auto", "float32", "bfloat16", "float16"))
    base_url: str | None = setting(None, "With --model: the PRM is served there (vLLM's pooling "
                                   "server or prmkit serve --prm) under that name; the "
                                   "candidates are laid out here (prmkit.prm.served).")
    tokenizer: str | None = setting(None, "With --base-url: the PRM's tokenizer, a folder or "
                                    "hub id (default: --model).")

    def validate(self) -> "BonConfig":
        config.check_values(self)
        names = [Path(p).stem for p in self.candidates]
        if len(set(names)) != len(names):
            raise InputError("two candidate files share a name; benchmarks are named by file "
                             "stem", field="candidates")
        return self


def run(cfg: BonConfig, out: str | Path | None = None, *, force: bool = False) -> dict:
    """The metrics of a ``prmkit eval bon`` config (into ``out`` if given)."""
    cfg.validate()
    if cfg.model and cfg.base_url:  # its tokenizer and format, before any work
        served_prm(cfg).layout()
    elif cfg.model:  # a broken PRM folder fails here, in one line, before any work
        check_prm(cfg.model, cfg.model_format)
    files = {Path(p).stem: p for p in cfg.candidates}
    # how fast and where it runs changes no number
    model, snapshot = model_as_input(cfg.model) if cfg.model and not cfg.base_url \
        else (None, {})
    settings = stage_config("eval.bon", cfg,
                            drop=("processes", "batch_size", "device", "device_map"), **snapshot)
    inputs = {**files, **({"model": model} if model else {})}

    def compute(per_item: bool) -> dict:
        sets = {name: load_candidates(path, cfg.format) for name, path in files.items()}
        for name, records in sets.items():
            if not records:
                raise InputError("no candidate sets in this file", path=files[name])
        if cfg.model:
            score_candidates(sets, cfg, files)
        return evaluate(sets, ns=cfg.n, group_by=cfg.group_by, processes=cfg.processes,
                        per_item=per_item)
    return into(out, settings, inputs, force, compute,
                lambda measured: [{"benchmark": name, **item}
                                  for name, m in measured["benchmarks"].items()
                                  for item in m.pop("items")])


def score_candidates(sets: Mapping[str, list[dict]], cfg: BonConfig,
                     paths: Mapping[str, str | Path] | None = None) -> None:
    """Every candidate's ``step_scores`` from the PRM of ``cfg.model``, in place: one forward
    pass a candidate, its ``steps`` or its ``text`` split on blank lines. ``paths``: the file
    each set came from, for the errors."""
    problems, steps, where = [], [], []
    for name, records in sets.items():
        for record in records:
            if not record.get("problem"):
                raise InputError(f"set {record['id']!r} has no problem text to score with",
                                 path=(paths or {}).get(name, name), field="problem")
            for c in record["candidates"]:
                pieces = c.get("steps") or split_steps(c.get("text") or "")
                if not pieces:
                    raise InputError(f"set {record['id']!r}: a candidate has neither steps nor "
                                     "text to score", path=(paths or {}).get(name, name),
                                     field="candidates")
                problems.append(record["problem"])
                steps.append(pieces)
                where.append(c)
    if cfg.base_url:
        rows = score_served(served_prm(cfg), problems, steps, batch_size=cfg.batch_size)
    else:
        prm = load_prm(cfg.model, fmt=cfg.model_format, dtype=cfg.dtype, device=cfg.device,
                       device_map=cfg.device_map)
        rows = score(problems, steps, prm, batch_size=cfg.batch_size)
    for candidate, row in zip(where, rows):
        candidate["step_scores"] = row


def served_prm(cfg: BonConfig) -> ServedPRM:
    return ServedPRM(cfg.base_url, cfg.model, cfg.tokenizer or cfg.model, cfg.model_format)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.1f}"


METHOD_ORDER = ("pass", "maj", "random", "last", "min", "prod", "mean", "response",
                "vote_last", "vote_min", "vote_prod", "vote_mean")


def accuracy_table(name: str, accuracy: Mapping[str, Mapping], ns: list[int]) -> Table:
    table = Table(title=f"Best-of-N accuracy: {name}")
    table.add_column("method")
    for n in ns:
        table.add_column(f"N={n}", justify="right")
    known = sorted(accuracy, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER
                   else len(METHOD_ORDER))
    for method in known:
        by_n = {int(k): v for k, v in accuracy[method].items()}
        table.add_row(method, *(_fmt(by_n.get(n)) for n in ns))
    return table


def show(measured: dict, console) -> None:
    """Each benchmark's accuracy table and counts; their average when there are several."""
    for name, m in measured["benchmarks"].items():
        console.print(accuracy_table(name, m["accuracy"], [int(k) for k in m["ns"]]))
        final = m["min_on_final_step"]
        share = "—" if final["share"] is None else f"{final['share']:.1f}%"
        console.print(f"{name}: {m['n_scored']}/{m['n_problems']} problems scored, "
                      f"{m['gold_unparseable']} with unreadable gold, {m['unparseable_answers']} "
                      f"unreadable answers; lowest step score on the final step: {share} "
                      f"of {final['n_responses']} multi-step responses scored whole")
        for line in past_context_warnings(name, m):
            console.print(f"warning: {line}", style="bold yellow", markup=False,
                          highlight=False)
    if len(measured["benchmarks"]) > 1:
        average = measured["average"]
        ns = sorted({int(k) for by_n in average.values() for k in by_n})
        console.print(accuracy_table("average", average, ns))
        if ns:
            console.print(benchmarks_table(measured, ns[-1]))


def benchmarks_table(measured: dict, n: int) -> Table:
    """The paper's Table 6 layout: a row a method, a column a benchmark, then "Avg." (the mean
    of the benchmarks' accuracies), at one N."""
    per, average = measured["benchmarks"], measured["average"]
    table = Table(title=f"Best-of-{n} accuracy by benchmark")
    table.add_column("method")
    for name in per:
        table.add_column(name, justify="right")
    table.add_column("Avg.", justify="right")
    for method in sorted(average, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER
                         else len(METHOD_ORDER)):
        table.add_row(method, *(_fmt(at(m, method, n)) for m in per.values()),
                      _fmt(at({"accuracy": average, "ns": [n]}, method, n)))
    return table


def past_context_warnings(name: str, measured: dict) -> list[str]:
    """What the steps past the PRM's context did to one benchmark's metrics, in words (nothing
    when every candidate fit)."""
    cut = measured.get("past_context") or {}
    if not cut.get("candidates"):
        return []
    if cut.get("nothing_fit"):
        return [f"{name}: no candidate fits the PRM's context ({cut['candidates']} candidates, "
                f"{cut['steps']} steps past it): the PRM methods are null"]
    lines = [f"{name}: {cut['candidates']} candidates have {cut['steps']} steps past the PRM's "
             "context; the PRM methods pick only among candidates scored whole, and the "
             "final-step diagnostic leaves the others out"]
    without = {int(n): k for n, k in (cut.get("no_pick") or {}).items() if k}
    if without:
        lines.append(f"{name}: problems with no candidate scored whole (no PRM pick, counted "
                     "as misses): " + ", ".join(f"{k} at N={n}"
                                                for n, k in sorted(without.items())))
    return lines


# --- in a recipe: evaluate: {bon: ...} -------------------------------------------------------------

@dataclass(frozen=True)
class BestOfNSection:
    sets: dict = setting({}, "Set name -> {path, format, limit}: problems whose candidates the "
                         "policy samples.", each=DataSection)
    n: int = setting(8, "Candidates a problem.", ge=1)
    ns: list[int] | None = setting(None, "N values (default: 1, 2, 4, ... up to n).", ge=1)
    group_by: str = group_by_setting()
    sample: dict = setting({}, "Sampling settings of the candidates, over the recipe's sample "
                           "section (temperature, max_new_tokens, ...).")


def solutions(section: BestOfNSection, run: PipelineRun) -> dict[str, list[dict]]:
    """Each set's candidates: the policy's ``n`` graded solutions a problem, in
    ``bon-<set>/`` (its problems, and the sample stage)."""
    groups = {}
    for name, data in section.sets.items():
        groups[name] = run.sample(f"Best-of-N candidates ({name})", data,
                                  run.out / f"bon-{rundir.slug(name)}",
                                  {**section.sample, "n": section.n})
    return groups


def measure(section: BestOfNSection, groups: dict[str, list[dict]],
            scores: dict[str, dict[str, list]]) -> dict:
    """One PRM on every set: Best-of-N accuracies with every problem's picks (for a paired
    bootstrap between PRMs), and how it ranks the candidates of one problem (within-problem
    AUC)."""
    return {name: {"bon": evaluate_set(candidate_sets(solutions, scores[name]), ns=section.ns,
                                       group_by=section.group_by, per_item=True),
                   "ranking": ranking(solutions, scores[name])}
            for name, solutions in groups.items()}


def summary(section: BestOfNSection, groups: dict[str, list[dict]]) -> dict:
    return {name: {"n_problems": len({s["problem_id"] for s in solutions}),
                   "n_solutions": len(solutions)} for name, solutions in groups.items()}


# --- in the report --------------------------------------------------------------------------------

REPORTED = ("last", "min", "prod")  # the paper's aggregations


def at(measured: dict, method: str, n: int | None = None) -> float | None:
    """Accuracy of a method at N (default: the largest N), whatever JSON did to the keys."""
    accuracy = measured["accuracy"].get(method, {})
    n = n if n is not None else max(measured["ns"])
    return accuracy.get(n, accuracy.get(str(n)))


def tables(results: dict) -> list[ReportTable]:
    """One table a set: every PRM's Best-of-N at the largest N, then the references."""
    out = []
    prms = results["prms"]
    for set_name, size in results["benchmarks"]["bon"].items():
        by_prm = {name: prm["bon"][set_name]["bon"] for name, prm in prms.items()}
        if not by_prm:
            continue
        first = next(iter(by_prm.values()))
        n = max(first["ns"])
        head = ["PRM", *[f"BoN@{n} {a}" for a in REPORTED], f"BoN@{n} PRM vote (min)",
                "min on final step"]
        rows = [[name, *[percent(at(m, a, n)) for a in REPORTED], percent(at(m, "vote_min", n)),
                 percent(m["min_on_final_step"]["share"])] for name, m in by_prm.items()]
        for label, method in ((f"random pick@{n} (no PRM)", "random"),
                              (f"maj@{n} (no PRM)", "maj"), (f"pass@{n} (oracle)", "pass")):
            rows.append([label, *[percent(at(first, method, n))] * (len(REPORTED) + 1), ""])
        out.append(ReportTable(
            f"Best-of-N: {set_name} ({size['n_problems']} problems x {n} candidates)", head, rows,
            "A PRM picks the candidate whose aggregated step score is highest (PRM vote: "
            "answers weighted by their candidates' min scores). Min on final step: the share "
            "of multi-step candidates whose lowest step score is their last step."
            + past_context_legend(by_prm)))
    if (overview := sets_table(results)) is not None:
        out.append(overview)
    return out


def sets_table(results: dict) -> ReportTable | None:
    """With several sets, the paper's Table 6 layout: each PRM's Best-of-N at the largest N
    every set has, a column a set, then "Avg." (the mean over the sets); None with one set."""
    prms, names = results["prms"], list(results["benchmarks"]["bon"])
    if len(names) < 2 or not prms:
        return None
    by_prm = {name: {s: prm["bon"][s]["bon"] for s in names} for name, prm in prms.items()}
    first = next(iter(by_prm.values()))
    shared = set.intersection(*({int(n) for n in m["ns"]} for m in first.values()))
    if not shared:
        return None
    n = max(shared)
    rows = []
    for name, per in by_prm.items():
        mean = average(per)
        for aggregation in (*REPORTED, "vote_min"):
            rows.append([f"{name}: {aggregation}", *[percent(at(m, aggregation, n))
                                                      for m in per.values()],
                         percent(mean.get(aggregation, {}).get(n))])
    mean = average(first)
    for label, method in (("random pick (no PRM)", "random"), (f"maj@{n} (no PRM)", "maj"),
                          (f"pass@{n} (oracle)", "pass")):
        rows.append([label, *[percent(at(m, method, n)) for m in first.values()],
                     percent(mean.get(method, {}).get(n))])
    return ReportTable(
        f"Best-of-{n} over the sets", ["PRM: aggregation", *names, "Avg."], rows,
        "Avg.: the mean of the sets' accuracies (each set counts once, as the paper's Table 6 "
        "\"Avg.\"); – where some set has no value.")


def past_context_legend(by_prm: Mapping[str, dict]) -> str:
    """A sentence for the PRMs some of whose candidates did not fit their context ("" when
    all fit): the PRM picks only among candidates it scored whole."""
    cut = {name: (m.get("past_context") or {}) for name, m in by_prm.items()}
    cut = {name: c for name, c in cut.items() if c.get("candidates")}
    if not cut:
        return ""
    return (" Steps past a PRM's context: " + "; ".join(
        f"{name} {c['candidates']} candidates ({c['steps']} steps)" for name, c in cut.items())
        + ". A PRM picks only among the candidates it scored whole; a problem with none "
        "counts as a miss, and the final-step share leaves them out.")


def plots(results: dict) -> dict[str, bytes]:
    """Accuracy against N: a row a set, a panel an aggregation, with the references."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    prms, sets = results["prms"], list(results["benchmarks"]["bon"])
    if not prms or not sets:
        return {}
    fig, axes = plt.subplots(len(sets), len(REPORTED), squeeze=False, sharey="row",
                             figsize=(4.2 * len(REPORTED), 3.6 * len(sets)))
    for row, set_name in zip(axes, sets):
        by_prm = {name: prm["bon"][set_name]["bon"] for name, prm in prms.items()}
        first = next(iter(by_prm.values()))
        ns = first["ns"]
        for ax, aggregation in zip(row, REPORTED):
            for name, m in by_prm.items():
                ax.plot(ns, [at(m, aggregation, n) for n in ns], marker="o", label=name)
            for method, style, colour in (("random", "-.", "grey"), ("maj", "--", "black"),
                                          ("pass", ":", "black")):
                ax.plot(ns, [at(first, method, n) for n in ns], linestyle=style, color=colour,
                        label=f"{method}@N" if method != "random" else "random pick")
            ax.set_xscale("log", base=2)
            ax.set_xticks(ns, [str(n) for n in ns])
            ax.set(title=f"{set_name}: {aggregation} aggregation", xlabel="N")
            ax.grid(alpha=0.3)
        row[0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    return {"bon": png(fig)}


BENCHMARK = Benchmark(
    name="bon",
    help="Best-of-N: maj@N, pass@N, random pick, PRM selection (last/min/prod/mean) and "
         "PRM-weighted vote.",
    config=BonConfig, run=run, show=show,
    section=BestOfNSection, solutions=solutions, measure=measure, summary=summary,
    tables=tables, plots=plots)
