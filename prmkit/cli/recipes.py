"""``prmkit run RECIPE`` and ``prmkit demo``: every stage of a recipe in one run folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from prmkit import pipeline
from prmkit.cli import app, console
from prmkit.report.findings import findings

# one option for both commands: a changed recipe never silently replaces finished work
FORCE = typer.Option(False, help="Redo the stages that changed settings touch (without it, a "
                     "run folder made with other settings is refused and left as it is).")


@app.command()
def demo(out: Optional[Path] = typer.Option(None, help=(
             "Run folder (default: runs/demo, or runs/demo-quick with --quick).")),
         quick: bool = typer.Option(False, help="A CI-sized configuration (under 2 minutes)."),
         set_: Optional[list[str]] = typer.Option(None, "--set", help=(
             "section.key=value override of the demo recipe, e.g. --set labels.mc.k=4 "
             "(repeat).")),
         force: bool = FORCE) -> None:
    """The paper in miniature on the toy world (the shipped recipe prmkit/recipes/demo.yaml):
    sample, label, train a PRM a label source (and keep the untrained one as the baseline),
    evaluate, and write report.md and report.html into the run folder (resumable)."""
    _run_recipe(pipeline.shipped("demo"), set_ or [], quick, out, force)


@app.command("run")
def run_recipe(recipe: Path = typer.Argument(..., help="Recipe YAML (see prmkit/recipes)."),
               set_: Optional[list[str]] = typer.Option(None, "--set", help=(
                   "section.key=value override, e.g. --set problems.limit=50 (repeat).")),
               quick: bool = typer.Option(False, help="Apply the recipe's quick section."),
               out: Optional[Path] = typer.Option(None, help="Run folder (default: the "
                                                             "recipe's out)."),
               force: bool = FORCE) -> None:
    """Run a recipe: every stage from the policy to the report, resumable in one folder."""
    _run_recipe(recipe, set_ or [], quick, out, force)


def _run_recipe(path: Path, overrides: list[str], quick: bool, out: Optional[Path],
                force: bool) -> None:
    began = time.monotonic()
    loaded = pipeline.load(path, overrides, quick=quick)
    if out is not None:
        loaded["out"] = str(out)
    show = console()
    show.print(f"[bold]prmkit run[/bold] {path} -> {loaded['out']}")
    results = pipeline.run(loaded, console=show, force=force, source=path)
    show.print("\n[bold]Findings[/bold]")
    for sentence in findings(results):
        show.print(f"- {sentence.replace('**', '')}", highlight=False)
    show.print(f"\nreport: {Path(loaded['out']) / 'report.html'} and report.md "
               f"({time.monotonic() - began:.0f}s)")
