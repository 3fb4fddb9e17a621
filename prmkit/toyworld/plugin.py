"""The toy world as prmkit sees it: a problem source and a policy, registered in
``pyproject.toml`` (entry points ``prmkit.sources`` and ``prmkit.policies``, both ``toy``).

    toy:PRESET:SPLIT:COUNT[:SEED]   COUNT problems of a preset's split (seed 0 by default):
                                    ``toy:mixed:test:100``; each carries its spec, so the
                                    source's truth hook labels every step of a solution exactly
    toy, toy@step-400, toy:steps=40 the default toy policy (trained once, cached), a snapshot
    toy:seed=1                      of it, a shorter training run (quick runs), or the same
                                    run from another seed

Nothing outside ``prmkit/toyworld/`` imports this module: the pipeline finds it by name, as it
would find a user's own source or policy.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prmkit.errors import InputError
from prmkit.toyworld.policy import PolicyConfig, ensure_policy
from prmkit.toyworld.problems import budget_for, make_problems, preset
from prmkit.toyworld.truth import TRUTH_HOOK


class ToySource:
    """Toy problems by spec; their truth hook; the token budget of their solutions."""

    truth = TRUTH_HOOK

    def read(self, spec: str) -> list[dict]:
        parts = spec.split(":")
        if len(parts) not in (3, 4) or not all(parts):
            raise InputError("a toy source is toy:PRESET:SPLIT:COUNT[:SEED], e.g. "
                             "toy:mixed:test:100", path=f"toy:{spec}")
        name, split, count, seed = (*parts, "0")[:4]
        if not count.isdigit() or not seed.lstrip("-").isdigit():
            raise InputError("COUNT and SEED are integers", path=f"toy:{spec}")
        return make_problems(preset(name), int(count), seed=int(seed), split=split)

    def token_budget(self, problems: list[dict]) -> int:
        """Room for any one solution: one token a character, with slack."""
        return budget_for(problems)


SOURCE = ToySource()


def shorter(cfg: PolicyConfig, steps: int) -> PolicyConfig:
    """The policy config trained for ``steps`` only; snapshots past the end are dropped."""
    return replace(cfg, steps=steps, snapshots=tuple(s for s in cfg.snapshots if s < steps))


def resolve_policy(spec: str, *, progress: bool = True) -> Path:
    """``toy`` (the default policy), ``toy@step-400`` (its snapshot; ``toy@400`` too),
    ``toy:steps=40`` (a shorter run) or ``toy:seed=1`` (another seed; ``toy:steps=40,seed=1``
    both), trained on first use and cached."""
    name, _, snapshot = spec.partition("@")
    cfg = PolicyConfig()
    for option in filter(None, name.partition(":")[2].split(",")):
        key, _, value = option.partition("=")
        if key not in ("steps", "seed") or not value.isdigit():
            raise InputError(f"{option!r}: a toy policy takes steps=N and seed=N",
                             field="policy")
        cfg = shorter(cfg, int(value)) if key == "steps" else replace(cfg, seed=int(value))
    final = ensure_policy(cfg, progress=progress, evaluate_after=False)
    if not snapshot:
        return final
    if snapshot.removeprefix("step-").isdigit():  # toy@step-400 and toy@400: step-000400
        snapshot = f"step-{int(snapshot.removeprefix('step-')):06d}"
    folder = final.parent / snapshot
    if not folder.is_dir():
        known = sorted(p.name for p in final.parent.glob("step-*"))
        raise InputError(f"no snapshot {snapshot!r}; have {known}", field="policy")
    return folder
