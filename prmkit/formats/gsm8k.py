"""GSM8K: ``{"question", "answer"}`` where the answer ends with ``#### <number>``.

Problems keep the reference solution (``solution``) and its lines as ``reference_steps``; the
calculator annotations ``<<a*b=c>>`` stay in the text for the rule judge.
"""

from __future__ import annotations

from pathlib import Path

from prmkit.errors import InputError
from prmkit.records import iter_json_items


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    problems = []
    for line, value in iter_json_items(path):
        for field in ("question", "answer"):
            if not isinstance(value, dict) or not isinstance(value.get(field), str):
                raise InputError("missing or not a string", path=path, line=line, field=field)
        body, sep, gold = value["answer"].rpartition("####")
        if not sep:
            raise InputError("no '#### <answer>' line", path=path, line=line, field="answer")
        problems.append({
            "id": f"gsm8k-{value.get('idx', line - 1)}",
            "problem": value["question"],
            "answer": gold.strip().replace(",", ""),
            "source": "gsm8k",
            "solution": value["answer"],
            "reference_steps": [s for s in body.strip().split("\n") if s.strip()],
        })
    return problems
