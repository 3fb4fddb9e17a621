import json
import subprocess
import sys

from conftest import shared


def run(*args):
    return subprocess.run([sys.executable, "-m", "prmkit.cli", *args], capture_output=True, text=True)


def test_help_does_not_import_torch_or_math_verify():
    code = ("import sys\nfrom prmkit.cli import app\nimport typer.testing\n"
            "r = typer.testing.CliRunner().invoke(app, ['eval', 'processbench', '--help'])\n"
            "assert r.exit_code == 0, r.output\n"
            "heavy = {'torch', 'transformers', 'math_verify', 'sympy'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_convert_math_shepherd_to_trl_and_bad_format(tmp_path):
    out = tmp_path / "trl.jsonl"
    done = run("convert", str(shared("formats/math_shepherd_samples.jsonl")), str(out),
               "--format", "math_shepherd", "--to", "trl_stepwise")
    assert done.returncode == 0, done.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert first["labels"] == [True, True, True, True, False]
    bad = run("convert", "x", str(out), "--format", "gsm8", "--to", "prmkit")
    assert bad.returncode == 2 and "did you mean 'gsm8k'" in bad.stderr
    mismatch = run("convert", str(shared("gsm8k/test.jsonl")), str(out), "--format", "gsm8k",
                   "--to", "trl_stepwise")
    assert mismatch.returncode == 2 and "problem records" in mismatch.stderr


def test_export_annotated_solutions_to_trl_with_a_chosen_label_source(tmp_path):
    solutions = tmp_path / "annotated.jsonl"
    rows = [{"id": "a", "problem": "P", "steps": ["s0", "s1", "s2", "s3"],
             "mc": {"values": [0.75, 0.5, 0.0, 0.25]}, "judge": {"first_error": 1}},
            {"id": "b", "problem": "Q", "steps": ["t0", "t1"],
             "mc": {"values": [1.0, 1.0]}, "judge": {"first_error": None}}]
    solutions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "trl.jsonl"

    def export(*options):
        done = run("convert", str(solutions), str(out), "--format", "prmkit",
                   "--to", "trl_stepwise", *options)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in out.read_text().splitlines()], done.stdout

    # MC-hard: cut at the first step no completion rescued; soft values never cast to True
    lines, _ = export("--labels", "mc.values")
    assert lines[0] == {"id": "a", "prompt": "P", "completions": ["s0", "s1", "s2"],
                        "labels": [True, True, False]}
    assert lines[1]["labels"] == [True, True]
    # a threshold turns the soft value into a label; steps after the error can be kept
    lines, _ = export("--labels", "mc.values:0.5", "--keep-after-error")
    assert lines[0]["labels"] == [True, False, False, False]
    # an earliest-error source; a solution without a verdict is left out and counted
    lines, stdout = export("--labels", "judge.first_error")
    assert [x["labels"] for x in lines] == [[True, False]]
    assert "1 without a verdict" in " ".join(stdout.split())
    # a missing field names the file, the line and the field
    bad = run("convert", str(solutions), str(out), "--format", "prmkit", "--to", "trl_stepwise",
              "--labels", "consensus.step_labels")
    assert bad.returncode == 2
    assert "annotated.jsonl:1:" in bad.stderr
    assert "consensus.step_labels" in bad.stderr
