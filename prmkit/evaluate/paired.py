"""Is one PRM better than another by more than the noise? A paired bootstrap over problems.

Two PRMs measured on the same solutions differ partly by skill and partly by which problems
happened to be drawn. Resampling whole problems (with replacement) and recomputing both PRMs'
metric on each draw keeps the pairing: a problem that is easy for both counts for both in the
same draw, so the interval of the *difference* is far tighter than the two intervals side by
side. A difference is significant at 95% when its interval excludes zero.

The metrics here are ratios of per-problem sums: within-problem AUC (wins / pairs, from
``ranking.within_problem_auc``'s ``per_problem``) and Best-of-N accuracy (right picks /
problems). ProcessBench F1 has its own (``processbench.f1_gap``): F1 is not a ratio of sums.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

BOOTSTRAP = 1000


def ratio_gap(first: Mapping[str, Sequence[float]], second: Mapping[str, Sequence[float]], *,
              bootstrap: int = BOOTSTRAP, seed: int = 0, confidence: float = 0.95) -> dict:
    """``sum(num)/sum(den)`` of ``first`` minus that of ``second`` (problem -> [numerator,
    denominator]), with a paired percentile bootstrap interval over the problems both name.

    A problem may count for one side only (a denominator of 0 on the other: consensus keeps no
    solution of it, say); each side's ratio is over its own sums, so the gap is between the two
    metrics as reported, and a draw resamples whole problems for both. Returns ``{"gap", "low",
    "high", "problems"}``; all None but ``problems`` when no problem counts for both sides."""
    keys = sorted(k for k in first.keys() & second.keys() if first[k][1] or second[k][1])
    rows = [(first[k][0], first[k][1], second[k][0], second[k][1]) for k in keys]
    if not any(r[1] for r in rows) or not any(r[3] for r in rows):
        return {"gap": None, "low": None, "high": None, "problems": 0}

    def gap(drawn: list[tuple]) -> float | None:
        left, right = sum(r[1] for r in drawn), sum(r[3] for r in drawn)
        if not left or not right:  # a draw with nothing on one side says nothing
            return None
        return sum(r[0] for r in drawn) / left - sum(r[2] for r in drawn) / right
    rng = random.Random(seed)
    draws = sorted(g for g in (gap([rows[rng.randrange(len(rows))] for _ in rows])
                               for _ in range(bootstrap)) if g is not None)
    tail = (1 - confidence) / 2
    return {"gap": gap(rows), "low": draws[int(tail * (len(draws) - 1))],
            "high": draws[int((1 - tail) * (len(draws) - 1))], "problems": len(keys)}


def significance(gap: Mapping) -> str:
    """``"+"`` when the interval lies above zero, ``"-"`` below it, ``"0"`` when it holds zero
    (or nothing was measured)."""
    if gap.get("low") is None:
        return "0"
    return "+" if gap["low"] > 0 else "-" if gap["high"] < 0 else "0"
