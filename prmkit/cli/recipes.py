"""``prmkit run RECIPE`` and ``prmkit demo``: every stage of a recipe in one run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prmkit.cli import app
from prmkit.cli import console as _console


@app.command()
def demo(out: Optional[Path] = typer.Option(None, help=(
             "Run folder (default: runs/demo, or runs/demo-quick with --quick).")),
         quick: bool = typer.Option(False, help="A CI-sized configuration (under 2 minutes)."),
         set_: Optional[list[str]] = typer.Option(None, "--set", help=(
             "section.key=value override of the demo recipe, e.g. --set mc.k=4 (repeat)."))
         ) -> None:
    """The paper in miniature on the toy world: sample, annotate, train five PRMs, evaluate,
    and write report.md and report.html into the run folder (resumable)."""
    from prmkit.recipe import demo_path
    _run_recipe(demo_path(), set_ or [], quick, out)


@app.command("run")
def run_recipe(recipe: Path = typer.Argument(..., help="Recipe YAML (see prmkit/recipes)."),
               set_: Optional[list[str]] = typer.Option(None, "--set", help=(
                   "section.key=value override, e.g. --set problems.train=50 (repeat).")),
               quick: bool = typer.Option(False, help="Apply the recipe's quick section."),
               out: Optional[Path] = typer.Option(None, help="Run folder (default: the "
                                                             "recipe's out).")) -> None:
    """Run a recipe: every stage from the policy to the report, resumable in one folder."""
    _run_recipe(recipe, set_ or [], quick, out)


def _run_recipe(path: Path, overrides: list[str], quick: bool, out: Optional[Path]) -> None:
    import json
    import time

    from prmkit import paper, pipeline, recipe
    began = time.monotonic()
    if paper.is_paper_recipe(path):  # the paper's pipeline on real data and models
        loaded = paper.load(path, overrides)
        if out is not None:
            loaded["out"] = str(out)
        console = _console()
        console.print(f"[bold]prmkit run[/bold] {path} -> {loaded['out']}")
        paper.run(loaded, console=console)
        console.print(f"\nreport: {Path(loaded['out']) / 'report.md'} "
                      f"({time.monotonic() - began:.0f}s)")
        return
    loaded = recipe.load(path, overrides, quick=quick)
    if out is not None:
        loaded["out"] = str(out)
    console = _console()
    console.print(f"[bold]prmkit run[/bold] {path} -> {loaded['out']}")
    pipeline.run(loaded, console=console)
    from prmkit.report.demo import findings
    console.print("\n[bold]Findings[/bold]")
    results = json.loads((Path(loaded["out"]) / "results.json").read_text())
    for sentence in findings(results):
        console.print(f"- {sentence.replace('**', '')}", highlight=False)
    console.print(f"\nreport: {Path(loaded['out']) / 'report.html'} and report.md "
                  f"({time.monotonic() - began:.0f}s)")
