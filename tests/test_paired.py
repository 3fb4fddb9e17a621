"""Paired comparisons (prmkit.evaluate.paired) and what feeds them: within-problem AUC per
problem and by the first error's origin, label quality by origin."""

import json

import pytest

from prmkit.annotate.quality import label_quality
from prmkit.evaluate.paired import ratio_gap, significance
from prmkit.evaluate.ranking import ranking


def test_a_paired_gap_is_tight_where_two_systems_move_together_across_problems():
    # problem difficulty varies widely, but the first system is always 10 points better
    first = {f"p{k}": [k % 10 + 1, 10] for k in range(50)}
    second = {f"p{k}": [k % 10, 10] for k in range(50)}
    gap = ratio_gap(first, second)
    assert gap["gap"] == pytest.approx(0.1) and gap["low"] == pytest.approx(gap["high"])
    assert significance(gap) == "+" and gap["problems"] == 50
    assert significance(ratio_gap(second, first)) == "-"
    # one problem apart in fifty: the interval holds zero
    same = {k: list(v) for k, v in second.items()}
    same["p3"][0] += 1
    assert significance(ratio_gap(same, second)) == "0"
    # problems only one side has are left out; nothing shared is nothing measured
    assert ratio_gap({"x": [1, 1]}, {"y": [1, 1]})["gap"] is None
    # a side may have nothing on some problems (consensus kept none of its solutions): each
    # side's ratio is over its own sums, as the report states them
    kept = {"a": [9, 10], "b": [0, 0], "c": [9, 10]}
    every = {"a": [8, 10], "b": [2, 10], "c": [8, 10]}
    assert ratio_gap(kept, every)["gap"] == pytest.approx(0.9 - 0.6)
    assert significance({"gap": None, "low": None, "high": None}) == "0"


def solution(sid: str, problem: str, label: int, origin: str | None, right: bool) -> dict:
    return {"id": sid, "problem_id": problem, "final_answer_correct": right,
            "truth": {"label": label, "first_error_origin": origin}}


def test_ranking_splits_the_flawed_solutions_by_where_their_first_error_came_from():
    # a PRM that catches slips but scores misconceptions as high as sound solutions
    solutions, scores = [], {}
    for k in range(4):
        for sid, label, origin, score in (("sound", -1, None, 0.9), ("slip", 1, "slip", 0.1),
                                          ("belief", 0, "misconception", 0.95)):
            solutions.append(solution(f"{k}-{sid}", f"p{k}", label, origin, label < 0))
            scores[f"{k}-{sid}"] = [score]
    measured = ranking(solutions, scores)
    assert measured["process_by_origin"]["slip"]["auc"] == 1.0
    assert measured["process_by_origin"]["misconception"]["auc"] == 0.0
    assert measured["process"]["auc"] == 0.5
    assert measured["process"]["per_problem"] == {f"p{k}": [1.0, 2] for k in range(4)}


def test_label_quality_is_split_by_origin_and_counts_blamed_sound_steps(tmp_path):
    # MC that blames the step before every misconception, and finds every slip
    records = []
    for k in range(3):
        for sid, label, origin, mc_first in (("s", -1, None, -1), ("slip", 2, "slip", 2),
                                             ("belief", 2, "misconception", 1)):
            steps = ["a", "b", "c", "d"]
            mc = [1 if i < mc_first or mc_first < 0 else 0 for i in range(4)]
            records.append({"id": f"{k}-{sid}", "problem_id": f"p{k}", "problem": "q",
                            "steps": steps, "mc": {"hard": mc},
                            "truth": {"label": label, "first_error_origin": origin}})
    path = tmp_path / "annotated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    [row] = label_quality(path, {"MC-hard": "mc.hard"})["rows"]
    assert row["by_origin"]["slip"]["first_error_accuracy"] == 1.0
    assert row["by_origin"]["misconception"]["first_error_accuracy"] == 0.0
    assert row["by_origin"]["misconception"]["sound_step_blamed"] == 1.0
    assert row["by_origin"]["sound"]["sound_step_blamed"] == 0.0
    assert row["per_problem"] == {f"p{k}": [2, 3] for k in range(3)}
