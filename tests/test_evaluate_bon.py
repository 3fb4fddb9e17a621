import json
import random
import subprocess
import sys
from collections import Counter

import pytest
from conftest import shared

from prmkit.errors import InputError
from prmkit.evaluate import bon
from prmkit.evaluate.bon import default_ns, group_answers, min_on_final_step


def qwen_candidate_file(tmp_path, n_problems=120, k=8, seed=0):
    """Candidate sets in the Qwen2.5-Math format on real GSM8K questions, with answers drawn to
    give many vote ties and reward scores rounded to give many score ties."""
    rng = random.Random(seed)
    rows = []
    for i, line in enumerate(shared("qwen25math_eval/gsm8k.jsonl").read_text().splitlines()[:n_problems]):
        problem = json.loads(line)
        gt = problem["answer"].split("####")[-1].strip().replace(",", "")
        choices = [gt, gt, str(int(gt) + 1), str(int(gt) - 2), f"{gt}.0", ""]
        preds = [rng.choice(choices) for _ in range(k)]
        rows.append({"idx": i, "question": problem["question"], "gt": gt,
                     "code": [f"... \\boxed{{{p}}}" for p in preds], "pred": preds,
                     "score": [p == gt for p in preds],  # Qwen's file: correctness per response
                     "pred_score": [[round(rng.random(), 1)] for _ in preds]})
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def qwen_maj_at_k(rows, k):
    """maj@k as QwenLM/Qwen2.5-Math evaluation/rm_maj_eval.py computes it, re-derived."""
    right = 0
    for sample in rows:
        preds = sample["pred"][:k]
        majority = Counter(preds).most_common(1)[0][0]
        right += sample["score"][preds.index(majority)]
    return right / len(rows) * 100


def qwen_rm_at_k(rows, k):
    right = 0
    for sample in rows:
        flat = [s for scores in sample["pred_score"][:k] for s in scores]
        right += sample["score"][:k][flat.index(max(flat))]
    return right / len(rows) * 100


def test_reproduces_qwen_rm_maj_eval(tmp_path):
    path, rows = qwen_candidate_file(tmp_path)
    metrics = bon.metrics({"gsm8k": path}, fmt="qwen_eval", group_by="string")
    acc = metrics["benchmarks"]["gsm8k"]["accuracy"]
    for k in (1, 2, 4, 8):
        assert acc["maj"][k] == pytest.approx(qwen_maj_at_k(rows, k), abs=1e-9)
        assert acc["response"][k] == pytest.approx(qwen_rm_at_k(rows, k), abs=1e-9)
        assert acc["pass"][k] == pytest.approx(
            100 * sum(any(r["score"][:k]) for r in rows) / len(rows), abs=1e-9)
        # random pick: the expected accuracy of one of the first k, drawn uniformly
        assert acc["random"][k] == pytest.approx(
            100 * sum(sum(r["score"][:k]) / k for r in rows) / len(rows), abs=1e-9)


def test_cli_on_the_qwen_format(tmp_path):
    path, rows = qwen_candidate_file(tmp_path, n_problems=30)
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "prmkit.cli", "eval", "bon", str(path),
                           "--format", "qwen_eval", "--group-by", "string", "--n", "1,4,8",
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["benchmarks"]["gsm8k"]["accuracy"]["maj"]["8"] == pytest.approx(qwen_maj_at_k(rows, 8))
    assert (out / "COMPLETE").exists()
    # each problem's pick by every method at N=8, beside it in predictions.jsonl
    picks = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(picks) == 30 and {p["benchmark"] for p in picks} == {"gsm8k"}
    assert 100 * sum(p["picks"]["maj"]["correct"] for p in picks) / 30 == \
        pytest.approx(qwen_maj_at_k(rows, 8))
    assert "items" not in metrics["benchmarks"]["gsm8k"]


def cand(answer, steps):
    return {"answer": answer, "steps": [f"s{i}" for i in range(len(steps))], "step_scores": steps}


def test_aggregations_votes_and_ties():
    sets = [{"id": "p", "gold_answer": "\\frac{1}{2}", "candidates": [
        cand("0.5", [0.9, 0.2]),       # right answer, one bad step
        cand("3", [0.6, 0.7]),         # wrong, decent everywhere
        cand("1/2", [0.5, 0.3]),       # right again, written differently
        cand("3", [0.6, 0.7]),         # tie with candidate 1
    ]}]
    m = bon.metrics({"b": sets}, ns=[4])["benchmarks"]["b"]
    acc = {k: v[4] for k, v in m["accuracy"].items()}
    assert acc["last"] == 0.0 and acc["min"] == 0.0 and acc["mean"] == 0.0   # pick "3"
    assert acc["pass"] == 100.0
    # equivalence grouping: {0.5, 1/2} and {3, 3} tie on size -> the earlier group wins
    assert acc["maj"] == 100.0
    # weighted by min: {0.5,1/2} = 0.2+0.3 < {3,3} = 1.2
    assert acc["vote_min"] == 0.0
    strings = bon.metrics({"b": sets}, ns=[4], group_by="string")["benchmarks"]["b"]
    assert strings["accuracy"]["maj"][4] == 0.0  # as strings, "3" is the only repeated answer


