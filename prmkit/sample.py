"""The sampling stage: problems in, N graded step-by-step solutions a problem out.

``prmkit sample problems.jsonl --policy PATH --out runs/sample`` writes ``solutions.jsonl``:

    {"id": "<problem id>-<j>", "problem_id", "problem", "steps": [...], "sample_index": j,
     "gold_answer", "final_answer", "outcome": "correct|incorrect|unparseable", "reason",
     "final_answer_correct", "finish_reason": "stop|length", "num_tokens", "generator"}

Steps are the completion split on blank lines (``prmkit.steps``). An answer we cannot read is
``unparseable`` with its reason, never ``incorrect``. Toy problems (with a ``toy`` spec) also get
their exact truth under ``truth`` (``prmkit.toyworld.truth``) and keep the spec, so every later
stage can measure itself against it.

Problems run in shards through ``prmkit.runner``: an interrupted run resumes where it stopped,
and since every completion has its own seed, the output does not depend on batch size or worker
count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from prmkit import rundir
from prmkit.records import write_json


@dataclass(frozen=True)
class SampleConfig:
    problems: str
    policy: str
    n: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 1024  # capped by the model's context
    seed: int = 0
    prompt: str = "toy"
    problems_format: str = "prmkit"
    shard_size: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


def read_problems(path: str | Path, fmt: str = "prmkit") -> list[dict]:
    from prmkit.errors import InputError
    from prmkit.records import read_records
    if fmt == "prmkit":
        return read_records(path, "problem")
    from prmkit.formats import reader
    read, kind = reader(fmt)
    if kind != "problem":
        raise InputError(f"format {fmt!r} gives {kind} records, not problems", field="format")
    return read(path)


def solution_record(problem: dict, j: int, completion, generator: str, grade) -> dict:
    from prmkit.steps import split_steps
    steps = split_steps(completion.text) or [completion.text]
    record = {
        "id": f"{problem['id']}-{j}", "problem_id": problem["id"], "problem": problem["problem"],
        "steps": steps, "sample_index": j, "gold_answer": problem.get("answer"),
        "final_answer": grade.answer, "outcome": grade.outcome.value, "reason": grade.reason,
        "final_answer_correct": grade.correct, "finish_reason": completion.finish_reason,
        "num_tokens": completion.num_tokens, "generator": generator,
    }
    if "toy" in problem:
        from prmkit.toyworld.problems import Spec
        from prmkit.toyworld.truth import judge
        truth = judge(Spec.from_dict(problem["toy"]), steps)
        record["toy"] = problem["toy"]
        record["truth"] = {"label": truth.label, "kinds": truth.kinds,
                           "step_labels": truth.step_labels,
                           "answer_correct": truth.answer_correct}
    return record


def sample_solutions(backend, problems: list[dict], cfg: SampleConfig, *,
                     processes: int = 1) -> list[dict]:
    """N solutions for each problem, graded, in problem order."""
    from prmkit.backends import SamplingParams
    from prmkit.grading import extract_answer, grade_many
    from prmkit.prompting import render
    prompts = [render(cfg.prompt, p["problem"], backend.tokenizer) for p in problems]
    params = SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    outputs = backend.generate(prompts, params)
    grades = grade_many([(extract_answer(c.text), p.get("answer"))
                         for p, out in zip(problems, outputs) for c in out], processes=processes)
    grades = iter(grades)
    return [solution_record(p, j, c, cfg.policy, next(grades))
            for p, out in zip(problems, outputs) for j, c in enumerate(out)]


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
    toy = [r for r in records if "truth" in r]
    if toy:
        metrics["toy"] = {
            "process_correct": sum(r["truth"]["label"] == -1 and r["final_answer_correct"]
                                   for r in toy) / len(toy),
            "correct_answer_flawed_process": sum(
                r["truth"]["label"] >= 0 and r["truth"]["answer_correct"] for r in toy) / len(toy),
        }
    return metrics


def run(cfg: SampleConfig, out: str | Path, *, backend_options: dict | None = None,
        force: bool = False, progress: bool = True) -> dict:
    """Sample into ``out`` (resuming an interrupted run); returns the metrics."""
    import json
    import shutil

    from prmkit.backends import load_backend
    from prmkit.runner import Shards, run_local
    out = Path(out)
    config = {"stage": "sample", **cfg.to_dict(),
              "problems_sha256": rundir.file_digest(cfg.problems)}
    if force:
        shutil.rmtree(out / "shards", ignore_errors=True)
    elif rundir.is_complete(out, config):
        return json.loads((out / "metrics.json").read_text())
    problems = read_problems(cfg.problems, cfg.problems_format)
    rundir.begin(out)
    shards = Shards(out, problems, cfg.shard_size, config)
    if shards.pending():
        with load_backend("hf", cfg.policy, **(backend_options or {})) as backend:
            run_local(shards, lambda items, _: sample_solutions(backend, items, cfg),
                      progress=progress, label="sampling")
    records = shards.merge(out / "solutions.jsonl")
    metrics = summarize(records)
    write_json(out / "metrics.json", metrics)
    rundir.finish(out, config)
    return metrics
