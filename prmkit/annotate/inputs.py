"""Reading the solutions an annotation stage works on, and writing what it made of them.

A solution that cannot be annotated is reported and skipped, never fatal: one with no steps, and
(for MC, which grades against the gold answer) one whose gold answer is missing or unreadable.
A record that is not a solution at all (bad JSON, a missing field) is still an error naming the
file, the line and the field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prmkit.errors import InputError
from prmkit.grading import gold_readable
from prmkit.records import iter_json_items, validate, write_jsonl


def read_solutions(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(solutions, skipped): skipped entries are ``{"id", "line", "reason"}``."""
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
    kept = []
    for s in solutions:
        if not gold_readable(s.get("gold_answer")):
            skipped.append({"id": s["id"], "line": s["_line"], "reason": "gold-unparseable"})
        else:
            kept.append(s)
    return kept


SKIPPED = "_skipped"  # a worker's mark on a record it could not annotate, and why


def skip_mark(solution: dict, reason: str) -> dict:
    """What a worker returns for a solution it cannot annotate (its prompt does not fit the
    model): the stage lists it in ``skipped.jsonl`` with its id, line and reason."""
    return {"id": solution["id"], "_line": solution.get("_line"), SKIPPED: reason}


def strip_private(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


@dataclass
class Annotation:
    """The files of an annotation stage (``runner.ShardedStage``'s ``read`` and ``finish``):
    ``read`` gives the solutions of ``solutions`` that can be annotated (``prepare`` drops the
    others into ``skipped``); ``finish`` writes the annotated records to ``annotated.jsonl``,
    the skipped ones to ``skipped.jsonl``, and returns ``summarize(records, skipped)``."""
    solutions: str
    summarize: Callable[[list[dict], list[dict]], dict]
    prepare: Callable[[list[dict], list[dict]], list[dict]] | None = None
    skipped: list[dict] = field(default_factory=list)

    @property
    def inputs(self) -> dict[str, str]:
        return {"solutions": self.solutions}

    def read(self) -> list[dict]:
        solutions, self.skipped = read_solutions(self.solutions)
        if not solutions and not self.skipped:
            raise InputError("no solutions in this file", path=self.solutions,
                             field="solutions")
        return self.prepare(solutions, self.skipped) if self.prepare else solutions

    def finish(self, folder: Path, records: list[dict]) -> dict:
        self.skipped += [{"id": r["id"], "line": r.get("_line"), "reason": r[SKIPPED]}
                         for r in records if SKIPPED in r]
        records = [r for r in records if SKIPPED not in r]
        write_jsonl(folder / "annotated.jsonl", records)
        write_jsonl(folder / "skipped.jsonl", self.skipped)
        return self.summarize(records, self.skipped)


def accuracy_vs_truth(first_errors: list[int | None], records: list[dict]) -> float | None:
    """Share of the solutions with a verdict and a toy truth whose first error is the true one."""
    pairs = [(e, r["truth"]["label"]) for e, r in zip(first_errors, records)
             if e is not None and "truth" in r]
    return sum(e == t for e, t in pairs) / len(pairs) if pairs else None


def skipped_summary(skipped: list[dict]) -> dict:
    return {"count": len(skipped), "reasons": dict(Counter(s["reason"] for s in skipped))}
