"""The sampling stage: records, grading, toy truth, resuming, real problem files."""

from __future__ import annotations

import json

import pytest
from conftest import shared

from prmkit import rundir
from prmkit.errors import InputError
from prmkit.records import read_records, write_jsonl
from prmkit.sample import SampleConfig, run, solution_record
from prmkit.toyworld.policy import PROMPT
from prmkit.toyworld.problems import PRESETS, make_problems
from prmkit.toyworld.truth import TRUTH_HOOK


@pytest.fixture
def toy_problems(tmp_path):
    path = tmp_path / "problems.jsonl"
    write_jsonl(path, make_problems(PRESETS["easy"], 5, seed=0))
    return path


def config(problems, policy, **overrides) -> SampleConfig:
    values = dict(problems=str(problems), model=str(policy), prompt=PROMPT, truth=TRUTH_HOOK,
                  n=3, max_new_tokens=24, shard_size=2)
    values.update(overrides)
    return SampleConfig(**values)


def test_solutions_are_graded_records_with_exact_truth(tmp_path, toy_problems, tiny_lm):
    metrics = run(config(toy_problems, tiny_lm), tmp_path / "run", progress=False)
    records = read_records(tmp_path / "run" / "solutions.jsonl", "solution")
    assert len(records) == 15 and metrics["n_solutions"] == 15
    assert [r["id"] for r in records[:4]] == ["toy-test-0-0", "toy-test-0-1", "toy-test-0-2",
                                              "toy-test-1-0"]
    for r in records:
        assert r["outcome"] in ("correct", "incorrect", "unparseable")
        assert r["final_answer_correct"] is (r["outcome"] == "correct")
        assert len(r["truth"]["kinds"]) == len(r["steps"])
        assert r["finish_reason"] in ("stop", "length")
    assert sum(metrics["outcomes"].values()) == 15
    assert rundir.is_complete(tmp_path / "run", json.loads(
        (tmp_path / "run" / "config.json").read_text())["config"])


def test_a_rerun_resumes_from_finished_shards(tmp_path, toy_problems, tiny_lm, monkeypatch):
    cfg = config(toy_problems, tiny_lm)
    out = tmp_path / "run"
    import prmkit.sample as sample
    real = sample.sample_solutions
    calls = []

    def crash_on_second_shard(backend, items, c, **kw):
        calls.append([p["id"] for p in items])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(backend, items, c, **kw)

    monkeypatch.setattr(sample, "sample_solutions", crash_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, progress=False)
    assert not (out / rundir.MARKER).exists() and not (out / "solutions.jsonl").exists()
    calls.clear()
    monkeypatch.setattr(sample, "sample_solutions", lambda b, items, c, **kw:
                        calls.append([p["id"] for p in items]) or real(b, items, c, **kw))
    run(cfg, out, progress=False)
    assert calls == [["toy-test-2", "toy-test-3"], ["toy-test-4"]]  # shard 0 was kept
    resumed = (out / "solutions.jsonl").read_text()
    run(cfg, tmp_path / "fresh", progress=False)
    assert resumed == (tmp_path / "fresh" / "solutions.jsonl").read_text()


def test_resuming_with_another_config_is_refused(tmp_path, toy_problems, tiny_lm, monkeypatch):
    out = tmp_path / "run"
    import prmkit.sample as sample
    monkeypatch.setattr(sample, "sample_solutions", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run(config(toy_problems, tiny_lm), out, progress=False)
    with pytest.raises(InputError, match="another config"):
        run(config(toy_problems, tiny_lm, temperature=0.5), out, progress=False)


def test_unparseable_answers_are_their_own_outcome():
    from prmkit.backends import Completion
    from prmkit.grading import grade
    problem = {"id": "p", "problem": "?", "answer": "12"}
    text = "We add.\n\nSo we get a lot."
    record = solution_record(problem, 0, Completion(text, "stop", 9), "m", grade(text, "12"))
    assert record["outcome"] == "unparseable" and record["reason"] == "no-answer"
    assert record["steps"] == ["We add.", "So we get a lot."]
    assert not record["final_answer_correct"]


def test_real_gsm8k_problems_through_the_gsm8k_reader(tmp_path, tiny_lm):
    source = shared("gsm8k/test.jsonl")
    head = tmp_path / "gsm8k.jsonl"
    head.write_text("".join(source.read_text().splitlines(keepends=True)[:3]))
    metrics = run(config(head, tiny_lm, format="gsm8k", n=2, truth=None), tmp_path / "run",
                  progress=False)
    assert metrics["n_problems"] == 3 and metrics["n_solutions"] == 6
    records = read_records(tmp_path / "run" / "solutions.jsonl", "solution")
    assert all(r["gold_answer"] and "truth" not in r for r in records)


def test_bad_problem_file_names_file_and_line(tmp_path, tiny_lm):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "problem": "x", "answer": "1"}\n{"id": "b", "answer": "2"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'problem': missing"):
        run(config(bad, tiny_lm), tmp_path / "run", progress=False)


def test_the_command_line_needs_a_model_and_takes_a_truth_hook(tmp_path, toy_problems, tiny_lm,
                                                               capsys):
    from prmkit.cli import main
    args = ["sample", str(toy_problems), "--prompt", "plain", "--n", "2",
            "--max-new-tokens", "16", "--out", str(tmp_path / "run")]
    assert main(args) == 2  # no toy default: the error says what to pass
    assert "give --model" in capsys.readouterr().err
    assert main(args + ["--model", str(tiny_lm), "--truth", TRUTH_HOOK, "--workers", "1"]) == 0
    records = read_records(tmp_path / "run" / "solutions.jsonl", "solution")
    assert len(records) == 10 and all(len(r["truth"]["kinds"]) == len(r["steps"])
                                      for r in records)
    assert main(args + ["--model", str(tiny_lm), "--truth", "no.such:hook"]) == 2


def test_a_registered_problem_source_is_read_like_a_file_and_brings_its_truth(tmp_path, tiny_lm):
    """``toy:PRESET:SPLIT:COUNT`` names problems no file holds; their source's truth hook labels
    every solution's steps unless ``truth`` names another."""
    cfg = SampleConfig(problems="toy:mixed:test:3", model=str(tiny_lm), prompt=PROMPT, n=2,
                       max_new_tokens=40)
    metrics = run(cfg, tmp_path / "run", progress=False)
    solutions = read_records(tmp_path / "run" / "solutions.jsonl", "solution")
    assert metrics["n_problems"] == 3 and len(solutions) == 6
    assert all(set(s["truth"]) >= {"label", "step_labels"} for s in solutions)
    config_json = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config_json["config"]["truth"] == TRUTH_HOOK
    assert config_json["config"]["inputs_sha256"] == {"problems": None}  # the spec says all
