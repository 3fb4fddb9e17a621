"""Monte Carlo estimation (prmkit.annotate.mc) with a scripted backend whose truth is known, and
the stage on a real tiny model: skipping, resuming, settings."""
from __future__ import annotations

import pytest
from helpers import GOLD, solution

from prmkit import config
from prmkit.annotate import mc
from prmkit.backends import Completion, SamplingParams
from prmkit.errors import InputError
from prmkit.records import iter_json_items, read_records, write_jsonl


class ScriptedBackend:
    """Completions decided by the prefix: from a prefix holding a step marked BAD no completion
    reaches the gold answer; otherwise sample j succeeds when j < ``good``. Prompts are
    recorded, so tests can count rollouts."""

    tokenizer = None

    def __init__(self, good: int = 1, text_for_bad: str = "The answer is \\boxed{3}."):
        self.good, self.text_for_bad, self.prompts = good, text_for_bad, []

    def generate(self, prompts, params: SamplingParams):
        self.prompts += prompts
        out = []
        for p in prompts:
            if "BAD" in p:
                out.append([Completion(self.text_for_bad, "stop", 5)] * params.n)
            else:
                out.append([Completion(f"The answer is \\boxed{{{GOLD if j < self.good else 1}}}.",
                                       "stop", 5) for j in range(params.n)])
        return out


def annotate(solutions, mode, k=4, backend=None, **cfg):
    backend = backend or ScriptedBackend()
    config = mc.MCConfig(solutions="-", model="-", prompt="plain", k=k, mode=mode,
                         max_new_tokens=8, **cfg)
    return mc.MCWorker(config, backend)(solutions, 0), backend


STEPS = ["a", "b", "BAD c", "d", "e", "The answer is 2."]


@pytest.mark.parametrize("mode", ["linear", "binary"])
def test_mc_finds_the_first_step_no_completion_recovers_from(mode):
    [record], backend = annotate([solution("s", STEPS)], mode)
    m = record["mc"]
    assert m["first_error"] == 2
    assert m["hard"][:3] == [1, 1, 0]
    assert m["train_mask"] == [True, True, True, False, False, False]
    if mode == "linear":  # every prefix but the last (the solution itself) costs K rollouts
        assert m["rollouts"] == 4 * 5 == len(backend.prompts) * 4
        assert m["values"] == [0.25, 0.25, 0.0, 0.0, 0.0, 0.0]
        assert m["correct"][:5] == [1, 1, 0, 0, 0]
    else:  # binary search over steps 0..5 with step 5 known bad: probes 2, then 1
        assert m["rollouts"] == 8 and m["hard"] == [1, 1, 0, None, None, None]
        assert m["values"][3:5] == [None, None] and m["values"][2] == 0.0
    assert m["outcomes"]["correct"] + m["outcomes"]["incorrect"] == m["rollouts"]


def test_binary_costs_nothing_on_a_correct_answer_and_stays_close_to_linear():
    good = solution("good", ["a", "b", "c", "The answer is 7."])
    [record], backend = annotate([good], "binary")
    assert record["mc"]["first_error"] == -1 and record["mc"]["rollouts"] == 0
    assert backend.prompts == []
    many = [solution(f"s{i}", ["x"] * i + ["BAD"] + ["y"] * (5 - i)) for i in range(6)]
    linear, _ = annotate(many, "linear")
    binary, _ = annotate(many, "binary")
    assert [r["mc"]["first_error"] for r in binary] == [r["mc"]["first_error"] for r in linear] \
        == list(range(6))
    assert sum(r["mc"]["rollouts"] for r in binary) <= 0.6 * sum(r["mc"]["rollouts"]
                                                                 for r in linear)


def test_a_prefix_shared_by_several_solutions_is_rolled_out_once():
    records, backend = annotate([solution("a", ["x", "y", "BAD"]),
                                 solution("b", ["x", "z", "BAD"])], "linear", k=2)
    assert len(backend.prompts) == 3  # "x" once, then "x y" and "x z"
    assert [r["mc"]["rollouts"] for r in records] == [4, 4]
    assert [r["mc"]["generated"] for r in records] == [4, 2]
    assert records[0]["mc"]["values"][0] == records[1]["mc"]["values"][0]


def test_rollout_prompts_continue_the_exact_prefix():
    _, backend = annotate([solution("s", ["one  ", "two", "three"])], "linear", k=1)
    assert backend.prompts == ["P\n\none  \n\n", "P\n\none  \n\ntwo\n\n"]


def test_a_shard_of_one_step_solutions_needs_no_rollouts():
    class Refusing(ScriptedBackend):
        def generate(self, prompts, params):  # the hf backend's tokenizer refuses []
            raise AssertionError("called with nothing to roll out")

    records, _ = annotate([solution("s", ["The answer is \\boxed{7}."]),
                           solution("t", ["BAD: the answer is 3."])], "linear", backend=Refusing())
    assert [r["mc"]["first_error"] for r in records] == [-1, 0]
    assert [r["mc"]["rollouts"] for r in records] == [0, 0]


