"""The toy world's generator, stats and benchmark (with a scripted policy), and its commands."""

from __future__ import annotations

import json

import pytest

from prmkit import plugins
from prmkit.backends import Completion, SamplingParams, check_outputs
from prmkit.errors import InputError
from prmkit.formats import read_as
from prmkit.steps import join_steps, split_steps
from prmkit.toyworld.problems import (
    PRESETS,
    Spec,
    ToyConfig,
    canonical_steps,
    make_problems,
    preset,
)


def test_problems_are_a_function_of_seed_split_and_index():
    a = make_problems(PRESETS["mixed"], 20, seed=1, split="test")
    assert a == make_problems(PRESETS["mixed"], 20, seed=1, split="test")
    assert a[5:] == make_problems(PRESETS["mixed"], 15, seed=1, split="test", start=5)
    train = make_problems(PRESETS["mixed"], 20, seed=1, split="train")
    assert {p["problem"] for p in a}.isdisjoint({p["problem"] for p in train})


def test_difficulty_settings_are_respected():
    for name, cfg in PRESETS.items():
        for p in make_problems(cfg, 200, seed=2):
            spec = Spec.from_dict(p["toy"])
            assert cfg.min_steps <= len(spec.statements) <= cfg.max_steps
            assert all(0 < v <= cfg.max_value for v in spec.values), name
            assert {s.kind for s in spec.statements} <= set(cfg.kinds)
            assert p["solution"].endswith(f"\\boxed{{{p['answer']}}}.")
            assert p["solution"].count("\n\n") == len(spec.statements)


@pytest.mark.parametrize("values,field", [
    ({"min_steps": 0}, "min_steps"), ({"min_steps": 5, "max_steps": 3}, "min_steps"),
    ({"max_steps": 20}, "max_steps"), ({"kinds": ["more", "modulo"]}, "kinds"),
    ({"max_k": 0}, "max_k"), ({"max_value": 10}, "max_value"),
    ({"colour": "red"}, "colour"), ({"kinds": ["fewer", "gives"]}, "kinds")])
def test_invalid_generator_settings_name_the_field(values, field):
    with pytest.raises(InputError) as error:
        ToyConfig.from_dict(values)
    assert error.value.field == field


def test_unknown_preset():
    with pytest.raises(InputError, match="unknown toy preset 'nightmare'"):
        preset("nightmare")


class ScriptedPolicy:
    """Writes the canonical solution, or one with an error in step ``wrong`` (by sample index);
    continues a prefix canonically. Enough to check the plumbing of stats and bench exactly."""

    tokenizer = None

    def __init__(self, problems, wrong: dict[int, int]):
        self.by_prompt = {p["problem"]: Spec.from_dict(p["toy"]) for p in problems}
        self.wrong = wrong

    def generate(self, prompts, params: SamplingParams):
        outputs = []
        for prompt in prompts:
            problem = next(p for p in self.by_prompt if prompt.startswith(p + "\n\n"))
            spec, prefix = self.by_prompt[problem], prompt[len(problem) + 2:]
            steps = canonical_steps(spec)
            done = len(split_steps(prefix))
            out = []
            for j in range(params.n):
                own = list(steps)
                if not done and j in self.wrong and self.wrong[j] < len(steps) - 1:
                    head, result = own[self.wrong[j]].rstrip().rsplit("=", 1)
                    own[self.wrong[j]] = f"{head}={int(result[:-1]) + 1}.".ljust(spec.width)
                out.append(Completion(join_steps(own[done:]), "stop", 10))
            outputs.append(out)
        return check_outputs(prompts, params, outputs)


def test_stats_count_flawed_right_answers_and_rollout_rates():
    from prmkit.toyworld.stats import toy_stats
    problems = make_problems(PRESETS["mixed"], 30, seed=4)
    numbers = toy_stats(ScriptedPolicy(problems, {1: 0}), problems, samples=2, rollouts=2)
    s, r = numbers["solutions"], numbers["rollouts"]
    assert s["solutions"] == 60
    assert s["process_correct"] == 0.5  # sample 0 of each problem is canonical
    assert s["first_error_position"] == {0: 30}
    # the scripted policy goes on from the true value, so only where is the error decides
    side = sum(0 not in Spec.from_dict(p["toy"]).needed() for p in problems)
    assert 0 < side < 30
    assert s["flawed_right_by_cause"] == {"side statement": side, "later steps use the right "
                                          "value": 30 - side, "cancelled by later errors": 0}
    assert s["correct_answer_flawed_process"] == 0.5
    # the scripted policy continues any prefix canonically: every rollout reaches the answer
    assert r["right_answer_from_wrong_prefix"] == 1.0
    assert r["wrong_answer_from_sound_prefix"] == 0.0
    assert r["wrong_prefixes"] == 30


