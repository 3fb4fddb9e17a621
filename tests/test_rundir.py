"""The stage runner (prmkit.rundir.run_stage): inputs hashed, nothing redone when complete, the
marker written last, data-parallel helpers writing nothing."""

import json

import pytest

from prmkit import rundir
from prmkit.errors import InputError


def counting_work(calls: list):
    def work(folder, config):
        calls.append(config)
        (folder / "out.txt").write_text("made")
        return {"made": len(calls)}
    return work


def test_a_complete_stage_is_not_redone_until_an_input_or_setting_changes(tmp_path):
    data, out, calls = tmp_path / "data.jsonl", tmp_path / "out", []
    data.write_text("a\n")
    first = rundir.run_stage(out, {"k": 1}, counting_work(calls), inputs={"data": data})
    assert first == {"made": 1} and (out / rundir.MARKER).exists()
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["k"] == 1 and len(saved["inputs_sha256"]["data"]) == 64
    assert rundir.run_stage(out, {"k": 1}, counting_work(calls), inputs={"data": data}) == first
    assert len(calls) == 1                                   # reused
    data.write_text("b\n")                                   # the input changed
    rundir.run_stage(out, {"k": 1}, counting_work(calls), inputs={"data": data})
    rundir.run_stage(out, {"k": 2}, counting_work(calls), inputs={"data": data})
    rundir.run_stage(out, {"k": 2}, counting_work(calls), inputs={"data": data}, force=True)
    assert len(calls) == 4


def test_a_missing_input_is_an_error_before_any_work(tmp_path):
    calls = []
    with pytest.raises(InputError) as error:
        rundir.run_stage(tmp_path / "out", {}, counting_work(calls),
                         inputs={"data": tmp_path / "nope.jsonl"})
    assert error.value.field == "data" and not calls and not (tmp_path / "out").exists()


def test_a_failed_stage_is_never_marked_complete(tmp_path):
    out = tmp_path / "out"
    rundir.run_stage(out, {"k": 1}, counting_work([]))

    def fail(folder, config):
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        rundir.run_stage(out, {"k": 2}, fail)
    assert not (out / rundir.MARKER).exists()  # the old marker went first


def test_a_helper_process_works_but_writes_nothing(tmp_path):
    calls = []
    assert rundir.run_stage(tmp_path / "out", {}, lambda f, c: calls.append(1) or {"x": 1},
                            writer=False) == {}
    assert calls == [1] and not (tmp_path / "out").exists()