def test_unreadable_answers_and_golds_are_counted():
    sets = [{"id": "a", "gold_answer": "7", "candidates": [{"text": "no answer here"},
                                                          {"text": "\\boxed{7}"}]},
            {"id": "b", "gold_answer": None, "candidates": [{"answer": "1"}, {"answer": "2"}]}]
    m = bon.metrics({"x": sets})["benchmarks"]["x"]
    assert m["gold_unparseable"] == 1 and m["n_scored"] == 1 and m["unparseable_answers"] == 1
    assert m["accuracy"]["maj"][2] == 100.0  # the unreadable answer cast no vote


def test_min_on_final_step_and_defaults():
    sets = [{"id": "a", "candidates": [cand("1", [0.9, 0.1]), cand("1", [0.1, 0.9]),
                                       cand("1", [0.5]), cand("1", [0.3, 0.3])]}]
    assert min_on_final_step(sets) == {"n_responses": 3, "share": pytest.approx(100 / 3),
                                       "per_problem": {"a": [1, 3]},
                                       "past_context": {"responses": 0, "steps": 0}}
    assert default_ns(8) == [1, 2, 4, 8] and default_ns(6) == [1, 2, 4, 6]
    assert group_answers(["2", None, "2.0", "x"], "equivalence") == [[0, 2], [3]]
    with pytest.raises(InputError, match="only 4 candidates"):
        bon.metrics({"b": sets}, ns=[8])


def test_a_candidate_cut_by_the_context_ranks_below_every_one_scored_whole():
    """min over a prefix is not the solution's score: the candidate whose last step is past
    the context (0.8 so far) does not beat the whole one (min 0.2); it is counted."""
    from prmkit.evaluate.bon import evaluate_set
    sets = [{"id": "p", "gold_answer": "1", "candidates": [
        {"answer": "2", "correct": False, "step_scores": [0.9, 0.2]},
        {"answer": "1", "correct": True, "step_scores": [0.8, None]}]}]  # past the context
    m = evaluate_set(sets, ns=[2], per_item=True)
    assert m["accuracy"]["min"][2] == 0.0 and m["items"][0]["picks"]["min"]["index"] == 0
    assert m["past_context"] == {"candidates": 1, "steps": 1, "no_pick": {2: 0},
                                 "nothing_fit": False}



def test_eval_bon_scores_the_candidates_with_a_prm_itself(tmp_path, tiny_lm):
    from helpers import char_tokenizer

    from prmkit.cli import main
    from prmkit.prm.model import build_prm, save_prm
    from prmkit.prm.score import score
    from prmkit.records import write_jsonl
    prm = build_prm(str(tiny_lm), char_tokenizer())
    save_prm(prm, tmp_path / "prm")
    sets = [{"id": f"p{i}", "problem": f"Ann has {i} coins.", "gold_answer": str(i),
             "candidates": [{"answer": str(i + j % 2), "text": f"{i}+0={i}.\n\nSo {i + j % 2}.",
                             "correct": j % 2 == 0} for j in range(4)]} for i in range(5)]
    write_jsonl(tmp_path / "toy.jsonl", sets)
    out = tmp_path / "run"
    assert main(["eval", "bon", str(tmp_path / "toy.jsonl"), "--model", str(tmp_path / "prm"),
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["benchmarks"]["toy"]
    assert {"min", "prod", "vote_min"} <= set(metrics["accuracy"])  # step scores were made
    # the picks follow the PRM's own scores of each candidate's steps
    first = sets[0]
    rows = score([first["problem"]] * 4, [c["text"].split("\n\n") for c in first["candidates"]],
                 tmp_path / "prm")
    pick = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert pick["picks"]["min"]["index"] == max(range(4), key=lambda k: (min(rows[k]), -k))


def test_average_is_the_mean_of_the_benchmarks_accuracies():
    """The paper's Table 6 "Avg.": each benchmark counts once, whatever its size (not the pooled
    accuracy); null where some benchmark measured nothing (a mean over fewer is not comparable)."""
    from rich.console import Console
    small = [{"id": "a", "gold_answer": "1", "candidates": [cand("1", [0.9]), cand("2", [0.1])]}]
    big = [{"id": f"b{i}", "gold_answer": "1",
            "candidates": [cand("1" if i == 0 else "2", [None]), cand("3", [None])]}
           for i in range(3)]  # no step fits the PRM's context: its methods are null here
    measured = bon.metrics({"small": small, "big": big}, ns=[2])
    per = measured["benchmarks"]
    assert per["small"]["accuracy"]["maj"][2] == 100.0
    assert per["big"]["accuracy"]["maj"][2] == pytest.approx(100 / 3)
    assert measured["average"]["maj"][2] == pytest.approx((100 + 100 / 3) / 2)  # not 50
    assert per["big"]["accuracy"]["min"][2] is None and measured["average"]["min"][2] is None
    console = Console(width=200, record=True)
    bon.show(measured, console)
    lines = console.export_text().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if "Best-of-2 accuracy by benchmark" in line):]
    assert [c.strip() for c in table[2].split("┃")[1:-1]] == ["method", "small", "big", "Avg."]
    rows = {cells[0]: cells[1:] for line in table if line.startswith("│")
            for cells in [[c.strip() for c in line.split("│")[1:-1]]]}
    assert rows["maj"] == ["100.0", "33.3", "66.7"] and rows["min"] == ["100.0", "—", "—"]
    # from metrics.json (keys are strings there) the same average
    again = bon.average(json.loads(json.dumps(per)))
    assert again["maj"][2] == pytest.approx((100 + 100 / 3) / 2)


