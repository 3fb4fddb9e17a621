"""``prmkit eval NAME``: one command a registered benchmark (``prmkit.evaluate.BENCHMARKS``),
its flags made from the benchmark's config, its output from the benchmark's ``show``.

Exit status: 0 when something was measured; 1 when the metrics say that nothing of the PRM
fit its context (``past_context.nothing_fit``: every PRM number is null; metrics.json is still
written, with the counts); 2 for bad input (``prmkit.errors.InputError``)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from prmkit import evaluate, rundir
from prmkit.backends import BackendConfig
from prmkit.cli import console
from prmkit.cli.options import command, extra, file_options, force_option, load_configs
from prmkit.evaluate import judge_bon
from prmkit.evaluate.benchmark import Benchmark

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate PRMs and critics on a benchmark.")
OPTIONAL_OUT = extra("out", Optional[Path], typer.Option(None, "--out", help=(
    "Output folder for metrics.json and predictions.jsonl (with config.json and COMPLETE); "
    "none: print only.")))


def generates(bench: Benchmark) -> bool:
    """Whether a benchmark runs a model of its own (ProcessBench's critics): its ``run`` takes
    ``backend=``, and its command the backend flags every generating command takes."""
    return "backend" in inspect.signature(bench.run).parameters


def _handler(bench: Benchmark):
    return _evaluate_and_show(bench.config, bench.run, bench.show, generates(bench))


def _evaluate_and_show(config_class, run, show_metrics, generating: bool):
    def evaluate_and_show(given: dict, *, out: Optional[Path], force: bool, config_file,
                          set_) -> None:
        if generating:
            cfg, backend = load_configs(given, config_class, config_file, set_, BackendConfig)
            options = {"backend": backend}
        else:
            cfg, = load_configs(given, config_class, config_file, set_)
            options = {}
        before = rundir.marker_time(out) if out else None
        metrics = run(cfg, out, force=force, **options)
        show = console()
        if out is not None and before is not None and rundir.marker_time(out) == before:
            show.print(f"{out} is complete for this config; showing its metrics (--force "
                       "redoes it)")
        elif out is not None:
            show.print(f"wrote {out / 'metrics.json'}")
        show_metrics(metrics, show)
        if nothing_fit(metrics):
            show.print("nothing of the PRM was evaluated: no solution fits its context",
                       style="bold red", markup=False, highlight=False)
            raise typer.Exit(1)
    return evaluate_and_show


def nothing_fit(metrics: dict) -> bool:
    """Whether a benchmark's metrics say that no solution fit the PRM's context."""
    return bool((metrics.get("past_context") or {}).get("nothing_fit"))


for _name in evaluate.names():
    _bench = evaluate.benchmark(_name)
    command(eval_app, _name, [_bench.config, *([BackendConfig] if generates(_bench) else [])],
            _handler(_bench), help=_bench.help,
            extras=[OPTIONAL_OUT, force_option(), *file_options()])

# a judge picking among Best-of-N candidates itself: not a benchmark of PRMs (a recipe's
# evaluations measure PRMs), so a command of its own
command(eval_app, "judge-bon", [judge_bon.JudgeBonConfig, BackendConfig],
        _evaluate_and_show(judge_bon.JudgeBonConfig, judge_bon.run, judge_bon.show, True),
        help="LLM-as-a-judge for Best-of-N with no PRM (the paper's Tables 11-12): pointwise "
             "(each candidate critiqued; its score, the share of its steps judged correct) or "
             "pairwise (a single-elimination tournament).",
        extras=[OPTIONAL_OUT, force_option(), *file_options()])