def test_hard_threshold_and_soft_values():
    [record], _ = annotate([solution("s", ["a", "b", "The answer is 7."])], "linear",
                           backend=ScriptedBackend(good=1), threshold=0.25)
    # one of four completions succeeds: value 0.25 is not above the threshold 0.25
    assert record["mc"]["values"][:2] == [0.25, 0.25] and record["mc"]["first_error"] == 0


def test_unreadable_and_truncated_rollouts_are_counted_not_wrong():
    backend = ScriptedBackend(text_for_bad="no answer here")
    [record], _ = annotate([solution("s", ["BAD", "x", "y"])], "linear", backend=backend,
                           keep_rollouts=True)
    assert record["mc"]["outcomes"]["unparseable"] == 8
    assert record["mc"]["rollout_log"][0][0] == {"text": "no answer here", "answer": None,
                                                 "outcome": "unparseable"}

    class Truncating(ScriptedBackend):
        def generate(self, prompts, params):
            return [[Completion("The answer", "length", 8)] * params.n for _ in prompts]

    [record], _ = annotate([solution("s", ["a", "b"])], "linear", backend=Truncating())
    assert record["mc"]["outcomes"]["length"] == 4 and record["mc"]["hard"][0] == 0


def test_stage_skips_empty_solutions_and_unreadable_gold_then_resumes(tmp_path, tiny_lm):
    rows = [solution("ok", ["a", "The answer is \\boxed{7}."]),
            {"id": "empty", "problem": "P", "steps": [], "gold_answer": "7"},
            solution("nogold", ["a", "b"], gold_answer="\\frac{"),
            solution("ok2", ["a", "b", "c"])]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = mc.MCConfig(solutions=str(tmp_path / "in.jsonl"), model=str(tiny_lm), prompt="plain",
                      k=2, max_new_tokens=6, shard_size=1)
    metrics = mc.run(cfg, tmp_path / "out", progress=False)
    assert metrics["skipped"] == {"count": 2, "reasons": {"no-steps": 1, "gold-unparseable": 1}}
    records = read_records(tmp_path / "out" / "annotated.jsonl", "solution")
    assert [r["id"] for r in records] == ["ok", "ok2"]
    assert all("_line" not in r for r in records)
    assert metrics["rollouts"] == 2 * 1 + 2 * 2 == sum(r["mc"]["rollouts"] for r in records)
    # a complete run is not redone
    before = (tmp_path / "out" / "annotated.jsonl").stat().st_mtime_ns
    mc.run(cfg, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "annotated.jsonl").stat().st_mtime_ns == before


def test_mc_settings_are_checked():
    for field, value in [("mode", "ternary"), ("k", 0), ("threshold", 1.0), ("name", "a.b"),
                         ("k", "four")]:
        with pytest.raises(InputError) as error:
            config.load(mc.MCConfig, given={"solutions": "-", "model": "-", "prompt": "plain",
                                            field: value})
        assert error.value.field == field
    with pytest.raises(InputError, match="give --model") as error:
        config.load(mc.MCConfig, given={"solutions": "-", "prompt": "plain"})



@pytest.mark.parametrize("mode", ["linear", "binary"])
def test_a_solution_too_long_for_the_policy_is_skipped_with_its_id(tmp_path, tiny_lm, mode):
    """The tiny model's context is 1024 tokens (characters): a solution whose rollout prompt
    does not fit is listed in skipped.jsonl with its id, line and reason; the others are
    annotated, and a file of one-step solutions alone needs no rollouts."""
    rows = [solution("ok", ["a", "The answer is \\boxed{7}."]),
            solution("long", ["x" * 1100, "b"]),
            solution("one", ["The answer is \\boxed{7}."])]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = mc.MCConfig(solutions=str(tmp_path / "in.jsonl"), model=str(tiny_lm), prompt="plain",
                      k=2, max_new_tokens=4, mode=mode)
    metrics = mc.run(cfg, tmp_path / "out", progress=False)
    assert metrics["skipped"] == {"count": 1, "reasons": {"too-long": 1}}
    assert [v for _, v in iter_json_items(tmp_path / "out" / "skipped.jsonl")] == [
        {"id": "long", "line": 2, "reason": "too-long"}]
    records = read_records(tmp_path / "out" / "annotated.jsonl", "solution")
    assert [r["id"] for r in records] == ["ok", "one"]
    assert all("_line" not in r and "_skipped" not in r for r in records)
    write_jsonl(tmp_path / "one.jsonl", [rows[2], solution("two", ["wrong"])])
    cfg = mc.MCConfig(solutions=str(tmp_path / "one.jsonl"), model=str(tiny_lm),
                      prompt="plain", k=2, max_new_tokens=4, mode=mode)
    assert mc.run(cfg, tmp_path / "one", progress=False)["rollouts"] == 0
