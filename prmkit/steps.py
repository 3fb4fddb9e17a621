"""The step contract, text side: how a solution text becomes steps and back.

Steps are paragraphs: a policy's completion is split on blank lines ("\\n\\n"), as ProcessBench and
the Qwen PRM papers do; blank paragraphs are dropped. A step keeps its spaces (only stray
newlines at its ends go): Monte Carlo rollouts continue from ``join_steps(steps[:k])``, and that
must be the exact text the policy wrote, not a tidied one it never saw. Training and scoring
build their token layouts from these same steps.
"""

from __future__ import annotations

STEP_SEPARATOR = "\n\n"


def split_steps(text: str) -> list[str]:
    return [s.strip("\n") for s in text.split(STEP_SEPARATOR) if s.strip()]


def join_steps(steps: list[str]) -> str:
    return STEP_SEPARATOR.join(steps)
