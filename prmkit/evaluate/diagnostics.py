"""The paper's bias diagnostic, on both sides of training: do the labels blame the final step,
and does a PRM put a response's lowest score there?

MC estimation judges a step by whether the gold answer can still be reached from it, so a
solution that goes wrong early but recovers is labelled right, and one that fails at the end is
labelled wrong at its last step: MC-trained PRMs drift towards outcome models that wait for
the end. Both shares are measured here against each other (and, where it is known, against the
step truth).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prmkit.evaluate.ranking import fully_scored, past_context
from prmkit.labels import Source


def final_step_errors(solutions: Sequence[dict], sources: Mapping[str, str]) -> dict[str, dict]:
    """For each label source (name -> spec): among the solutions of 2+ steps it calls wrong,
    the share whose first error is the final step. A PRM can only learn to blame the final
    step if its labels do."""
    out = {}
    for name, spec in sources.items():
        source, wrong, final = Source.parse(spec), 0, 0
        for s in solutions:
            try:
                first = source.first_error(s)
            except ValueError:
                continue
            if first is not None and first >= 0 and len(s["steps"]) >= 2:
                wrong += 1
                final += first == len(s["steps"]) - 1
        out[name] = {"wrong": wrong, "share": 100.0 * final / wrong if wrong else None}
    return out


def min_on_final_step(step_scores: Sequence[Sequence[float | None] | None]) -> dict:
    """Among responses of 2+ steps that the PRM scored whole, the share (percent) whose lowest
    step score is on the final step (ties: the earliest lowest step). A response with a step
    past the PRM's context (null) is left out, whatever it holds: its final step, or the lowest
    one, may be the unscored one. ``past_context`` counts those left out (``responses``) and
    their unscored steps; ``share`` is None when no response is left to measure."""
    multi = [s for s in step_scores if s and len(s) >= 2]
    whole = [s for s in multi if fully_scored(s)]
    on_final = sum(1 for s in whole if min(range(len(s)), key=s.__getitem__) == len(s) - 1)
    return {"n_responses": len(whole), "share": 100.0 * on_final / len(whole) if whole else None,
            "past_context": past_context(multi, "responses")}
