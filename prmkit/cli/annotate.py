"""``prmkit annotate ...``: MC estimation, judges, consensus and the label-quality report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from prmkit.annotate import consensus, judge, mc
from prmkit.annotate.consensus import ConsensusConfig
from prmkit.annotate.judge import JudgeConfig
from prmkit.annotate.mc import MCConfig
from prmkit.annotate.quality import label_quality
from prmkit.backends import BackendConfig
from prmkit.cli import console as _console
from prmkit.cli.options import (
    command,
    file_options,
    force_option,
    load_configs,
    out_option,
)
from prmkit.errors import InputError

annotate_app = typer.Typer(no_args_is_help=True, help=(
    "Step labels: Monte Carlo estimation, judges, consensus filtering, label quality."))



def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _print_truth(console, metrics: dict) -> None:
    if "first_error_accuracy_vs_truth" in metrics:
        console.print(f"first-error accuracy against the exact truth: "
                      f"{_pct(metrics['first_error_accuracy_vs_truth'])}")


def _mc(given: dict, *, out: Path, force: bool, config_file, set_) -> None:
    cfg, backend = load_configs(given, MCConfig, config_file, set_, BackendConfig)
    metrics = mc.run(cfg, out, backend=backend, force=force)
    console = _console()
    console.print(f"{metrics['n_solutions']} solutions -> {out / 'annotated.jsonl'}; "
                  f"skipped {metrics['skipped']}", markup=False, highlight=False)
    console.print(f"rollouts {metrics['rollouts']} "
                  f"({metrics['rollouts_per_solution'] or 0:.1f} a solution, "
                  f"{metrics['rollouts_generated']} generated: shared prefixes once); outcomes "
                  f"{metrics['rollout_outcomes']}; first error {metrics['first_error']}",
                  markup=False, highlight=False)
    _print_truth(console, metrics)


command(annotate_app, "mc", [MCConfig, BackendConfig], _mc,
        help="Monte Carlo step labels: K completions from every step prefix (resumable).",
        extras=[out_option("Output folder: annotated.jsonl, skipped.jsonl, metrics.json."),
                force_option(), *file_options()])


def _judge(given: dict, *, out: Path, force: bool, config_file, set_) -> None:
    cfg, backend = load_configs(given, JudgeConfig, config_file, set_, BackendConfig)
    metrics = judge.run(cfg, out, backend=backend, force=force)
    console = _console()
    console.print(f"{metrics['n_solutions']} solutions -> {out / 'annotated.jsonl'}; skipped "
                  f"{metrics['skipped']}; no verdict {metrics['no_verdict']}; calls "
                  f"{metrics['calls']}", markup=False, highlight=False)
    if "output_statuses" in metrics:
        console.print(f"judge outputs: {metrics['output_statuses']}", markup=False,
                      highlight=False)
    console.print(f"first error {metrics['first_error']}", markup=False, highlight=False)
    _print_truth(console, metrics)


command(annotate_app, "judge", [JudgeConfig, BackendConfig], _judge,
        help="The earliest wrong step by a judge: a model (majority vote) or the arithmetic "
             "rule.",
        extras=[out_option("Output folder: annotated.jsonl, judge_log.jsonl, metrics.json."),
                force_option(), *file_options()])


def _consensus(given: dict, *, out: Path, force: bool, config_file, set_) -> None:
    cfg, = load_configs(given, ConsensusConfig, config_file, set_)
    metrics = consensus.run(cfg, out, force=force)
    console = _console()
    console.print(f"kept {metrics['kept']} of {metrics['n_solutions']} solutions "
                  f"({_pct(metrics['kept_share'])}) -> {out / 'consensus.jsonl'}")
    for pair, share in metrics["pairwise_agreement"].items():
        console.print(f"agreement {pair}: {_pct(share)}", markup=False, highlight=False)
    console.print(_matrix_table(metrics["agreement_matrix"]))
    if "quality" in metrics:
        console.print(_quality_table(
            [{"source": s, **q} for s, q in metrics["quality"].items()],
            f"against {metrics['reference']}", with_cost=False))


command(annotate_app, "consensus", [ConsensusConfig], _consensus,
        help="Keep solutions whose label sources agree on the earliest error.",
        extras=[out_option("Output folder: consensus.jsonl (kept), annotated.jsonl (all), "
                           "metrics.json."), force_option(), *file_options()])


@annotate_app.command("report")
def report(annotated: Path = typer.Argument(..., help=(
               "An annotated JSONL with every source (e.g. consensus's annotated.jsonl).")),
           sources: Optional[list[str]] = typer.Option(None, help=(
               "LABEL=FIELD[:T] (repeat); default: MC-hard, MC-majority, judge and consensus, "
               "where present.")),
           truth: Optional[str] = typer.Option(None, help="Reference labels (default "
                                                          "truth.label).")) -> None:
    """The label-quality table: each source against the exact truth, kept share and cost."""
    named = None
    if sources:
        named = {}
        for item in sources:
            label, sep, spec = item.partition("=")
            if not sep:
                raise InputError(f"{item!r}: expected LABEL=FIELD", field="sources")
            named[label] = spec
    table = label_quality(annotated, named, truth)
    _console().print(_quality_table(table["rows"], f"{table['n_solutions']} solutions, against "
                                                   f"{table['reference']}", with_cost=True))


def _matrix_table(matrix: dict):
    table = Table(title=f"first error: {matrix['rows']} (rows) x {matrix['columns']} (columns)")
    columns = [c for c in matrix["counts"]["-1"]]
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for r, counts in matrix["counts"].items():
        table.add_row(r, *[str(counts[c]) for c in columns])
    return table


def _quality_table(rows: list[dict], title: str, with_cost: bool):
    table = Table(title=title)
    for column in ("source", "first-error accuracy", "kept", "negative precision",
                   "negative recall") + (("rollouts", "judge calls") if with_cost else ()):
        table.add_column(column, justify="left" if column == "source" else "right")
    for row in rows:
        cells = [row["source"], _pct(row["first_error_accuracy"]),
                 _pct(row["kept_share"]) if "kept_share" in row else str(row["n"]),
                 _pct(row["negative_precision"]), _pct(row["negative_recall"])]
        if with_cost:
            cells += [str(row["rollouts"]), str(row["judge_calls"])]
        table.add_row(*cells)
    return table
