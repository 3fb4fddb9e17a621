"""The exact step-truth labeller, on hand-built solutions covering every kind of step."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prmkit.toyworld.problems import (
    PRESETS,
    Spec,
    Statement,
    answer_text,
    apply,
    believed_steps,
    canonical_steps,
    corpus_solution,
    make_problems,
    problem_text,
    step_text,
)
from prmkit.toyworld.truth import judge, step_truth

# Ann has 7. Ben has 3 more than Ann. Dee has 2 fewer than Ann (a side statement).
# Ben gives away 4. Cal has 2 times as many as Ben. Eli has half as many as Cal.
# How many does Eli have?   quantities: q0 Ann=7, q1 Ben=10, q2 Dee=5, q3 Ben=6, q4 Cal=12, q5 Eli=6
SPEC = Spec("coins", [("Ann", 7)], [
    Statement("more", "Ben", [0], 3),
    Statement("fewer", "Dee", [0], 2),
    Statement("gives", "Ben", [1], 4),
    Statement("times", "Cal", [3], 2),
    Statement("half", "Eli", [4]),
], ask=5, layout=(34, 2, 1))
B0, D1, B2, C3, E4 = ("Ben has 3 more than Ann", "(Dee has 2 fewer than Ann)", "Ben gives away 4",
                      "Cal has 2 times as many as Ben", "Eli has half as many as Cal")
CANONICAL = [f"{B0}: 7+3=10.", f"{D1}: 7-2=5.", f"{B2}: 10-4=6.", f"{C3}: 6*2=12.",
             f"{E4}: 12/2=6.", "The answer is \\boxed{6}."]


def test_the_hand_built_problem_reads_as_intended():
    rows = ["Ann has 7 coins.", f"{B0}.", f"{D1}.", f"{B2}.", f"{C3}.", f"{E4}."]
    assert problem_text(SPEC) == "\n\n".join([r.ljust(42) for r in rows] +
                                              ["How many does Eli have now?"])
    # every paragraph has the same width, so a statement lies a fixed distance before its step;
    # a step computes in fixed columns, numbers right-aligned, as a ledger does
    assert canonical_steps(SPEC)[:2] == ["Ben has 3 more than Ann:           7+3=10.",
                                         "(Dee has 2 fewer than Ann):        7-2= 5."]
    def squeeze(steps):
        return [s.replace(" ", "") for s in steps]
    assert squeeze(canonical_steps(SPEC)) == squeeze(CANONICAL)
    assert judge(SPEC, CANONICAL).statements == [0, 1, 2, 3, 4, None]
    assert SPEC.needed() == {0, 2, 3, 4}  # Dee is a side statement


def with_steps(**replace: str) -> list[str]:
    steps = list(CANONICAL)
    for index, text in replace.items():
        steps[int(index[1:])] = text
    return steps


CASES = [
    # (name, steps, kinds, label, answer correct)
    ("canonical", CANONICAL, ["ok"] * 6, -1, True),
    ("arithmetic error carried to the end",
     [f"{B0}: 7+3=11.", f"{D1}: 7-2=5.", f"{B2}: 11-4=7.", f"{C3}: 7*2=14.", f"{E4}: 14/2=7.",
      "The answer is \\boxed{7}."],
     ["arithmetic", "ok", "carried", "carried", "carried", "carried"], 0, False),
    ("misread given", with_steps(s0=f"{B0}: 8+3=11."),
     ["misread", "ok", "ok", "ok", "ok", "ok"], 0, True),
    ("misread literal", with_steps(s2=f"{B2}: 10-5=5."),
     ["ok", "ok", "misread", "ok", "ok", "ok"], 2, True),
    ("misquoted statement", with_steps(s0="Ben has 4 more than Ann: 7+4=11."),
     ["misread", "ok", "ok", "ok", "ok", "ok"], 0, True),
    ("wrong operation", with_steps(s0=f"{B0}: 7-3=4."),
     ["wrong-op", "ok", "ok", "ok", "ok", "ok"], 0, True),
    ("stale value: the gives step is skipped",
     [f"{B0}: 7+3=10.", f"{D1}: 7-2=5.", f"{C3}: 10*2=20.", f"{E4}: 20/2=10.",
      "The answer is \\boxed{10}."],
     ["ok", "ok", "misread", "carried", "carried"], 2, False),
    ("error in a side statement the answer does not need", with_steps(s1=f"{D1}: 7-2=4."),
     ["ok", "arithmetic", "ok", "ok", "ok", "ok"], 1, True),
    ("errors that cancel",
     [f"{B0}: 7+3=11.", f"{D1}: 7-2=5.", f"{B2}: 11-4=6.", f"{C3}: 6*2=12.", f"{E4}: 12/2=6.",
      "The answer is \\boxed{6}."],
     ["arithmetic", "ok", "arithmetic", "ok", "ok", "ok"], 0, True),
    ("inexact division", with_steps(s4=f"{E4}: 12/2=5.", s5="The answer is \\boxed{5}."),
     ["ok", "ok", "ok", "ok", "arithmetic", "carried"], 4, False),
    ("wrong final answer after a correct derivation", with_steps(s5="The answer is \\boxed{7}."),
     ["ok"] * 5 + ["wrong-answer"], 5, False),
    # the next step uses Ben's true value: an unreadable step is an error, not a wrong value
    ("unreadable step", with_steps(s2="Ben gives away a lot."),
     ["ok", "ok", "unreadable", "ok", "ok", "ok"], 2, True),
    ("an entity the story does not have", with_steps(s1="Zed has 2 fewer than Ann: 7-2=5."),
     ["ok", "extra", "ok", "ok", "ok", "ok"], 1, True),
    ("a statement computed twice", CANONICAL[:2] + [CANONICAL[1]] + CANONICAL[2:],
     ["ok", "ok", "extra", "ok", "ok", "ok", "ok"], 2, True),
    ("text after the answer", CANONICAL + [f"{B0}: 7+3=10."], ["ok"] * 6 + ["extra"], 6, True),
    ("operands of a product in either order", with_steps(s3=f"{C3}: 2*6=12."),
     ["ok"] * 6, -1, True),
    ("the side statement left out", [s for s in CANONICAL if not s.startswith("(Dee")],
     ["ok"] * 5, -1, True),
    ("statements in another valid order", [CANONICAL[1], CANONICAL[0], *CANONICAL[2:]],
     ["ok"] * 6, -1, True),
]


CASE = {c[0]: c[1] for c in CASES}


@pytest.mark.parametrize("name,steps,kinds,label,right", CASES, ids=[c[0] for c in CASES])
def test_hand_built_solutions(name, steps, kinds, label, right):
    truth = judge(SPEC, steps)
    assert truth.kinds == kinds
    assert truth.label == label
    assert truth.answer_correct is right
    assert truth.flawed_but_right is (right and label >= 0)


def test_where_the_first_error_lies_off_the_answers_path():
    side_error = judge(SPEC, CASE["error in a side statement the answer does not need"])
    assert side_error.first_error_off_path(SPEC)
    cancelling = judge(SPEC, CASE["errors that cancel"])
    assert cancelling.flawed_but_right and not cancelling.first_error_off_path(SPEC)


def test_truncated_solution_has_no_answer_and_no_error():
    truth = judge(SPEC, CANONICAL[:3])
    assert truth.label == -1 and not truth.complete and not truth.answer_correct


def test_step_labels_follow_the_prm_convention():
    assert judge(SPEC, CANONICAL).step_labels == [1] * 6
    cancelling = judge(SPEC, CASE["errors that cancel"])
    assert cancelling.step_labels == [0] * 6  # first error at step 0, though the answer is right
    assert judge(SPEC, with_steps(s3=f"{C3}: 6*2=13.")).step_labels == [1, 1, 1, 0, 0, 0]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_canonical_solution_is_judged_correct(name):
    for p in make_problems(PRESETS[name], 300, seed=3, split="test"):
        spec = Spec.from_dict(p["toy"])
        truth = judge(spec, p["solution"].split("\n\n"))
        assert truth.label == -1 and truth.answer_correct, p


def carried_solution(spec: Spec, wrong_step: int, wrong_value: int) -> list[str] | None:
    """The canonical solution with one wrong result, carried forward as a student would."""
    values = list(spec.values)
    steps = []
    for i, s in enumerate(spec.statements):
        a, b = (values[x] if kind == "q" else x for kind, x in s.operands())
        result = wrong_value if i == wrong_step else apply(s.op, a, b)
        if result is None or result < 0:
            return None  # the carried value makes a later division inexact: not this test's case
        values[spec.quantity(i)] = result
        steps.append(step_text(spec, i, a, b, result))
    return steps + [answer_text(values[spec.ask])]


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 10**6), delta=st.sampled_from([-2, -1, 1, 2, 10]), data=st.data())
def test_a_wrong_result_is_the_first_error_and_its_consequences_are_carried(seed, delta, data):
    spec = Spec.from_dict(make_problems(PRESETS["mixed"], 1, seed=seed, split="fuzz")[0]["toy"])
    i = data.draw(st.integers(0, len(spec.statements) - 1))
    steps = carried_solution(spec, i, spec.values[spec.quantity(i)] + delta)
    if steps is None:
        return
    truth = judge(spec, steps)
    assert truth.label == i
    assert truth.kinds[i] == "arithmetic"
    assert set(truth.kinds[i + 1:]) <= {"ok", "carried"}  # consequences, never new errors
    # the answer survives exactly when the step is a side statement the answer does not need
    assert truth.answer_correct is (i not in spec.needed())


def test_side_statements_fill_every_problem_to_the_same_number_of_statements():
    problems = make_problems(PRESETS["long"], 1000, seed=0, split="test")
    assert {len(p["toy"]["statements"]) for p in problems} == {6}
    # the answer needs 2 to 6 of them, uniformly: 4 problems in 5 have a side statement
    assert {p["n_steps"] for p in problems} == {2, 3, 4, 5, 6}
    share = sum(p["side_step"] for p in problems) / len(problems)
    assert 0.75 < share < 0.85


# --- misconceptions: wrong rules the policy is taught, told apart from slips ---------------------

# the same story with Dee on the answer's path: Ann has 7, Dee has 2 fewer than Ann, Dee gets 4
# more; how many does Dee have? (5, then 9)
BELIEF = Spec("coins", [("Ann", 7)], [
    Statement("fewer", "Dee", [0], 2),
    Statement("gets", "Dee", [1], 4),
], ask=2, layout=(34, 2, 1))


def test_a_believer_applies_the_misconception_consistently_down_to_the_answer():
    steps = believed_steps(BELIEF, {0})
    squeezed = [s.replace(" ", "") for s in steps]
    # "2 fewer than Ann" computed as Ann + 2, and the next step builds on the 9 it believes
    assert squeezed == ["Deehas2fewerthanAnn:7+2=9.", "Deegets4more:9+4=13.",
                        "Theansweris\\boxed{13}."]
    truth = judge(BELIEF, steps)
    assert truth.kinds == ["wrong-op", "carried", "carried"] and truth.label == 0
    assert truth.first_error_origin == "misconception"
    assert step_truth({"toy": BELIEF.to_dict()}, steps)["first_error_origin"] == "misconception"
    # nothing misapplied: the canonical solution, sound
    assert believed_steps(BELIEF, set()) == canonical_steps(BELIEF)
    assert judge(BELIEF, canonical_steps(BELIEF)).first_error_origin is None


@pytest.mark.parametrize("wrong, origin", [
    ("Dee has 2 fewer than Ann: 7+2=10.", "slip"),       # the belief, then an arithmetic slip
    ("Dee has 2 fewer than Ann: 7*2=14.", "slip"),       # a wrong operator no belief explains
    ("Dee has 2 fewer than Ann: 7-2=6.", "slip"),        # an arithmetic slip
    ("Dee has 2 fewer than Ann: 2+7=9.", "misconception"),  # the belief, operands swapped
])
def test_every_other_error_is_a_slip(wrong, origin):
    steps = [wrong, "Dee gets 4 more: 9+4=13.", "The answer is \\boxed{13}."]
    assert judge(BELIEF, steps).first_error_origin == origin


def test_the_corpus_draws_its_beliefs_at_the_rate_asked_and_keeps_them_writable():
    problems = make_problems(PRESETS["mixed"], 400, split="corpus")
    origins = {"misconception": 0, None: 0}
    applicable = 0
    for p in problems:
        spec = Spec.from_dict(p["toy"])
        applicable += any(s.kind == "fewer" for s in spec.statements)
        text = corpus_solution(spec, ("fewer-adds",), 0.85, random.Random(p["id"]))
        truth = judge(spec, text.split("\n\n"))
        assert truth.first_error_origin in origins and truth.complete
        origins[truth.first_error_origin] += 1
    # a statement the belief applies to is written by it at about the rate (a belief whose
    # chain the layout cannot hold falls back to the canonical solution)
    assert 0.7 * 0.85 * applicable < origins["misconception"] <= applicable
    assert corpus_solution(Spec.from_dict(problems[0]["toy"]), ("fewer-adds",), 0.0,
                           random.Random(0)) == problems[0]["solution"]
