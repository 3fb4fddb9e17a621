"""Label sources: where a record says which step is the first wrong one, and how good that is.

A *source* is a field of a solution record, named by a dotted path, in one of two shapes:

    per-step labels   a list, one entry a step: booleans, 0/1, or floats compared with a
                      threshold (``mc.values:0.5``: a step is positive when its value is above
                      0.5; the default threshold is 0). Null entries are unknown steps and are
                      skipped. The first error is the first negative step, -1 when none.
    earliest error    an integer (``judge.first_error``, ProcessBench's ``label``); null means
                      the source has no verdict on this solution.

Quality against a reference (the exact truth of the toy world): first-error accuracy over the
solutions the source has a verdict on, and the precision and recall of its negative steps, where
a verdict ``e >= 0`` calls steps ``e, e+1, ...`` negative (the PRM convention: 1 before the first
error, 0 from it on).
"""

from __future__ import annotations

from dataclasses import dataclass

from prmkit.errors import InputError

MISSING = object()


@dataclass(frozen=True)
class Source:
    path: str
    threshold: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> "Source":
        path, _, threshold = spec.partition(":")
        if not path or any(not part for part in path.split(".")):
            raise InputError(f"{spec!r}: expected a dotted field path, like mc.hard or "
                             "mc.values:0.5", field="sources")
        try:
            return cls(path, float(threshold) if threshold else 0.0)
        except ValueError:
            raise InputError(f"{spec!r}: the threshold after ':' must be a number",
                             field="sources") from None

    @property
    def spec(self) -> str:
        return self.path if self.threshold == 0.0 else f"{self.path}:{self.threshold:g}"

    def value(self, record: dict):
        value = record
        for part in self.path.split("."):
            if not isinstance(value, dict) or part not in value:
                return MISSING
            value = value[part]
        return value

    def first_error(self, record: dict) -> int | None:
        """The first wrong step this source names; None when it has no verdict.

        Raises ValueError when the field is absent or of a shape no source has."""
        value = self.value(record)
        if value is MISSING:
            raise ValueError("missing")
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("expected a step index or a list of step labels, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, list):
            for i, label in enumerate(value):
                if label is None:
                    continue
                if isinstance(label, bool):
                    label = int(label)
                if not isinstance(label, (int, float)):
                    raise ValueError(f"step {i}: expected a number or a boolean")
                if not label > self.threshold:
                    return i
            return -1
        raise ValueError(f"expected a step index or a list of step labels, got "
                         f"{type(value).__name__}")


def step_targets(record: dict, source: Source, *, soft: bool = False,
                 include_after_error: bool = False) -> list[float | None]:
    """One training target a step from a source, None where a step is left out: null labels,
    and steps after the first negative unless ``include_after_error``. Hard targets are 0/1
    (negative: at most the threshold); soft targets are the value itself, never rounded. An
    earliest-error index gives 1 before it, 0 at it, and nothing after.

    Raises ValueError when the field is absent or of the wrong shape."""
    value = source.value(record)
    n = len(record["steps"])
    if value is MISSING:
        raise ValueError("missing")
    if value is None:
        return [None] * n
    if isinstance(value, int) and not isinstance(value, bool):
        return [1.0] * n if value < 0 else [1.0] * value + [0.0] + [None] * (n - value - 1)
    if not isinstance(value, list) or len(value) != n:
        raise ValueError(f"expected {n} step labels or an index")
    targets: list[float | None] = []
    seen_negative = False
    for v in value:
        if v is None or (seen_negative and not include_after_error):
            targets.append(None)
            continue
        v = float(v)
        negative = v <= source.threshold
        targets.append(v if soft else float(not negative))
        seen_negative = seen_negative or negative
    return targets


def hard_labelled(record: dict, source: Source, keep_after_error: bool = False) -> dict | None:
    """The record with boolean ``step_labels`` from a source, for formats that want one hard
    label a step (TRL stepwise, Math-Shepherd). Steps after the first error are cut off (the
    paper trains on none of them) unless ``keep_after_error``; None when the source has no
    verdict on a step before the cut."""
    targets = step_targets(record, source, include_after_error=keep_after_error)
    if 0.0 in targets and not keep_after_error:
        targets = targets[:targets.index(0.0) + 1]
    if not targets or None in targets:
        return None
    return {**record, "steps": record["steps"][:len(targets)],
            "step_labels": [t == 1.0 for t in targets]}


def first_errors(records: list[tuple[int, dict]], source: Source, path=None) -> list[int | None]:
    """The first error of every record by one source; a record without the field is an error
    naming the file, the line and the field."""
    out = []
    for line, record in records:
        try:
            out.append(source.first_error(record))
        except ValueError as e:
            raise InputError(str(e), path=path, line=line, field=source.path) from None
    return out


def negatives(first_error: int, n_steps: int) -> set[int]:
    return set() if first_error < 0 else set(range(first_error, n_steps))


def quality(predicted: list[int | None], truth: list[int], n_steps: list[int]) -> dict:
    """First-error accuracy and negative-step precision/recall of one source against the truth,
    over the solutions where it has a verdict."""
    pairs = [(p, t, n) for p, t, n in zip(predicted, truth, n_steps) if p is not None]
    hits = predicted_neg = true_neg = 0
    for p, t, n in pairs:
        mine, real = negatives(p, n), negatives(t, n)
        hits += len(mine & real)
        predicted_neg += len(mine)
        true_neg += len(real)
    return {
        "n": len(pairs),
        "first_error_accuracy": sum(p == t for p, t, _ in pairs) / len(pairs) if pairs else None,
        "negative_precision": hits / predicted_neg if predicted_neg else None,
        "negative_recall": hits / true_neg if true_neg else None,
    }


def default_truth(records: list[dict]) -> Source | None:
    """The toy world's exact truth when present, else a ProcessBench ``label``, else none."""
    for path in ("truth.label", "label"):
        source = Source(path)
        if records and all(source.value(r) is not MISSING for r in records):
            return source
    return None
