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
               "--from", "math_shepherd", "--to", "trl_stepwise")
    assert done.returncode == 0, done.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert first["labels"] == [True, True, True, True, False]
    bad = run("convert", "x", str(out), "--from", "gsm8", "--to", "prmkit")
    assert bad.returncode == 2 and "did you mean 'gsm8k'" in bad.stderr
    mismatch = run("convert", str(shared("gsm8k/test.jsonl")), str(out), "--from", "gsm8k",
                   "--to", "trl_stepwise")
    assert mismatch.returncode == 2 and "problem records" in mismatch.stderr


def test_demo_quick_completes_and_reruns_as_a_no_op(tmp_path):
    out = tmp_path / "demo"
    first = run("demo", "--quick", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert (out / "COMPLETE").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    # a sharper simulated PRM finds more first errors than a noisy one
    f1 = {name: m["processbench"]["average_f1"] for name, m in metrics.items()}
    assert f1["sharp"] > f1["noisy"] + 20
    again = run("demo", "--quick", "--out", str(out))
    assert "is complete" in again.stdout
