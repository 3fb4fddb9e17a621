"""``prmkit toy bench``: a ProcessBench of the toy world, labelled by the exact truth.

The policy writes N solutions for each held-out problem; the truth labels them. We keep complete
solutions (they end with an answer step and were not cut off), at most one correct and one
erroneous solution a problem (the earliest sample of each), and balance the two classes by a
seeded draw, as ProcessBench balances its subsets. The file is in ProcessBench's exact format
(a JSON array of ``id, generator, problem, steps, final_answer_correct, label``), so
``prmkit eval processbench`` runs on it unchanged; a side file keeps each item's spec and step
verdicts for diagnostics (``truth/toy.jsonl``).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from prmkit.records import write_json, write_jsonl


def select(solutions: list[dict], *, seed: int = 0) -> list[dict]:
    """Balanced correct / erroneous items, at most one of each kind a problem."""
    firsts: dict[tuple[str, bool], dict] = {}
    for s in solutions:
        truth = s["truth"]
        if not truth.complete or s["finish_reason"] != "stop":
            continue
        key = (s["problem"]["id"], truth.label >= 0)
        firsts.setdefault(key, s)
    correct = [s for (_, err), s in firsts.items() if not err]
    erroneous = [s for (_, err), s in firsts.items() if err]
    rng = random.Random(seed)
    n = min(len(correct), len(erroneous))
    chosen = rng.sample(correct, n) + rng.sample(erroneous, n)
    return sorted(chosen, key=lambda s: (int(s["problem"]["id"].rsplit("-", 1)[1]),
                                         s["truth"].label))


def build(solutions: list[dict], out: str | Path, *, generator: str, name: str = "toy",
          seed: int = 0) -> dict:
    items = select(solutions, seed=seed)
    out = Path(out)
    bench = [{"id": f"{name}-{i}", "generator": generator, "problem": s["problem"]["problem"],
              "steps": s["steps"], "final_answer_correct": s["truth"].answer_correct,
              "label": s["truth"].label} for i, s in enumerate(items)]
    write_json(out / f"{name}.json", bench)
    write_jsonl(out / "truth" / f"{name}.jsonl", [  # a subfolder: not read as a subset
        {"id": b["id"], "problem_id": s["problem"]["id"], "toy": s["problem"]["toy"],
         "kinds": s["truth"].kinds, "first_error_off_path":
         s["truth"].first_error_off_path(s["spec"])} for b, s in zip(bench, items)])
    erroneous = [b for b in bench if b["label"] >= 0]
    return {
        "items": len(bench), "correct": len(bench) - len(erroneous), "erroneous": len(erroneous),
        "correct_answer_flawed_process": sum(b["final_answer_correct"] for b in erroneous),
        "first_error_position": dict(sorted(Counter(b["label"] for b in erroneous).items())),
        "file": str(out / f"{name}.json"),
    }
