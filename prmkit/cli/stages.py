"""``prmkit sample``, ``prmkit train`` and ``prmkit score``: the stages that run a model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prmkit.backends import BackendConfig
from prmkit.cli import app, console
from prmkit.cli.options import (
    command,
    file_options,
    force_option,
    load_configs,
    out_option,
)
from prmkit.errors import InputError
from prmkit.prm.train import TrainConfig
from prmkit.sample import SampleConfig


def _sample(given: dict, *, out: Path, force: bool, config_file, set_) -> None:
    from prmkit.sample import run
    cfg, backend = load_configs(given, SampleConfig, config_file, set_, BackendConfig)
    metrics = run(cfg, out, backend=backend, force=force)
    show = console()
    show.print(f"{metrics['n_solutions']} solutions for {metrics['n_problems']} problems -> "
               f"{out / 'solutions.jsonl'}")
    show.print(f"accuracy {100 * metrics['accuracy']:.1f}%; outcomes {metrics['outcomes']}; "
               f"unparseable reasons {metrics['unparseable_reasons']}; finish "
               f"{metrics['finish_reasons']}", markup=False, highlight=False)
    if "truth" in metrics:
        t = metrics["truth"]
        flawed = 100 * t["correct_answer_flawed_process"]
        show.print(f"exact truth: process-correct {100 * t['process_correct']:.1f}%, correct "
                   f"answer with a flawed process {flawed:.1f}%")


command(app, "sample", [SampleConfig, BackendConfig], _sample,
        help="Sample N step-by-step solutions a problem and grade them (resumable).",
        extras=[out_option("Output folder: solutions.jsonl, metrics.json, config.json, "
                           "COMPLETE."), force_option(), *file_options()])


def _train(given: dict, *, out: Path, force: bool, config_file, set_) -> None:
    from prmkit.prm.train import train as run_training
    cfg, = load_configs(given, TrainConfig, config_file, set_)
    metrics = run_training(cfg, out, force=force)
    if not metrics:  # a data-parallel process other than the first: it writes nothing
        return
    held = metrics["final_held_out"]
    console().print(f"{metrics['steps']} steps on {metrics['train_examples']} solutions in "
                    f"{metrics['seconds']}s -> {out / 'final'}; held-out step accuracy "
                    f"{100 * held.get('step_accuracy', float('nan')):.1f}% "
                    f"({held.get('steps', 0)} steps)")


command(app, "train", [TrainConfig], _train,
        help="Train a PRM: a step head on a backbone, hard or soft labels from any field.",
        extras=[out_option("Output folder: final/ is the PRM; last/ a resumable checkpoint."),
                force_option(), *file_options()])


@app.command()
def score(solutions: str = typer.Argument(..., help=(
              "Solutions: prmkit JSONL, or a ProcessBench file/folder with --format "
              "processbench.")),
          model: Path = typer.Option(..., help="The PRM: a prmkit PRM folder, a "
                                               "Qwen2.5-Math-PRM folder, or a causal LM with "
                                               "--model-format math-shepherd."),
          out: Path = typer.Option(..., help="Output folder: scores.jsonl ({id, step_scores}), "
                                             "metrics.json, config.json, COMPLETE."),
          fmt: str = typer.Option("prmkit", "--format", help="Format of the solutions file."),
          model_format: Optional[str] = typer.Option(None, help=(
              "prmkit, qwen2.5-math-prm or math-shepherd (default: from the folder).")),
          batch_size: int = typer.Option(16, help="Solutions a forward batch."),
          dtype: str = typer.Option("auto", help="auto (bfloat16 on a GPU, float32 on the "
                                                 "CPU), float32, bfloat16 or float16."),
          device: str = typer.Option("auto", help="auto (a GPU when there is one, else the "
                                                  "CPU), cpu, cuda or cuda:N."),
          force: bool = force_option().default) -> None:
    """Score every step of every solution, one forward pass a solution."""
    from prmkit import rundir
    from prmkit.records import read_records, write_jsonl

    def work(folder: Path, _config: dict) -> dict:
        from prmkit.prm.model import load_prm
        from prmkit.prm.score import score as score_steps
        if fmt == "prmkit":
            records = read_records(solutions, "solution")
        else:
            from prmkit.formats import reader
            read, kind = reader(fmt)
            if kind != "solution":
                raise InputError(f"format {fmt!r} gives {kind} records, not solutions",
                                 field="format")
            records = read(solutions)
        prm = load_prm(model, fmt=model_format, dtype=dtype, device=device)
        scores = score_steps([r["problem"] for r in records], [r["steps"] for r in records],
                             prm, batch_size=batch_size, progress=True)
        write_jsonl(folder / "scores.jsonl",
                    ({"id": r["id"], "step_scores": s} for r, s in zip(records, scores)))
        return {"n_solutions": len(records), "n_steps": sum(len(s) for s in scores),
                "steps_past_context": sum(s.count(None) for s in scores)}

    config = {"stage": "score", "format": fmt, "model_format": model_format, "dtype": dtype}
    metrics = rundir.run_stage(out, config, work, force=force,
                               inputs={"solutions": solutions, "model": model})
    dropped = metrics["steps_past_context"]
    console().print(f"{metrics['n_solutions']} solutions scored -> {out / 'scores.jsonl'}"
                    + (f"; {dropped} trailing steps did not fit the context" if dropped else ""))

