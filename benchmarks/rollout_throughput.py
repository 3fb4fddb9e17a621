"""Rollouts per second of the hf backend: one process vs two single-thread worker processes.

The workload is what MC estimation does: complete step prefixes of toy solutions (the canonical
solution cut after each step) with the toy policy, T=1.0, 4 completions a prefix. Each
configuration runs the same prompts with the same seeds, so both produce identical completions;
worker start-up is measured separately and excluded from the rates.

    .venv/bin/python benchmarks/rollout_throughput.py [--policy toy] [--prefixes 48]
"""

from __future__ import annotations

import argparse
import time

from prmkit.backends import SamplingParams, load_backend
from prmkit.prompting import render
from prmkit.steps import join_steps, split_steps
from prmkit.toyworld.plugin import resolve_policy
from prmkit.toyworld.policy import PROMPT
from prmkit.toyworld.problems import PRESETS, budget_for, make_problems


def prefixes(n: int) -> list[str]:
    prompts = []
    for p in make_problems(PRESETS["mixed"], n, seed=0, split="bench"):
        steps = split_steps(p["solution"])
        k = 1 + len(prompts) % (len(steps) - 1)  # a cut before the answer step
        prompts.append(render(PROMPT, p["problem"]) + join_steps(steps[:k]) + "\n\n")
    return prompts


def measure(policy: str, prompts: list[str], workers: int, batch_size: int, n: int) -> dict:
    budget = budget_for(make_problems(PRESETS["mixed"], 1))
    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=budget, seed=0)
    with load_backend("hf", policy, workers=workers, batch_size=batch_size) as backend:
        start = time.perf_counter()
        backend.warm_up()
        startup = time.perf_counter() - start
        start = time.perf_counter()
        outputs = backend.generate(prompts, params)
        seconds = time.perf_counter() - start
    rollouts = sum(len(o) for o in outputs)
    tokens = sum(c.num_tokens for o in outputs for c in o)
    return {"rollouts_per_s": rollouts / seconds, "tokens_per_s": tokens / seconds,
            "seconds": seconds, "startup": startup,
            "texts": [c.text for o in outputs for c in o]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="toy", help="model folder, toy or toy@step-N")
    parser.add_argument("--prefixes", type=int, default=48)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--batch-sizes", default="1,16,64")
    args = parser.parse_args()

    policy = str(resolve_policy(args.policy))
    prompts = prefixes(args.prefixes)
    print(f"policy {policy}\n{len(prompts)} prefixes x {args.samples} rollouts, T=1.0\n")
    print(f"{'batch':>5} | {'1 process, 2 threads':>22} | {'2 workers, 1 thread each':>24} | "
          f"{'ratio':>5} | same text")
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        one = measure(policy, prompts, 1, batch_size, args.samples)
        two = measure(policy, prompts, 2, batch_size, args.samples)
        ratio = two["rollouts_per_s"] / one["rollouts_per_s"]
        print(f"{batch_size:>5} | {one['rollouts_per_s']:>8.1f} rollouts/s "
              f"({one['tokens_per_s']:>5.0f} tok/s) | {two['rollouts_per_s']:>10.1f} rollouts/s "
              f"({two['tokens_per_s']:>5.0f} tok/s) | {ratio:>4.2f}x | "
              f"{one['texts'] == two['texts']}", flush=True)
    print(f"\nstart-up (excluded above): 1 process {one['startup']:.1f}s, "
          f"2 workers {two['startup']:.1f}s")


if __name__ == "__main__":
    main()
