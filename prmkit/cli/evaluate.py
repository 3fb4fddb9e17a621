"""``prmkit eval processbench`` and ``prmkit eval bon``: benchmarks of PRMs and critics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prmkit.cli import console as _console
from prmkit.cli.options import command, extra, file_options, force_option, load_configs
from prmkit.evaluate import BonConfig, ProcessBenchConfig

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate PRMs and critics.")
OPTIONAL_OUT = extra("out", Optional[Path], typer.Option(None, "--out", help=(
    "Output folder for metrics.json (with config.json and COMPLETE); none: print only.")))


def _evaluated(cls: type, run, given: dict, out: Optional[Path], force: bool, config_file,
               set_) -> dict:
    """The metrics of one eval config; says whether a complete ``--out`` was reused."""
    from prmkit import rundir
    cfg, = load_configs(given, cls, config_file, set_)
    before = rundir.marker_time(out) if out else None
    metrics = run(cfg, out, force=force)
    if out is not None and before is not None and rundir.marker_time(out) == before:
        _console().print(f"{out} is complete for this config; showing its metrics (--force "
                         "redoes it)")
    elif out is not None:
        _console().print(f"wrote {out / 'metrics.json'}")
    return metrics


def _processbench(given: dict, *, out: Optional[Path], force: bool, config_file, set_) -> None:
    from prmkit import evaluate
    from prmkit.report import tables
    metrics = _evaluated(ProcessBenchConfig, evaluate.run_processbench, given, out, force,
                         config_file, set_)
    console = _console()
    console.print(tables.processbench_table(metrics))
    if metrics["mode"] == "step_scores":
        console.print(tables.sweep_table(metrics))
    else:
        console.print(f"critiques: {metrics['critique_stats']}")


command(eval_app, "processbench", [ProcessBenchConfig], _processbench,
        help="ProcessBench: earliest-error accuracy and F1 of step scores or critiques.",
        extras=[OPTIONAL_OUT, force_option(), *file_options()])


def _bon(given: dict, *, out: Optional[Path], force: bool, config_file, set_) -> None:
    from prmkit import evaluate
    from prmkit.report import tables
    metrics = _evaluated(BonConfig, evaluate.run_bon, given, out, force, config_file, set_)
    console = _console()
    for name, m in metrics["benchmarks"].items():
        ns_here = [int(k) for k in m["ns"]]
        console.print(tables.bon_table(name, {a: {int(k): v for k, v in by_n.items()}
                                              for a, by_n in m["accuracy"].items()}, ns_here))
        extra = m["min_on_final_step"]
        share = "—" if extra["share"] is None else f"{extra['share']:.1f}%"
        console.print(f"{name}: {m['n_scored']}/{m['n_problems']} problems scored, "
                      f"{m['gold_unparseable']} with unreadable gold, {m['unparseable_answers']} "
                      f"unreadable answers; lowest step score on the final step: {share} "
                      f"of {extra['n_responses']} multi-step responses")
    if len(metrics["benchmarks"]) > 1:
        avg = {a: {int(k): v for k, v in by_n.items()} for a, by_n in metrics["average"].items()}
        ns = sorted({k for v in avg.values() for k in v})
        console.print(tables.bon_table("average", avg, ns))


command(eval_app, "bon", [BonConfig], _bon,
        help="Best-of-N: maj@N, pass@N, random pick, PRM selection (last/min/prod/mean) and "
             "PRM-weighted vote.",
        extras=[OPTIONAL_OUT, force_option(), *file_options()])
