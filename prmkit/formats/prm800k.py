"""PRM800K raw labeler lines (openai/prm800k phase1/phase2 files) as prmkit solutions.

Each line is one labelled trajectory: ``label.steps[i].completions[j].rating`` is 1 (good),
0 (neutral), -1 (bad) or null, and ``chosen_completion`` is the one the trajectory continued
with. We follow the chosen completions; at a step with none chosen, the labeler stopped there: if
a completion was rated -1 the trajectory ends on that first bad completion (the model's error),
otherwise on the human's replacement if any. Step labels count neutral as not wrong (a 0-rated
step is acceptable, only -1 marks an error); the raw ratings stay in ``ratings``.
"""

from __future__ import annotations

import re
from pathlib import Path

from prmkit.errors import InputError
from prmkit.labels import first_error
from prmkit.records import iter_json_items

_ANSWER_LINE = re.compile(r"#\s*Answer\s*\n+(.*)", re.DOTALL)


def _step_choice(step: dict) -> tuple[dict | None, bool]:
    """The completion a trajectory takes at one step, and whether it stops there."""
    completions = step.get("completions") or []
    chosen = step.get("chosen_completion")
    if chosen is not None:
        if isinstance(chosen, bool) or not isinstance(chosen, int) \
                or not 0 <= chosen < len(completions):  # -1 would silently take the last one
            raise IndexError(chosen)
        return completions[chosen], False
    bad = [c for c in completions if c.get("rating") == -1]
    if bad:
        return bad[0], True
    human = step.get("human_completion")
    if human:
        return {**human, "rating": 1 if human.get("rating") is None else human["rating"]}, True
    return None, True


def _convert(value: dict, path: Path, line: int) -> dict:
    def need(obj, key, field):
        if not isinstance(obj, dict) or key not in obj:
            raise InputError("missing", path=path, line=line, field=field)
        return obj[key]

    question = need(value, "question", "question")
    problem = need(question, "problem", "question.problem")
    steps_raw = need(need(value, "label", "label"), "steps", "label.steps")
    if not isinstance(steps_raw, list):
        raise InputError("expected a list", path=path, line=line, field="label.steps")
    steps, ratings = [], []
    for i, step in enumerate(steps_raw):
        try:
            completion, stop = _step_choice(step)
        except (IndexError, TypeError, AttributeError):
            raise InputError("chosen_completion points at no completion", path=path, line=line,
                             field=f"label.steps[{i}]") from None
        if completion is None:
            break
        steps.append(str(completion.get("text", "")))
        ratings.append(completion.get("rating"))
        if stop:
            break
    if not steps:
        raise InputError("no labelled step", path=path, line=line, field="label.steps")
    final = _ANSWER_LINE.search(steps[-1])
    ok = [r != -1 for r in ratings]
    return {
        "id": f"{path.stem}-{line}",
        "problem": problem,
        "steps": steps,
        "gold_answer": question.get("ground_truth_answer"),
        "final_answer": final.group(1).strip() if final else None,
        "step_labels": [1.0 if good else 0.0 for good in ok],
        "label": first_error(ok),
        "ratings": ratings,
        "finish_reason": value.get("label", {}).get("finish_reason"),
    }


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    return [_convert(value, path, line) for line, value in iter_json_items(path)]
