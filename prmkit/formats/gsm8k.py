"""GSM8K: ``{"question", "answer"}`` where the answer ends with ``#### <number>``.

Problems keep the reference solution (``solution``) and its lines as ``reference_steps``; the
calculator annotations ``<<a*b=c>>`` stay in the text for the rule judge.
"""

from __future__ import annotations

from pathlib import Path

from prmkit.errors import InputError
from prmkit.records import iter_json_items, note_id


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    problems, seen = [], {}
    for line, value in iter_json_items(path):
        for field in ("question", "answer"):
            if not isinstance(value, dict) or not isinstance(value.get(field), str):
                raise InputError("missing or not a string", path=path, line=line, field=field)
        body, sep, gold = value["answer"].rpartition("####")
        if not sep:
            raise InputError("no '#### <answer>' line", path=path, line=line, field="answer")
        # the row's idx, else its position: "3" and 3, or a row without idx where another
        # has that number, give one id, which is refused
        ident = f"gsm8k-{value.get('idx', line - 1)}"
        note_id(seen, ident, path=path, line=line, field="idx")
        problems.append({
            "id": ident,
            "problem": value["question"],
            "answer": gold.strip().replace(",", ""),
            "source": "gsm8k",
            "solution": value["answer"],
            "reference_steps": [s for s in body.strip().split("\n") if s.strip()],
        })
    return problems
