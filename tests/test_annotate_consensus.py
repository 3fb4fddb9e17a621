"""Consensus filtering (prmkit.annotate.consensus) and the label-quality table
(prmkit.annotate.quality)."""
from __future__ import annotations

import pytest

from prmkit.annotate import consensus
from prmkit.annotate.quality import label_quality
from prmkit.errors import InputError
from prmkit.records import read_records, write_jsonl


def annotated_file(tmp_path):
    rows = [
        # (mc hard labels, judge index, truth)
        ([1, 1, 1], -1, -1),
        ([1, 0, 0], 1, 1),
        ([0, 0, 0], 1, 1),
        ([1, 1, 0], -1, 2),
        ([1, 0, 0], None, 1),
    ]
    records = [{"id": f"s{i}", "problem": "P", "steps": ["a", "b", "c"],
                "mc": {"hard": hard, "rollouts": 8}, "judge": {"first_error": j, "calls": 2},
                "truth": {"label": t}} for i, (hard, j, t) in enumerate(rows)]
    write_jsonl(tmp_path / "in.jsonl", records)
    return tmp_path / "in.jsonl"


def test_consensus_keeps_agreement_and_measures_every_source(tmp_path):
    path = annotated_file(tmp_path)
    metrics = consensus.run(consensus.ConsensusConfig(inputs=(str(path),)), tmp_path / "out")
    kept = read_records(tmp_path / "out" / "consensus.jsonl", "solution")
    assert [r["id"] for r in kept] == ["s0", "s1"]
    assert kept[1]["consensus"]["step_labels"] == [1, 0, 0]
    assert metrics["kept"] == 2 and metrics["kept_share"] == pytest.approx(0.4)
    assert metrics["no_verdict"] == {"mc.hard": 0, "judge.first_error": 1}
    counts = metrics["agreement_matrix"]["counts"]
    assert counts["-1"]["-1"] == 1 and counts["0"]["1"] == 1 and counts["1"]["none"] == 1
    q = metrics["quality"]
    assert q["mc.hard"]["first_error_accuracy"] == pytest.approx(4 / 5)
    assert q["judge.first_error"]["first_error_accuracy"] == pytest.approx(3 / 4)
    assert q["consensus"]["first_error_accuracy"] == 1.0 and q["consensus"]["n"] == 2
    table = label_quality(tmp_path / "out" / "annotated.jsonl")
    rows = {row["source"]: row for row in table["rows"]}
    assert set(rows) == {"MC-hard", "judge", "consensus"}  # no mc.values in this file
    assert rows["consensus"]["kept_share"] == pytest.approx(0.4)
    assert rows["consensus"]["rollouts"] == 40 and rows["consensus"]["judge_calls"] == 10
    assert rows["MC-hard"]["rollouts"] == 40 and rows["MC-hard"]["judge_calls"] == 0


def test_consensus_joins_files_by_id_and_names_a_missing_field(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "problem": "P", "steps": ["a", "b"],
                                        "mc": {"hard": [1, 0]}}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "judge": {"first_error": 1}}])
    metrics = consensus.run(consensus.ConsensusConfig(
        inputs=(str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"))), tmp_path / "out")
    assert metrics["kept"] == 1 and "quality" not in metrics  # no reference labels here
    with pytest.raises(InputError) as error:
        consensus.run(consensus.ConsensusConfig(inputs=(str(tmp_path / "a.jsonl"),)),
                      tmp_path / "out2")
    assert (error.value.line, error.value.field) == (1, "judge.first_error")
    assert error.value.path.endswith("a.jsonl")



def _solution(sid: str, steps: list[str], **fields) -> dict:
    return {"id": sid, "problem": "P", "steps": steps, **fields}


@pytest.mark.parametrize("first,second,where,field,words", [
    # a repeated id in the first file: one of the two would silently lose its verdict
    ([_solution("x", ["a"], mc={"hard": [1]}), _solution("x", ["b"], mc={"hard": [1]})],
     None, ("a.jsonl", 2), "id", "duplicate id 'x'"),
    # ... or in a file joined to it
    ([_solution("x", ["a", "b"], mc={"hard": [1, 0]})],
     [{"id": "x", "judge": {"first_error": 1}}, {"id": "x", "judge": {"first_error": -1}}],
     ("b.jsonl", 2), "id", "duplicate id 'x'"),
    # a file of another run: the same ids, other steps
    ([_solution("x", ["a", "b"], mc={"hard": [1, 0]})],
     [_solution("x", ["a", "c"], judge={"first_error": 1})], ("b.jsonl", 1), "steps",
     "other steps than in"),
    ([_solution("x", ["a", "b"], mc={"hard": [1, 0]})],
     [{"id": "x", "problem": "Q", "judge": {"first_error": 1}}], ("b.jsonl", 1), "problem",
     "another problem"),
    # a field both give, with other values: which one would the labels come from?
    ([_solution("x", ["a", "b"], mc={"hard": [1, 0]})],
     [{"id": "x", "mc": {"hard": [1, 1]}, "judge": {"first_error": 1}}], ("b.jsonl", 1), "mc",
     "another 'mc'"),
])
def test_consensus_inputs_must_describe_the_same_solutions_once(tmp_path, first, second, where,
                                                                field, words):
    write_jsonl(tmp_path / "a.jsonl", first)
    inputs = [str(tmp_path / "a.jsonl")]
    if second is not None:
        write_jsonl(tmp_path / "b.jsonl", second)
        inputs.append(str(tmp_path / "b.jsonl"))
    with pytest.raises(InputError) as error:
        consensus.run(consensus.ConsensusConfig(inputs=tuple(inputs)), tmp_path / "out")
    assert error.value.path.endswith(where[0]) and error.value.line == where[1]
    assert error.value.field == field and words in str(error.value), str(error.value)
    assert not (tmp_path / "out" / "COMPLETE").exists()


def test_training_data_with_a_repeated_id_is_refused(tmp_path, tiny_lm):
    from prmkit.prm.train import TrainConfig, train
    rows = [_solution("x", ["1+1=2"], mc={"hard": [1]}), _solution("y", ["2"], mc={"hard": [0]}),
            _solution("x", ["1+1=3"], mc={"hard": [0]})]
    write_jsonl(tmp_path / "data.jsonl", rows)
    cfg = TrainConfig(data=str(tmp_path / "data.jsonl"), model=str(tiny_lm), labels="mc.hard",
                      max_steps=1, device="cpu")
    with pytest.raises(InputError) as error:
        train(cfg, tmp_path / "prm", progress=False)
    assert (error.value.line, error.value.field) == (3, "id")
    assert "duplicate id 'x' (first on line 1)" in str(error.value)
    assert not (tmp_path / "prm" / "COMPLETE").exists()
