"""The report's findings (prmkit.report.demo): each lesson stated as reproduced or not from the
numbers, gated on PRMs that rank within problems."""


from prmkit.report import demo as report

# 100 one-solution problems: 50 correct items, then 50 erroneous ones (label 1)
BENCH = [{"id": f"i{k}", "problem": f"p{k}", "label": -1 if k < 50 else 1,
          "final_answer_correct": k < 60} for k in range(100)]


def predictions(f1: float) -> dict:
    """Per-item predictions whose error and correct accuracy are both f1 (so F1 is f1); PRMs
    of other F1 hit other items, as real ones do."""
    hits, shift = round(f1 / 2), round(f1)  # hits of 50 in each class
    hit = {k for k in range(100) if (k + shift) % 50 < hits}
    return {f"i{k}": (-1 if k in hit else 0) if k < 50 else (1 if k in hit else -1)
            for k in range(100)}


def prm(f1: float, bon_min: float, min_final: float, flawed: float = 50.0,
        auc: float = 0.9) -> dict:
    accuracy = {m: {"8": v} for m, v in (("min", bon_min), ("last", bon_min),
                                         ("prod", bon_min), ("vote_min", bon_min),
                                         ("maj", 60.0), ("pass", 90.0), ("random", 40.0))}
    within = {"auc": auc, "low": auc - 0.08, "high": auc + 0.08, "pairs": 500, "problems": 60}
    return {"processbench": {"best_threshold_per_subset": {"toy": {"f1": f1, "threshold": 0.5}},
                             "subsets": {"toy": {"f1": f1}},
                             "at_best": {"flawed_correct_answer": {"n": 10, "acc": flawed},
                                         "predictions": predictions(f1)},
                             "cross_fitted": {"f1": f1 - 2, "thresholds": [0.4, 0.5]},
                             "sweep": [{"threshold": 0.5, "f1": {"toy": f1}}]},
            "bon": {"ns": [8], "n_scored": 100, "accuracy": accuracy,
                    "min_on_final_step": {"share": min_final, "n_responses": 800}},
            "ranking": {"aggregation": "min", "process": within, "answer": within}}


def results(consensus_acc=0.9, mc_acc=0.6, truth=(40.0, 70.0, 20.0), mc=(20.0, 72.0, 45.0),
            mc_auc=0.9):
    rows = [{"source": "MC-hard", "spec": "mc.hard", "first_error_accuracy": mc_acc,
             "kept_share": 1.0, "negative_precision": 0.7, "negative_recall": 0.6,
             "rollouts": 100, "judge_calls": 0},
            {"source": "consensus", "spec": "consensus.first_error",
             "first_error_accuracy": consensus_acc, "kept_share": 0.6,
             "negative_precision": 1.0, "negative_recall": 0.7, "rollouts": 100,
             "judge_calls": 0}]
    return {"label_quality": {"rows": rows}, "ceiling": "exact truth", "mc_sources": ["MC-hard"],
            "counts": {"bench_items": 100, "train_solutions": 10, "heldout_solutions": 10,
                       "bench_erroneous": 50}, "bench": BENCH,
            "prms": {"exact truth": prm(*truth), "MC-hard": prm(*mc, auc=mc_auc)},
            "policy": "p"}


def test_each_lesson_is_stated_as_reproduced_or_not_from_the_numbers():
    good = results()
    assert "Lesson 1 reproduced:** consensus filtering beats the best MC labels (MC-hard) " \
           "by 30.0 points" in report.lesson_labels(good)
    assert "did not reproduce:** consensus trails MC-hard by 5.0 points" in \
        report.lesson_labels(results(consensus_acc=0.55))
    flip = report.lesson_bon_vs_processbench(good)
    assert "Lesson 2 reproduced:** Best-of-8 ranks MC-hard above exact truth (72.0% vs 70.0%, " \
           "2 of 100 problems)" in flip and "F1 40.0 vs 20.0" in flip
    same = report.lesson_bon_vs_processbench(results(mc=(20.0, 60.0, 45.0)))
    assert "Lesson 2 did not reproduce" in same
    assert "the ranking itself is not significant" in flip
    close = report.lesson_bon_vs_processbench(results(mc=(37.0, 72.0, 45.0)))  # within noise
    assert "Lesson 2 did not reproduce" in close
    assert "Lesson 3 reproduced:** 25.0 points more" in report.lesson_min_on_final(good)
    assert "Lesson 3 did not reproduce" in report.lesson_min_on_final(
        results(mc=(20.0, 72.0, 10.0)))
    assert "+1.0 points" in report.lesson_min_on_final(results(mc=(20.0, 72.0, 21.0)))


def test_a_lesson_resting_on_a_prm_that_ranks_at_chance_is_not_tested():
    weak = results(mc_auc=0.52)  # interval [0.44, 0.60]: not above chance
    assert not report.verifies(weak["prms"]["MC-hard"])
    assert report.verifies(weak["prms"]["exact truth"])
    for sentence in (report.lesson_bon_vs_processbench(weak), report.lesson_min_on_final(weak)):
        assert "is not tested" in sentence and "too weak to test it" in sentence
        assert "reproduced" not in sentence.replace("not reproduce", "")
    assert "MC-hard does not rank them better than a random pick" in report.verification(weak)
    assert "Every PRM ranks" in report.verification(results())
    head, rows = report.ranking_table(weak)
    assert rows[1][0] == "MC-hard" and rows[1][-1] == "no" and rows[0][-1] == "yes"
    assert rows[-1][head.index("BoN@8 min")] == "40.0%"  # random pick


def test_the_report_tables_carry_every_prm_and_the_maj_and_pass_references():
    head, rows = report.prm_table(results())
    assert [r[0] for r in rows] == ["exact truth", "MC-hard", "random pick@8 (no PRM)",
                                    "maj@8 (no PRM)", "pass@8 (oracle)"]
    assert rows[0][head.index("F1, threshold from other problems")] == "38.0 (0.4/0.5)"
    assert rows[0][head.index("best F1 (threshold)")] == "40.0 (0.5)"
    assert rows[1][head.index("min on final step")] == "45.0%"
    assert rows[3][head.index("BoN@8 prod")] == "60.0%" and rows[4][head.index("BoN@8 min")] == \
        "90.0%"


def test_the_untrained_baseline_is_measured_but_never_one_side_of_a_lesson():
    base = results()
    base["prms"]["no labels"] = prm(10.0, 50.0, 90.0, auc=0.52)  # weak, and all on the final
    base["baselines"] = ["no labels"]
    assert report.lesson_min_on_final(base) == report.lesson_min_on_final(results())
    assert "is not tested" not in report.lesson_bon_vs_processbench(base)
    said = report.verification(base)
    assert "the PRM already ranks at 0.52; trained on the exact truth it ranks at 0.90, so the " \
           "labels add +0.38 (beyond the noise" in said
    assert [r[0] for r in report.ranking_table(base)[1]][:3] == ["exact truth", "MC-hard",
                                                                 "no labels"]
