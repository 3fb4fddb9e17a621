"""The report (prmkit.report): each lesson stated as reproduced or not from the numbers, gated
on PRMs that rank within problems; the tables of the report and of each benchmark; one report
for runs with step truth (the toy world) and without (real data)."""

from types import SimpleNamespace

from prmkit.evaluate import bon, processbench
from prmkit.report import findings as report
from prmkit.report import comparisons, page, sections

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
    """A PRM's measured results, with the per-problem numbers the paired bootstraps read: the
    first ``bon_min`` of 100 problems picked right, the same AUC on each of 60 problems, and
    ``min_final`` percent of 800 responses with the minimum on the final step, packed into the
    first problems."""
    accuracy = {m: {"8": v} for m, v in (("min", bon_min), ("last", bon_min),
                                         ("prod", bon_min), ("vote_min", bon_min),
                                         ("maj", 60.0), ("pass", 90.0), ("random", 40.0))}
    within = {"auc": auc, "low": auc - 0.08, "high": auc + 0.08, "pairs": 600, "problems": 60,
              "per_problem": {f"p{k}": [10 * auc, 10] for k in range(60)}}
    best = {"f1": f1, "threshold": 0.5, "flawed_correct_answer": {"n": 10, "acc": flawed}}
    on_final = round(8 * min_final)
    return {"processbench": {"subsets": {"toy": {"f1": f1}}, "average_f1": f1,
                             "best_threshold_per_subset": {"toy": {"f1": f1, "threshold": 0.5}},
                             "at_best": {"subsets": {"toy": best}, "average_f1": f1,
                                         "predictions": predictions(f1)},
                             "cross_fitted": {"toy": {"f1": f1 - 2, "thresholds": [0.4, 0.5]}},
                             "sweep": [{"threshold": 0.5, "average_f1": f1, "f1": {"toy": f1}}]},
            "bon": {"toy": {"bon": {"ns": [8], "n_scored": 100, "accuracy": accuracy,
                                    "items": [{"id": f"p{k}", "picks": {
                                        "min": {"correct": k < round(bon_min)}}}
                                        for k in range(100)],
                                    "min_on_final_step": {
                                        "share": min_final, "n_responses": 800,
                                        "per_problem": {f"p{k}": [min(8, max(0, on_final - 8 * k)),
                                                                  8] for k in range(100)}}},
                            "ranking": {"aggregation": "min", "process": within,
                                        "answer": within}}}}


def label_row(source: str, spec: str, accuracy: float, kept: float) -> dict:
    """A label source's quality, the same accuracy on each of 100 problems."""
    return {"source": source, "spec": spec, "first_error_accuracy": accuracy,
            "kept_share": kept, "negative_precision": 0.7, "negative_recall": 0.6,
            "rollouts": 100, "judge_calls": 0, "sound_step_blamed": 0.1,
            "per_problem": {f"p{k}": [10 * accuracy, 10] for k in range(100)}}


def results(consensus_acc=0.9, mc_acc=0.6, truth=(40.0, 70.0, 20.0), mc=(20.0, 72.0, 45.0),
            mc_auc=0.9, consensus=None):
    rows = [label_row("MC-hard", "mc.hard", mc_acc, 1.0),
            label_row("consensus", "consensus.first_error", consensus_acc, 0.6)]
    prms = {"exact truth": prm(*truth), "MC-hard": prm(*mc, auc=mc_auc)}
    if consensus is not None:
        prms["consensus"] = prm(*consensus)
    return {"labels": {"quality": {"rows": rows}, "final_step_errors": None, "agreement": None,
                       "sources": {"MC-hard": "mc.hard", "consensus": "consensus.first_error"},
                       "costs": {"sampled solutions": 10}},
            "ceiling": "exact truth", "mc_sources": ["MC-hard"], "baselines": [],
            "prm_sources": {"exact truth": "truth.step_labels", "MC-hard": "mc.hard",
                            "consensus": "consensus.first_error"},
            "counts": {"train_solutions": 10, "viewer_solutions": 0},
            "benchmarks": {"processbench": {"n_items": 100, "n_erroneous": 50, "items": BENCH},
                           "bon": {"toy": {"n_problems": 100, "n_solutions": 800}}},
            "prms": prms, "training": {}, "skipped_prms": {}, "policy": "p", "judge": None}


def said(lesson, measured: dict) -> str:
    return lesson(measured)[1]


def test_a_lesson_is_reproduced_only_when_every_comparison_is_significant_its_way():
    assert report.verdict_of(["+", "+"]) == "reproduced"
    assert report.verdict_of(["+", "0"]) == "inconclusive"
    assert report.verdict_of(["+", "-"]) == "contradicted"
    assert report.verdict_of([]) == "inconclusive"


