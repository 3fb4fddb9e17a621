"""``prmkit eval processbench`` and ``prmkit eval bon``: benchmarks of PRMs and critics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer

from prmkit.cli import console as _console
from prmkit.errors import InputError

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate PRMs and critics.")


def _evaluated(out: Optional[Path], config: dict, inputs: dict, force: bool,
               compute: Callable[[], dict]) -> dict:
    """The metrics; with ``--out`` through the stage runner (metrics.json, config.json and the
    marker, and nothing redone when the folder is complete with these inputs)."""
    if out is None:
        return compute()
    from prmkit import rundir
    before = rundir.marker_time(out)
    metrics = rundir.run_stage(out, config, lambda _folder, _config: compute(), inputs=inputs,
                               force=force)
    if before is not None and rundir.marker_time(out) == before:
        _console().print(f"{out} is complete for this config; showing its metrics (--force "
                         "redoes it)")
    else:
        _console().print(f"wrote {out / 'metrics.json'}")
    return metrics


@eval_app.command("processbench")
def eval_processbench(
    benchmark: str = typer.Option(..., "--benchmark", "-b", help=(
        "ProcessBench: a JSON/JSONL file, a folder of subset files, or hub:Qwen/ProcessBench.")),
    scores: Optional[Path] = typer.Option(None, help="JSONL of {id, step_scores}, or a "
                                          "`prmkit score` folder."),
    critiques: Optional[Path] = typer.Option(None, help="JSONL of {id, critiques: [text]}."),
    threshold: float = typer.Option(0.5, help="A step scored at or below this is an error "
                                              "(prmkit.labels' one threshold rule)."),
    tune_on: Optional[str] = typer.Option(None, help="Pick the best-F1 threshold on this subset."),
    subset: Optional[list[str]] = typer.Option(None, help="Evaluate only these subsets."),
    out: Optional[Path] = typer.Option(None, help="Folder for metrics.json."),
    force: bool = typer.Option(False, help="Redo a run whose folder is complete."),
) -> None:
    """ProcessBench: earliest-error accuracy and F1 of step scores or critiques."""
    from prmkit import evaluate
    from prmkit.report import tables
    if (scores is None) == (critiques is None):
        raise InputError("give exactly one of --scores and --critiques")
    if scores is not None and scores.is_dir():  # a `prmkit score` folder
        scores = scores / "scores.jsonl"
    config = {"stage": "eval.processbench", "mode": "scores" if scores else "critiques",
              "threshold": threshold, "tune_on": tune_on, "subsets": subset}
    metrics = _evaluated(out, config, {"benchmark": benchmark, "predictions": scores or critiques},
                         force, lambda: evaluate.processbench(
                             benchmark, step_scores=scores, critiques=critiques,
                             threshold=threshold, tune_on=tune_on, subsets=subset))
    console = _console()
    console.print(tables.processbench_table(metrics))
    if metrics["mode"] == "step_scores":
        console.print(tables.sweep_table(metrics))
    else:
        console.print(f"critiques: {metrics['critique_stats']}")


@eval_app.command("bon")
def eval_bon(
    candidates: list[Path] = typer.Argument(..., help="Candidate-set files, one a benchmark."),
    fmt: str = typer.Option("prmkit", "--format", help="Format of the candidate files: prmkit "
                                                       "or qwen_eval."),
    n: Optional[str] = typer.Option(None, help="Comma-separated N values (default 1,2,4,..)."),
    group_by: str = typer.Option("equivalence", help="Group answers by 'equivalence' or 'string'."),
    processes: int = typer.Option(1, help="Worker processes for grading."),
    out: Optional[Path] = typer.Option(None, help="Folder for metrics.json."),
    force: bool = typer.Option(False, help="Redo a run whose folder is complete."),
) -> None:
    """Best-of-N: maj@N, pass@N, PRM selection (last/min/prod/mean) and PRM-weighted vote."""
    from prmkit import evaluate
    from prmkit.report import tables
    names = [p.stem for p in candidates]
    if len(set(names)) != len(names):
        raise InputError("two candidate files share a name; benchmarks are named by file stem")
    try:
        ns = [int(x) for x in n.split(",")] if n else None
    except ValueError:
        raise InputError(f"--n must be comma-separated integers, got {n!r}", field="n") from None
    config = {"stage": "eval.bon", "format": fmt, "ns": ns, "group_by": group_by}
    metrics = _evaluated(out, config, dict(zip(names, candidates)), force, lambda: evaluate.bon(
        dict(zip(names, candidates)), fmt=fmt, ns=ns, group_by=group_by, processes=processes))
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
