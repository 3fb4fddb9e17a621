"""``prmkit sample``, ``prmkit train`` and ``prmkit score``: the stages that run a model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prmkit import sample, search
from prmkit.backends import BackendConfig
from prmkit.cli import app, console
from prmkit.cli.options import (
    command,
    extra,
    file_options,
    force_option,
    load_configs,
    out_option,
)
from prmkit.errors import InputError
from prmkit.prm import score
from prmkit.prm.score import ScoreConfig
from prmkit.prm.train import TrainConfig, memory_estimate, train
from prmkit.sample import SampleConfig
from prmkit.search import SearchConfig


def _sample(given: dict, *, out: Path, force: bool, config_file, set_) -> None:
    cfg, backend = load_configs(given, SampleConfig, config_file, set_, BackendConfig)
    metrics = sample.run(cfg, out, backend=backend, force=force)
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


def _search(given: dict, *, out: Path, force: bool, config_file, set_) -> None:
    cfg, backend = load_configs(given, SearchConfig, config_file, set_, BackendConfig)
    metrics = search.run(cfg, out, backend=backend, force=force)
    accuracy = "-" if metrics["accuracy"] is None else f"{100 * metrics['accuracy']:.1f}%"
    console().print(f"{cfg.method}: {metrics['n_problems']} problems, accuracy {accuracy}, "
                    f"{metrics['mean_tokens']:.0f} tokens and {metrics['mean_prm_calls']:.0f} "
                    f"PRM calls a problem, {metrics['not_found']} without a finished solution "
                    f"-> {out / 'solutions.jsonl'}", markup=False, highlight=False)


command(app, "search", [SearchConfig, BackendConfig], _search,
        help="PRM-guided search at test time: greedy (Table 8), beam, dvts, best_of_n "
             "(resumable).",
        extras=[out_option("Output folder: solutions.jsonl (each with its search tree), "
                           "metrics.json."), force_option(), *file_options()])


def _train(given: dict, *, out: Path, force: bool, dry_run: bool, processes, config_file,
           set_) -> None:
    cfg, = load_configs(given, TrainConfig, config_file, set_)
    if dry_run:
        estimate = memory_estimate(cfg, processes)
        console().print("\n".join(estimate.lines()), markup=False, highlight=False)
        return
    metrics = train(cfg, out, force=force)
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
                force_option(),
                extra("dry_run", bool, typer.Option(False, "--dry-run", help=(
                    "Print the memory the run needs per device (weights, gradients, "
                    "optimizer, activations) and stop; nothing is loaded or trained."))),
                extra("processes", Optional[int], typer.Option(None, "--processes", help=(
                    "Processes the dry run plans for (default: WORLD_SIZE, else 1)."))),
                *file_options()])


def _score(given: dict, *, out: Path, force: bool, config_file, set_) -> None:
    cfg, = load_configs(given, ScoreConfig, config_file, set_)
    metrics = score.run(cfg, out, force=force)
    show = console()
    show.print(f"{metrics['n_solutions']} solutions scored -> {out / 'scores.jsonl'}")
    dropped = metrics["steps_past_context"]
    if dropped:  # scored null, never made up: say so where it cannot be missed
        cut = metrics.get("solutions_past_context", "some")
        show.print(f"warning: {cut} solutions have {dropped} trailing steps past the PRM's "
                   "context: scored null (every evaluation counts them and says how it "
                   "treats them)", style="bold yellow", markup=False, highlight=False)


command(app, "score", [ScoreConfig], _score,
        help="Score every step of every solution, one forward pass a solution.",
        extras=[out_option("Output folder: scores.jsonl ({id, step_scores}), metrics.json."),
                force_option(), *file_options()])


@app.command("serve")
def serve(model: Optional[str] = typer.Option(None, "--model", help=(
              "A policy to serve over OpenAI's completions and chat APIs: a folder or hub "
              "id.")),
          prm: Optional[str] = typer.Option(None, "--prm", help=(
              "A PRM to serve instead: POST /v1/step_scores, and vLLM's POST /pooling (a "
              "folder or hub id).")),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
          port: int = typer.Option(8000, "--port", help="Port to listen on (0: a free one)."),
          name: Optional[str] = typer.Option(None, "--name", help=(
              "The model's name in requests (default: the folder's name).")),
          record: Optional[Path] = typer.Option(None, "--record", help=(
              "--model: append every text the model is given to this JSON-lines file.")),
          device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
          dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16, float16."),
          max_n: int = typer.Option(16, "--max-n", help=(
              "--model: the most completions one request may ask for (n).")),
          max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help=(
              "--model: the most tokens one completion may have (max_tokens; default: the "
              "model's context). A request without max_tokens gets 512, or this if less.")),
          max_queue: Optional[int] = typer.Option(None, "--max-queue", help=(
              "Requests that may wait for the model (default: 64 for --model, 256 for "
              "--prm); beyond, a request is answered 503.")),
          model_format: Optional[str] = typer.Option(None, "--model-format", help=(
              "--prm: its input format (default: from the folder).")),
          batch_size: int = typer.Option(16, "--batch-size", help=(
              "--prm: solutions a forward pass at most.")),
          max_batch: int = typer.Option(64, "--max-batch", help=(
              "--prm: requests that share one round of forward passes at most (dynamic "
              "batching)."))
          ) -> None:
    """Serve a local model: a policy over an OpenAI-compatible API (completions and chat, with
    continue_final_message, streaming), for CPU runs of what vLLM serves on a GPU; or a PRM
    (--prm) for search and RL loops elsewhere, with dynamic batching."""
    if (model is None) == (prm is None):
        raise InputError("give exactly one of --model (a policy) and --prm (a PRM)",
                         field="model")

    def announce(line: str) -> None:
        console().print(line, markup=False, highlight=False, soft_wrap=True)
    if prm is not None:
        # the server's libraries (Starlette, uvicorn) load for this command alone
        from prmkit.serving.reward import serve_prm
        serve_prm(prm, host=host, port=port, name=name, model_format=model_format,
                  device=device, dtype=dtype, batch_size=batch_size, max_batch=max_batch,
                  max_queue=max_queue or 256, announce=announce)
        return
    # the server's libraries (Starlette, uvicorn) load for this command alone, not for --help
    from prmkit.serve import serve as run_server
    run_server(model, host=host, port=port, name=name, record=record, device=device,
               dtype=dtype, max_n=max_n, max_tokens=max_tokens, max_queue=max_queue or 64,
               announce=announce)
