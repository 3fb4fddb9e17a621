"""The label-quality table (``prmkit annotate report``): every label source of an annotated
file against a reference, normally the toy world's exact truth.

For each source: its first-error accuracy, the share of solutions it keeps (has a verdict on:
consensus keeps only those its sources agree on), the precision and recall of its negative
steps, the share of solutions where it blames a sound step (names a first error before the true
one), and what it cost (MC rollouts, model judge calls). Where the records say where their
first error came from (``truth.first_error_origin``: a slip or a misconception, in the toy
world), each row is also split by it (``by_origin``; "sound" for solutions without an error).
The default sources are the named sources of ``prmkit.labels`` that prmkit's stages write,
where present: MC-hard, MC-majority, judge and consensus (MC-soft is left out: read as a first
error it is MC-hard).
"""

from __future__ import annotations

from pathlib import Path

from prmkit.errors import InputError
from prmkit.labels import (
    MISSING,
    NAMED_SOURCES,
    Source,
    default_truth,
    first_errors,
    quality,
)
from prmkit.records import iter_json_items, validate

DEFAULT_SOURCES = {name: NAMED_SOURCES[name]
                   for name in ("MC-hard", "MC-majority", "judge", "consensus")}


def present_sources(records: list[dict]) -> dict[str, str]:
    """The default sources (name -> spec) that these records carry."""
    return {label: spec for label, spec in DEFAULT_SOURCES.items()
            if records and Source.parse(spec).value(records[0]) is not MISSING}


def _cost(record: dict, source: Source) -> dict:
    top = record.get(source.path.split(".")[0])
    if not isinstance(top, dict):
        return {}
    if "cost" in top:                       # consensus: what its sources spent
        return top["cost"]
    return {"rollouts": top.get("rollouts", 0), "judge_calls": top.get("calls", 0)}


def label_quality(path: str | Path, sources: dict[str, str] | None = None,
                  truth: str | None = None) -> dict:
    """{"reference", "n_solutions", "rows": [{"source", "spec", "kept_share", ...}]}."""
    records = [(line, validate(v, "solution", path=path, line=line))
               for line, v in iter_json_items(path)]
    plain = [r for _, r in records]
    if sources is None:
        sources = present_sources(plain)
    if not sources:
        raise InputError("no label source found; name them with --sources LABEL=FIELD",
                         path=path, field="sources")
    reference = Source.parse(truth) if truth else default_truth(plain)
    if reference is None:
        raise InputError("no reference labels (truth.label or label); name one with --truth",
                         path=path, field="truth")
    expected = first_errors(records, reference, path)
    steps = [len(r["steps"]) for r in plain]
    origins = first_error_origins(plain)
    rows = []
    for label, spec in sources.items():
        source = Source.parse(spec)
        predicted = first_errors(records, source, path)
        spent = {}
        for r in plain:
            for key, value in _cost(r, source).items():
                spent[key] = spent.get(key, 0) + value
        row = {"source": label, "spec": source.spec, **quality(predicted, expected, steps),
               "kept_share": sum(p is not None for p in predicted) / len(plain),
               "rollouts": spent.get("rollouts", 0), "judge_calls": spent.get("judge_calls", 0)}
        row["per_problem"] = first_error_hits(plain, predicted, expected)
        if origins:
            row["by_origin"] = {
                origin: quality(*zip(*[(p, t, n) for p, t, n, o in
                                       zip(predicted, expected, steps, origins) if o == origin]))
                for origin in sorted(set(origins))}
        rows.append(row)
    return {"reference": reference.spec, "n_solutions": len(plain), "rows": rows}


def first_error_hits(records: list[dict], predicted: list, expected: list) -> dict:
    """problem -> [first errors named right, solutions with a verdict]: for a paired bootstrap
    over problems of two sources' accuracies (``prmkit.evaluate.paired``)."""
    out: dict[str, list[int]] = {}
    for record, p, t in zip(records, predicted, expected):
        counts = out.setdefault(str(record.get("problem_id", record["id"])), [0, 0])
        if p is not None:
            counts[0] += p == t
            counts[1] += 1
    return out


def first_error_origins(records: list[dict]) -> list[str] | None:
    """Each solution's ``truth.first_error_origin`` ("sound" without an error), or None when
    the records do not all say."""
    source = Source(ORIGIN)
    values = [source.value(r) for r in records]
    if not records or any(v is MISSING for v in values):
        return None
    return [v or "sound" for v in values]


ORIGIN = "truth.first_error_origin"