def test_lesson_1_rests_on_the_labels_and_on_the_prms_trained_on_them():
    better = results(consensus=(60.0, 71.0, 20.0))  # consensus PRM F1 60 against MC-hard's 20
    verdict, text = report.lesson_labels(better)
    assert verdict == "reproduced" and "Lesson 1 (consensus vs MC labels) reproduced:**" in text
    assert "gap +30.0 points, 95% interval [+30.0, +30.0]" in text
    assert report.lesson_labels(results(consensus_acc=0.55, consensus=(60.0, 71.0, 20.0)))[0] \
        == "contradicted"
    # no consensus PRM: the label advantage alone does not reproduce the lesson
    verdict, text = report.lesson_labels(results())
    assert verdict == "inconclusive" and "PRM level was not measured" in text


def test_lesson_2_needs_a_significant_flip_between_best_of_n_and_processbench():
    close = results()  # Best-of-8 72% against 70%: two problems apart, within the noise
    verdict, text = report.lesson_bon_vs_processbench(close)
    assert verdict == "inconclusive" and "Best-of-N cannot tell these PRMs apart" in text
    verdict, text = report.lesson_bon_vs_processbench(results(mc=(20.0, 90.0, 45.0)))
    assert verdict == "reproduced"
    assert "Best-of-8 prefers MC-hard to exact truth (90.0% vs 70.0%, gap +20.0 points" in text
    assert "F1 40.0 vs 20.0" in text
    verdict, text = report.lesson_bon_vs_processbench(results(mc=(20.0, 50.0, 45.0)))
    assert verdict == "contradicted" and "order every pair of PRMs alike" in text


def test_lesson_3_compares_the_final_step_shares_paired_by_problem():
    assert report.lesson_min_on_final(results())[0] == "reproduced"
    assert "MC-trained minus the others +25.0 points" in said(report.lesson_min_on_final,
                                                              results())
    assert report.lesson_min_on_final(results(mc=(20.0, 72.0, 10.0)))[0] == "contradicted"
    assert report.lesson_min_on_final(results(mc=(20.0, 72.0, 21.0)))[0] == "inconclusive"
    assert report.verdicts(results()) == {"lesson 1": "inconclusive", "lesson 2": "inconclusive",
                                          "lesson 3": "reproduced"}


def test_a_lesson_resting_on_a_prm_that_ranks_at_chance_is_not_tested():
    weak = results(mc_auc=0.52)  # interval [0.44, 0.60]: not above chance
    assert not report.verifies(weak["prms"]["MC-hard"])
    assert report.verifies(weak["prms"]["exact truth"])
    for lesson in (report.lesson_bon_vs_processbench, report.lesson_min_on_final):
        verdict, sentence = lesson(weak)
        assert verdict == "inconclusive"
        assert "is not tested" in sentence and "too weak to test it" in sentence
    assert "MC-hard does not rank them better than a random pick" in report.verification(weak)
    assert "Every PRM ranks" in report.verification(results())
    [table] = sections.ranking_tables(weak)
    head, rows = table.head, table.rows
    assert rows[1][0] == "MC-hard" and rows[1][-1] == "no" and rows[0][-1] == "yes"
    assert rows[-1][head.index("BoN@8 min")] == "40.0%"  # random pick


def test_the_benchmark_tables_carry_every_prm_and_the_maj_and_pass_references():
    [pb] = processbench.tables(results())
    assert [r[0] for r in pb.rows] == ["exact truth", "MC-hard"]
    assert pb.rows[0][pb.head.index("F1, threshold from other problems")] == "38.0 (0.4/0.5)"
    assert pb.rows[0][pb.head.index("best F1 (threshold)")] == "40.0 (0.5)"
    [best_of_n] = bon.tables(results())
    head, rows = best_of_n.head, best_of_n.rows
    assert [r[0] for r in rows] == ["exact truth", "MC-hard", "random pick@8 (no PRM)",
                                    "maj@8 (no PRM)", "pass@8 (oracle)"]
    assert rows[1][head.index("min on final step")] == "45.0%"
    assert rows[3][head.index("BoN@8 prod")] == "60.0%" and rows[4][head.index("BoN@8 min")] == \
        "90.0%"


