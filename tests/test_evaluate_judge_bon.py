"""LLM-as-a-judge for Best-of-N (prmkit.evaluate.judge_bon, ``prmkit eval judge-bon``): a judge
served over the OpenAI API picks among a problem's candidates, pointwise (the share of steps it
judges correct) and pairwise (a single-elimination tournament), every verdict counted and a
re-run asking nothing twice."""

import json
import re

import pytest
from test_annotate_judge import chat_server

from prmkit.backends import BackendConfig
from prmkit.cli import main
from prmkit.errors import InputError
from prmkit.evaluate import judge_bon
from prmkit.records import write_jsonl


def candidate(steps: list[str], answer: str) -> dict:
    return {"steps": steps, "answer": answer}


# problem p1: only candidate 2 is right; its wrong ones err at different steps.
# problem p2: candidate 0 is right; candidate 1's critique never concludes.
SETS = [
    {"id": "p1", "problem": "What is 2+3?", "gold_answer": "5", "candidates": [
        candidate(["2+3=6 BAD.", "So 6."], "6"),
        candidate(["2+3 is five.", "Then 2*... BAD.", "So 4."], "4"),
        candidate(["2+3=5.", "So 5."], "5"),
        candidate(["2+3=7 BAD.", "So 7."], "7")]},
    {"id": "p2", "problem": "What is 1+1?", "gold_answer": "2", "candidates": [
        candidate(["1+1=2.", "So 2."], "2"),
        candidate(["1+1=3 UNSURE.", "So 3."], "3"),
        candidate(["1+1=3 BAD.", "So 3."], "3"),
        candidate(["1+1=4 BAD.", "So 4."], "4")]},
]


def paper_critique(body) -> str:
    """The paper's judge: an analysis a paragraph up to the first one marked BAD."""
    text = body["messages"][-1]["content"]
    if "UNSURE" in text:
        return "I cannot decide."
    paragraphs = re.findall(r"<paragraph_(\d+)>\n(.*?)\n</paragraph_\1>", text, re.S)
    out = []
    for number, paragraph in paragraphs:
        out.append(f"<analysis_{number}>checked</analysis_{number}>")
        if "BAD" in paragraph:
            return "".join(out) + "<conclusion>Incorrect</conclusion>"
    return "".join(out) + "<conclusion>Correct</conclusion>"


def pairwise_verdict(body) -> str:
    """Prefers a solution without BAD; between two alike, says nothing readable once."""
    text = body["messages"][-1]["content"]
    first, second = text.split("[Solution 2]")
    first = first.split("[Solution 1]")[1]
    if ("BAD" in first) == ("BAD" in second):
        return "Both look alike to me." if "UNSURE" in first + second else "\\boxed{1}"
    return "\\boxed{2}" if "BAD" in first else "The first. \\boxed{\\text{1}}"


@pytest.fixture
def files(tmp_path, monkeypatch):
    pytest.importorskip("openai", reason="needs the openai extra")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return write_jsonl(tmp_path / "toy.jsonl", SETS)


def test_pointwise_scores_the_share_of_steps_judged_correct_and_counts_no_verdict(
        files, tmp_path):
    cfg = judge_bon.JudgeBonConfig(candidates=[str(files)], judge="judge", mode="pointwise")
    with chat_server(paper_critique) as (url, seen):
        metrics = judge_bon.run(cfg, tmp_path / "out", progress=False,
                                backend=BackendConfig(backend="openai", base_url=url))
    assert "<paragraph_1>" in seen[0][2]["messages"][-1]["content"]  # the paper's prompt
    judged = [json.loads(x) for x in (tmp_path / "out" / "judge" / "annotated.jsonl").open()]
    by_id = {r["id"]: r["judge"]["first_error"] for r in judged}
    assert by_id["toy/p1/0"] == 0 and by_id["toy/p1/1"] == 1 and by_id["toy/p1/2"] == -1
    assert by_id["toy/p2/1"] is None
    assert metrics["judge"]["no_verdict"] == 1
    assert metrics["judge"]["outcomes"] == {"ok": 7, "no-conclusion": 1}
    toy = metrics["benchmarks"]["toy"]
    assert toy["accuracy"]["response"][4] == 100.0  # the judge picks both right answers
    assert toy["accuracy"]["response"][1] == 50.0   # p1's first candidate is wrong
    picks = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").open()]
    assert [p["picks"]["response"]["index"] for p in picks] == [2, 0]


