"""The house rules of the layout: the toy world is a client of the library, the library never
imports the CLI, and the command line speaks one vocabulary."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import prmkit

PACKAGE = Path(prmkit.__file__).parent
# the toy world itself: everything else, the pipeline included, finds it by name (plugins)
MAY_IMPORT_TOYWORLD = ("toyworld/",)


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


# third-party libraries heavy enough to load only where they are used: `import prmkit` and every
# `--help` stay fast without them
HEAVY = ("torch", "transformers", "vllm", "ray", "peft", "accelerate", "safetensors",
         "huggingface_hub", "datasets", "openai", "matplotlib", "math_verify", "numpy",
         "sentencepiece", "tensorboard", "wandb", "sympy", "tokenizers")
MAX_LATE_PRMKIT_IMPORTS = 10


def function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found += [(inner.lineno, a.name) for a in inner.names]
                elif isinstance(inner, ast.ImportFrom) and inner.module:
                    found.append((inner.lineno, inner.module))
    return sorted(set(found))


def test_imports_sit_at_the_top_but_for_heavy_libraries():
    """prmkit's own modules are imported at the top (a few late ones, each with the reason on
    its line or the line above); inside functions only heavy third-party libraries load."""
    late_prmkit, light = [], []
    for name, path in modules():
        lines = path.read_text().splitlines()
        for line, module in function_imports(path):
            if module.split(".")[0] == "prmkit":
                said = "#" in lines[line - 1] or lines[line - 2].strip().startswith("#")
                late_prmkit.append((name, line, module, said))
            elif module.split(".")[0] not in HEAVY:
                light.append((name, line, module))
    assert light == []
    assert len(late_prmkit) <= MAX_LATE_PRMKIT_IMPORTS, late_prmkit
    assert [x for x in late_prmkit if not x[3]] == []


def commands(group, prefix=()):
    """Every command of the CLI, as its argument path."""
    for name, command in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        if getattr(command, "commands", None):
            yield from commands(command, path)
        else:
            yield path


def test_every_command_has_help_and_none_of_them_imports_torch():
    """`prmkit CMD --help` for every command, in a fresh interpreter: each exits 0 with its
    text, and none imports torch or transformers."""
    script = """
import sys, typer
from typer.testing import CliRunner
from prmkit.cli import app
sys.path.insert(0, {tests!r})
from test_layout import commands
group = typer.main.get_command(app)
paths = list(commands(group))
for path in paths:
    done = CliRunner().invoke(app, [*path, "--help"])
    assert done.exit_code == 0 and "Usage" in done.output, (path, done.output)
print(len(paths), "torch" in sys.modules, "transformers" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c",
                           script.format(tests=str(Path(__file__).parent))],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    count, torch, transformers = done.stdout.split()
    assert int(count) >= 18 and torch == "False" and transformers == "False"
