"""Candidate sets in the Qwen2.5-Math evaluation format, one problem a line:

``{"idx"?, "question", "gt", "code" | "response": [text, ...], "pred": [answer, ...],
   "score": [bool, ...], "pred_score"?: [[float, ...], ...]}``

``score[i]`` is whether response i is correct; ``pred_score[i]`` holds the reward model's scores
of response i: one number (a response score, as in Qwen's rm@k evaluation) or one a step.
``question`` and ``gt`` are the evaluation's own reading of the problem (MMLU STEM: the question
with its lettered choices, ``gt`` the right option's letter, graded as a letter by
``prmkit.grading``); the test sets themselves read as problems with the readers of
``prmkit.formats.qwen_benchmarks``.
"""

from __future__ import annotations

from pathlib import Path

from prmkit.errors import InputError
from prmkit.records import iter_json_items, note_id, validate, write_jsonl


def _convert(value: dict, path: Path, line: int) -> dict:
    if not isinstance(value, dict):
        raise InputError("expected a JSON object", path=path, line=line)
    texts = value.get("code", value.get("response"))
    preds = value.get("pred")
    if not isinstance(preds, list) or not preds:
        raise InputError("missing or not a non-empty list", path=path, line=line, field="pred")
    n = len(preds)
    for field, items in (("code|response", texts), ("score", value.get("score")),
                         ("pred_score", value.get("pred_score"))):
        if items is not None and (not isinstance(items, list) or len(items) != n):
            raise InputError(f"expected a list of {n} items like 'pred'", path=path, line=line,
                             field=field)
    rm = value.get("pred_score")
    response_level = rm is not None and all(isinstance(s, list) and len(s) == 1 for s in rm)
    candidates = []
    for i in range(n):
        c = {"answer": None if preds[i] is None else str(preds[i])}
        if texts is not None:
            c["text"] = texts[i]
        if value.get("score") is not None:
            c["correct"] = value["score"][i]
        if rm is not None:
            if response_level:
                c["score"] = rm[i][0]
            else:
                c["step_scores"] = rm[i]
        candidates.append(c)
    ident = value.get("idx", value.get("id", line - 1))
    record = {"id": str(ident), "candidates": candidates,
              "gold_answer": None if value.get("gt") is None else str(value["gt"])}
    if isinstance(value.get("question", value.get("problem")), str):
        record["problem"] = value.get("question", value.get("problem"))
    return validate(record, "candidates", path=path, line=line)


def read(path: str | Path) -> list[dict]:
    """Candidate sets, one a problem; a problem id seen twice is an error (it would be counted
    twice in every Best-of-N accuracy)."""
    path = Path(path)
    records, seen = [], {}
    for line, value in iter_json_items(path):
        record = _convert(value, path, line)
        note_id(seen, record["id"], path=path, line=line, field="idx")
        records.append(record)
    return records


def write(records: list[dict], path: str | Path) -> Path:
    def line(r: dict) -> dict:
        cs = r["candidates"]
        out = {"idx": r["id"], "question": r.get("problem", ""), "gt": r.get("gold_answer"),
               "response": [c.get("text", "") for c in cs], "pred": [c.get("answer") for c in cs]}
        if all("correct" in c for c in cs):
            out["score"] = [c["correct"] for c in cs]
        if all("score" in c for c in cs):
            out["pred_score"] = [[c["score"]] for c in cs]
        elif all("step_scores" in c for c in cs):
            out["pred_score"] = [c["step_scores"] for c in cs]
        return out
    return write_jsonl(path, [line(r) for r in records])
