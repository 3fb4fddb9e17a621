"""Step-label synthesis: Monte Carlo estimation, judges and their consensus.

    prmkit annotate mc         solutions -> per-step MC values, hard and soft labels (mc.py)
    prmkit annotate judge      solutions -> the earliest wrong step, by a model or a rule (judge.py)
    prmkit annotate consensus  keep solutions where label sources agree (consensus.py)
    prmkit annotate report     label quality against the exact truth of the toy world (quality.py)

Every stage reads a solutions JSONL (``prmkit sample``'s output, or any file of solution
records), adds its own field to each record and writes ``annotated.jsonl``, so stages chain: the
judge can run on MC's output and consensus then finds both fields in one file. The MC and judge
stages run in resumable shards (``prmkit.runner``) on the local or the Ray executor.
"""
