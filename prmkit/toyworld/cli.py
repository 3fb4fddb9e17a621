"""``prmkit toy ...``: the toy world's commands (problems, policy, stats, bench)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from prmkit import plugins, rundir
from prmkit.backends import load_backend
from prmkit.errors import InputError
from prmkit.records import write_json, write_jsonl
from prmkit.toyworld.bench import build
from prmkit.toyworld.plugin import shorter
from prmkit.toyworld.policy import PolicyConfig, ensure_policy
from prmkit.toyworld.problems import make_problems, preset
from prmkit.toyworld.stats import sample_and_judge, toy_stats

toy_app = typer.Typer(no_args_is_help=True, help=(
    "The toy world: arithmetic word problems with exact step truth and a tiny CPU policy."))


def _policy_folder(model: str) -> Path:
    """``toy``, ``toy@step-N`` (trained on first use) or a model folder."""
    path = Path(plugins.resolve_policy(model))
    if not path.is_dir():
        raise InputError("policy folder not found (give a model folder, 'toy' or "
                         "'toy@step-NNNNNN')", path=path, field="model")
    return path


@toy_app.command("problems")
def problems(out: Path = typer.Argument(..., help="Output JSONL of problem records."),
             n: int = typer.Option(200, help="How many problems."),
             split: str = typer.Option("test", help="'train', 'test' or any name."),
             preset_name: str = typer.Option("mixed", "--preset", help=(
                 "easy, medium, hard, long or mixed.")),
             seed: int = typer.Option(0), start: int = typer.Option(0, help="First index.")
             ) -> None:
    """Write toy problems (with their spec, canonical solution and gold answer)."""
    records = make_problems(preset(preset_name), n, seed=seed, split=split, start=start)
    write_jsonl(out, records)
    typer.echo(f"{len(records)} problems -> {out}")


@toy_app.command("policy")
def policy(steps: Optional[int] = typer.Option(None, help="Optimizer steps (default 800)."),
           preset: str = typer.Option("mixed", help=(
               "Problem settings to train on: easy, medium, hard, long or mixed.")),
           seed: int = typer.Option(0),
           max_seconds: Optional[float] = typer.Option(None, help=(
               "Stop this call after so many seconds; the next call resumes.")),
           evaluate: bool = typer.Option(True, help="Measure held-out sampled accuracy."),
           path: bool = typer.Option(False, "--path", help=(
               "Print only the policy's folder (training it first if needed), for --model."))
           ) -> None:
    """Train the tiny policy (cached by config; resumes an interrupted run) and report it."""
    cfg = PolicyConfig(preset=preset, seed=seed)
    if steps:  # snapshots past a shorter run are dropped, not an error
        cfg = shorter(cfg, steps)
    if path:  # quiet: `--model $(prmkit toy policy --path)`
        typer.echo(ensure_policy(cfg, max_seconds=max_seconds, progress=False,
                                 evaluate_after=False))
        return
    try:
        final = ensure_policy(cfg, max_seconds=max_seconds, evaluate_after=evaluate)
    except TimeoutError as e:
        typer.echo(str(e))
        raise typer.Exit(3) from None
    metrics = json.loads((final.parent / "metrics.json").read_text())
    typer.echo(f"policy: {final}")
    typer.echo(f"trained {metrics['training']['step']} steps in "
               f"{metrics['training']['seconds']:.0f}s; final loss "
               f"{sum(metrics['losses'][-20:]) / len(metrics['losses'][-20:]):.3f}")
    if "held_out" in metrics:
        h = metrics["held_out"]
        typer.echo(f"held-out, {h['n_problems']} problems x {h['samples']} samples at "
                   f"T={h['temperature']}: accuracy {h['accuracy']:.1%}, problems with both "
                   f"right and wrong answers {h['mixed_share']:.1%}, process-correct "
                   f"{h['process_correct']:.1%}, no answer {h['no_answer']:.1%}")
        by = ", ".join(f"{k} steps {v:.0%}" for k, v in h["accuracy_by_steps"].items())
        typer.echo(f"accuracy by steps: {by}")


@toy_app.command("stats")
def stats(model: str = typer.Option("toy", help="The policy: a model folder, toy or toy@step-N."),
          n_problems: int = typer.Option(100), samples: int = typer.Option(8),
          rollouts: int = typer.Option(8, help="Completions of each probed prefix."),
          temperature: float = typer.Option(1.0), seed: int = typer.Option(0),
          workers: int = typer.Option(2), out: Optional[Path] = typer.Option(
              None, help="Write the numbers to this JSON file.")) -> None:
    """How often the paper's phenomena occur, measured with the exact truth."""
    path = _policy_folder(model)
    problems = make_problems(preset("mixed"), n_problems, seed=seed, split="test")
    with load_backend("hf", str(path), workers=workers, batch_size=64) as backend:
        numbers = toy_stats(backend, problems, samples=samples, rollouts=rollouts,
                            temperature=temperature, seed=seed, model_path=path)
    Console().print(stats_table(numbers))
    if out:
        write_json(out, numbers)


