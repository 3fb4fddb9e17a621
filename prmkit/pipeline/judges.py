"""The run's label judge evaluated on its own (``judge_eval:`` in a recipe), as the paper
evaluates LLM-as-a-judge beside its PRMs:

    processbench  the judge as a ProcessBench critic (the paper's Table 7 rows): ProcessBench's
                  critique prompt, its sampling settings and its official vote, on the run's
                  ProcessBench items (``prmkit eval processbench --critic``)
    bon           the judge picking among the run's Best-of-N candidates itself, pointwise or
                  pairwise (the paper's Tables 11-12; ``prmkit eval judge-bon``); pointwise
                  critiques with the judge's own prompt

Each is a resumable stage under ``judge-eval/``; what it measured goes into the results and
the report's "The judge on its own" tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prmkit import config, rundir
from prmkit.annotate import judge as label_judge
from prmkit.backends import BackendConfig
from prmkit.config import setting
from prmkit.errors import InputError
from prmkit.evaluate import judge_bon
from prmkit.evaluate.bon import BestOfNSection
from prmkit.evaluate.critic import PRESETS
from prmkit.evaluate.processbench import ProcessBenchConfig, run_critic
from prmkit.records import write_jsonl


@dataclass(frozen=True)
class JudgeEvalSection:
    processbench: bool = setting(False, "The label judge as a ProcessBench critic on the run's "
                                 "items (ProcessBench's prompt, sampling and vote).")
    critic_settings: str = setting("processbench", "Its sampling: processbench (8 critiques, "
                                   "T=1.0, top-p 0.9) or qwen-math (T=0.7, top-p 0.8, "
                                   "top-k 20).", choices=tuple(PRESETS))
    samples: int | None = setting(None, "Critiques an item (default: the settings', 8).", ge=1)
    max_new_tokens: int | None = setting(None, "Tokens a critique at most (default 8192).",
                                         ge=1)
    bon: list[str] = setting([], "The label judge picking among the run's Best-of-N "
                             "candidates itself: pointwise, pairwise or both.")

    def validate(self) -> "JudgeEvalSection":
        for mode in self.bon:
            if mode not in judge_bon.MODES:
                raise InputError(f"{mode!r}: choose among {list(judge_bon.MODES)}",
                                 field="bon")
        return self


def check(recipe: dict, path) -> None:
    """What the judge's evaluation needs: a model judge, and the benchmarks it reads."""
    spec = recipe["judge_eval"]
    if not (spec["processbench"] or spec["bon"]):
        return
    if (recipe["labels"].get("judge") or {}).get("kind") != "model":
        raise InputError("evaluates the label judge: needs labels.judge with kind: model",
                         path=path, field="judge_eval")
    for wanted, benchmark in ((spec["processbench"], "processbench"), (spec["bon"], "bon")):
        if wanted and benchmark not in recipe["evaluate"]:
            raise InputError(f"needs evaluate.{benchmark}, whose items the judge reads",
                             path=path, field=f"judge_eval.{benchmark}")


def evaluate_judge(run) -> dict | None:
    """The label judge's metrics: ``{"processbench": critic metrics, "bon": {mode: Best-of-N
    metrics}}``; None when the recipe asks for neither."""
    spec, recipe = run.recipe["judge_eval"], run.recipe
    if not (spec["processbench"] or spec["bon"]):
        return None
    judge = recipe["labels"]["judge"]
    backend = config.build(BackendConfig, judge.get("backend") or {})
    root = run.out / "judge-eval"
    out: dict = {"model": judge["model"]}
    if spec["processbench"]:
        benchmark = _processbench_items(run.groups["processbench"]["items"],
                                        root / "processbench-items")
        given = {"benchmark": str(benchmark), "critic": judge["model"],
                 "critic_settings": spec["critic_settings"]}
        given.update({k: spec[k] for k in ("samples", "max_new_tokens") if spec[k]})
        cfg = config.load(ProcessBenchConfig, given=given)
        folder = root / "critic"
        out["processbench"] = run.stages("judge as a ProcessBench critic", folder,
                                         lambda force: run_critic(cfg, folder, force=force,
                                                                  backend=backend,
                                                                  progress=run.progress))
    if spec["bon"]:
        files = _candidate_files(run.groups["bon"], root / "bon-candidates")
        # the label judge's own settings, its stage's defaults where the recipe gives none
        labeller = config.load(label_judge.JudgeConfig, given={
            **{k: v for k, v in judge.items() if k != "backend" and v is not None},
            "solutions": "-"})
        bon = config.build(BestOfNSection, recipe["evaluate"]["bon"])
        out["bon"] = {}
        for mode in spec["bon"]:
            # the PRMs' N values and grouping, so that the tables read alike (a tournament
            # measures the powers of two among them)
            ns = bon.ns if mode == "pointwise" or not bon.ns else \
                [n for n in bon.ns if not n & (n - 1)] or None
            cfg = judge_bon.JudgeBonConfig(
                candidates=[str(f) for f in files], judge=judge["model"], mode=mode,
                judge_prompt=labeller.judge_prompt if mode == "pointwise" else None,
                critique_format=labeller.critique_format if mode == "pointwise" else None,
                samples=labeller.samples, temperature=labeller.temperature,
                top_p=labeller.top_p, max_new_tokens=labeller.max_new_tokens,
                seed=labeller.seed, chat=labeller.chat, n=ns, group_by=bon.group_by)
            folder = root / f"bon-{mode}"
            out["bon"][mode] = run.stages(
                f"judge picks Best-of-N ({mode})", folder,
                lambda force, cfg=cfg, folder=folder: judge_bon.run(
                    cfg, folder, force=force, backend=backend, progress=run.progress))
    return out


def _processbench_items(items: list[dict], folder: Path) -> Path:
    """The run's ProcessBench items as a folder of subset files (what a critic reads)."""
    by_subset: dict[str, list[dict]] = {}
    for item in items:
        by_subset.setdefault(item.get("subset", "all"), []).append(item)
    for subset, rows in by_subset.items():
        write_jsonl(folder / f"{subset}.jsonl", rows)
    return folder


def _candidate_files(groups: dict[str, list[dict]], folder: Path) -> list[Path]:
    """The run's Best-of-N candidates as candidate-set files, one a set, graded as sampled."""
    files = []
    for name, solutions in groups.items():
        sets: dict[str, dict] = {}
        for s in solutions:
            entry = sets.setdefault(s["problem_id"], {
                "id": s["problem_id"], "problem": s["problem"],
                "gold_answer": s["gold_answer"], "candidates": []})
            entry["candidates"].append({"answer": s["final_answer"], "steps": s["steps"],
                                        "correct": s["final_answer_correct"]})
        files.append(write_jsonl(folder / f"{rundir.slug(name)}.jsonl", list(sets.values())))
    return files
