"""Grading time on pathological outputs: does it grow linearly with the text, and stay bounded?

A policy that loops writes outputs of 100k to 1M characters: unclosed ``\\boxed{`` over and over,
unclosed math delimiters, thousands of "The answer is", a million braces, a boxed answer of
600k characters. For each shape, the time to grade a 100k-character and a 1M-character output
side by side, and their ratio (10 is linear; the quadratic extraction this replaced took 75 s
on one 140k-character output).

    .venv/bin/python benchmarks/grading_pathological.py
"""

from __future__ import annotations

import time

from prmkit.grading import grade

SHAPES = {
    "unclosed \\boxed{": lambda n: ("\\boxed{" * n)[:n],
    "unclosed \\(": lambda n: ("\\( x " * n)[:n],
    "dollar signs": lambda n: "$" * n,
    "'The answer is' repeated": lambda n: ("The answer is " * n)[:n],
    "numbers": lambda n: ("12, " * n)[:n],
    "open braces, then an answer": lambda n: "{" * n + "\\boxed{7}",
    "a huge boxed answer": lambda n: "\\boxed{" + ("1+" * n)[:n] + "1}",
    "ordinary text, answer at the end": lambda n: ("We add 3 and 4 to get 7. " * n)[:n]
    + " The answer is \\boxed{7}.",
}


def seconds(text: str) -> tuple[float, str]:
    began = time.perf_counter()
    result = grade(text, "7")
    return time.perf_counter() - began, f"{result.outcome.value} {result.reason}".strip()


def main() -> None:
    print(f"{'shape':34} {'100k chars':>11} {'1M chars':>10} {'ratio':>6}  outcome at 1M")
    worst = 0.0
    for name, make in SHAPES.items():
        small, _ = seconds(make(100_000))
        large, outcome = seconds(make(1_000_000))
        worst = max(worst, large)
        print(f"{name:34} {small:10.3f}s {large:9.3f}s {large / max(small, 1e-4):6.1f}  {outcome}")
    print(f"slowest 1M-character output: {worst:.2f} s (bound: 5 s)")


if __name__ == "__main__":
    main()
