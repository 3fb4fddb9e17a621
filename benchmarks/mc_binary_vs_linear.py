"""Binary-search MC against linear MC: rollouts spent and first errors found, side by side.

The same toy solutions (the toy policy's samples on held-out problems) are annotated twice with
the same completion model, K and seed: ``linear`` estimates every step prefix, ``binary``
searches for the first prefix from which no completion succeeds. Completions are seeded by their
prompt, so a prefix both modes probe gets the same rollouts; the difference is only which
prefixes are probed. Goal: binary spends at most 40% of linear's rollouts and finds the same
first error on at least 95% of solutions.

    .venv/bin/python benchmarks/mc_binary_vs_linear.py [--problems 40] [--n 8] [--k 8]
        [--out runs/bench-mc]

The run folder keeps both annotations (``linear/annotated.jsonl``, ``binary/annotated.jsonl``),
so the judge, consensus and report stages can run on them afterwards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from prmkit.annotate import mc
from prmkit.backends import BackendConfig
from prmkit.records import read_records, write_jsonl
from prmkit.sample import SampleConfig
from prmkit.sample import run as sample
from prmkit.toyworld.plugin import resolve_policy
from prmkit.toyworld.policy import PROMPT
from prmkit.toyworld.problems import PRESETS, budget_for, make_problems
from prmkit.toyworld.truth import TRUTH_HOOK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="toy", help="policy and completion model")
    parser.add_argument("--problems", type=int, default=40, help="held-out toy problems")
    parser.add_argument("--n", type=int, default=8, help="solutions a problem")
    parser.add_argument("--k", type=int, default=8, help="completions a step prefix")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-mc"))
    args = parser.parse_args()

    policy = str(resolve_policy(args.policy))
    backend = BackendConfig(workers=args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    problems = args.out / "problems.jsonl"
    write_jsonl(problems, make_problems(PRESETS["mixed"], args.problems, seed=0, split="test",
                                        start=3000))
    sample(SampleConfig(problems=str(problems), model=policy, prompt=PROMPT, truth=TRUTH_HOOK,
                        n=args.n), args.out / "sample", backend=backend)
    budget = budget_for(read_records(problems, "problem"))
    solutions = args.out / "sample" / "solutions.jsonl"

    results, seconds = {}, {}
    for mode in ("linear", "binary"):
        start = time.perf_counter()
        mc.run(mc.MCConfig(solutions=str(solutions), model=policy, prompt=PROMPT, k=args.k,
                           mode=mode, max_new_tokens=budget), args.out / mode, backend=backend)
        seconds[mode] = time.perf_counter() - start
        results[mode] = read_records(args.out / mode / "annotated.jsonl", "solution")

    linear, binary = results["linear"], results["binary"]
    assert [r["id"] for r in linear] == [r["id"] for r in binary]
    rollouts = {m: sum(r["mc"]["rollouts"] for r in results[m]) for m in results}
    same = sum(a["mc"]["first_error"] == b["mc"]["first_error"] for a, b in zip(linear, binary))
    wrong = [(a, b) for a, b in zip(linear, binary) if not a["final_answer_correct"]]
    same_wrong = sum(a["mc"]["first_error"] == b["mc"]["first_error"] for a, b in wrong)
    truth = [r["truth"]["label"] for r in linear]
    accuracy = {m: sum(r["mc"]["first_error"] == t for r, t in zip(results[m], truth)) /
                len(truth) for m in results}

    print(f"{len(linear)} toy solutions ({args.problems} held-out problems x {args.n}), "
          f"K={args.k}, completion model {args.policy}")
    print(f"{'':28}{'linear':>10}{'binary':>10}{'ratio':>10}")
    print(f"{'rollouts':28}{rollouts['linear']:>10}{rollouts['binary']:>10}"
          f"{rollouts['binary'] / rollouts['linear']:>10.1%}")
    print(f"{'rollouts a solution':28}{rollouts['linear'] / len(linear):>10.1f}"
          f"{rollouts['binary'] / len(binary):>10.1f}")
    generated = {m: sum(r["mc"]["generated"] for r in results[m]) for m in results}
    print(f"{'generated (shared once)':28}{generated['linear']:>10}{generated['binary']:>10}"
          f"{generated['binary'] / generated['linear']:>10.1%}")
    print(f"{'seconds (cached if rerun)':28}{seconds['linear']:>10.1f}{seconds['binary']:>10.1f}")
    print(f"{'first error = exact truth':28}{accuracy['linear']:>10.1%}{accuracy['binary']:>10.1%}")
    print(f"same first error in both modes: {same}/{len(linear)} = {same / len(linear):.1%} "
          f"(goal >= 95%); on wrong-answer solutions {same_wrong}/{len(wrong)}")
    print(f"binary rollouts / linear rollouts: {rollouts['binary'] / rollouts['linear']:.1%} "
          f"(goal <= 40%)")
    # where the modes differ, which one is right? (linear finds an earlier first error when a
    # prefix gets 0 of K and a longer prefix then succeeds: a non-monotone MC curve)
    differ = [(a["mc"]["first_error"], b["mc"]["first_error"], t)
              for a, b, t in zip(linear, binary, truth)
              if a["mc"]["first_error"] != b["mc"]["first_error"]]
    earlier = sum(0 <= la and (bi < 0 or la < bi) for la, bi, _ in differ)
    print(f"where they differ ({len(differ)}): linear's first error is earlier in {earlier}; "
          f"the exact truth agrees with binary in {sum(bi == t for _, bi, t in differ)}, with "
          f"linear in {sum(la == t for la, _, t in differ)}")


if __name__ == "__main__":
    main()
