"""What a benchmark of PRMs is to prmkit: one module, registered by name
(``prmkit.evaluate.BENCHMARKS``), that gives the command line, the pipeline and the report
everything they need of it.

    the command   ``prmkit eval NAME``: its settings (``config``), ``run(cfg, out, force=)``
                  -> metrics, and ``show(metrics, console)`` for the terminal
    the pipeline  ``evaluate: {NAME: ...}`` in a recipe: its settings (``section``),
                  ``solutions(section, run)`` -> the groups of solutions every PRM must score
                  (read from a file, or sampled by the run's policy), ``measure(section,
                  groups, scores)`` -> one PRM's metrics, and ``summary(section, groups)`` ->
                  what the report needs beside them (item labels for a paired bootstrap)
    the report    ``tables(results)`` -> its tables, ``plots(results)`` -> its figures

A benchmark never imports the pipeline: ``run`` is the pipeline's handle (``PipelineRun``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from prmkit import rundir
from prmkit.records import write_jsonl


class PipelineRun(Protocol):
    """What a benchmark may ask of the run that evaluates PRMs on it."""

    out: Path                                   # the run folder

    def sample(self, label: str, data: dict, folder: Path, settings: dict) -> list[dict]:
        """The policy's graded solutions of a data section's problems (``folder``: their
        file and a resumable sample stage), with the recipe's sampling settings under
        ``settings``."""

    def group(self, benchmark: str, name: str) -> list[dict]:
        """A group of solutions another benchmark of this run made (``bon``'s sets)."""


@dataclass(frozen=True)
class ReportTable:
    title: str
    head: list[str]
    rows: list[list[str]]
    legend: str = ""


@dataclass(frozen=True)
class Benchmark:
    name: str
    help: str
    config: type
    run: Callable[..., dict]
    show: Callable[[dict, Any], None]
    section: type
    solutions: Callable[[Any, PipelineRun], dict[str, list[dict]]]
    measure: Callable[[Any, dict[str, list[dict]], dict[str, dict[str, list]]], dict]
    summary: Callable[[Any, dict[str, list[dict]]], dict] = lambda section, groups: {}
    tables: Callable[[dict], list[ReportTable]] = lambda results: []
    plots: Callable[[dict], dict[str, bytes]] = lambda results: {}


def into(out: str | Path | None, config: dict, inputs: dict, force: bool,
         compute: Callable[[bool], dict], items: Callable[[dict], list[dict]]) -> dict:
    """A command's metrics, computed at once or (with ``out``) through the stage runner, which
    keeps the per-item predictions beside them in ``predictions.jsonl`` (``items`` takes them
    out of the metrics)."""
    if out is None:
        return compute(False)

    def work(folder: Path, _config: dict) -> dict:
        metrics = compute(True)
        write_jsonl(folder / "predictions.jsonl", items(metrics))
        return metrics
    return rundir.run_stage(out, config, work, inputs=inputs, force=force)


def percent(value, digits: int = 1) -> str:
    """A percentage for a report table ("–" when not measured)."""
    return "–" if value is None else f"{value:.{digits}f}%"


def png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (closed after)."""
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
