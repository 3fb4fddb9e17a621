"""The ``prmkit`` command. Thin: build a typed config, call the stage, print a table.

Heavy imports (torch, transformers, math-verify) happen inside commands, so ``prmkit --help``
stays instant and never imports torch. Command groups that live outside the general library
(the toy world's ``prmkit toy``) are plugins: packages declare them under the
``prmkit.commands`` entry point and are mounted here by name.

    prmkit/cli/__init__.py   the app, ``--version``, ``main(argv) -> int``, plugins
    prmkit/cli/options.py    flags made from a stage's config dataclass
    prmkit/cli/stages.py     sample, train, score
    prmkit/cli/annotate.py   annotate mc | judge | consensus | report
    prmkit/cli/evaluate.py   eval processbench | bon
    prmkit/cli/data.py       convert, formats
    prmkit/cli/recipes.py    run, demo
"""

from __future__ import annotations

import errno
import sys
from importlib.metadata import version
from typing import Optional

import typer
from rich.console import Console

from prmkit import plugins
from prmkit.errors import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="prmkit: build and evaluate process reward models for math reasoning.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"prmkit {version('prmkit')}")
        raise typer.Exit()


@app.callback()
def _root(version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version.")) -> None:
    """prmkit: build and evaluate process reward models for math reasoning."""


def console() -> Console:
    return Console()


def _mount() -> None:
    # the command modules import `app` from here: they can only load once it exists
    from prmkit.cli import annotate, data, evaluate, recipes, stages  # noqa: F401 (register)
    app.add_typer(annotate.annotate_app, name="annotate")
    app.add_typer(evaluate.eval_app, name="eval")
    for name, group in plugins.mounted(plugins.COMMANDS):
        app.add_typer(group, name=name)


_mount()


# a disk that refuses writes (read-only, full, over quota, not ours): one line, not a traceback
DISK_ERRORS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG}


def _out_of(argv: list[str]) -> str:
    """The output folder a command was given (where a write without a file name failed)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
        if arg == "--out" and i + 1 < len(argv):
            return argv[i + 1]
    return "the output folder"


def main(argv: list[str] | None = None) -> int:
    """Run ``prmkit`` on ``argv`` (default: the command line); returns the exit status: 0 done,
    2 bad input (an ``InputError``, named file, line and field) or bad usage."""
    try:
        result = app(args=argv, prog_name="prmkit", standalone_mode=False)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        # the stage's marker is written last: what stopped here stays unfinished, and resumes
        where = e.filename or _out_of(argv if argv is not None else sys.argv[1:])
        print(f"error: {where}: cannot write: {e.strerror or e}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except Exception as e:
        # a usage error of the command line (click's, as typer carries it): one line, exit 2
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            ctx = getattr(e, "ctx", None)
            command = ctx.command_path if ctx is not None else "prmkit"
            message = " ".join(e.format_message().split())
            print(f"error: {command}: {message} (see {command} --help)", file=sys.stderr)
            return e.exit_code
        raise
    return result if isinstance(result, int) else 0

