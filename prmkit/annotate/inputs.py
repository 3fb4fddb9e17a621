"""Reading the solutions an annotation stage works on, and the stage's folder.

A solution that cannot be annotated is reported and skipped, never fatal: one with no steps, and
(for MC, which grades against the gold answer) one whose gold answer is missing or unreadable.
A record that is not a solution at all (bad JSON, a missing field) is still an error naming the
file, the line and the field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from prmkit import rundir
from prmkit.errors import InputError
from prmkit.records import iter_json_items, validate, write_jsonl


def read_solutions(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(solutions, skipped): skipped entries are ``{"id", "line", "reason"}``."""
    from prmkit.errors import InputError
    solutions, skipped, seen = [], [], {}
    for line, value in iter_json_items(path):
        if isinstance(value, dict) and value.get("steps") == []:
            skipped.append({"id": value.get("id"), "line": line, "reason": "no-steps"})
            continue
        record = validate(value, "solution", path=path, line=line)
        if record["id"] in seen:
            raise InputError(f"duplicate id {record['id']!r} (first on line {seen[record['id']]})",
                             path=path, line=line, field="id")
        seen[record["id"]] = line
        record["_line"] = line
        solutions.append(record)
    return solutions, skipped


def drop_unreadable_gold(solutions: list[dict], skipped: list[dict]) -> list[dict]:
    """Solutions whose gold answer can be read; the others join ``skipped``."""
    from prmkit.grading import gold_readable
    kept = []
    for s in solutions:
        if not gold_readable(s.get("gold_answer")):
            skipped.append({"id": s["id"], "line": s["_line"], "reason": "gold-unparseable"})
        else:
            kept.append(s)
    return kept


def strip_private(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def annotation_stage(out: str | Path, config: dict, solutions_path: str | Path, *,
                     prepare: Callable[[list[dict], list[dict]], list[dict]],
                     execute: Callable[[list[dict], Path, dict], list[dict]],
                     summarize: Callable[[list[dict], list[dict]], dict],
                     force: bool = False) -> dict:
    """An annotation stage through ``rundir.run_stage``: read the input, ``prepare`` it (drop
    what cannot be annotated into ``skipped``), run the shards (``execute(solutions, out,
    config)`` returns the merged records), write ``annotated.jsonl`` and ``skipped.jsonl``;
    the metrics are ``summarize(records, skipped)``."""
    def work(folder: Path, stage_config: dict) -> dict:
        solutions, skipped = read_solutions(solutions_path)
        if not solutions and not skipped:
            raise InputError("no solutions in this file", path=solutions_path,
                             field="solutions")
        solutions = prepare(solutions, skipped)
        records = execute(solutions, folder, stage_config)
        write_jsonl(folder / "annotated.jsonl", records)
        write_jsonl(folder / "skipped.jsonl", skipped)
        return summarize(records, skipped)
    return rundir.run_stage(out, config, work, inputs={"solutions": solutions_path},
                            force=force)


def accuracy_vs_truth(first_errors: list[int | None], records: list[dict]) -> float | None:
    """Share of the solutions with a verdict and a toy truth whose first error is the true one."""
    pairs = [(e, r["truth"]["label"]) for e, r in zip(first_errors, records)
             if e is not None and "truth" in r]
    return sum(e == t for e, t in pairs) / len(pairs) if pairs else None


def skipped_summary(skipped: list[dict]) -> dict:
    return {"count": len(skipped), "reasons": dict(Counter(s["reason"] for s in skipped))}
