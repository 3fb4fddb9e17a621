import json
import random
import subprocess
import sys

import numpy as np
import pytest

from prmkit.errors import InputError
from prmkit.evaluate import processbench
from prmkit.evaluate.processbench import subset_metrics
from prmkit.labels import first_at_or_below


def random_scores(items, seed=0):
    rng = random.Random(seed)
    return {r["id"]: [rng.random() for _ in r["steps"]] for r in items}


def official(items, predictions):
    """The official ProcessBench formula (QwenLM/ProcessBench code/run_eval_*.py), re-derived."""
    out = {}
    for subset in ("gsm8k", "math", "olympiadbench", "omnimath"):
        data = [dict(r, match=predictions[r["id"]] == r["label"]) for r in items if r["subset"] == subset]
        data1 = [e for e in data if e["label"] != -1]
        data2 = [e for e in data if e["label"] == -1]
        acc1 = np.mean([e["match"] for e in data1]) * 100
        acc2 = np.mean([e["match"] for e in data2]) * 100
        out[subset] = (acc1, acc2, 2 * acc1 * acc2 / (acc1 + acc2))
    return out


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_matches_the_official_formula_on_real_processbench(processbench_items, threshold):
    scores = random_scores(processbench_items, seed=int(threshold * 10))
    # a scorer that knows some of the truth, so the accuracies are not all near chance
    for r in processbench_items[::3]:
        scores[r["id"]] = [0.9 if r["label"] == -1 or i < r["label"] else 0.1
                           for i in range(len(r["steps"]))]
    predictions = {}
    for r in processbench_items:
        below = [i for i, s in enumerate(scores[r["id"]]) if s < threshold]
        predictions[r["id"]] = below[0] if below else -1
    expected = official(processbench_items, predictions)
    metrics = processbench.metrics(processbench_items, step_scores=scores, threshold=threshold)
    for subset, (acc1, acc2, f1) in expected.items():
        got = metrics["subsets"][subset]
        assert got["error_acc"] == pytest.approx(acc1, abs=1e-9)
        assert got["correct_acc"] == pytest.approx(acc2, abs=1e-9)
        assert got["f1"] == pytest.approx(f1, abs=1e-9)
    assert metrics["average_f1"] == pytest.approx(np.mean([v[2] for v in expected.values()]), abs=1e-9)
    flawed = [r for r in processbench_items if r["subset"] == "gsm8k" and r["label"] != -1
              and r["final_answer_correct"]]
    assert metrics["subsets"]["gsm8k"]["flawed_correct_answer"]["n"] == len(flawed)


def test_perfect_scores_give_full_marks_and_tuning_picks_a_threshold(processbench_items):
    items = [r for r in processbench_items if r["subset"] == "gsm8k"]
    perfect = {r["id"]: [0.8 if r["label"] == -1 or i < r["label"] else 0.2
                         for i in range(len(r["steps"]))] for r in items}
    m = processbench.metrics(items, step_scores=perfect, threshold=0.9, tune_on="gsm8k")
    assert m["subsets"]["gsm8k"]["f1"] == 100.0 and 0.2 < m["threshold"] <= 0.8
    assert m["threshold_source"] == "tuned on gsm8k"
    assert m["best_threshold_per_subset"]["gsm8k"]["f1"] == 100.0


def test_critiques_are_parsed_voted_and_counted(processbench_items):
    gsm8k = [r for r in processbench_items if r["subset"] == "gsm8k"]
    items = [r for r in gsm8k if r["label"] == -1][:10] + [r for r in gsm8k if r["label"] != -1][:10]
    critiques = {r["id"]: [f"the error is at \\boxed{{{r['label']}}}", "no idea",
                           f"\\boxed{{{r['label']}}}", "\\boxed{99}"] for r in items}
    m = processbench.metrics(items, critiques=critiques)
    assert m["subsets"]["gsm8k"]["f1"] == 100.0
    assert m["critique_stats"] == {"critiques": 80, "unparseable": 20, "out_of_range": 20,
                                   "solutions_without_prediction": 0}


def test_a_subset_without_correct_samples_is_reported_not_a_crash(processbench_items):
    items = [r for r in processbench_items if r["subset"] == "gsm8k" and r["label"] != -1][:10]
    m = processbench.metrics(items, step_scores=random_scores(items))
    assert m["subsets"]["gsm8k"]["f1"] is None and "no correct samples" in m["subsets"]["gsm8k"]["note"]


def test_alignment_errors_name_the_file_and_line(tmp_path, processbench_items):
    items = [r for r in processbench_items if r["subset"] == "gsm8k"][:3]
    rows = [{"id": r["id"], "step_scores": [0.5] * len(r["steps"])} for r in items]
    path = tmp_path / "s.jsonl"

    def check(rows, field, line, match):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with pytest.raises(InputError, match=match) as e:
            processbench.metrics(items, step_scores=path)
        assert (e.value.field, e.value.line) == (field, line)

    check(rows + [{"id": "nope", "step_scores": [1.0]}], "id", 4, "not in the benchmark")
    check(rows[:2], "id", None, "1 benchmark ids have no step scores")
    check([rows[0], {**rows[1], "step_scores": [0.5]}, rows[2]], "step_scores", 2, "1 scores for")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "prmkit.cli", *args], capture_output=True, text=True)