@toy_app.command("bench")
def bench(out: Path = typer.Option(Path("runs/toybench"), help="Folder for toy.json."),
          model: str = typer.Option("toy", help="The policy: a model folder, toy or toy@step-N."),
          n_problems: int = typer.Option(300, help="Held-out problems to sample."),
          samples: int = typer.Option(8), temperature: float = typer.Option(1.0),
          seed: int = typer.Option(0), start: int = typer.Option(
              1000, help="First held-out problem index (policy evaluation uses 0..99)."),
          workers: int = typer.Option(2)) -> None:
    """Build a toy ProcessBench (exact format, exact labels, balanced)."""
    path = _policy_folder(model)
    config = {"stage": "toy.bench", "policy": str(path), "n_problems": n_problems,
              "samples": samples, "temperature": temperature, "seed": seed, "start": start}

    def work(folder: Path, _config: dict) -> dict:
        problems = make_problems(preset("mixed"), n_problems, seed=seed, split="test",
                                 start=start)
        with load_backend("hf", str(path), workers=workers, batch_size=64) as backend:
            solutions = sample_and_judge(backend, problems, samples=samples,
                                         temperature=temperature, seed=seed)
        return build(solutions, folder, generator=path.parent.name + "/" + path.name, seed=seed)
    summary = rundir.run_stage(out, config, work, result="summary.json")
    typer.echo(f"{summary['items']} items ({summary['correct']} correct, {summary['erroneous']} "
               f"erroneous, of which {summary['correct_answer_flawed_process']} reach the right "
               f"answer) -> {summary['file']}")
    typer.echo(f"first error positions: {summary['first_error_position']}")


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def stats_table(numbers: dict) -> Table:
    """``toy_stats``' numbers as one table."""
    s, r = numbers["solutions"], numbers["rollouts"]
    table = Table(title=f"Toy world: {s['solutions']} sampled solutions, exact truth")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("final answer correct", _pct(s["final_answer_correct"])),
        ("every step correct (process-correct)", _pct(s["process_correct"])),
        ("no answer step", _pct(s["no_answer"])),
        ("correct answer, flawed process", _pct(s["correct_answer_flawed_process"])),
        ("  ... share of the correct answers", _pct(s["flawed_share_of_correct_answers"])),
        *[(f"  ... {cause}", str(count)) for cause, count in s["flawed_right_by_cause"].items()],
        ("first error position (step: count)",
         ", ".join(f"{k}: {v}" for k, v in s["first_error_position"].items())),
        ("first error kind", ", ".join(f"{k} {v}" for k, v in s["first_error_kind"].items())),
        *[(f"first error a {origin}", _pct(share))
          for origin, share in s["first_error_origin"].items()],
        *[(f"{origin}s: the policy's probability of the least likely token of the wrong "
           f"step (median of {c['n']})", f"{c['median']:.3f}")
          for origin, c in numbers.get("error_confidence", {}).items()],
        (f"right answer from a wrong prefix ({r['wrong_prefixes']} prefixes x "
         f"{r['rollouts_per_prefix']})", _pct(r["right_answer_from_wrong_prefix"])),
        ("  ... wrong prefixes with any right rollout (MC-hard says 'correct')",
         _pct(r["wrong_prefixes_with_any_right_rollout"])),
        (f"wrong answer from a sound prefix ({r['sound_prefixes']} prefixes)",
         _pct(r["wrong_answer_from_sound_prefix"])),
        ("  ... sound prefixes with no right rollout (MC-hard says 'wrong')",
         _pct(r["sound_prefixes_with_no_right_rollout"])),
    ]
    for row in rows:
        table.add_row(*row)
    return table
