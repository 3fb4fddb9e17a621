"""TRL's stepwise supervision: ``{"prompt": str, "completions": [str], "labels": [bool]}``.

TRL's PRM trainer wants boolean labels; a soft label is refused with an error instead of being
cast to an int (which TRL's own trainer does silently).
"""

from __future__ import annotations

from pathlib import Path

from prmkit.errors import InputError
from prmkit.labels import first_error, hard_labels
from prmkit.records import iter_json_items, note_id, validate, write_jsonl


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    records, seen = [], {}
    for line, value in iter_json_items(path):
        if not isinstance(value, dict):
            raise InputError("expected a JSON object", path=path, line=line)
        for field in ("prompt", "completions", "labels"):
            if field not in value:
                raise InputError("missing", path=path, line=line, field=field)
        record = validate({"id": str(value.get("id", f"{path.stem}-{line}")),
                           "problem": value["prompt"], "steps": value["completions"],
                           "step_labels": value["labels"]}, "solution", path=path, line=line)
        note_id(seen, record["id"], path=path, line=line)
        try:
            ok = hard_labels(record)
        except InputError as e:
            raise InputError(e.message, path=path, line=line, field="labels") from None
        records.append({**record, "step_labels": [1.0 if x else 0.0 for x in ok],
                        "label": first_error(ok)})
    return records


def write(records: list[dict], path: str | Path) -> Path:
    return write_jsonl(path, ({"id": r["id"], "prompt": r["problem"], "completions": r["steps"],
                               "labels": hard_labels(r)} for r in records))