def test_bench_is_balanced_in_processbench_format(tmp_path):
    from prmkit.evaluate.processbench import evaluate
    from prmkit.formats.processbench import read
    from prmkit.toyworld.bench import build
    from prmkit.toyworld.stats import sample_and_judge
    problems = make_problems(PRESETS["mixed"], 40, seed=5)
    solutions = sample_and_judge(ScriptedPolicy(problems, {1: 1, 2: 0}), problems, samples=3,
                                 temperature=1.0, seed=0)
    summary = build(solutions, tmp_path, generator="scripted")
    items = json.loads((tmp_path / "toy.json").read_text())
    assert summary["items"] == len(items) == 80
    assert summary["correct"] == summary["erroneous"] == 40
    assert set(items[0]) == {"id", "generator", "problem", "steps", "final_answer_correct",
                             "label"}
    assert {i["label"] for i in items} == {-1, 1}  # sample 1 (step 1 wrong) is the first error
    # the evaluator reads it unchanged; a scorer that knows the truth gets F1 = 100
    bench = read(tmp_path)
    scores = {b["id"]: [0.0 if i == b["label"] else 1.0 for i in range(len(b["steps"]))]
              for b in bench}
    assert evaluate(bench, step_scores=scores)["subsets"]["toy"]["f1"] == 100.0


def test_toy_problems_command(tmp_path):
    from typer.testing import CliRunner

    from prmkit.cli import app
    out = tmp_path / "p.jsonl"
    result = CliRunner().invoke(app, ["toy", "problems", str(out), "--n", "7", "--preset", "hard"])
    assert result.exit_code == 0, result.output
    from prmkit.records import read_records
    records = read_records(out, "problem")
    assert len(records) == 7 and all(r["n_steps"] >= 4 for r in records)


def test_toy_problems_are_a_registered_source_read_like_a_file():
    """``toy:PRESET:SPLIT:COUNT[:SEED]`` reads wherever a problems file is read; the source
    says which truth hook labels its problems' steps."""
    problems = read_as("toy:mixed:test:5", "prmkit", "problem")
    assert [p["id"] for p in problems] == [f"toy-test-{i}" for i in range(5)]
    assert problems == make_problems(PRESETS["mixed"], 5, seed=0, split="test")
    assert read_as("toy:mixed:test:5:7", "prmkit", "problem") != problems  # another seed
    source, spec = plugins.source_of("toy:mixed:test:5")
    assert spec == "mixed:test:5" and source.truth == "prmkit.toyworld.truth:step_truth"
    assert source.token_budget(problems) > 0
    for bad in ("toy:mixed:test", "toy:mixed:test:many", "toy:nothing:test:3"):
        with pytest.raises(InputError):
            read_as(bad, "prmkit", "problem")
    with pytest.raises(InputError, match="problem records"):
        read_as("toy:mixed:test:5", "prmkit", "solution")


def test_error_confidence_reads_the_policys_probability_of_its_first_wrong_step(tmp_path):
    import math

    import torch

    from prmkit.prompting import render
    from prmkit.toyworld.model import TinyModelConfig, build_causal_lm
    from prmkit.toyworld.policy import PROMPT
    from prmkit.toyworld.problems import believed_steps
    from prmkit.toyworld.stats import error_confidence
    from prmkit.toyworld.tokenizer import build_char_tokenizer
    from prmkit.toyworld.truth import judge
    tokenizer = build_char_tokenizer()
    model = build_causal_lm(tokenizer, TinyModelConfig(hidden_size=32, num_layers=1,
                                                       intermediate_size=64), seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    problems = [p for p in make_problems(PRESETS["mixed"], 60, seed=2)
                if any(s.kind == "fewer" for s in Spec.from_dict(p["toy"]).statements)]
    solutions = []
    for p in problems[:3]:
        spec = Spec.from_dict(p["toy"])
        believer = believed_steps(spec, {i for i, s in enumerate(spec.statements)
                                         if s.kind == "fewer"})
        slipped = canonical_steps(spec)
        head, result = slipped[0].rstrip().rsplit("=", 1)
        slipped[0] = f"{head}={int(result[:-1]) + 1}."
        for steps in (believer, slipped, canonical_steps(spec)):
            solutions.append({"problem": p, "steps": steps, "truth": judge(spec, steps)})
    measured = error_confidence(tmp_path, solutions, batch_size=4)
    assert measured["slip"]["n"] == 3 and measured["misconception"]["n"] <= 3
    assert set(measured) == {"slip", "misconception"}  # sound solutions have no wrong step
    # by hand, one at a time (no padding): the least likely character of each slipped step
    alone = []
    for s in solutions[1::3]:
        head = render(PROMPT, s["problem"]["problem"])
        ids = tokenizer(head + s["steps"][0], return_tensors="pt",
                        add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logprobs = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
        picked = logprobs.gather(-1, ids[0, 1:, None])[:, 0]
        alone.append(math.exp(picked[len(head) - 1:].min().item()))
    assert measured["slip"]["median"] == pytest.approx(sorted(alone)[1], rel=1e-3)
    assert measured["slip"]["mean"] == pytest.approx(sum(alone) / 3, rel=1e-3)