def test_cli_writes_metrics_then_marker_and_refuses_bad_input(tmp_path, processbench_dir):
    bench = processbench_dir / "gsm8k.json"
    from prmkit.formats.processbench import read_file
    items = read_file(bench)
    scores = tmp_path / "scores.jsonl"
    scores.write_text("".join(json.dumps({"id": i, "step_scores": s}) + "\n"
                              for i, s in random_scores(items).items()))
    out = tmp_path / "run"
    done = run_cli("eval", "processbench", "-b", str(bench), "--scores", str(scores),
                   "--out", str(out), "--tune-on", "gsm8k")
    assert done.returncode == 0, done.stderr
    assert (out / "COMPLETE").exists() and "F1" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["threshold_source"] == "tuned on gsm8k" and "items" not in metrics
    # one prediction an item beside its label, at the threshold used, for error analysis
    predictions = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [r["id"] for r in items]
    hits = [p["hit"] for p in predictions if p["label"] != -1]
    assert 100 * sum(hits) / len(hits) == pytest.approx(metrics["subsets"]["gsm8k"]["error_acc"])
    again = run_cli("eval", "processbench", "-b", str(bench), "--scores", str(scores),
                    "--out", str(out), "--tune-on", "gsm8k")
    assert "is complete for this config" in " ".join(again.stdout.split())
    assert "wrote" not in again.stdout

    lines = scores.read_text().splitlines()
    lines[4] = lines[4].replace('"step_scores": [', '"step_scores": [0.5, ')
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    bad_out = tmp_path / "bad_run"
    failed = run_cli("eval", "processbench", "-b", str(bench), "--scores", str(bad),
                     "--out", str(bad_out))
    assert failed.returncode == 2
    assert f"{bad}:5: field 'step_scores'" in failed.stderr
    assert not (bad_out / "COMPLETE").exists()


def _toy_items(n_problems: int = 40, seed: int = 0):
    """Two solutions a problem, one right and one wrong at step 1, scored by a noisy PRM."""
    rng, items, scores = random.Random(seed), [], {}
    for p in range(n_problems):
        for k, label in enumerate((-1, 1)):
            item = {"id": f"p{p}-{k}", "problem": f"problem {p}", "label": label,
                    "steps": ["a", "b", "c"], "final_answer_correct": label == -1}
            items.append(item)
            wrong = label == 1
            scores[item["id"]] = [0.9, (0.3 if wrong else 0.8) + rng.uniform(-0.25, 0.25), 0.9]
    return items, scores


def test_cross_fitted_thresholds_come_from_the_other_half_of_the_problems():
    from prmkit.evaluate.processbench import best_threshold, cross_fitted
    items, scores = _toy_items()
    fitted = cross_fitted(items, scores)
    assert len(fitted["thresholds"]) == 2 and fitted["n"] == len(items)
    best = best_threshold(items, scores)
    in_sample = subset_metrics(items, {r["id"]: first_at_or_below(scores[r["id"]], best)
                                       for r in items})["f1"]
    assert 50 < fitted["f1"] <= in_sample  # tuned elsewhere: never above the in-sample best


def test_the_f1_gap_has_a_paired_bootstrap_interval():
    from prmkit.evaluate.processbench import f1_gap
    items, scores = _toy_items()
    good = {r["id"]: first_at_or_below(scores[r["id"]], 0.55) for r in items}
    blind = {r["id"]: -1 for r in items}  # calls everything correct: F1 0
    same = f1_gap(items, good, good)
    assert same == {"gap": 0.0, "low": 0.0, "high": 0.0}
    clear = f1_gap(items, good, blind)
    assert clear["gap"] > 50 and 0 < clear["low"] <= clear["gap"] <= clear["high"]
    assert f1_gap(items, blind, good)["high"] < 0


def test_steps_past_the_context_are_unknown_and_counted(processbench_items):
    """A PRM writes null for the steps that did not fit its context: they cannot be the
    predicted error, and a solution whose read steps all pass is not called correct either
    (the PRM never saw the rest): no prediction, a miss, counted."""
    items = [r for r in processbench_items if r["subset"] == "gsm8k"][:20]
    scores = {r["id"]: [0.9] * len(r["steps"]) for r in items}
    first = items[0]["id"]
    scores[first] = [0.9] + [None] * (len(items[0]["steps"]) - 1)
    m = processbench.metrics(items, step_scores=scores, per_item=True)
    assert m["past_context"] == {"items": 1, "steps": len(items[0]["steps"]) - 1,
                                 "no_prediction": 1, "nothing_fit": False}
    predicted = {p["id"]: p for p in m["items"]}[first]
    assert predicted["prediction"] is None and not predicted["hit"]

