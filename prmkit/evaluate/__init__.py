"""Evaluation of PRMs: a registry of benchmarks, each with a Python API that mirrors
``prmkit eval``.

    from prmkit.evaluate import bon, processbench
    metrics = processbench.metrics("data/processbench", step_scores="scores.jsonl")
    metrics = bon.metrics({"gsm8k": "gsm8k_candidates.jsonl"}, fmt="qwen_eval")

Inputs may be paths or records already in memory; results are plain dicts (what the CLI writes
to ``metrics.json``).

A benchmark is one module, registered here by name (``BENCHMARKS``, or the
``prmkit.benchmarks`` entry point of another package), holding a ``BENCHMARK``
(``prmkit.evaluate.benchmark.Benchmark``): its command (``prmkit eval NAME``), its recipe
section (``evaluate: {NAME: ...}``), its metric and its report tables. The command line, the
pipeline and the report find it by name; adding a benchmark touches its module and one line
below. The registry holds ``"module:attribute"`` strings: a benchmark's module is imported
when it is asked for by name (the ``eval`` commands ask for all of them; none imports torch).

    ranking.py      within-problem AUC: does a PRM order the solutions of one problem?
    diagnostics.py  the paper's bias diagnostic: labels and PRMs that blame the final step
"""

from __future__ import annotations

import difflib
import importlib

from prmkit import plugins
from prmkit.errors import InputError
from prmkit.evaluate.benchmark import Benchmark

# name -> "module:attribute" of its Benchmark; a recipe's evaluations run in this order (a
# ProcessBench built from the step truth reads the Best-of-N candidates)
BENCHMARKS = {
    "bon": "prmkit.evaluate.bon:BENCHMARK",
    "processbench": "prmkit.evaluate.processbench:BENCHMARK",
}

__all__ = ["BENCHMARKS", "Benchmark", "benchmark", "names"]


def names() -> list[str]:
    """Every benchmark, the built-in ones first (in their order), then registered ones."""
    return list(BENCHMARKS) + [n for n in plugins.names(plugins.BENCHMARKS)
                               if n not in BENCHMARKS]


def benchmark(name: str) -> Benchmark:
    """The benchmark registered under ``name``; a miss says which are known."""
    if name in BENCHMARKS:
        module, attribute = BENCHMARKS[name].split(":")
        return getattr(importlib.import_module(module), attribute)
    found = plugins.find(plugins.BENCHMARKS, name)
    if found is None:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown benchmark {name!r}{hint} (known: {', '.join(names())})",
                         field="evaluate")
    return found
