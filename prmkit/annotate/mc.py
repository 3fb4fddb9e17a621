"""Monte Carlo estimation of step labels (``prmkit annotate mc``).

From every step prefix of a solution, K completions by a completion model (any generation
backend) continue the solution; each is graded against the gold answer with ``prmkit.grading``.
A step's *MC value* is the share of its K completions that reach the gold answer: the soft label.
Its hard label is ``value > threshold`` (``prmkit.labels``' one threshold rule; default 0,
the paper's recommendation: a step is good if any completion from it succeeds). The prefix that
ends with the last step is the solution itself, so its value is the solution's own grade and
costs no rollouts.

Modes:
    linear   every prefix is estimated; the first error is the first step whose hard label is 0.
    binary   a binary search for the first prefix from which no completion succeeds, as OmegaPRM
             does, assuming that once a prefix fails every longer one does too: a solution with
             a correct final answer has no first error and costs nothing; otherwise about
             K * log2(steps) rollouts. Steps before the first error are positive, it is negative,
             later steps are unknown (null).

Each record gains a field (``mc`` unless ``--name`` says otherwise)::

    {"mode", "k", "threshold",
     "values": [float | null],     the MC value of each step (null: not estimated)
     "correct": [int | null],      completions that reached the gold answer, of k
     "hard": [1 | 0 | null],       the hard label of each step
     "first_error": int,           the first step with hard label 0, -1 when none
     "train_mask": [bool],         false after the first error: such steps are left out of
                                   PRM training by default, as in the paper
     "rollouts": int,              K for every prefix estimated: what the labels cost
     "generated": int,             completions actually sampled for it: a prefix that several
                                   solutions of a shard share is rolled out once, by the first
     "outcomes": {"correct", "incorrect", "unparseable", "length"},
     "rollout_log"?: [[{"text", "answer", "outcome"}] | null]}   with --keep-rollouts

A rollout that cannot be graded is ``unparseable`` and one cut off by the token limit without
an answer is ``length``: both count as not reaching the gold answer, and both are counted.
Completions are seeded by their prompt text and index, so a prefix gets the same rollouts in
either mode, on any shard and any executor.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from prmkit import config
from prmkit.annotate.inputs import (
    Annotation,
    accuracy_vs_truth,
    drop_unreadable_gold,
    skip_mark,
    skipped_summary,
    strip_private,
)
from prmkit.backends import (
    BackendConfig,
    BackendWorkerFactory,
    SamplingParams,
    stage_backend,
)
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.grading import extract_answer, grade, grade_many
from prmkit.labels import first_error, labels_from_first_error, positive
from prmkit.prompting import render
from prmkit.runner import ShardedStage, executor_options, stage_config
from prmkit.steps import STEP_SEPARATOR, join_steps

MODES = ("linear", "binary")
OUTCOMES = ("correct", "incorrect", "unparseable", "length")


@dataclass(frozen=True)
class MCConfig:
    solutions: str = setting(REQUIRED, "Solutions JSONL (e.g. prmkit sample's).",
                             positional=True)
    model: str = setting(REQUIRED, "The completion model: a model folder (hf), or the served "
                         "model name (openai); normally the policy that wrote the solutions.")
    prompt: str = setting(REQUIRED, "The prompt the solutions were sampled with: plain, "
                          "qwen-math or a .txt template.")
    k: int = setting(8, "Completions from each step prefix.", ge=1)
    mode: str = setting("linear", "linear (every prefix) or binary (search for the first "
                        "error).", choices=MODES)
    threshold: float = setting(0.0, "Hard label: a step is positive when its MC value is above "
                               "this.", ge=0, lt=1)
    temperature: float = setting(1.0, "Sampling temperature of the rollouts.", ge=0)
    top_p: float = setting(1.0, "Nucleus sampling mass of the rollouts.", gt=0, le=1)
    max_new_tokens: int = setting(1024, "Tokens a rollout at most.", ge=1)
    seed: int = setting(0, "Seed; each rollout's is derived from it and its prompt.")
    name: str = setting("mc", "Field the labels go in.")
    keep_rollouts: bool = setting(False, "Keep every rollout's text and outcome.")
    shard_size: int = setting(32, "Solutions a resumable shard.", ge=1)

    def validate(self) -> "MCConfig":
        config.check_values(self)
        if not self.name.isidentifier():
            raise InputError(f"{self.name!r}: must be a plain field name", field="name")
        return self


def rollout_outcome(grade, completion) -> str:
    if grade.correct:
        return "correct"
    if grade.outcome.value == "unparseable":
        return "length" if completion.finish_reason == "length" else "unparseable"
    return "incorrect"


class MCWorker:
    """Estimates the steps of a shard of solutions with one backend."""

    def __init__(self, cfg: MCConfig, backend):
        self.cfg, self.backend = cfg, backend
        self.params = SamplingParams(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
                                     max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)

    def __call__(self, solutions: list[dict], index: int) -> list[dict]:
        too_long = self._too_long(solutions)
        states = [_State(s, self.cfg) for s in solutions if s["id"] not in too_long]
        if self.cfg.mode == "linear":
            self._estimate([(st, i) for st in states for i in range(st.n - 1)])
        else:
            while todo := [(st, st.probe) for st in states if st.probe is not None]:
                self._estimate(todo)
        done = {st.solution["id"]: {**strip_private(st.solution), self.cfg.name: st.result()}
                for st in states}
        return [done.get(s["id"]) or skip_mark(s, "too-long") for s in solutions]

    def _too_long(self, solutions: list[dict]) -> set[str]:
        """Ids of the solutions whose longest rollout prompt (every step but the last) leaves
        the policy no room to generate, where the backend can tell (a local model)."""
        fits = getattr(self.backend, "fits", None)
        longest = [s for s in solutions if len(s["steps"]) > 1]
        if fits is None or not longest:
            return set()
        prompts = [render(self.cfg.prompt, s["problem"], self.backend.tokenizer,
                          partial=join_steps(s["steps"][:-1]) + STEP_SEPARATOR) for s in longest]
        return {s["id"] for s, ok in zip(longest, fits(prompts)) if not ok}

    def _estimate(self, jobs: list[tuple["_State", int]]) -> None:
        """Roll out K completions from each (solution, step) prefix, in one backend call."""
        if not jobs:  # a shard of one-step solutions: each is its own last prefix
            return
        # the rollout continues the policy's own answer: the prompt, then the steps so far
        prompts = [render(self.cfg.prompt, st.solution["problem"], self.backend.tokenizer,
                          partial=join_steps(st.solution["steps"][:i + 1]) + STEP_SEPARATOR)
                   for st, i in jobs]
        # samples of one problem often share their first steps; a prefix is rolled out once
        # (its completions are seeded by its text, so every copy would get the same ones)
        first = {}
        for (st, _), prompt in zip(jobs, prompts):
            first.setdefault(prompt, st)
        unique = list(first)
        outputs = dict(zip(unique, self.backend.generate(unique, self.params)))
        golds = {prompt: st.solution["gold_answer"] for (st, _), prompt in zip(jobs, prompts)}
        grades = iter(grade_many([(extract_answer(c.text), golds[p])
                                  for p in unique for c in outputs[p]]))
        graded = {p: [(c, next(grades)) for c in outputs[p]] for p in unique}
        for (st, i), prompt in zip(jobs, prompts):
            st.record(i, graded[prompt], generated=first[prompt] is st)


class _State:
    """One solution's estimates so far (and, in binary mode, its search interval)."""

    def __init__(self, solution: dict, cfg: MCConfig):
        self.solution, self.cfg = solution, cfg
        self.n = len(solution["steps"])
        self.correct: list[int | None] = [None] * self.n
        self.values: list[float | None] = [None] * self.n
        self.values[-1] = 1.0 if _final_correct(solution) else 0.0  # the solution itself
        self.outcomes: Counter = Counter({o: 0 for o in OUTCOMES})
        self.log: list[list[dict] | None] = [None] * self.n
        self.rollouts = self.generated = 0
        # binary search: the first error lies in [lo, hi]; hi is known to fail
        self.lo, self.hi = 0, self.n - 1
        self.solved = self.positive(self.n - 1)  # a correct answer: no error to find

    def positive(self, i: int) -> bool:
        return positive(self.values[i], self.cfg.threshold)

    @property
    def probe(self) -> int | None:
        if self.cfg.mode != "binary" or self.solved or self.lo >= self.hi:
            return None
        return (self.lo + self.hi) // 2

    def record(self, i: int, graded: list, generated: bool = True) -> None:
        outcomes = [rollout_outcome(g, c) for c, g in graded]
        self.correct[i] = outcomes.count("correct")
        self.values[i] = self.correct[i] / len(graded)
        self.outcomes.update(outcomes)
        self.rollouts += len(graded)
        self.generated += len(graded) if generated else 0
        if self.cfg.keep_rollouts:
            self.log[i] = [{"text": c.text, "answer": g.answer, "outcome": o}
                           for (c, g), o in zip(graded, outcomes)]
        if self.cfg.mode == "binary":
            if self.positive(i):
                self.lo = i + 1
            else:
                self.hi = i

    def result(self) -> dict:
        if self.cfg.mode == "linear":
            hard = [int(self.positive(i)) for i in range(self.n)]
            first = first_error(hard)
        else:  # binary: steps after the first error were never estimated
            first = -1 if self.solved else self.lo
            hard = labels_from_first_error(first, self.n)[:first + 1 if first >= 0 else None]
            hard += [None] * (self.n - len(hard))
        out = {"mode": self.cfg.mode, "k": self.cfg.k, "threshold": self.cfg.threshold,
               "values": self.values, "correct": self.correct, "hard": hard,
               "first_error": first,
               "train_mask": [first < 0 or i <= first for i in range(self.n)],
               "rollouts": self.rollouts, "generated": self.generated,
               "outcomes": dict(self.outcomes)}
        if self.cfg.keep_rollouts:
            out["rollout_log"] = self.log
        return out


