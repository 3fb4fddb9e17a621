"""The ``prmkit`` command. Thin: parse options, call the library, print tables.

Heavy imports (torch, transformers, math-verify) happen inside commands, so ``prmkit --help``
stays instant and never imports torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from prmkit.errors import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="prmkit: build and evaluate process reward models for math reasoning.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate PRMs and critics.")
app.add_typer(eval_app, name="eval")


def _add_sub_apps() -> None:
    from prmkit.annotate.cli import annotate_app
    from prmkit.toyworld.cli import toy_app
    app.add_typer(toy_app, name="toy")
    app.add_typer(annotate_app, name="annotate")


_add_sub_apps()


def _console():
    from rich.console import Console
    return Console()


def _digest(source) -> Optional[str]:
    from prmkit.rundir import file_digest
    return None if source is None or str(source).startswith("hub:") else file_digest(source)


def _finish_eval(out: Optional[Path], config: dict, metrics: dict) -> None:
    if out is None:
        return
    from prmkit import rundir
    from prmkit.records import write_json
    rundir.begin(out)
    write_json(out / "metrics.json", metrics)
    rundir.finish(out, config)
    _console().print(f"wrote {out / 'metrics.json'}")


def _already_done(out: Optional[Path], config: dict, force: bool) -> Optional[dict]:
    """Saved metrics of a complete run with this config (nothing to redo), else None."""
    from prmkit import rundir
    if out is None or force or not rundir.is_complete(out, config):
        return None
    import json
    _console().print(f"{out} is complete for this config; showing its metrics (--force redoes it)")
    return json.loads((out / "metrics.json").read_text())


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

    from prmkit import pipeline, recipe
    began = time.monotonic()
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


@app.command()
def sample(problems: Path = typer.Argument(..., help="Problems file (prmkit JSONL or --format)."),
           policy: str = typer.Option(..., help="Model folder, toy or toy@step-N."),
           out: Path = typer.Option(..., help="Run folder (solutions.jsonl, metrics.json)."),
           n: int = typer.Option(8, help="Solutions a problem."),
           temperature: float = typer.Option(1.0), top_p: float = typer.Option(1.0),
           max_new_tokens: int = typer.Option(1024), seed: int = typer.Option(0),
           prompt: str = typer.Option("toy", help="toy, qwen-math or a .txt template."),
           fmt: str = typer.Option("prmkit", "--format", help="Problems format: prmkit, gsm8k, "
                                   "math (see `prmkit formats`)."),
           batch_size: int = typer.Option(64, help="Completions a forward batch."),
           workers: int = typer.Option(1, help="Worker processes (2 on a 2-core CPU)."),
           dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
           device: str = typer.Option("cpu", help="cpu or cuda."),
           shard_size: int = typer.Option(64, help="Problems a resumable shard."),
           force: bool = typer.Option(False, help="Start over instead of resuming.")) -> None:
    """Sample N step-by-step solutions a problem and grade them (resumable)."""
    from prmkit.sample import SampleConfig, run
    from prmkit.toyworld.cli import resolve_policy
    path = resolve_policy(policy)
    cfg = SampleConfig(problems=str(problems), policy=str(path), n=n, temperature=temperature,
                       top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, prompt=prompt,
                       problems_format=fmt, shard_size=shard_size)
    metrics = run(cfg, out, force=force, backend_options={
        "batch_size": batch_size, "workers": workers, "dtype": dtype, "device": device})
    console = _console()
    console.print(f"{metrics['n_solutions']} solutions for {metrics['n_problems']} problems -> "
                  f"{out / 'solutions.jsonl'}")
    console.print(f"accuracy {100 * metrics['accuracy']:.1f}%; outcomes {metrics['outcomes']}; "
                  f"unparseable reasons {metrics['unparseable_reasons']}; finish "
                  f"{metrics['finish_reasons']}", markup=False, highlight=False)
    if "toy" in metrics:
        t = metrics["toy"]
        flawed = 100 * t["correct_answer_flawed_process"]
        console.print(f"exact truth: process-correct {100 * t['process_correct']:.1f}%, correct "
                      f"answer with a flawed process {flawed:.1f}%")


@app.command()
def train(config: Optional[Path] = typer.Option(None, help="YAML config (see prmkit.prm.train)."),
          set_: Optional[list[str]] = typer.Option(None, "--set", help=(
              "key=value override, e.g. --set labels=mc.values --set loss=soft (repeat).")),
          out: Path = typer.Option(..., help="Run folder: final/ is the PRM.")) -> None:
    """Train a PRM: a step head on a backbone, hard or soft labels from any field."""
    from prmkit.prm.train import TrainConfig
    from prmkit.prm.train import train as run_training
    cfg = TrainConfig.load(config, set_ or [])
    metrics = run_training(cfg, out)
    if not metrics:  # a data-parallel process other than the first: it writes nothing
        return
    held = metrics["final_held_out"]
    _console().print(f"{metrics['steps']} steps on {metrics['train_examples']} solutions in "
                     f"{metrics['seconds']}s -> {out / 'final'}; held-out step accuracy "
                     f"{100 * held.get('step_accuracy', float('nan')):.1f}% "
                     f"({held.get('steps', 0)} steps)")


@app.command()
def score(solutions: str = typer.Argument(..., help=(
              "Solutions: prmkit JSONL, or a ProcessBench file/folder with --format "
              "processbench.")),
          prm: Path = typer.Option(..., help="PRM folder (prmkit, Qwen2.5-Math-PRM, or a "
                                             "causal LM with --prm-format math-shepherd)."),
          out: Path = typer.Option(..., help="Output JSONL of {id, step_scores}."),
          fmt: str = typer.Option("prmkit", "--format", help="Solutions format."),
          prm_format: Optional[str] = typer.Option(None, help=(
              "prmkit, qwen2.5-math-prm or math-shepherd (default: from the folder).")),
          batch_size: int = typer.Option(16), dtype: str = typer.Option("float32"),
          device: str = typer.Option("cpu")) -> None:
    """Score every step of every solution, one forward pass a solution."""
    from prmkit.prm.model import load_prm
    from prmkit.prm.score import score as score_steps
    from prmkit.records import read_records, write_jsonl
    if fmt == "prmkit":
        records = read_records(solutions, "solution")
    else:
        from prmkit.formats import reader
        read, kind = reader(fmt)
        if kind != "solution":
            raise InputError(f"format {fmt!r} gives {kind} records, not solutions",
                             field="format")
        records = read(solutions)
    model = load_prm(prm, fmt=prm_format, dtype=dtype, device=device)
    scores = score_steps([r["problem"] for r in records], [r["steps"] for r in records], model,
                         batch_size=batch_size, progress=True)
    write_jsonl(out, ({"id": r["id"], "step_scores": s} for r, s in zip(records, scores)))
    dropped = sum(s.count(None) for s in scores)
    _console().print(f"{len(records)} solutions scored -> {out}"
                     + (f"; {dropped} trailing steps did not fit the context" if dropped else ""))


@app.command()
def convert(source: str = typer.Argument(..., help="Input file, folder, or hub:NAME."),
            output: Path = typer.Argument(..., help="Output file."),
            from_: str = typer.Option(..., "--from", help="Input format (see `prmkit formats`)."),
            to: str = typer.Option("prmkit", help="Output format; 'prmkit' writes prmkit JSONL."),
            labels: Optional[str] = typer.Option(None, help=(
                "Label source for the step labels written (mc.hard, mc.values:0.5, "
                "consensus.step_labels, judge.first_error, truth.step_labels, ...).")),
            keep_after_error: bool = typer.Option(False, help=(
                "Keep the steps after the first error (labelled by the source) instead of "
                "cutting each solution at its first error."))) -> None:
    """Convert between prmkit records and other formats."""
    from prmkit.formats import reader, writer
    from prmkit.records import read_records_with_lines, write_jsonl
    read, kind = reader(from_)
    records = read(source)
    dropped = 0
    if labels:
        # prmkit JSONL has one record a line, so an error can name the line
        lines = ([line for line, _ in read_records_with_lines(source, "solution")]
                 if from_ == "prmkit" else None)
        records, dropped = _with_hard_labels(records, labels, keep_after_error, source, lines)
    if to == "prmkit":
        write_jsonl(output, records)
    else:
        write, wanted = writer(to)
        if wanted != kind:
            raise InputError(f"'{from_}' gives {kind} records but '{to}' writes {wanted} records",
                             field="to")
        write(records, output)
    _console().print(f"{len(records)} {kind} records -> {output}"
                     + (f"; {dropped} without a verdict from {labels} left out" if dropped else ""))


def _with_hard_labels(records: list[dict], spec: str, keep_after_error: bool, path,
                      lines: Optional[list[int]]) -> tuple[list[dict], int]:
    """Records relabelled from a label source (step_labels: one boolean a step)."""
    from prmkit.labels import Source, hard_labelled
    source, out = Source.parse(spec), []
    for i, record in enumerate(records):
        try:
            labelled = hard_labelled(record, source, keep_after_error)
        except ValueError as e:
            if lines:
                raise InputError(str(e), path=path, line=lines[i], field=source.path) from None
            raise InputError(f"record {i + 1}: {e}", path=path, field=source.path) from None
        if labelled is not None:
            out.append(labelled)
    return out, len(records) - len(out)


@app.command()
def formats() -> None:
    """List the formats `prmkit convert` reads and writes."""
    from prmkit.formats import READERS, WRITERS
    console = _console()
    for title, table in (("read", READERS), ("write", WRITERS)):
        console.print(f"[bold]{title}[/bold]")
        for name, (_, kind, about) in table.items():
            console.print(f"  {name:14} {kind:11} {about}", markup=False, highlight=False)


@eval_app.command("processbench")
def eval_processbench(
    benchmark: str = typer.Option(..., "--benchmark", "-b", help=(
        "ProcessBench: a JSON/JSONL file, a folder of subset files, or hub:Qwen/ProcessBench.")),
    scores: Optional[Path] = typer.Option(None, help="JSONL of {id, step_scores}."),
    critiques: Optional[Path] = typer.Option(None, help="JSONL of {id, critiques: [text]}."),
    threshold: float = typer.Option(0.5, help="A step scored below this is an error."),
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
    config = {"stage": "eval.processbench", "benchmark": benchmark,
              "benchmark_sha256": _digest(benchmark), "scores": str(scores or critiques),
              "scores_sha256": _digest(scores or critiques), "mode": "scores" if scores else
              "critiques", "threshold": threshold, "tune_on": tune_on, "subsets": subset}
    saved = _already_done(out, config, force)
    metrics = saved or evaluate.processbench(
        benchmark, step_scores=scores, critiques=critiques, threshold=threshold,
        tune_on=tune_on, subsets=subset)
    console = _console()
    console.print(tables.processbench_table(metrics))
    if metrics["mode"] == "step_scores":
        console.print(tables.sweep_table(metrics))
    else:
        console.print(f"critiques: {metrics['critique_stats']}")
    if saved is None:
        _finish_eval(out, config, metrics)


@eval_app.command("bon")
def eval_bon(
    candidates: list[Path] = typer.Argument(..., help="Candidate-set files, one a benchmark."),
    fmt: str = typer.Option("prmkit", "--format", help="prmkit or qwen_eval."),
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
    config = {"stage": "eval.bon", "candidates": {k: str(p) for k, p in zip(names, candidates)},
              "sha256": {k: _digest(p) for k, p in zip(names, candidates)}, "format": fmt,
              "ns": ns, "group_by": group_by}
    saved = _already_done(out, config, force)
    metrics = saved or evaluate.bon(
        dict(zip(names, candidates)), fmt=fmt, ns=ns, group_by=group_by, processes=processes)
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
        console.print(tables.bon_table("average", avg, sorted({k for v in avg.values() for k in v})))
    if saved is None:
        _finish_eval(out, config, metrics)


def main() -> None:
    try:
        app()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
