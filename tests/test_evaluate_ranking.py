"""Within-problem AUC: a PRM is judged by how it orders the solutions of one problem."""

import random

import pytest

from prmkit.evaluate.ranking import pooled_auc, solution_groups, within_problem_auc


def difficulty_only(seed: int = 0):
    """Solutions of problems of every difficulty; the 'PRM' scores each solution by its
    problem's easiness alone, so it knows nothing about which solution of a problem is good."""
    rng, groups = random.Random(seed), {}
    for p in range(60):
        easiness = rng.random()
        groups[f"p{p}"] = [(easiness, rng.random() < easiness) for _ in range(8)]
    return groups


def test_a_model_that_only_knows_problem_difficulty_ranks_at_chance_within_problems():
    groups = difficulty_only()
    pooled = pooled_auc([pair for members in groups.values() for pair in members])
    within = within_problem_auc(groups)
    assert pooled > 0.75                       # looks good on the pooled metric ...
    assert within["auc"] == pytest.approx(0.5)  # ... and is useless at its job: all ties
    assert within["low"] <= 0.5 <= within["high"]


def test_perfect_reversed_and_tied_rankings():
    good_first = {"a": [(0.9, True), (0.8, True), (0.1, False)], "b": [(0.7, True), (0.2, False)]}
    assert within_problem_auc(good_first)["auc"] == 1.0
    assert within_problem_auc(good_first)["pairs"] == 2 + 1
    reversed_ = {k: [(1 - s, ok) for s, ok in v] for k, v in good_first.items()}
    assert within_problem_auc(reversed_)["auc"] == 0.0
    assert within_problem_auc({"a": [(0.5, True), (0.5, False)]})["auc"] == 0.5


def test_problems_without_both_kinds_give_no_pairs_and_the_interval_is_seeded():
    groups = {"all good": [(0.1, True), (0.2, True)], "all bad": [(0.9, False)],
              "mixed": [(0.9, True), (0.3, False), (0.6, False)]}
    result = within_problem_auc(groups)
    assert (result["auc"], result["pairs"], result["problems"]) == (1.0, 2, 1)
    assert within_problem_auc({"x": [(0.3, True)]}) == {"auc": None, "low": None, "high": None,
                                                       "pairs": 0, "problems": 0,
                                                       "per_problem": {}}
    noisy = {f"p{i}": [(random.Random(i).random(), True), (random.Random(1000 + i).random(), False)]
             for i in range(40)}
    first, again = within_problem_auc(noisy, seed=3), within_problem_auc(noisy, seed=3)
    assert first == again and first["low"] < first["auc"] < first["high"]


def test_solution_groups_reads_records_and_skips_unscored_ones():
    solutions = [{"id": "s1", "problem_id": "p", "ok": True}, {"id": "s2", "problem_id": "p",
                                                               "ok": False},
                 {"id": "s3", "problem_id": "q", "ok": True}]
    groups = solution_groups(solutions, {"s1": 0.9, "s2": 0.1, "s3": None}, lambda s: s["ok"])
    assert groups == {"p": [(0.9, True), (0.1, False)]}
