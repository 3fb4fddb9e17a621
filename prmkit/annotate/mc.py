"""Monte Carlo estimation of step labels (``prmkit annotate mc``).

From every step prefix of a solution, K completions by a completion model (any generation
backend) continue the solution; each is graded against the gold answer with ``prmkit.grading``.
A step's *MC value* is the share of its K completions that reach the gold answer: the soft label.
Its hard label is ``value > threshold`` (``prmkit.labels``' one threshold rule; default 0, the paper's recommendation: a step is good if
any completion from it succeeds). The prefix that ends with the last step is the solution
itself, so its value is the solution's own grade and costs no rollouts.

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
from dataclasses import asdict, dataclass
from pathlib import Path

from prmkit.labels import first_error, positive
from prmkit.steps import STEP_SEPARATOR, join_steps

MODES = ("linear", "binary")
OUTCOMES = ("correct", "incorrect", "unparseable", "length")


@dataclass(frozen=True)
class MCConfig:
    solutions: str
    model: str                     # the completion model (a folder, toy, toy@step-N)
    k: int = 8
    mode: str = "linear"
    threshold: float = 0.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None  # None: the toy layout's budget, else 1024
    seed: int = 0
    prompt: str = "toy"
    name: str = "mc"
    keep_rollouts: bool = False
    shard_size: int = 32

    def validate(self) -> "MCConfig":
        from prmkit.errors import InputError
        if self.mode not in MODES:
            raise InputError(f"{self.mode!r}: choose one of {list(MODES)}", field="mode")
        if not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"{self.k!r}: must be a positive integer", field="k")
        if not 0.0 <= self.threshold < 1.0:
            raise InputError(f"{self.threshold!r}: must be in [0, 1)", field="threshold")
        if not self.name.isidentifier():
            raise InputError(f"{self.name!r}: must be a plain field name", field="name")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


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
        from prmkit.backends import SamplingParams
        self.params = SamplingParams(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
                                     max_new_tokens=cfg.max_new_tokens or 1024, seed=cfg.seed)

    def __call__(self, solutions: list[dict], index: int) -> list[dict]:
        states = [_State(s, self.cfg) for s in solutions]
        if self.cfg.mode == "linear":
            self._estimate([(st, i) for st in states for i in range(st.n - 1)])
        else:
            while todo := [(st, st.probe) for st in states if st.probe is not None]:
                self._estimate(todo)
        from prmkit.annotate.inputs import strip_private
        return [{**strip_private(st.solution), self.cfg.name: st.result()} for st in states]

    def _estimate(self, jobs: list[tuple["_State", int]]) -> None:
        """Roll out K completions from each (solution, step) prefix, in one backend call."""
        from prmkit.grading import extract_answer, grade_many
        from prmkit.prompting import render
        prompts = [render(self.cfg.prompt, st.solution["problem"], self.backend.tokenizer) +
                   join_steps(st.solution["steps"][:i + 1]) + STEP_SEPARATOR for st, i in jobs]
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
        elif self.solved:
            hard, first = [1] * self.n, -1
        else:
            first = self.lo
            hard = [1] * first + [0] + [None] * (self.n - first - 1)
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
    from prmkit.grading import grade
    return grade(join_steps(solution["steps"]), solution["gold_answer"]).correct


@dataclass(frozen=True)
class MCWorkerFactory:
    """Builds an MCWorker with its own backend: once locally, once in each Ray actor."""
    cfg: MCConfig
    backend: str = "hf"
    backend_options: tuple = ()

    def __call__(self) -> MCWorker:
        from prmkit.backends import load_backend
        return MCWorker(self.cfg, load_backend(self.backend, self.cfg.model,
                                               **dict(self.backend_options)))


def resolve_budget(cfg: MCConfig, solutions: list[dict]) -> MCConfig:
    """Fix max_new_tokens once for the whole input, so no shard depends on its neighbours."""
    from dataclasses import replace
    if cfg.max_new_tokens is not None:
        return cfg
    if solutions and all("toy" in s for s in solutions):
        from prmkit.toyworld.problems import budget_for
        return replace(cfg, max_new_tokens=budget_for(solutions))
    return replace(cfg, max_new_tokens=1024)


def summarize(records: list[dict], skipped: list[dict], name: str = "mc") -> dict:
    from prmkit.annotate.inputs import accuracy_vs_truth, skipped_summary
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


def run(cfg: MCConfig, out: str | Path, *, executor: str = "local", actors: int = 2,
        backend: str = "hf", backend_options: dict | None = None, force: bool = False,
        progress: bool = True) -> dict:
    """Annotate ``cfg.solutions`` into ``out`` (resuming an interrupted run); returns metrics."""
    from prmkit.annotate.inputs import drop_unreadable_gold, output_relevant, run_stage
    from prmkit.runner import Shards
    from prmkit.runner import run as run_shards
    cfg.validate()
    resolved = {}

    def prepare(solutions, skipped):
        solutions = drop_unreadable_gold(solutions, skipped)
        resolved["cfg"] = resolve_budget(cfg, solutions)
        return solutions

    def execute(solutions, folder, config):
        stage_cfg = resolved["cfg"]
        shards = Shards(folder, solutions, stage_cfg.shard_size,
                        {**config, **stage_cfg.to_dict()})
        factory = MCWorkerFactory(stage_cfg, backend, tuple(sorted((backend_options or {})
                                                                   .items())))
        run_shards(shards, factory, executor=executor, actors=actors, progress=progress,
                   label=f"MC ({stage_cfg.mode}, K={stage_cfg.k})")
        return shards.records()

    config = {"stage": "annotate-mc", **cfg.to_dict(), "backend": backend,
              "backend_options": output_relevant(backend_options)}
    return run_stage(out, config, cfg.solutions,
                     prepare=prepare, execute=execute,
                     summarize=lambda r, s: summarize(r, s, cfg.name), force=force)
