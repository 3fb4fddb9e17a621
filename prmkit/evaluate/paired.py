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

from collections.abc import Mapping, Sequence

import numpy as np

BOOTSTRAP = 1000


def resampled_sums(rows: Sequence[Sequence[float]], *, bootstrap: int = BOOTSTRAP,
                   seed: int = 0) -> np.ndarray:
    """Column sums of ``rows`` (one a problem) over ``bootstrap`` draws of as many problems,
    with replacement: (bootstrap, columns). Seeded, so a report is reproducible; vectorised,
    since a report draws tens of these."""
    table = np.asarray(rows, dtype=float)
    drawn = np.random.default_rng(seed).integers(0, len(table), size=(bootstrap, len(table)))
    return table[drawn].sum(axis=1)


def interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap values."""
    ordered = np.sort(values)
    tail = (1 - confidence) / 2
    return (float(ordered[int(tail * (len(ordered) - 1))]),
            float(ordered[int((1 - tail) * (len(ordered) - 1))]))


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
    total = np.asarray(rows, dtype=float).sum(axis=0)
    sums = resampled_sums(rows, bootstrap=bootstrap, seed=seed)
    sums = sums[(sums[:, 1] > 0) & (sums[:, 3] > 0)]  # a draw with nothing on one side
    low, high = interval(sums[:, 0] / sums[:, 1] - sums[:, 2] / sums[:, 3], confidence)
    return {"gap": float(total[0] / total[1] - total[2] / total[3]), "low": low, "high": high,
            "problems": len(keys)}


def significance(gap: Mapping) -> str:
    """``"+"`` when the interval lies above zero, ``"-"`` below it, ``"0"`` when it holds zero
    (or nothing was measured)."""
    if gap.get("low") is None:
        return "0"
    return "+" if gap["low"] > 0 else "-" if gap["high"] < 0 else "0"
