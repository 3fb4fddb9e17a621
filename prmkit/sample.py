"""The sampling stage: problems in, N graded step-by-step solutions a problem out.

``prmkit sample problems.jsonl --model PATH --prompt qwen-math --out runs/sample`` writes
``solutions.jsonl`` (the ``solution`` record of ``prmkit.records``)::

    {"id": "<problem id>-<j>", "problem_id", "problem", "steps": [...], "sample_index": j,
     "gold_answer", "final_answer", "outcome": "correct|incorrect|unparseable", "reason",
     "final_answer_correct", "finish_reason": "stop|length", "num_tokens", "generator"}

Steps are the completion split on blank lines (``prmkit.steps``). An answer we cannot read is
``unparseable`` with its reason, never ``incorrect``. Where a world knows the truth of every
step, ``truth`` names a hook (``module:function``, called with the problem and the steps) whose
result each record keeps under ``truth``: every later stage measures itself against it.

Problems run in shards through ``prmkit.runner``: an interrupted run resumes where it stopped,
and since every completion has its own seed, the output does not depend on batch size or worker
count.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from prmkit import config, plugins
from prmkit.backends import (
    BackendConfig,
    BackendWorkerFactory,
    SamplingParams,
    stage_backend,
)
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.formats import read_as
from prmkit.grading import extract_answer, grade_many
from prmkit.prompting import render
from prmkit.records import write_jsonl
from prmkit.runner import ShardedStage, executor_options, stage_config
from prmkit.steps import split_steps


@dataclass(frozen=True)
class SampleConfig:
    problems: str = setting(REQUIRED, "Problems file (prmkit JSONL, or another --format).",
                            positional=True)
    model: str = setting(REQUIRED, "The policy: a model folder (hf), or the served model name "
                         "(openai).")
    prompt: str = setting(REQUIRED, "How a problem becomes the prompt: plain (the problem and "
                          "a blank line), qwen-math (chat template, Qwen2.5-Math system "
                          "prompt) or a .txt template with {problem}.")
    format: str = setting("prmkit", "Format of the problems file: prmkit, gsm8k, math (see "
                          "`prmkit formats`).")
    n: int = setting(8, "Solutions a problem.", ge=1)
    temperature: float = setting(1.0, "Sampling temperature (0: greedy).", ge=0)
    top_p: float = setting(1.0, "Nucleus sampling mass.", gt=0, le=1)
    max_new_tokens: int = setting(1024, "Tokens a solution at most (capped by the context).",
                                  ge=1)
    seed: int = setting(0, "Seed; every completion has its own, derived from it.")
    truth: str | None = setting(None, "A step-truth hook module:function(problem, steps) -> "
                                "dict, for worlds that know every step's truth.")
    shard_size: int = setting(64, "Problems a resumable shard.", ge=1)

    def validate(self) -> "SampleConfig":
        config.check_values(self)
        if self.truth is not None:
            truth_hook(self.truth)
        return self


def truth_hook(spec: str) -> Callable[[dict, list[str]], dict]:
    """The function a ``module:function`` string names."""
    module, sep, name = spec.partition(":")
    try:
        hook = getattr(importlib.import_module(module), name) if sep else None
    except (ImportError, AttributeError):
        hook = None
    if not callable(hook):
        raise InputError(f"{spec!r}: expected module:function naming a function", field="truth")
    return hook


def solution_record(problem: dict, j: int, completion, generator: str, grade,
                    truth: Callable | None = None) -> dict:
    steps = split_steps(completion.text) or [completion.text]
    record = {
        "id": f"{problem['id']}-{j}", "problem_id": problem["id"], "problem": problem["problem"],
        "steps": steps, "sample_index": j, "gold_answer": problem.get("answer"),
        "final_answer": grade.answer, "outcome": grade.outcome.value, "reason": grade.reason,
        "final_answer_correct": grade.correct, "finish_reason": completion.finish_reason,
        "num_tokens": completion.num_tokens, "generator": generator,
    }
    if truth is not None:
        record["truth"] = truth(problem, steps)
    return record


def sample_solutions(backend, problems: list[dict], cfg: SampleConfig, *,
                     processes: int = 1) -> list[dict]:
    """N solutions for each problem, graded, in problem order."""
    prompts = [render(cfg.prompt, p["problem"], backend.tokenizer) for p in problems]
    params = SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    outputs = backend.generate(prompts, params)
    grades = grade_many([(extract_answer(c.text), p.get("answer"))
                         for p, out in zip(problems, outputs) for c in out], processes=processes)
    grades = iter(grades)
    hook = truth_hook(cfg.truth) if cfg.truth else None
    return [solution_record(p, j, c, cfg.model, next(grades), hook)
            for p, out in zip(problems, outputs) for j, c in enumerate(out)]


class SampleWorker:
    """Samples shards of problems with one backend (its own: ``BackendWorkerFactory``)."""

    def __init__(self, cfg: SampleConfig, backend):
        self.cfg, self.backend = cfg, backend

    def __call__(self, problems: list[dict], index: int) -> list[dict]:
        return sample_solutions(self.backend, problems, self.cfg)


def summarize(records: list[dict]) -> dict:
    n = len(records)
    outcomes = Counter(r["outcome"] for r in records)
    metrics = {
        "n_problems": len({r["problem_id"] for r in records}), "n_solutions": n,
        "accuracy": outcomes["correct"] / n if n else None,
        "outcomes": dict(outcomes),
        "unparseable_reasons": dict(Counter(r["reason"] for r in records
                                            if r["outcome"] == "unparseable")),
        "finish_reasons": dict(Counter(r["finish_reason"] for r in records)),
        "mean_steps": sum(len(r["steps"]) for r in records) / n if n else None,
    }
    known = [r for r in records if "truth" in r]
    if known:
        metrics["truth"] = {
            "process_correct": sum(r["truth"]["label"] == -1 and r["final_answer_correct"]
                                   for r in known) / len(known),
            "correct_answer_flawed_process": sum(
                r["truth"]["label"] >= 0 and r["truth"]["answer_correct"] for r in known)
            / len(known),
        }
    return metrics


def read_problems(cfg: SampleConfig) -> list[dict]:
    problems = read_as(cfg.problems, cfg.format, "problem")
    if not problems:  # nothing to sample is a mistake, never an empty finished folder
        raise InputError("no problems in this file", path=cfg.problems, field="problems")
    return problems


def run(cfg: SampleConfig, out: str | Path, *, backend: BackendConfig | None = None,
        force: bool = False, progress: bool = True) -> dict:
    """Sample into ``out`` (resuming an interrupted run); returns the metrics. Problems of a
    registered source that knows the truth of every step (``toy:...``) get its truth hook
    unless ``truth`` names another."""
    cfg.validate()
    registered = plugins.source_of(cfg.problems)
    if cfg.truth is None and registered and getattr(registered[0], "truth", None):
        cfg = replace(cfg, truth=registered[0].truth)
    backend = stage_backend(backend, cfg.model, cfg.prompt)

    def finish(folder: Path, records: list[dict]) -> dict:
        write_jsonl(folder / "solutions.jsonl", records)
        return summarize(records)

    return ShardedStage(
        config=stage_config("sample", cfg, backend=backend.output_relevant()),
        inputs={"problems": cfg.problems}, read=lambda: read_problems(cfg),
        factory=BackendWorkerFactory(SampleWorker, cfg, backend), finish=finish,
        shard_size=cfg.shard_size, executor=executor_options(backend), label="sampling",
    ).run(out, force=force, progress=progress)
