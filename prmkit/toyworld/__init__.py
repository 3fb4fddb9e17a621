"""The toy world: arithmetic word problems whose every step's truth is known exactly.

    problems.py   seeded generator, difficulty presets, canonical solutions
    truth.py      the exact step-truth labeller (its docstring defines a wrong step)
    tokenizer.py  character tokenizer as a PreTrainedTokenizerFast
    model.py      tiny Qwen2 causal LMs built from config
    policy.py     training the tiny policy on the CPU (cached, resumable) and its evaluation
    stats.py      how often the paper's phenomena occur (``prmkit toy stats``)
    bench.py      a toy ProcessBench labelled by the exact truth (``prmkit toy bench``)
    plugin.py     what prmkit finds by name: the problem source ``toy:...`` and the policy
                  ``toy`` (entry points in pyproject.toml), so the pipeline never imports this
                  package
    cli.py        ``prmkit toy ...``, mounted through the ``prmkit.commands`` entry point
"""
