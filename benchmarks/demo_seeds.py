"""Does the demo say the same with another policy? Run the demo recipe with the toy policy
trained from several seeds (``toy:seed=N``; everything else as shipped) and print, side by
side, each run's verdicts and the numbers they rest on.

    .venv/bin/python benchmarks/demo_seeds.py --seeds 0,1,2 --out runs/seeds   # ~35 min

Each run is a plain ``prmkit demo`` run folder (``--out/seed-N``), so a second call reuses
every finished stage and only prints. A verdict that differs between seeds depends on the
seed; the README says which.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from prmkit.report import comparisons
from prmkit.report.findings import verdicts


def run(seed: int, out: Path) -> dict:
    folder = out / f"seed-{seed}"
    done = subprocess.run([sys.executable, "-m", "prmkit.cli", "demo", "--out", str(folder),
                           "--set", f"policy.model=toy:seed={seed}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads((folder / "results.json").read_text())


def numbers(results: dict) -> dict[str, str]:
    """What the verdicts rest on, as the report prints it."""
    ceiling, baseline = results["ceiling"], (results["baselines"] or [None])[0]
    first = next(iter(results["prms"].values()))["bon"]
    bon = first[comparisons.headline_set(results)]["bon"]
    n = str(max(bon["ns"]))

    def at(method: str) -> float:
        accuracy = bon["accuracy"][method]
        return accuracy.get(n, accuracy.get(int(n)))
    out = {"policy accuracy (random pick)": f"{at('random'):.1f}%",
           "maj@N / pass@N": f"{at('maj'):.1f}% / {at('pass'):.1f}%"}
    for prm in (ceiling, baseline):
        auc = comparisons.auc_of(results, prm)
        out[f"AUC {prm}"] = f"{auc['auc']:.2f}"
        for origin in comparisons.origins(results):
            measured = comparisons.auc_of(results, prm, origin)
            out[f"AUC {prm} vs {origin}s"] = "–" if measured["auc"] is None else \
                f"{measured['auc']:.2f}"
        f1 = comparisons.f1_of(results, prm)
        out[f"F1 {prm}"] = "–" if f1 is None else f"{f1:.1f}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("runs/seeds"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, dict[int, str]] = {}
    for seed in seeds:
        results = run(seed, args.out)
        for name, verdict in {**verdicts(results), **numbers(results)}.items():
            rows.setdefault(name, {})[seed] = str(verdict)
    print("| | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|" + "---|" * len(seeds))
    for name, by_seed in rows.items():
        print(f"| {name} | " + " | ".join(by_seed.get(s, "–") for s in seeds) + " |")
    moving = [name for name, by_seed in rows.items()
              if name.startswith("lesson") and len(set(by_seed.values())) > 1]
    print("\nverdicts that depend on the seed: " + (", ".join(moving) or "none"))


if __name__ == "__main__":
    main()
