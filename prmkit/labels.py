"""Every label rule of prmkit, in one place: what a step label is, how a first error is read
from it, how a critique names one, and how votes are counted.

**One threshold rule.** A value is *positive* (the step is right) when it is strictly above its
threshold, and *negative* (wrong) at or below it::

    positive(value, t)  <=>  value > t

It holds for every number prmkit compares with a threshold: MC values (hard label = value > 0,
the paper's choice: a step is good when any completion from it reaches the gold answer), soft
labels read as hard ones (``mc.values:0.5``), and PRM step scores (ProcessBench: the predicted
first error is the first step scored at or below the threshold).

**The first error** of per-step verdicts is the index of the first negative step, -1 when none
is (ProcessBench's convention). A verdict ``e >= 0`` calls steps ``e, e+1, ...`` negative and
the steps before it positive (the PRM convention).

**Label sources.** A source is a field of a solution record named by a dotted path, in one of
two shapes:

    per-step labels   a list, one entry a step: booleans, 0/1, or numbers compared with the
                      source's threshold (``mc.values:0.5``; default threshold 0). Null entries
                      are unknown steps and are skipped.
    earliest error    an integer (``judge.first_error``, ProcessBench's ``label``); null means
                      the source has no verdict on this solution.

The sources prmkit's own stages write have names (``NAMED_SOURCES``), used alike by the
label-quality table, the demo and the report. ``MC-soft`` trains on the MC values themselves;
read as a first error it is ``mc.values`` at threshold 0, the same first error as ``MC-hard``.
``MC-majority`` (``mc.values:0.5``: more than half of the completions succeed) is its own source.

**Critiques** come in two styles (``CRITIQUE_STYLES``). ``boxed`` (ProcessBench's): the
paragraphs are tagged from 0 and a critique names the earliest wrong one in its last
``\\boxed{k}`` (-1 = every paragraph right; ``\\boxed{\\text{2}}`` and ``\\boxed{$2$}`` are read
too). ``conclusion`` (the paper's judge, its Appendix C): the paragraphs are tagged from 1, the
judge writes an ``<analysis_k>`` for each paragraph it reads, stops at the first error, and ends
with ``<conclusion>Correct</conclusion>`` or ``Incorrect``; an incorrect conclusion names the
last paragraph analysed (converted to prmkit's 0-based index). A critique without a verdict is
``no-index`` (boxed) or ``no-conclusion``, ``truncated`` where the judge ran out of tokens; one
naming no paragraph of the solution is ``out-of-range``: each is counted and casts no vote. **One tie rule:** the most common index
wins; among tied indices the earliest error wins, and "no error" (-1) only when no error index
ties with it (an error that as many samples find as "no error" is taken seriously). No parsed
vote: no verdict (None).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prmkit.errors import InputError
from prmkit.grading import last_boxed

MISSING = object()

# name -> source spec of the labels prmkit's stages write
NAMED_SOURCES = {
    "MC-hard": "mc.hard",                    # any of K completions reaches the gold answer
    "MC-soft": "mc.values",                  # the share that do (trained on as a soft label)
    "MC-majority": "mc.values:0.5",          # more than half of them do
    "judge": "judge.first_error",            # the rule judge or a model judge
    "consensus": "consensus.first_error",    # where the consensus sources agree
}


# --- the rules ----------------------------------------------------------------------------------

def positive(value: float, threshold: float) -> bool:
    """The one threshold rule: a value is positive when strictly above its threshold."""
    return value > threshold


def first_error(step_ok: Iterable[bool]) -> int:
    """Index of the first wrong step, -1 when all are right (ProcessBench's convention)."""
    return next((i for i, ok in enumerate(step_ok) if not ok), -1)


def first_at_or_below(values: Iterable[float | None], threshold: float) -> int:
    """The first error of per-step scores or values: the first not positive, or -1. A null
    (a step past a PRM's context, an unknown label) is unknown and skipped, as everywhere."""
    return first_error(v is None or positive(v, threshold) for v in values)


def labels_from_first_error(first: int, n_steps: int) -> list[int]:
    """1 before the first error, 0 from it on (all 1 when ``first`` is -1)."""
    return [int(first < 0 or j < first) for j in range(n_steps)]


def negatives(first: int, n_steps: int) -> set[int]:
    return set() if first < 0 else set(range(first, n_steps))


def hard_labels(record: dict, field: str = "step_labels") -> list[bool]:
    """Per-step booleans from 0/1 or boolean labels, for formats that want one hard label a
    step; a soft value is an error, never cast (TRL's PRM trainer casts it silently)."""
    out = []
    for i, value in enumerate(record.get(field) or []):
        if value in (0, 1) or isinstance(value, bool):
            out.append(bool(value))
        else:
            raise InputError(f"step {i} has soft label {value}: threshold it first (e.g. > 0)",
                             field=field)
    if len(out) != len(record["steps"]):
        raise InputError(f"record {record['id']!r} needs one hard label a step", field=field)
    return out


# --- label values: what a step label and a first-error index may be ------------------------------

def step_value(value, i: int) -> float:
    """A per-step label as a number: a boolean, 0/1 or a soft value, finite and in [0, 1].
    Anything else (NaN, 1.7, -0.5, a string) is a ValueError naming the step."""
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)):
        raise ValueError(f"step {i}: expected a label in [0, 1] or a boolean, got "
                         f"{type(value).__name__} {value!r}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"step {i}: expected a label in [0, 1], got {value!r}")
    return float(value)


def error_index(value, n_steps: int) -> int:
    """A first-error index: -1 (no error) or a step index of the solution."""
    if not -1 <= value < n_steps:
        raise ValueError(f"first error {value} is not -1 or a step index below {n_steps}")
    return value


# --- label sources ------------------------------------------------------------------------------

def _lookup(record: dict, path: str):
    """The value at a dotted path of a record, or ``MISSING``."""
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


@dataclass(frozen=True)
class Source:
    path: str
    threshold: float = 0.0
    only_where: str | None = None  # a field that must be true for the source to have a say

    @classmethod
    def parse(cls, spec: str) -> "Source":
        """``field.path``, ``field.path:T``, and either with ``@flag.path``: the source's labels
        only on the solutions whose flag is true (``mc.values@consensus.kept``: MC's soft labels
        on the data consensus kept, the paper's filtered cells); a name of ``NAMED_SOURCES`` is
        its spec."""
        spec = NAMED_SOURCES.get(spec, spec)
        labels, _, only_where = spec.partition("@")
        path, _, threshold = labels.partition(":")
        for part in (path, *([only_where] if "@" in spec else [])):
            if not part or any(not piece for piece in part.split(".")):
                raise InputError(f"{spec!r}: expected a dotted field path, like mc.hard, "
                                 "mc.values:0.5 or mc.values@consensus.kept", field="sources")
        try:
            value = float(threshold) if threshold else 0.0
        except ValueError:
            value = float("nan")
        if not 0.0 <= value < 1.0:  # NaN fails this too
            raise InputError(f"{spec!r}: the threshold after ':' must be a number in [0, 1)",
                             field="sources")
        return cls(path, value, only_where or None)

    @property
    def spec(self) -> str:
        labels = self.path if self.threshold == 0.0 else f"{self.path}:{self.threshold:g}"
        return labels if self.only_where is None else f"{labels}@{self.only_where}"

    def value(self, record: dict):
        """The field's value; None (no verdict) where the ``only_where`` flag is false;
        ``MISSING`` where a field is absent."""
        if self.only_where is not None:
            flag = _lookup(record, self.only_where)
            if flag is MISSING:
                return MISSING
            if not flag:
                return None
        return _lookup(record, self.path)

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
            return error_index(value, len(record.get("steps") or []))
        if isinstance(value, list):
            first = -1
            for i, label in enumerate(value):  # every label is checked, not just the first ones
                if label is not None and not positive(step_value(label, i), self.threshold) \
                        and first < 0:
                    first = i
            return first
        raise ValueError(f"expected a step index or a list of step labels, got "
                         f"{type(value).__name__}")


def step_targets(record: dict, source: Source, *, soft: bool = False,
                 include_after_error: bool = False) -> list[float | None]:
    """One training target a step from a source, None where a step is left out: null labels,
    and steps after the first negative unless ``include_after_error``. Hard targets are 0/1;
    soft targets are the value itself, never rounded. An earliest-error index gives 1 before
    it, 0 at it, and nothing after.

    Raises ValueError when the field is absent or of the wrong shape."""
    value = source.value(record)
    n = len(record["steps"])
    if value is MISSING:
        raise ValueError("missing")
    if value is None:
        return [None] * n
    if isinstance(value, int) and not isinstance(value, bool):
        value = error_index(value, n)
        return [1.0] * n if value < 0 else [1.0] * value + [0.0] + [None] * (n - value - 1)
    if not isinstance(value, list) or len(value) != n:
        raise ValueError(f"expected {n} step labels or an index")
    checked = [None if v is None else step_value(v, i) for i, v in enumerate(value)]
    targets: list[float | None] = []
    seen_negative = False
    for v in checked:
        if v is None or (seen_negative and not include_after_error):
            targets.append(None)
            continue
        ok = positive(v, source.threshold)
        targets.append(v if soft else float(ok))
        seen_negative = seen_negative or not ok
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
    # a first error named before the true one labels a sound step wrong (MC does so where
    # completions from a sound prefix repeat a misconception)
    early = sum(p >= 0 and (t < 0 or p < t) for p, t, _ in pairs)
    return {
        "n": len(pairs),
        "first_error_accuracy": sum(p == t for p, t, _ in pairs) / len(pairs) if pairs else None,
        "negative_precision": hits / predicted_neg if predicted_neg else None,
        "negative_recall": hits / true_neg if true_neg else None,
        "sound_step_blamed": early / len(pairs) if pairs else None,
    }


def default_truth(records: list[dict]) -> Source | None:
    """Exact step truth when the records carry it (``truth.label``), else a ProcessBench
    ``label``, else none."""
    for path in ("truth.label", "label"):
        source = Source(path)
        if records and all(source.value(r) is not MISSING for r in records):
            return source
    return None


# --- critiques and votes ------------------------------------------------------------------------

def parse_critique(text: str, n_steps: int) -> tuple[int | None, str]:
    """(index, status) of a critique: the paragraph its last ``\\boxed{}`` names (-1: none is
    wrong) and ``ok``; or None and ``no-index`` / ``out-of-range``."""
    boxed = last_boxed(text)
    if boxed is None:
        return None, "no-index"
    boxed = re.sub(r"\\text(?:bf)?\s*", "", boxed).strip("{} $")
    if not re.fullmatch(r"-?\d+", boxed):
        return None, "no-index"
    index = int(boxed)
    if not -1 <= index < n_steps:
        return None, "out-of-range"
    return index, "ok"


_CONCLUSION = re.compile(r"<\s*conclusion\s*>\s*(correct|incorrect)\W*?\s*<\s*/\s*conclusion\s*>",
                         re.IGNORECASE)
_ANALYSIS = re.compile(r"<\s*analysis_(\d+)\s*>", re.IGNORECASE)


def parse_conclusion(text: str, n_steps: int) -> tuple[int | None, str]:
    """(index, status) of a critique in the paper's style: -1 for a ``Correct`` conclusion;
    for ``Incorrect``, the last paragraph analysed before it (1-indexed in the critique,
    0-based here); else None and ``no-conclusion`` / ``no-index`` / ``out-of-range``."""
    conclusions = list(_CONCLUSION.finditer(text))
    if not conclusions:
        return None, "no-conclusion"
    last = conclusions[-1]
    if last.group(1).lower() == "correct":
        return -1, "ok"
    analysed = [int(m.group(1)) for m in _ANALYSIS.finditer(text, 0, last.start())]
    if not analysed:
        return None, "no-index"
    if not 1 <= analysed[-1] <= n_steps:
        return None, "out-of-range"
    return analysed[-1] - 1, "ok"


@dataclass(frozen=True)
class CritiqueStyle:
    """How a critique prompt numbers the paragraphs, and how its answer is read."""
    name: str
    first_paragraph: int                               # the first paragraph's tag number
    parse: Callable[[str, int], tuple[int | None, str]]


CRITIQUE_STYLES = {"boxed": CritiqueStyle("boxed", 0, parse_critique),
                   "conclusion": CritiqueStyle("conclusion", 1, parse_conclusion)}


def read_critique(text: str, n_steps: int, style: str = "boxed",
                  finish_reason: str | None = None) -> tuple[int | None, str]:
    """(index, status) of one critique in ``style``; one cut short by the token limit that
    gives no verdict is ``truncated``, not a judge that failed to answer."""
    index, status = CRITIQUE_STYLES[style].parse(text, n_steps)
    if index is None and finish_reason == "length":
        return None, "truncated"
    return index, status


def vote(indices: Sequence[int | None]) -> int | None:
    """Majority vote over parsed first-error indices (None: a critique that cast no vote).
    Ties go to the earliest error; -1 wins only alone; None when nothing parsed."""
    counts = Counter(v for v in indices if v is not None)
    if not counts:
        return None
    top = max(counts.values())
    tied = [v for v, c in counts.items() if c == top]
    errors = sorted(v for v in tied if v >= 0)
    return errors[0] if errors else -1