def test_pairwise_runs_a_tournament_and_a_rerun_asks_nothing_again(files, tmp_path):
    cfg = judge_bon.JudgeBonConfig(candidates=[str(files)], judge="judge", mode="pairwise")
    with chat_server(pairwise_verdict) as (url, seen):
        backend = BackendConfig(backend="openai", base_url=url)
        metrics = judge_bon.run(cfg, tmp_path / "out", progress=False, backend=backend)
        asked = len(seen)
        # a run cut short after its comparisons: resumed from the log, nothing asked again
        (tmp_path / "out" / "COMPLETE").unlink()
        seen.clear()
        again = judge_bon.run(cfg, tmp_path / "out", progress=False, backend=backend)
        assert seen == []
        # another judge in the same unfinished folder is asked anew: answers are the judge's
        (tmp_path / "out" / "COMPLETE").unlink()
        judge_bon.run(judge_bon.JudgeBonConfig(candidates=[str(files)], judge="other",
                                               mode="pairwise"), tmp_path / "out",
                      progress=False, backend=backend)
        assert len(seen) == 6 and seen[0][2]["model"] == "other"
    assert again["benchmarks"] == metrics["benchmarks"]
    judge = metrics["judge"]
    # 4 candidates: 3 comparisons a problem in 2 rounds
    assert judge["comparisons"] == 6 and judge["rounds"] == 2 and asked == 6
    # p2's first comparison (right against UNSURE) gets no verdict: the first goes through
    assert judge["outcomes"] == {"ok": 5, "no-verdict": 1, "truncated": 0}
    accuracy = metrics["benchmarks"]["toy"]["accuracy"]["response"]
    assert metrics["benchmarks"]["toy"]["ns"] == [1, 2, 4]
    assert accuracy == {1: 50.0, 2: 50.0, 4: 100.0}
    log = [json.loads(x) for x in (tmp_path / "out" / "comparisons.jsonl").open()]
    final = [e for e in log if e["id"] == "p1" and e["round"] == 1]
    assert len(final) == 1 and (final[0]["first"], final[0]["second"]) == (0, 2)
    assert final[0]["winner"] == 1


def test_an_empty_candidate_is_never_read_and_never_picked(files, tmp_path):
    sets = [{**SETS[0], "candidates": [{"text": "", "answer": "5"}, *SETS[0]["candidates"][:3]]}]
    path = write_jsonl(tmp_path / "empty.jsonl", sets)
    for mode, answer in (("pointwise", paper_critique), ("pairwise", pairwise_verdict)):
        cfg = judge_bon.JudgeBonConfig(candidates=[str(path)], judge="judge", mode=mode)
        with chat_server(answer) as (url, seen):
            metrics = judge_bon.run(cfg, tmp_path / mode, progress=False,
                                    backend=BackendConfig(backend="openai", base_url=url))
        assert metrics["judge"]["empty_candidates"] == 1, mode
        # the empty one (with the right answer) is never the pick; the sound candidate is
        assert metrics["benchmarks"]["empty"]["accuracy"]["response"][4] == 100.0, mode
        assert metrics["benchmarks"]["empty"]["accuracy"]["response"][1] == 0.0, mode
        assert all("2+3" in json.dumps(body) or "paragraph" in json.dumps(body)
                   for _, _, body in seen)
        assert set(metrics["benchmarks"]["empty"]["accuracy"]) == {
            "maj", "response", "pass", "random"}, mode


def test_a_comparison_without_a_verdict_goes_to_the_first_and_is_counted(files, tmp_path):
    unsure = [{**SETS[1], "candidates": SETS[1]["candidates"][:2][::-1]}]
    path = write_jsonl(tmp_path / "unsure.jsonl", unsure)
    cfg = judge_bon.JudgeBonConfig(candidates=[str(path)], judge="judge", mode="pairwise")
    with chat_server(lambda body: "Both look alike to me.") as (url, _):
        metrics = judge_bon.run(cfg, tmp_path / "out", progress=False,
                                backend=BackendConfig(backend="openai", base_url=url))
    assert metrics["judge"]["outcomes"]["no-verdict"] == 1
    assert metrics["judge"]["no_verdict_to_first"] == 1
    assert metrics["benchmarks"]["unsure"]["accuracy"]["response"][2] == 0.0


def test_the_command_line_runs_it_and_bad_settings_are_refused(files, tmp_path):
    with chat_server(pairwise_verdict) as (url, _):
        assert main(["eval", "judge-bon", str(files), "--judge", "judge", "--mode",
                     "pairwise", "--backend", "openai", "--base-url", url,
                     "--out", str(tmp_path / "cli")]) == 0
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["judge"]["rounds"] == 2
    with pytest.raises(InputError, match="powers of two"):
        judge_bon.JudgeBonConfig(candidates=["x"], judge="j", mode="pairwise", n=[3]).validate()
    template = tmp_path / "t.txt"
    template.write_text("{problem} {response_1}")
    with pytest.raises(InputError, match="lacks {response_2}"):
        judge_bon.JudgeBonConfig(candidates=["x"], judge="j", mode="pairwise",
                                 judge_prompt=str(template)).validate()
    with pytest.raises(InputError) as e:
        judge_bon.run(judge_bon.JudgeBonConfig(candidates=[str(files)], judge="j",
                                               judge_prompt=str(template)), tmp_path / "o")
    assert e.value.field == "judge_prompt"
