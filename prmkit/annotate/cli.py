"""``prmkit annotate ...``: MC estimation, judges, consensus and the label-quality report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

annotate_app = typer.Typer(no_args_is_help=True, help=(
    "Step labels: Monte Carlo estimation, judges, consensus filtering, label quality."))

EXECUTOR = typer.Option("local", help="local (this machine's processes) or ray.")
ACTORS = typer.Option(2, help="Ray actors (each builds its backend once).")
BACKEND = typer.Option("hf", help="hf (a local model folder) or openai (an OpenAI-compatible "
                                  "server; API key from OPENAI_API_KEY).")
BATCH = typer.Option(64, help="hf: completions a forward batch.")
WORKERS = typer.Option(2, help="hf: worker processes (local executor).")
DTYPE = typer.Option("float32", help="hf: float32, bfloat16 or float16.")
DEVICE = typer.Option("cpu", help="hf: cpu or cuda.")
BASE_URL = typer.Option(None, help="openai: the server's base URL, e.g. http://host:8000/v1.")
API = typer.Option("chat", help="openai: chat or completions.")
CONCURRENCY = typer.Option(8, help="openai: requests in flight.")
FORCE = typer.Option(False, help="Start over instead of resuming.")


def _backend_options(backend: str, executor: str, batch_size: int, workers: int, dtype: str,
                     device: str, base_url: Optional[str], api: str, concurrency: int) -> dict:
    if backend == "openai":
        return {"base_url": base_url, "api": api, "concurrency": concurrency}
    # a Ray actor is one worker: Ray spreads the shards over actors instead
    return {"batch_size": batch_size, "workers": 1 if executor == "ray" else workers,
            "dtype": dtype, "device": device}


def _model(model: str, backend: str) -> str:
    if backend != "hf":
        return model
    from prmkit.toyworld.cli import resolve_policy
    return str(resolve_policy(model))


def _console():
    from rich.console import Console
    return Console()


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _print_truth(console, metrics: dict) -> None:
    if "first_error_accuracy_vs_truth" in metrics:
        console.print(f"first-error accuracy against the exact truth: "
                      f"{_pct(metrics['first_error_accuracy_vs_truth'])}")


@annotate_app.command("mc")
def mc(solutions: Path = typer.Argument(..., help="Solutions JSONL (e.g. prmkit sample's)."),
       model: str = typer.Option("toy", help="Completion model: a folder, toy, toy@step-N, or "
                                            "the served name (openai)."),
       out: Path = typer.Option(..., help="Run folder (annotated.jsonl, metrics.json)."),
       k: int = typer.Option(8, help="Completions from each step prefix."),
       mode: str = typer.Option("linear", help="linear (every prefix) or binary (search for "
                                              "the first error)."),
       threshold: float = typer.Option(0.0, help="Hard label: MC value above this."),
       temperature: float = typer.Option(1.0), top_p: float = typer.Option(1.0),
       max_new_tokens: Optional[int] = typer.Option(None, help="Default: the toy layout's "
                                                             "budget, else 1024."),
       seed: int = typer.Option(0),
       prompt: str = typer.Option("toy", help="toy, qwen-math or a .txt template."),
       name: str = typer.Option("mc", help="Field the labels go in."),
       keep_rollouts: bool = typer.Option(False, help="Keep every rollout's text and outcome."),
       shard_size: int = typer.Option(32, help="Solutions a resumable shard."),
       executor: str = EXECUTOR, actors: int = ACTORS, backend: str = BACKEND,
       batch_size: int = BATCH, workers: int = WORKERS, dtype: str = DTYPE, device: str = DEVICE,
       base_url: Optional[str] = BASE_URL, api: str = API, concurrency: int = CONCURRENCY,
       force: bool = FORCE) -> None:
    """Monte Carlo step labels: K completions from every step prefix (resumable)."""
    from prmkit.annotate import mc as stage
    cfg = stage.MCConfig(
        solutions=str(solutions), model=_model(model, backend), k=k, mode=mode,
        threshold=threshold, temperature=temperature, top_p=top_p,
        max_new_tokens=max_new_tokens, seed=seed, prompt=prompt, name=name,
        keep_rollouts=keep_rollouts, shard_size=shard_size)
    metrics = stage.run(cfg, out, executor=executor, actors=actors, backend=backend,
                        backend_options=_backend_options(backend, executor, batch_size, workers,
                                                         dtype, device, base_url, api,
                                                         concurrency), force=force)
    console = _console()
    console.print(f"{metrics['n_solutions']} solutions -> {out / 'annotated.jsonl'}; "
                  f"skipped {metrics['skipped']}", markup=False, highlight=False)
    console.print(f"rollouts {metrics['rollouts']} "
                  f"({metrics['rollouts_per_solution'] or 0:.1f} a solution, "
                  f"{metrics['rollouts_generated']} generated: shared prefixes once); outcomes "
                  f"{metrics['rollout_outcomes']}; first error {metrics['first_error']}",
                  markup=False, highlight=False)
    _print_truth(console, metrics)


@annotate_app.command("judge")
def judge(solutions: Path = typer.Argument(..., help="Solutions JSONL."),
          out: Path = typer.Option(..., help="Run folder (annotated.jsonl, judge_log.jsonl)."),
          kind: str = typer.Option("rule", help="rule (recompute arithmetic) or model."),
          model: Optional[str] = typer.Option(None, help="Judge model: a folder (hf) or the "
                                                        "served name (openai)."),
          samples: int = typer.Option(1, help="Critiques a solution (majority vote)."),
          temperature: float = typer.Option(0.0, help="0 = greedy; use ~0.7 with samples > 1."),
          top_p: float = typer.Option(1.0),
          max_new_tokens: int = typer.Option(2048), seed: int = typer.Option(0),
          chat: bool = typer.Option(True, help="hf: wrap the prompt in the chat template."),
          template: Optional[Path] = typer.Option(None, help="Critique template (default: the "
                                                            "ProcessBench prompt)."),
          name: str = typer.Option("judge", help="Field the verdict goes in."),
          shard_size: int = typer.Option(64, help="Solutions a resumable shard."),
          executor: str = EXECUTOR, actors: int = ACTORS, backend: str = BACKEND,
          batch_size: int = BATCH, workers: int = WORKERS, dtype: str = DTYPE,
          device: str = DEVICE, base_url: Optional[str] = BASE_URL, api: str = API,
          concurrency: int = CONCURRENCY, force: bool = FORCE) -> None:
    """The earliest wrong step by a judge: a model (majority vote) or the arithmetic rule."""
    from prmkit.annotate import judge as stage
    extra = {"template": str(template)} if template else {}
    cfg = stage.JudgeConfig(
        solutions=str(solutions), kind=kind,
        model=_model(model, backend) if model else None, samples=samples,
        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
        chat=chat, name=name, shard_size=shard_size, **extra)
    metrics = stage.run(cfg, out, executor=executor, actors=actors, backend=backend,
                        backend_options=_backend_options(backend, executor, batch_size, workers,
                                                         dtype, device, base_url, api,
                                                         concurrency), force=force)
    console = _console()
    console.print(f"{metrics['n_solutions']} solutions -> {out / 'annotated.jsonl'}; skipped "
                  f"{metrics['skipped']}; no verdict {metrics['no_verdict']}; calls "
                  f"{metrics['calls']}", markup=False, highlight=False)
    if "output_statuses" in metrics:
        console.print(f"judge outputs: {metrics['output_statuses']}", markup=False,
                      highlight=False)
    console.print(f"first error {metrics['first_error']}", markup=False, highlight=False)
    _print_truth(console, metrics)


@annotate_app.command("consensus")
def consensus(inputs: list[Path] = typer.Argument(..., help=(
                  "Annotated JSONL file(s); several are joined by id.")),
              out: Path = typer.Option(..., help="Run folder (consensus.jsonl, metrics.json)."),
              source: list[str] = typer.Option(["mc.hard", "judge.first_error"], help=(
                  "Label source: a field path, with ':T' to threshold floats (repeat).")),
              truth: Optional[str] = typer.Option(None, help=(
                  "Reference labels (default: truth.label, else label, where present).")),
              force: bool = FORCE) -> None:
    """Keep solutions whose label sources agree on the earliest error."""
    from prmkit.annotate import consensus as stage
    cfg = stage.ConsensusConfig(inputs=tuple(str(p) for p in inputs), sources=tuple(source),
                                truth=truth)
    metrics = stage.run(cfg, out, force=force)
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


@annotate_app.command("report")
def report(annotated: Path = typer.Argument(..., help=(
               "An annotated JSONL with every source (e.g. consensus's annotated.jsonl).")),
           source: Optional[list[str]] = typer.Option(None, help=(
               "LABEL=FIELD[:T] (repeat); default: MC-hard, MC-soft, judge and consensus, "
               "where present.")),
           truth: Optional[str] = typer.Option(None, help="Reference labels (default "
                                                          "truth.label).")) -> None:
    """The label-quality table: each source against the exact truth, kept share and cost."""
    from prmkit.annotate.quality import label_quality
    from prmkit.errors import InputError
    sources = None
    if source:
        sources = {}
        for item in source:
            label, sep, spec = item.partition("=")
            if not sep:
                raise InputError(f"{item!r}: expected LABEL=FIELD", field="source")
            sources[label] = spec
    table = label_quality(annotated, sources, truth)
    _console().print(_quality_table(table["rows"], f"{table['n_solutions']} solutions, against "
                                                   f"{table['reference']}", with_cost=True))


def _matrix_table(matrix: dict):
    from rich.table import Table
    table = Table(title=f"first error: {matrix['rows']} (rows) x {matrix['columns']} (columns)")
    columns = [c for c in matrix["counts"]["-1"]]
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for r, counts in matrix["counts"].items():
        table.add_row(r, *[str(counts[c]) for c in columns])
    return table


def _quality_table(rows: list[dict], title: str, with_cost: bool):
    from rich.table import Table
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
