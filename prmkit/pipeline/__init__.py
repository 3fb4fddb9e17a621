"""``prmkit run RECIPE`` and ``prmkit demo``: the paper's pipeline in one resumable run folder,
one code path for real models and the toy world alike.

    problems.jsonl   the training problems (the first ``problems.limit`` of a file, a hub
                     data set, or a registered source such as ``toy:mixed:prm-train:100``)
    sample/          N solutions a problem, graded                 (prmkit sample)
    mc/, judge/,     the label stages of ``labels:``, in order     (prmkit annotate ...)
    consensus/
    prm-<name>/      one PRM a label source, and the untrained baseline   (prmkit train)
    bon-<set>/       each Best-of-N set: its problems and the policy's candidates
    processbench/    the ProcessBench items (a file's, or built from the step truth)
    scores/          every PRM's step scores of every solution the benchmarks and the step
                     viewer use, each solution once                 (prmkit score)
    results.json, report.md, report.html, plots/, timings.json

Every stage is a prmkit command's own resumable stage, marked complete last and skipped when
its inputs and settings are unchanged: a second run, or one after a kill, redoes only what is
missing. The toy world plugs in by name like any user's source (``prmkit.plugins``): its
problems carry their step truth, and the report then measures the labels against it.

    recipe.py       the one recipe schema, loaded and checked whole before any work
    run.py          the chain, top to bottom, and ``Run``: what the stages share
    labels.py       the label stages (a registry: mc, judge, consensus)
    prms.py         one PRM a label source, and the baseline
    evaluation.py   the benchmarks of the registry, every solution scored once
    stages.py       timings and reuse
"""

from prmkit.pipeline.recipe import load, shipped
from prmkit.pipeline.run import run

__all__ = ["load", "run", "shipped"]
