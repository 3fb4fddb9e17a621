"""The label rules: one threshold rule, one first-error rule, one critique parser, one tie rule."""

import pytest

from prmkit.errors import InputError
from prmkit.labels import (
    NAMED_SOURCES,
    Source,
    first_at_or_below,
    first_error,
    hard_labels,
    labels_from_first_error,
    parse_critique,
    positive,
    quality,
    step_targets,
    vote,
)


def test_one_threshold_rule_for_values_labels_and_scores():
    # positive strictly above the threshold; at the threshold a value is negative
    assert positive(0.125, 0.0) and not positive(0.0, 0.0)
    assert not positive(0.5, 0.5) and positive(0.51, 0.5)
    assert first_at_or_below([0.9, 0.4, 0.1], 0.5) == 1
    assert first_at_or_below([0.5], 0.5) == 0 and first_at_or_below([0.6], 0.5) == -1
    # a source read as a first error and as training targets agree on the same value
    record = {"steps": ["a", "b", "c"], "mc": {"values": [0.75, 0.5, 0.0]}}
    source = Source.parse("mc.values:0.5")
    assert source.first_error(record) == 1
    assert step_targets(record, source) == [1.0, 0.0, None]


def test_first_error_and_labels_are_inverse():
    for labels in ([1, 1, 1], [0, 0, 0], [1, 1, 0], [1, 0, 0]):
        first = first_error(labels)
        assert labels_from_first_error(first, 3) == labels
    assert first_error([True, True]) == -1


def test_named_sources_resolve_to_their_specs():
    assert Source.parse("MC-majority") == Source("mc.values", 0.5)
    assert Source.parse("MC-soft") == Source.parse("mc.values") == Source("mc.values", 0.0)
    assert set(NAMED_SOURCES) >= {"MC-hard", "MC-soft", "judge", "consensus"}


def test_hard_labels_refuse_soft_values():
    assert hard_labels({"id": "x", "steps": ["a", "b"], "step_labels": [1, False]}) == [True, False]
    with pytest.raises(InputError, match="soft label 0.5"):
        hard_labels({"id": "x", "steps": ["a"], "step_labels": [0.5]})


@pytest.mark.parametrize("output,expected", [
    ("The earliest error is in paragraph 2. \\boxed{2}", (2, "ok")),
    ("All correct: \\boxed{-1}", (-1, "ok")),
    ("so \\boxed{\\text{1}}", (1, "ok")),
    ("\\boxed{ 0 }", (0, "ok")),
    ("\\boxed{7}", (None, "out-of-range")),
    ("\\boxed{-2}", (None, "out-of-range")),
    ("\\boxed{paragraph 1}", (None, "no-index")),
    ("\\boxed{two}", (None, "no-index")),
    ("I cannot tell.", (None, "no-index")),
])
def test_critiques_parse_into_an_index_or_a_counted_status(output, expected):
    assert parse_critique(output, 4) == expected


def test_one_tie_rule_the_earliest_error_wins():
    assert vote([2, 2, -1]) == 2
    assert vote([1, -1, None]) == 1           # an error as common as "no error" wins
    assert vote([None, 2, 3, 3, 2]) == 2      # tied errors: the earliest
    assert vote([-1, -1, 0]) == -1
    assert vote([None, None]) is None and vote([]) is None


@pytest.mark.parametrize("spec,value,expected", [
    ("mc.hard", [1, 1, 0, None], 2),
    ("mc.hard", [True, True], -1),
    ("mc.values", [0.5, 0.0, 0.25], 1),
    ("mc.values:0.3", [0.5, 0.25, 0.0], 1),
    ("mc.hard", [1, None, 0], 2),  # unknown steps are skipped
    ("judge.first_error", 3, 3),
    ("judge.first_error", None, None),
])
def test_sources_read_step_labels_or_an_index(spec, value, expected):
    top, field = spec.split(":")[0].split(".")
    record = {"steps": ["s"] * 4, top: {field: value}}
    assert Source.parse(spec).first_error(record) == expected


@pytest.mark.parametrize("value,why", [
    ([0.5, float("nan"), 1.0, 1.0], "step 1: expected a label in \\[0, 1\\], got nan"),
    ([1.7, 1, 1, 1], "step 0: expected a label in \\[0, 1\\], got 1.7"),
    ([1, -0.5, 1, 1], "got -0.5"),
    ([1, "yes", 1, 1], "got str"),
    (99, "first error 99 is not -1 or a step index below 4"),
    (-7, "first error -7"),
])
def test_labels_out_of_range_are_errors_not_verdicts(value, why):
    """NaN, soft values outside [0, 1], strings and indices outside the steps are refused by
    every reader of labels: the first-error reading, training targets, hard labels."""
    record = {"steps": ["s"] * 4, "mc": {"v": value}}
    for read in (lambda: Source.parse("mc.v").first_error(record),
                 lambda: step_targets(record, Source("mc.v")),
                 lambda: step_targets(record, Source("mc.v"), soft=True)):
        with pytest.raises(ValueError, match=why):
            read()


def test_a_threshold_must_be_a_number_in_range():
    for spec in ("mc.values:nan", "mc.values:1.5", "mc.values:x", "mc.values:-0.1"):
        with pytest.raises(InputError):
            Source.parse(spec)


def test_source_quality_counts_negative_steps_from_the_first_error():
    q = quality([1, -1, 2, None], [1, 0, 3, 2], [4, 4, 4, 4])
    assert q["n"] == 3 and q["first_error_accuracy"] == pytest.approx(1 / 3)
    # predicted negatives {1,2,3} + {} + {2,3}; true {1,2,3} + {0..3} + {3}
    assert q["negative_precision"] == pytest.approx(4 / 5)
    assert q["negative_recall"] == pytest.approx(4 / 8)

