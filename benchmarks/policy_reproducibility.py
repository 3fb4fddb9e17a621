"""Does the toy policy's training depend on the CPU? Train it under each arm, side by side:
bf16 autocast or fp32, on the CPU's native kernels or on the portable ones
(``ATEN_CPU_CAPABILITY=default``, which a machine without AVX-512 or AVX2 would use), and with
other seeds; report each run's time, final loss, held-out accuracy and share of solutions whose
first error is a misconception, and how far its weights are from the native run of the same
precision and seed.

    .venv/bin/python benchmarks/policy_reproducibility.py --arms bf16 --seeds 0,1,2   # ~30 min
    .venv/bin/python benchmarks/policy_reproducibility.py --steps 120 --arms bf16,fp32

Every run trains from scratch in its own cache folder (a subprocess, so that the kernel choice
takes effect at torch's import), then samples 8 solutions for each of ``--problems`` held-out
problems of its seed.

Measured on the 2-core AMD EPYC (AVX-512) of the README's numbers, the policy before it learned
misconceptions (370 steps, seed 0; held-out: 100 problems x 8 samples):

    precision seed kernels                   seconds    loss accuracy  max |w - w_native|
    bf16         0 native (AVX512)             150.8  0.0071    60.9%                   0
    bf16         0 default (DEFAULT)           234.2  0.0093    51.5%               0.635
    fp32         0 native (AVX512)             223.8  0.0102    44.2%                   0
    fp32         0 default (DEFAULT)           262.2  0.0079    58.9%               0.569

So bf16 autocast is not the cause: in fp32 too, the kernels' rounding alone moves the trained
weights by up to 0.6 and held-out accuracy by 15 points. That run stopped while accuracy was
still climbing steeply (19% at step 280, 61% at step 370), where a small push moves the end
point most; the result that must not depend on the CPU is a run trained to its plateau.

The current default (800 steps, the misconception taught; held-out: 300 problems x 8), same
machine:

    precision seed kernels                   seconds    loss accuracy misconception  max |w - w_native|
    bf16         0 native (AVX512)             313.1  0.0021    66.4%         46.3%                   0
    bf16         0 default (DEFAULT)           468.6  0.0024    67.8%         48.4%               0.854

Other weights, a policy as good: 1.4 points apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TRAIN = """
import json, sys, time
from dataclasses import replace
from pathlib import Path
import torch
from prmkit.toyworld.policy import PolicyConfig, ensure_policy, evaluate
from prmkit.toyworld.plugin import shorter

if __name__ == "__main__":  # the sampling backend's workers re-import this script
    bf16, seed, steps, root = sys.argv[1] == "bf16", int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    cfg = replace(PolicyConfig(), bf16=bf16, seed=seed)
    cfg = shorter(cfg, steps) if steps else cfg
    began = time.monotonic()
    final = ensure_policy(cfg, root=Path(root), progress=False, evaluate_after=False)
    seconds = round(time.monotonic() - began, 1)
    losses = json.loads((final.parent / "metrics.json").read_text())["losses"]
    held_out = evaluate(final, seed=seed, n_problems=int(sys.argv[5]))
    print(json.dumps({"final": str(final), "capability": torch.backends.cpu.get_cpu_capability(),
                      "seconds": seconds, "loss": sum(losses[-20:]) / 20,
                      "accuracy": held_out["accuracy"],
                      "misconceptions": held_out["first_error_a_misconception"]}))
"""


def train(precision: str, kernels: str, seed: int, steps: int, root: Path,
          problems: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    if kernels == "default":
        env["ATEN_CPU_CAPABILITY"] = "default"
    script = root.parent / f"train-{root.name}.py"
    script.write_text(TRAIN)
    done = subprocess.run([sys.executable, str(script), precision, str(seed), str(steps),
                           str(root), str(problems)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def max_weight_gap(a: str, b: str) -> float:
    from safetensors.torch import load_file
    left, right = (load_file(str(Path(f) / "model.safetensors")) for f in (a, b))
    return max((left[k].float() - right[k].float()).abs().max().item() for k in left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default="bf16,fp32", help="precisions to compare")
    parser.add_argument("--seeds", default="0", help="seeds, e.g. 0,1,2 (native kernels)")
    parser.add_argument("--steps", type=int, default=0, help="0: the default run's steps")
    parser.add_argument("--problems", type=int, default=300,
                        help="held-out problems (x 8 samples) each policy is evaluated on")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.arms.split(","):
            for seed in seeds:
                kernel_arms = ("native", "default") if seed == seeds[0] else ("native",)
                runs = {k: train(precision, k, seed, args.steps,
                                 Path(tmp) / f"{precision}-{k}-{seed}", args.problems)
                        for k in kernel_arms}
                for kernels, run in runs.items():
                    gap = (max_weight_gap(run["final"], runs["native"]["final"])
                           if kernels != "native" else 0.0)
                    rows.append((precision, seed, kernels, run, gap))
                    print(precision, seed, kernels, json.dumps(run), flush=True)
    print(f"{'precision':9} {'seed':>4} {'kernels':24} {'seconds':>8} {'loss':>7} "
          f"{'accuracy':>8} {'misconception':>13} {'max |w - w_native|':>19}")
    for precision, seed, kernels, run, gap in rows:
        print(f"{precision:9} {seed:>4} {kernels + ' (' + run['capability'] + ')':24} "
              f"{run['seconds']:>8.1f} {run['loss']:>7.4f} {100 * run['accuracy']:>7.1f}% "
              f"{100 * run['misconceptions']:>12.1f}% {gap:>19.3g}")
    for precision in args.arms.split(","):
        native = {seed: run["accuracy"] for p, seed, k, run, _ in rows
                  if p == precision and k == "native"}
        portable = [100 * (run["accuracy"] - native[seed]) for p, seed, k, run, _ in rows
                    if p == precision and k == "default"]
        spread = 100 * (max(native.values()) - min(native.values()))
        print(f"{precision}: held-out accuracy ranges over {spread:.1f} points across seeds "
              f"{sorted(native)}; portable kernels minus native: "
              f"{', '.join(f'{g:+.1f}' for g in portable)} points")


if __name__ == "__main__":
    main()
