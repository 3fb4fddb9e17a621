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
  response   the response with the highest response-level ``score``.
  vote_<agg> PRM-weighted majority vote: answers grouped as for ``maj``, each group weighted by
             the sum of its members' aggregated scores; the heaviest group wins.
Ties between responses always go to the earliest one (Qwen's rm@k uses ``list.index(max)``).
Accuracy at N uses the first N responses of every problem, as Qwen's evaluation does.

Answers are grouped by equivalence (math-verify) by default, or by exact string
(``group_by="string"``, which is Qwen's maj@k). An answer that cannot be read votes for nothing
(in equivalence grouping) and is never correct; such answers are counted. A problem whose gold
answer cannot be read is reported and left out of the accuracies.

Diagnostic (the paper's): the share of responses with 2+ scored steps whose lowest step score
is on the final step (ties: the earliest lowest step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from prmkit.errors import InputError
from prmkit.grading import Outcome, equivalent, extract_answer, grade_many

AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda s: s[-1],
    "min": min,
    "prod": math.prod,
    "mean": lambda s: sum(s) / len(s),
}


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
            raise InputError(f"unknown grouping {by!r} (string or equivalence)", field="group_by")
        if match is None:
            groups.append([i])
            keys.append(answer)
        else:
            groups[match].append(i)
    return groups


def vote(groups: list[list[int]], weights: Sequence[float] | None = None) -> int | None:
    """The first member of the winning group (biggest, or heaviest with weights)."""
    if not groups:
        return None
    size = [len(g) if weights is None else sum(weights[i] for i in g) for g in groups]
    return groups[argmax_first(size)][0]


def _step_scores(c: dict) -> list[float] | None:
    """The scores a response is ranked by; steps past the PRM's context (null) are left out,
    as ``prmkit.labels`` leaves unknown steps out."""
    if c.get("step_scores"):
        scored = [s for s in c["step_scores"] if s is not None]
        return scored or None
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
    steps = [_step_scores(c) for c in cands]
    for method in methods:
        if method == "maj":
            picks[method] = vote(groups)
            if picks[method] is None:  # nothing readable: the first response stands
                picks[method] = 0
        elif method == "response":
            picks[method] = argmax_first([c["score"] for c in cands])
        elif method in AGGREGATIONS:
            picks[method] = argmax_first([AGGREGATIONS[method](s) for s in steps])
        elif method.startswith("vote_"):
            weights = [AGGREGATIONS[method[5:]](s) for s in steps]
            picks[method] = vote(groups, weights)
            if picks[method] is None:
                picks[method] = argmax_first(weights)
    return picks


def available_methods(sets: list[dict]) -> list[str]:
    cands = [c for record in sets for c in record["candidates"]]
    methods = ["maj"]
    if all(_step_scores(c) for c in cands):
        methods += list(AGGREGATIONS) + [f"vote_{a}" for a in AGGREGATIONS]
    if all("score" in c for c in cands):
        methods.append("response")
    return methods


def min_on_final_step(sets: list[dict]) -> dict:
    multi = [s for record in sets for c in record["candidates"]
             if (s := _step_scores(c)) and "step_scores" in c and len(s) >= 2]
    on_final = sum(1 for s in multi if min(range(len(s)), key=s.__getitem__) == len(s) - 1)
    return {"n_responses": len(multi), "share": 100.0 * on_final / len(multi) if multi else None}


def evaluate_set(sets: list[dict], *, ns: Sequence[int] | None = None,
                 group_by: str = "equivalence", processes: int = 1,
                 per_item: bool = False) -> dict:
    """Best-of-N metrics of one benchmark's candidate sets; with ``per_item``, also ``items``:
    each problem's pick by every method at the largest N (for error analysis)."""
    if not sets:
        raise InputError("no candidate sets")
    available = min(len(r["candidates"]) for r in sets)
    ns = list(ns) if ns else default_ns(available)
    too_big = [n for n in ns if n > available or n < 1]
    if too_big:
        raise InputError(f"N={too_big[0]} but some problem has only {available} candidates",
                         field="n")
    methods = available_methods(sets)
    outcomes = _correctness(sets, processes)
    hits = {m: {n: [] for n in ns} for m in methods + ["pass", "random"]}
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
            for method, pick in picks.items():
                hits[method][n].append(outcome[pick] is Outcome.CORRECT)
            if per_item and n == max(ns):
                items.append({"id": record["id"], "n": n, "n_correct": sum(
                    o is Outcome.CORRECT for o in outcome[:n]), "picks": {
                        m: {"index": p, "answer": answers[p],
                            "correct": outcome[p] is Outcome.CORRECT}
                        for m, p in picks.items()}})
            hits["pass"][n].append(any(o is Outcome.CORRECT for o in outcome[:n]))
            hits["random"][n].append(sum(o is Outcome.CORRECT for o in outcome[:n]) / n)
    scored = len(sets) - gold_unreadable
    accuracy = {m: {n: (100.0 * sum(h) / len(h) if h else None) for n, h in by_n.items()}
                for m, by_n in hits.items()}
    return {
        "n_problems": len(sets), "n_scored": scored, "gold_unparseable": gold_unreadable,
        "unparseable_answers": unparseable, "ns": ns, "group_by": group_by,
        "accuracy": accuracy, "min_on_final_step": min_on_final_step(sets),
        **({"items": items} if per_item else {}),
    }


def evaluate(benchmarks: Mapping[str, list[dict]], *, ns: Sequence[int] | None = None,
             group_by: str = "equivalence", processes: int = 1,
             per_item: bool = False) -> dict:
    """Best-of-N metrics per benchmark and their average over benchmarks."""
    per = {name: evaluate_set(sets, ns=ns, group_by=group_by, processes=processes,
                              per_item=per_item)
           for name, sets in benchmarks.items()}
    shared_ns = sorted(set.intersection(*(set(m["ns"]) for m in per.values())))
    shared_methods = set.intersection(*(set(m["accuracy"]) for m in per.values()))
    average = {}
    for method in sorted(shared_methods):
        average[method] = {}
        for n in shared_ns:
            values = [m["accuracy"][method][n] for m in per.values()]
            values = [v for v in values if v is not None]
            average[method][n] = sum(values) / len(values) if values else None
    return {"benchmarks": per, "average": average}
