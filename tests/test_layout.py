"""The house rules of the layout: the toy world is a client of the library, the library never
imports the CLI, and the command line speaks one vocabulary."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import prmkit

PACKAGE = Path(prmkit.__file__).parent
# the toy world itself, and the demo's pipeline and recipe that bring its values in from the top
MAY_IMPORT_TOYWORLD = ("toyworld/", "pipeline.py", "recipe.py")


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path


def test_no_general_module_imports_the_toy_world():
    offenders = [name for name, path in modules()
                 if not name.startswith(MAY_IMPORT_TOYWORLD)
                 and any(i.startswith("prmkit.toyworld") for i in imports(path))]
    assert offenders == []
    # and no general module names a toy default in its text either
    mentions = [name for name, path in modules() if not name.startswith(MAY_IMPORT_TOYWORLD)
                and "prmkit.toyworld" in path.read_text()
                and not name.startswith("cli/")]
    assert mentions == []


def test_the_library_never_imports_the_cli():
    offenders = [name for name, path in modules()
                 if not name.startswith(("cli/", "toyworld/cli.py"))
                 and any(i == "prmkit.cli" or i.startswith("prmkit.cli.") for i in imports(path))]
    assert offenders == []


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prmkit.cli", *args], capture_output=True,
                          text=True)


def test_version_and_main_returns_a_status():
    from prmkit.cli import main
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"prmkit {prmkit.__version__}"
    assert main(["formats"]) == 0
    assert main(["train", "--data", "x.jsonl", "--labels", "mc.hard"]) == 2  # no --model, no --out


def test_train_help_lists_every_training_setting():
    from prmkit import config
    from prmkit.prm.train import TrainConfig
    done = cli("train", "--help")
    text = done.stdout.replace("\n", " ")
    for f in config.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}"[:14] in text, f.name


@pytest.mark.parametrize("command,flags", [
    (["sample"], ["--model", "--out", "--force", "--device", "--dtype", "--format", "--config"]),
    (["annotate", "mc"], ["--model", "--out", "--force", "--device", "--dtype", "--config"]),
    (["annotate", "judge"], ["--model", "--out", "--force", "--device", "--dtype"]),
    (["annotate", "consensus"], ["--out", "--force"]),
    (["train"], ["--model", "--out", "--force", "--device", "--config", "--set"]),
    (["score"], ["--model", "--out", "--force", "--device", "--dtype", "--format"]),
    (["eval", "bon"], ["--out", "--force", "--format"]),
    (["eval", "processbench"], ["--out", "--force"]),
    (["convert"], ["--format", "--to"]),
])
def test_one_flag_for_one_idea_across_commands(command, flags):
    text = cli(*command, "--help").stdout
    for flag in flags:
        assert flag in text, (command, flag)
    for old in ("--policy", "--prm ", "--from", "--init"):
        assert old not in text, (command, old)
