"""``prmkit toy bench``: a ProcessBench of the toy world, labelled by the exact truth.

The policy writes N solutions for each held-out problem; the truth labels them; prmkit's one
builder of a ProcessBench from step truth (``prmkit.evaluate.processbench.items_from_truth``,
the one the pipeline uses) keeps complete solutions, the first correct and the first erroneous
one of each problem, as many of each kind. The file is in ProcessBench's exact format (a JSON
array of ``id, generator, problem, steps, final_answer_correct, label``), so
``prmkit eval processbench`` runs on it unchanged; a side file keeps each item's step verdicts
for diagnostics (``truth/toy.jsonl``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prmkit.evaluate.processbench import items_from_truth
from prmkit.records import write_json, write_jsonl


def _record(solution: dict, generator: str) -> dict:
    """A judged toy solution as the sampled solution record the builder reads."""
    truth = solution["truth"]
    return {"id": f"{solution['problem']['id']}-{solution['sample_index']}",
            "problem_id": solution["problem"]["id"], "problem": solution["problem"]["problem"],
            "steps": solution["steps"], "generator": generator,
            "finish_reason": solution["finish_reason"],
            # an answer step is what the truth reads an answer from
            "outcome": "correct" if truth.answer_correct else
                       "incorrect" if truth.complete else "unparseable",
            "truth": {"label": truth.label, "answer_correct": truth.answer_correct}}


def build(solutions: list[dict], out: str | Path, *, generator: str, name: str = "toy",
          seed: int = 0) -> dict:
    records = [_record(s, generator) for s in solutions]
    items = items_from_truth(records, subset=name, seed=seed)
    by_id = {r["id"]: s for r, s in zip(records, solutions)}
    out = Path(out)
    fields = ("id", "generator", "problem", "steps", "final_answer_correct", "label")
    write_json(out / f"{name}.json", [{k: item[k] for k in fields} for item in items])
    verdicts = []
    for item in items:  # what the truth says of each item's steps
        judged = by_id[item["id"]]
        verdicts.append({"id": item["id"], "problem_id": judged["problem"]["id"],
                         "toy": judged["problem"]["toy"], "kinds": judged["truth"].kinds,
                         "first_error_off_path":
                             judged["truth"].first_error_off_path(judged["spec"])})
    write_jsonl(out / "truth" / f"{name}.jsonl", verdicts)  # a subfolder: not read as a subset
    erroneous = [item for item in items if item["label"] >= 0]
    return {
        "items": len(items), "correct": len(items) - len(erroneous), "erroneous": len(erroneous),
        "correct_answer_flawed_process": sum(b["final_answer_correct"] for b in erroneous),
        "first_error_position": dict(sorted(Counter(b["label"] for b in erroneous).items())),
        "file": str(out / f"{name}.json"),
    }
