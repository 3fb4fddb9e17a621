"""Grading throughput on real answers: pairs/s sequential vs a process pool, and cached.

Pairs: every ProcessBench solution's extracted final answer against the gold answer of its
problem (joined through GSM8K, MATH-500 and OlympiadBench), plus each MATH-500 reference answer
against its gold. Pairs are deduplicated, so the in-process cache only helps the third row.

    .venv/bin/python benchmarks/grading_throughput.py [--processes 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from prmkit import grading
from prmkit.formats import reader
from prmkit.grading import extract_answer, grade_many

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real_pairs() -> list[tuple[str | None, str]]:
    golds = {}
    sources = [("gsm8k", "gsm8k/test.jsonl"), ("gsm8k", "gsm8k/train.jsonl"),
               ("math", "math500/test.jsonl"), ("math", "qwen25math_eval/olympiadbench.jsonl")]
    for fmt, path in sources:
        for p in reader(fmt)[0](DATA / path):
            golds[" ".join(p["problem"].split())] = p["answer"]
    pairs = []
    for r in reader("processbench")[0](DATA / "processbench"):
        gold = golds.get(" ".join(r["problem"].split()))
        if gold is not None:
            pairs.append((extract_answer("\n\n".join(r["steps"])), gold))
    for p in reader("math")[0](DATA / "math500/test.jsonl"):
        pairs.append((extract_answer(p["solution"]), p["answer"]))
    return list(dict.fromkeys(pairs))


def timed(pairs, processes: int) -> float:
    start = time.perf_counter()
    grade_many(pairs, processes=processes)
    return len(pairs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    pairs = real_pairs()
    grading._grade_answer_cached.cache_clear()
    sequential = timed(pairs, 1)
    grading._grade_answer_cached.cache_clear()
    pooled = timed(pairs, args.processes)  # includes starting the workers
    grading._grade_answer_cached.cache_clear()
    timed(pairs, 1)  # fill this process's cache
    cached = timed(pairs, 1)
    print(f"{len(pairs)} distinct real (answer, gold) pairs")
    print(f"{'mode':32} {'pairs/s':>10} {'ratio':>7}")
    print(f"{'sequential, main thread':32} {sequential:10.0f} {1.0:7.2f}")
    print(f"{f'process pool ({args.processes} workers)':32} {pooled:10.0f} {pooled / sequential:7.2f}")
    print(f"{'sequential, cache warm':32} {cached:10.0f} {cached / sequential:7.2f}")


if __name__ == "__main__":
    main()