def test_the_untrained_baseline_is_measured_but_never_one_side_of_a_lesson():
    base = results()
    base["prms"]["no labels"] = prm(10.0, 50.0, 90.0, auc=0.52)  # weak, and all on the final
    base["baselines"] = ["no labels"]
    assert report.lesson_min_on_final(base) == report.lesson_min_on_final(results())
    assert "is not tested" not in said(report.lesson_bon_vs_processbench, base)
    verification = report.verification(base)
    assert "the PRM already ranks at 0.52; trained on its labels (exact truth) it ranks at " \
           "0.90, so the labels add +0.38 [+0.38, +0.38] (a gain beyond the noise" in verification
    [paired] = comparisons.comparison_table(base)
    assert [r[0] for r in paired.rows] == ["exact truth − no labels", "MC-hard − no labels",
                                           "consensus − MC-hard"][:2]
    assert [r[0] for r in sections.ranking_tables(base)[0].rows][:3] == [
        "exact truth", "MC-hard", "no labels"]



def real_data(results: dict) -> dict:
    """The same run as real data sees it: no step truth, so no process AUC and no label
    quality."""
    results["prms"]["consensus"] = prm(60.0, 71.0, 20.0)
    for measured in results["prms"].values():
        measured["bon"]["toy"]["ranking"].pop("process")
    results["labels"]["quality"] = None
    return results


def test_without_step_truth_the_report_ranks_by_answers_and_judges_labels_by_their_prms():
    said = report.findings(real_data(results()))
    assert "right answer against wrong" in said[0]
    [lesson] = [s for s in said if "Lesson 1" in s]
    assert "judged by the PRMs alone" in lesson and "consensus PRM reaches ProcessBench F1 " \
        "60.0 against 20.0 for the best MC-trained PRM (MC-hard)" in lesson
    [table] = sections.ranking_tables(real_data(results()))
    assert not any("sound vs flawed" in h for h in table.head)
    assert [t.title for t in sections.label_tables(real_data(results()))] == [
        "What the labels cost"]


def test_the_report_is_written_for_a_run_with_or_without_benchmarks(tmp_path):
    measured = results()
    evaluation = SimpleNamespace(viewer_solutions=[], viewer={}, groups={}, scores={})
    page.write(tmp_path, measured, evaluation, {"total": {"seconds": 1.0}}, viewer_items=10)
    text = (tmp_path / "report.md").read_text()
    for title in ("## Findings", "## How the PRMs rank the solutions of one problem: toy",
                  "## Label quality (against the step truth)",
                  "## ProcessBench (100 items, 50 erroneous)",
                  "## Best-of-N: toy (100 problems x 8 candidates)"):
        assert title in text, title
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "bon.png", "min_on_final_step.png", "processbench_threshold.png"]
    bare = {**measured, "benchmarks": {}, "prms": {name: {} for name in measured["prms"]}}
    page.write(tmp_path / "bare", bare, evaluation, {}, viewer_items=10)
    said = (tmp_path / "bare" / "report.md").read_text()
    assert "was not measured: the recipe has no Best-of-N set" in said


def test_the_report_says_what_each_prm_can_and_cannot_catch_by_origin():
    measured = results(consensus=(60.0, 71.0, 20.0))
    for name, (believes, doubts) in {"exact truth": (0.85, 0.95),
                                     "MC-hard": (0.10, 0.95)}.items():
        ranking = measured["prms"][name]["bon"]["toy"]["ranking"]
        ranking["process_by_origin"] = {
            origin: {"auc": auc, "low": auc - 0.05, "high": auc + 0.05, "problems": 40,
                     "per_problem": {f"p{k}": [10 * auc, 10] for k in range(40)}}
            for origin, auc in (("misconception", believes), ("slip", doubts))}
    said_here = report.catches(measured)
    assert "Misconceptions (40 problems with both kinds of solution): caught by exact truth; " \
           "not by MC-hard (0.10 [0.05, 0.15])" in said_here
    assert "Slips (40 problems with both kinds of solution): caught by exact truth and " \
           "MC-hard." in said_here
    [paired] = comparisons.comparison_table(measured)  # consensus against MC-hard
    assert paired.head[2:4] == ["AUC gap: misconceptions", "AUC gap: slips"]
    assert paired.rows[0][0] == "consensus − MC-hard" and paired.rows[0][2] == "–"
    [by_origin] = comparisons.origin_table(measured)
    assert by_origin.rows[1][:3] == ["MC-hard", "0.10 [0.05, 0.15]", "0.95 [0.90, 1.00]"]


def test_lesson_3_leaves_out_the_prms_that_rank_at_chance():
    measured = results()
    measured["prms"]["judge"] = prm(30.0, 60.0, 90.0, auc=0.5)  # at chance, all on the final
    verdict, text = report.lesson_min_on_final(measured)
    assert verdict == "reproduced" and "(judge does not)" in text
    assert "MC-trained minus the others +25.0 points" in text
