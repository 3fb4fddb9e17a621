"""MATH, MATH-500 and the many sets shaped like them: a problem (``problem`` or ``question``)
and a gold answer (``answer``, ``final_answer``, or the last ``\\boxed{}`` of ``solution``).
A multiple-choice row (``choices``) is refused: format ``mmlu_stem`` reads it with its options.
The other test sets of Qwen2.5-Math's evaluation: ``prmkit.formats.qwen_benchmarks``.
"""

from __future__ import annotations

from pathlib import Path

from prmkit.errors import InputError
from prmkit.grading import last_boxed
from prmkit.records import iter_json_items, note_id


def _gold(value: dict) -> str | None:
    answer = value.get("answer", value.get("final_answer"))
    if isinstance(answer, list):  # OlympiadBench keeps a list of accepted forms
        answer = answer[0] if answer else None
    if answer is not None and not isinstance(answer, bool):
        return str(answer).strip()
    solution = value.get("solution")
    if isinstance(solution, list):
        solution = solution[0] if solution else None
    return last_boxed(solution) if isinstance(solution, str) else None


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    problems, seen = [], {}
    for line, value in iter_json_items(path):
        if not isinstance(value, dict):
            raise InputError("expected a JSON object", path=path, line=line)
        if "choices" in value:  # read here, its options would be dropped and its gold an index
            raise InputError("a multiple-choice row: read it with format mmlu_stem", path=path,
                             line=line, field="choices")
        problem = value.get("problem", value.get("question"))
        if not isinstance(problem, str):
            raise InputError("missing (neither 'problem' nor 'question' is a string)",
                             path=path, line=line, field="problem")
        field = next((k for k in ("unique_id", "id", "idx") if k in value), "unique_id")
        ident = value.get(field, line - 1)
        record = {"id": f"{path.stem}-{ident}" if not isinstance(ident, str) else ident,
                  "problem": problem, "answer": _gold(value), "source": path.stem}
        note_id(seen, record["id"], path=path, line=line, field=field)
        if isinstance(value.get("solution"), str):
            record["solution"] = value["solution"]
        for key in ("level", "subject", "type"):
            if key in value:
                record[key] = value[key]
        problems.append(record)
    return problems
