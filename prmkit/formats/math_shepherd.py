"""Math-Shepherd: ``input`` tags each step's end with ``ки``; ``label`` is the same text with
``+`` or ``-`` in place of each tag. Steps read as "Step k: ..." and lose that prefix here.
"""

from __future__ import annotations

import re
from pathlib import Path

from prmkit.errors import InputError
from prmkit.grading import extract_answer
from prmkit.labels import first_error, hard_labels
from prmkit.records import iter_json_items, note_id, write_jsonl

TAG = "ки"
_STEP_PREFIX = re.compile(r"^\s*Step\s*\d+\s*:\s*")


def _convert(value: dict, path: Path, line: int) -> dict:
    for field in ("input", "label"):
        if not isinstance(value, dict) or not isinstance(value.get(field), str):
            raise InputError("missing or not a string", path=path, line=line, field=field)
    text, labelled = value["input"], value["label"]
    segments = text.split(TAG)[:-1]
    if not segments:
        raise InputError(f"no '{TAG}' step tag", path=path, line=line, field="input")
    # Walk both strings together: at each tag position the label text holds '+' or '-'.
    marks, pos = [], 0
    for i, segment in enumerate(segments):
        if labelled[pos:pos + len(segment)] != segment:
            raise InputError(f"differs from 'input' before step {i + 1}", path=path, line=line,
                             field="label")
        pos += len(segment)
        mark = labelled[pos:pos + 1]
        if mark not in ("+", "-"):
            raise InputError(f"step {i + 1} is marked {mark!r}, not '+' or '-'", path=path,
                             line=line, field="label")
        marks.append(mark == "+")
        pos += 1
    first_step = re.search(r"Step\s*1\s*:", segments[0])
    problem = segments[0][:first_step.start()].strip() if first_step else ""
    segments[0] = segments[0][first_step.start():] if first_step else segments[0]
    steps = [_STEP_PREFIX.sub("", s).strip() for s in segments]
    return {
        "id": str(value.get("id", f"{path.stem}-{line}")),
        "problem": problem,
        "steps": steps,
        "final_answer": extract_answer(steps[-1]) if "answer is" in steps[-1] else None,
        "step_labels": [1.0 if ok else 0.0 for ok in marks],
        "label": first_error(marks),
    }


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    records, seen = [], {}
    for line, value in iter_json_items(path):
        records.append(_convert(value, path, line))
        note_id(seen, records[-1]["id"], path=path, line=line)
    return records


def write(records: list[dict], path: str | Path) -> Path:
    def line(r: dict) -> dict:
        ok = hard_labels(r)
        body = "\n".join(f"Step {i + 1}: {s} {TAG}" for i, s in enumerate(r["steps"]))
        marked = "\n".join(f"Step {i + 1}: {s} {'+' if good else '-'}"
                           for i, (s, good) in enumerate(zip(r["steps"], ok)))
        return {"input": f"{r['problem']} {body}", "label": f"{r['problem']} {marked}"}
    return write_jsonl(path, [line(r) for r in records])