def test_the_pipeline_report_has_the_average_over_sets():
    sets = {"a": [{"id": "a", "gold_answer": "1", "candidates": [cand("1", [0.9]),
                                                                cand("2", [0.1])]}],
            "b": [{"id": "b", "gold_answer": "1", "candidates": [cand("2", [0.9]),
                                                                cand("1", [0.1])]}]}
    per = {name: bon.evaluate_set(s, ns=[1, 2]) for name, s in sets.items()}
    results = {"prms": {"P": {"bon": {name: {"bon": m} for name, m in per.items()}}},
               "benchmarks": {"bon": {name: {"n_problems": 1} for name in sets}}}
    overview = bon.tables(json.loads(json.dumps(results)))[-1]
    assert overview.title == "Best-of-2 over the sets" and overview.head[-1] == "Avg."
    rows = {r[0]: r[1:] for r in overview.rows}
    assert rows["P: min"] == ["100.0%", "0.0%", "50.0%"]
    assert rows["pass@2 (oracle)"] == ["100.0%", "100.0%", "100.0%"]


def test_maj_groups_option_letters_however_written():
    sets = [{"id": "q", "gold_answer": "C", "candidates": [
        {"answer": "B"}, {"answer": "(C)"}, {"answer": "C. 42"}, {"text": "... \\boxed{C}"}]}]
    by_equivalence = bon.metrics({"mmlu_stem": sets}, ns=[4])["benchmarks"]["mmlu_stem"]
    assert by_equivalence["accuracy"]["maj"][4] == 100.0  # (C), C. 42 and C: one option
    assert by_equivalence["accuracy"]["pass"][4] == 100.0
    by_string = bon.metrics({"mmlu_stem": sets}, ns=[4], group_by="string")
    assert by_string["benchmarks"]["mmlu_stem"]["accuracy"]["maj"][4] == 0.0  # "B" comes first


def test_group_by_has_one_default_for_the_command_line_and_the_pipeline(tmp_path):
    import dataclasses
    import inspect

    from prmkit.cli import main
    from prmkit.records import write_jsonl

    def group_by(cls):
        return next(f for f in dataclasses.fields(cls) if f.name == "group_by")
    cli, recipe = group_by(bon.BonConfig), group_by(bon.BestOfNSection)
    assert cli.default == recipe.default == bon.GROUP_BY == "equivalence"
    assert cli.metadata == recipe.metadata and cli.metadata["choices"] == bon.GROUPINGS
    for function in (bon.evaluate_set, bon.evaluate, bon.metrics):
        assert inspect.signature(function).parameters["group_by"].default == bon.GROUP_BY
    assert bon.BestOfNSection().group_by == bon.GROUP_BY
    # the command without --group-by: 1/2 and 0.5 vote together
    write_jsonl(tmp_path / "x.jsonl", [{"id": "p", "gold_answer": "0.5", "candidates": [
        {"answer": "3"}, {"answer": "1/2"}, {"answer": "0.5"}]}])
    assert main(["eval", "bon", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["benchmarks"]["x"]
    assert metrics["group_by"] == "equivalence" and metrics["accuracy"]["maj"]["3"] == 100.0