def _final_correct(solution: dict) -> bool:
    if "final_answer_correct" in solution:
        return bool(solution["final_answer_correct"])
    return grade(join_steps(solution["steps"]), solution["gold_answer"]).correct


def summarize(records: list[dict], skipped: list[dict], name: str = "mc") -> dict:
    marks = [r[name] for r in records]
    outcomes = Counter()
    for m in marks:
        outcomes.update(m["outcomes"])
    rollouts = sum(m["rollouts"] for m in marks)
    metrics = {
        "n_solutions": len(records), "skipped": skipped_summary(skipped),
        "rollouts": rollouts,
        "rollouts_per_solution": rollouts / len(records) if records else None,
        "rollouts_generated": sum(m["generated"] for m in marks),
        "rollout_outcomes": dict(outcomes),
        "first_error": dict(sorted(Counter(m["first_error"] for m in marks).items())),
    }
    accuracy = accuracy_vs_truth([m["first_error"] for m in marks], records)
    if accuracy is not None:
        metrics["first_error_accuracy_vs_truth"] = accuracy
    return metrics


def run(cfg: MCConfig, out: str | Path, *, backend: BackendConfig | None = None,
        force: bool = False, progress: bool = True) -> dict:
    """Annotate ``cfg.solutions`` into ``out`` (resuming an interrupted run); returns metrics."""
    cfg.validate()
    backend = stage_backend(backend, cfg.model, cfg.prompt)
    files = Annotation(cfg.solutions, prepare=drop_unreadable_gold,
                       summarize=lambda records, skipped: summarize(records, skipped, cfg.name))
    return ShardedStage(
        config=stage_config("annotate-mc", cfg, backend=backend.output_relevant()),
        inputs=files.inputs, read=files.read, factory=BackendWorkerFactory(MCWorker, cfg, backend),
        finish=files.finish, shard_size=cfg.shard_size, executor=executor_options(backend),
        label=f"MC ({cfg.mode}, K={cfg.k})",
    ).run(out, force=force, progress=progress)
