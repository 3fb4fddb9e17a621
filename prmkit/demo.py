"""``prmkit demo`` (interim): the evaluation stages on a synthetic benchmark.

Until the toy world and PRM training land, the demo exercises the evaluation half of the
pipeline end to end on data whose truth is known by construction: arithmetic chains with a
planted first error, scored by *simulated* PRMs (the exact truth blurred by Gaussian noise of a
few sizes). The numbers show how the metrics respond to scorer quality; they say nothing about
any real model, and the run folder says so.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from prmkit import evaluate, rundir
from prmkit.records import write_json, write_jsonl

NOISE = {"sharp": 0.5, "blurry": 1.5, "noisy": 3.0}  # std of the noise on a +-2 logit


def _chain(rng: random.Random, start: int, xs: list[int], error_at: int) -> tuple[list[str], int]:
    """Steps of a running sum of ``xs``; from ``error_at`` on, the total is off a little."""
    total, steps = start, []
    for i, x in enumerate(xs):
        total += x + (rng.choice([-3, -2, -1, 1, 2, 3]) if i == error_at else 0)
        steps.append(f"Add {x}: the total is {total}.")
    steps[-1] += f" The answer is $\\boxed{{{total}}}$."
    return steps, total


def _scores(rng: random.Random, n_steps: int, error_at: int, noise: float) -> list[float]:
    logits = [(-2.0 if error_at != -1 and i >= error_at else 2.0) + rng.gauss(0, noise)
              for i in range(n_steps)]
    return [1 / (1 + math.exp(-z)) for z in logits]


def _error_at(rng: random.Random, n_steps: int, p_error: float) -> int:
    return rng.randrange(n_steps) if rng.random() < p_error else -1


def build(n: int, n_candidates: int = 8, seed: int = 0) -> tuple[list[dict], dict, dict]:
    """The benchmark, and per simulated PRM its step scores and Best-of-N candidate sets."""
    rng = random.Random(seed)
    bench, scores, candidates = [], {m: [] for m in NOISE}, {m: [] for m in NOISE}
    for i in range(n):
        start, xs = rng.randint(1, 20), [rng.randint(1, 20) for _ in range(rng.randint(2, 6))]
        gold = start + sum(xs)
        error_at = _error_at(rng, len(xs), 0.5)
        steps, answer = _chain(rng, start, xs, error_at)
        bench.append({"id": f"synthetic-{i}", "generator": "synthetic", "subset": "synthetic",
                      "problem": f"Start from {start} and add {xs}.", "steps": steps,
                      "final_answer_correct": answer == gold, "label": error_at})
        # N re-derivations of the same chain, shared by every simulated PRM
        tries = [_error_at(rng, len(xs), 0.7) for _ in range(n_candidates)]
        derivations = [_chain(rng, start, xs, e) for e in tries]
        for name, noise in NOISE.items():
            scores[name].append({"id": f"synthetic-{i}",
                                 "step_scores": _scores(rng, len(xs), error_at, noise)})
            candidates[name].append({"id": f"synthetic-{i}", "gold_answer": str(gold),
                                     "candidates": [
                {"answer": str(ans), "steps": st, "step_scores": _scores(rng, len(xs), e, noise)}
                for (st, ans), e in zip(derivations, tries)]})
    return bench, scores, candidates


def run(out: Path, quick: bool = False) -> None:
    from rich.console import Console
    from prmkit.report import tables
    console = Console()
    config = {"stage": "demo", "interim": "synthetic benchmark, simulated PRMs",
              "n": 60 if quick else 400, "seed": 0}
    console.print("[bold]prmkit demo[/bold] (interim): evaluation of simulated PRMs on a "
                  "synthetic benchmark with planted errors; the toy world replaces it.")
    if rundir.is_complete(out, config):
        console.print(f"{out} is complete; see {out / 'metrics.json'}")
        return
    rundir.begin(out)
    bench, scores, candidates = build(config["n"], seed=config["seed"])
    write_json(out / "benchmark.json", bench)
    results = {}
    for name in NOISE:
        write_jsonl(out / f"scores_{name}.jsonl", scores[name])
        write_jsonl(out / f"candidates_{name}.jsonl", candidates[name])
        pb = evaluate.processbench(bench, step_scores={r["id"]: r["step_scores"]
                                                       for r in scores[name]})
        bon = evaluate.bon({"synthetic": candidates[name]}, group_by="string")
        results[name] = {"processbench": pb, "bon": bon}
        console.print(f"\nsimulated PRM '{name}' (noise std {NOISE[name]}):")
        console.print(tables.processbench_table(pb))
        m = bon["benchmarks"]["synthetic"]
        console.print(tables.bon_table("synthetic", m["accuracy"], m["ns"]))
    write_json(out / "metrics.json", results)
    rundir.finish(out, config)
    console.print(f"\nwrote {out}")
