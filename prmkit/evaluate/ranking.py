"""How well a PRM ranks the solutions *of one problem*: within-problem AUC.

A PRM's job in Best-of-N (and in RL) is to order the solutions of one problem. A pooled AUC
over all solutions rewards a model that only knows which problems are hard: it can give every
solution of a hard problem a low score and still look good. The within-problem AUC compares
only solutions of the same problem:

    AUC = P(score(good) > score(bad))   over every (good, bad) pair of one problem's solutions,
                                        pooled over problems; ties count one half

0.5 is chance, 1.0 a perfect ranking. Problems whose solutions are all good or all bad give no
pairs and do not count. The interval is a percentile bootstrap over problems (resampling whole
problems keeps the pairs of a problem together), seeded, so a report is reproducible.

"Good" is whatever the caller says: a sound process (no step wrong) or a right final answer.
``ranking`` measures both for sampled solutions, their step scores aggregated into one score
the way Best-of-N does (``AGGREGATIONS``), and where the step truth says where each first error
came from (``truth.first_error_origin``), sound solutions against each origin's flawed ones.

Steps past a PRM's context (scored null: ``prmkit.prm.score`` drops whole steps from the end)
are never silently dropped. A solution with an unscored step has no aggregated score
(``aggregate``): its final step is unknown to ``last``, and ``min``, ``prod`` or ``mean`` of a
prefix is not the solution's score. The PRM did not read it whole, so it has no opinion of it:
such solutions are left out of the pairs (as a solution with no score is), and counted in
``past_context`` (``{"solutions", "steps"}``) beside the AUCs; every evaluation of prmkit
reports the same count (``prmkit.evaluate.bon``, ``processbench``, ``diagnostics``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence

# how a solution's step scores become one score (Best-of-N's aggregations)
AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda s: s[-1],
    "min": min,
    "prod": math.prod,
    "mean": lambda s: sum(s) / len(s),
}


def fully_scored(step_scores: Sequence[float | None] | None) -> bool:
    """Whether a PRM scored every step (none past its context, null)."""
    return bool(step_scores) and all(s is not None for s in step_scores)


def aggregate(aggregation: str, step_scores: Sequence[float | None] | None) -> float | None:
    """One score from a solution's step scores; None unless every step was scored (a step
    past the context leaves the solution's score unknown, not the score of a prefix)."""
    return AGGREGATIONS[aggregation](step_scores) if fully_scored(step_scores) else None


def past_context(rows: Iterable[Sequence[float | None] | None], unit: str) -> dict:
    """How many of ``rows`` (step-score lists) have steps past a PRM's context (null), and how
    many such steps: ``{unit: k, "steps": m}``."""
    cut = [sum(s is None for s in row) for row in rows if row]
    return {unit: sum(1 for n in cut if n), "steps": sum(cut)}


def _pair_counts(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, int]:
    """(wins, pairs) of one problem: wins counts ties as one half."""
    good = [s for s, ok in zip(scores, labels) if ok]
    bad = [s for s, ok in zip(scores, labels) if not ok]
    wins = 0.0
    for g in good:
        for b in bad:
            wins += 1.0 if g > b else 0.5 if g == b else 0.0
    return wins, len(good) * len(bad)


def within_problem_auc(groups: Mapping[str, Sequence[tuple[float, bool]]], *,
                       bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Within-problem AUC of ``groups`` (problem -> [(score, good)]), with a bootstrap interval.

    Returns ``{"auc", "low", "high", "pairs", "problems", "per_problem"}``; ``auc`` is None when
    no problem has both a good and a bad solution. ``per_problem`` (problem -> [wins, pairs])
    lets two PRMs' AUCs on the same solutions be compared by a paired bootstrap
    (``prmkit.evaluate.paired``)."""
    per_problem = {}
    for problem, members in groups.items():
        wins, pairs = _pair_counts([s for s, _ in members], [bool(ok) for _, ok in members])
        if pairs:
            per_problem[problem] = [wins, pairs]
    counts = list(per_problem.values())
    if not counts:
        return {"auc": None, "low": None, "high": None, "pairs": 0, "problems": 0,
                "per_problem": {}}
    total_wins, total_pairs = sum(w for w, _ in counts), sum(p for _, p in counts)
    rng, estimates = random.Random(seed), []
    for _ in range(bootstrap):
        draw = [counts[rng.randrange(len(counts))] for _ in counts]
        estimates.append(sum(w for w, _ in draw) / sum(p for _, p in draw))
    estimates.sort()
    tail = (1 - confidence) / 2
    low = estimates[int(tail * (len(estimates) - 1))] if estimates else None
    high = estimates[int((1 - tail) * (len(estimates) - 1))] if estimates else None
    return {"auc": total_wins / total_pairs, "low": low, "high": high, "pairs": total_pairs,
            "problems": len(counts), "per_problem": per_problem}


def pooled_auc(pairs: Sequence[tuple[float, bool]]) -> float | None:
    """The usual AUC over all solutions at once (for contrast with the within-problem one)."""
    wins, count = _pair_counts([s for s, _ in pairs], [bool(ok) for _, ok in pairs])
    return wins / count if count else None


def solution_groups(solutions: Sequence[dict], scores: Mapping[str, float], good,
                    keep=lambda s: True) -> dict:
    """Group scored solutions by ``problem_id``: problem -> [(score, good(solution))], over the
    solutions ``keep`` takes. Solutions without a score (None: nothing scored) are left out."""
    groups: dict[str, list[tuple[float, bool]]] = {}
    for s in solutions:
        score = scores.get(s["id"])
        if score is not None and keep(s):
            groups.setdefault(s["problem_id"], []).append((score, bool(good(s))))
    return groups


def first_error_origin(solution: dict) -> str | None:
    """Where a solution's first error came from, as its step truth says (None: no error, or a
    world that does not say)."""
    return (solution.get("truth") or {}).get("first_error_origin")


def ranking(solutions: Sequence[dict], by_id: Mapping[str, list], aggregation: str = "min"
            ) -> dict:
    """How a PRM ranks the solutions of one problem, their step scores aggregated: a right
    answer against a wrong one, and where the step truth is known (``truth.label``), a sound
    process against a flawed one. A solution with steps past the PRM's context has no score
    and is left out of the pairs; ``past_context`` counts them."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; known: {list(AGGREGATIONS)}")
    scores = {s["id"]: aggregate(aggregation, by_id.get(s["id"])) for s in solutions}
    out = {"aggregation": aggregation,
           "past_context": past_context((by_id.get(s["id"]) for s in solutions), "solutions"),
           "answer": within_problem_auc(solution_groups(
               solutions, scores, lambda s: s["final_answer_correct"]))}
    if solutions and all(isinstance(s.get("truth"), dict) for s in solutions):
        sound = lambda s: s["truth"]["label"] < 0
        out["process"] = within_problem_auc(solution_groups(solutions, scores, sound))
        # sound against the flawed solutions whose first error has one origin (a slip the
        # policy would doubt, or a misconception it believes), the other flawed ones left out
        origins = sorted({o for s in solutions if (o := first_error_origin(s))})
        if origins:
            out["process_by_origin"] = {
                origin: within_problem_auc(solution_groups(
                    solutions, scores, sound,
                    keep=lambda s, o=origin: sound(s) or first_error_origin(s) == o))
                for origin in origins}
    return out
