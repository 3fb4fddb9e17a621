"""Evaluation, as a Python API that mirrors ``prmkit eval``.

    from prmkit import evaluate
    metrics = evaluate.processbench("data/processbench", step_scores="scores.jsonl")
    metrics = evaluate.bon({"gsm8k": "gsm8k_candidates.jsonl"}, fmt="qwen_eval")

Inputs may be paths or records already in memory; results are plain dicts (what the CLI writes
to ``metrics.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from prmkit.evaluate import bon as _bon
from prmkit.evaluate import processbench as _processbench
from prmkit.records import read_records_with_lines

Source = str | Path


def load_benchmark(source: Source | list[dict]) -> list[dict]:
    """ProcessBench items from a file, a folder of subsets, ``hub:Qwen/ProcessBench``, or records."""
    if isinstance(source, list):
        return source
    from prmkit.formats.processbench import read
    return read(source)


def _load_predictions(source, kind: str, field: str) -> tuple[dict, dict, str]:
    if isinstance(source, Mapping):
        return dict(source), {}, "<predictions>"
    rows = read_records_with_lines(source, kind)
    return ({r["id"]: r[field] for _, r in rows}, {r["id"]: line for line, r in rows}, str(source))


def processbench(benchmark: Source | list[dict], *, step_scores: Source | Mapping | None = None,
                 critiques: Source | Mapping | None = None, threshold: float = 0.5,
                 tune_on: str | None = None, subsets: Iterable[str] | None = None) -> dict:
    """ProcessBench metrics of per-step scores (id -> [score]) or critiques (id -> [text])."""
    items = load_benchmark(benchmark)
    if step_scores is not None:
        scores, lines, source = _load_predictions(step_scores, "step_scores", "step_scores")
        return _processbench.evaluate(items, step_scores=scores, threshold=threshold,
                                      tune_on=tune_on, subsets=subsets, source=source, lines=lines)
    texts, lines, source = (_load_predictions(critiques, "critique", "critiques")
                            if critiques is not None else (None, {}, "<predictions>"))
    return _processbench.evaluate(items, critiques=texts, subsets=subsets, source=source,
                                  lines=lines)


def load_candidates(source: Source | list[dict], fmt: str = "prmkit") -> list[dict]:
    """Candidate sets from prmkit's JSONL, another format (e.g. ``qwen_eval``), or records."""
    if isinstance(source, list):
        return source
    if fmt == "prmkit":
        return [r for _, r in read_records_with_lines(source, "candidates")]
    from prmkit.formats import reader
    read, kind = reader(fmt)
    if kind != "candidates":
        from prmkit.errors import InputError
        raise InputError(f"format {fmt!r} holds {kind} records, not candidate sets", field="format")
    return read(source)


def bon(benchmarks: Mapping[str, Source | list[dict]] | Source, *, fmt: str = "prmkit",
        ns: Sequence[int] | None = None, group_by: str = "equivalence",
        processes: int = 1) -> dict:
    """Best-of-N metrics; ``benchmarks`` maps names to candidate files or records."""
    if not isinstance(benchmarks, Mapping):
        benchmarks = {Path(benchmarks).stem: benchmarks}
    sets = {name: load_candidates(src, fmt) for name, src in benchmarks.items()}
    return _bon.evaluate(sets, ns=ns, group_by=group_by, processes=processes)
