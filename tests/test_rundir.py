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


def test_a_complete_stage_is_reused_and_other_settings_are_refused_untouched(tmp_path):
    data, out, calls = tmp_path / "data.jsonl", tmp_path / "out", []
    data.write_text("a\n")
    first = rundir.run_stage(out, {"k": 1}, counting_work(calls), inputs={"data": data})
    assert first == {"made": 1} and (out / rundir.MARKER).exists()
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["k"] == 1 and len(saved["inputs_sha256"]["data"]) == 64
    assert rundir.run_stage(out, {"k": 1}, counting_work(calls), inputs={"data": data}) == first
    assert len(calls) == 1                                   # reused
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    data.write_text("b\n")                                   # the input changed
    with pytest.raises(rundir.StaleFolder, match="changed: inputs_sha256"):
        rundir.run_stage(out, {"k": 1}, counting_work(calls), inputs={"data": data})
    with pytest.raises(rundir.StaleFolder, match="changed: inputs_sha256, k"):
        rundir.run_stage(out, {"k": 2}, counting_work(calls), inputs={"data": data})
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before and len(calls) == 1              # the finished folder as it was
    rundir.run_stage(out, {"k": 2}, counting_work(calls), inputs={"data": data}, force=True)
    assert len(calls) == 2


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(InputError, match="must be a folder") as error:
        rundir.run_stage(tmp_path / "out", {}, counting_work([]))
    assert error.value.field == "out"


def test_a_busy_folder_is_refused_with_its_holder_and_freed_by_a_kill(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from prmkit import rundir\n"
        f"with rundir.owned({str(out)!r}):\n"
        "    print('held', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"busy: pid {holder.pid} on ") as error:
            rundir.run_stage(out, {}, counting_work([]))
        assert error.value.field == "out" and not (out / rundir.MARKER).exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    time.sleep(0.1)
    assert rundir.run_stage(out, {}, counting_work([])) == {"made": 1}  # the kill freed it


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
        rundir.run_stage(out, {"k": 2}, fail, force=True)
    assert not (out / rundir.MARKER).exists()  # the old marker went first


def test_a_helper_process_works_but_writes_nothing(tmp_path):
    calls = []
    assert rundir.run_stage(tmp_path / "out", {}, lambda f, c: calls.append(1) or {"x": 1},
                            writer=False) == {}
    assert calls == [1] and not (tmp_path / "out").exists()
