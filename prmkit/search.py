"""PRM-guided search at test time (``prmkit search``): a policy proposes steps, a PRM keeps
the promising partial solutions.

    greedy     the paper's Table 8: at every step the policy proposes ``n`` next steps from
               the one solution kept, and the PRM keeps the best
    beam       step-level beam search: ``n / width`` beams, each expanded ``width`` times a
               step (``n`` candidates), the best ``n / width`` of them kept
    dvts       diverse verifier tree search: ``n / width`` independent subtrees, each expanding
               its one solution ``width`` times a step and keeping its best: the subtrees
               never compete until the end, so they stay diverse
    best_of_n  the baseline: ``n`` whole solutions sampled, the best by the PRM picked

A step is the policy's text up to a blank line (``prmkit.steps``): every expansion continues
the exact prefix the PRM scored (the prompt, the steps joined by blank lines, a blank line),
as Monte Carlo rollouts do, through any backend (``hf``, ``vllm``, ``openai``). A solution is
finished when its step holds a final answer (``\\boxed{}``, "The answer is", ``####``), when
the policy writes nothing more (it had ended with EOS: the backends report EOS and the blank
line alike, so an empty next step is what tells), when its prompt fills the policy's context
(where the backend can tell: ``hf``), or after ``max_steps``. Finished solutions keep their
places among the kept ones (a beam narrows as its solutions finish), and identical beams are
expanded alike. Partial solutions are ranked by ``aggregation`` of their step scores
(``last``: the newest step's, the default; ``min``; ``prod``), the PRM local (a folder or hub
id) or served (``prm_base_url``: vLLM's pooling server or ``prmkit serve --prm``). The pick
among finished solutions is the best by the same aggregation.

Each problem's record is a graded solution (``prmkit.sample``'s fields: the chosen steps, its
answer and outcome) with ``search``: the method, the tokens the policy generated, the partial
solutions the PRM scored, and the tree explored (every node: parent, depth, step, score,
whether it was kept and finished). Problems run in resumable shards; every completion has its
own seed, so a resumed search writes the files an uninterrupted one writes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from prmkit import config
from prmkit.backends import (
    BackendConfig,
    BackendWorkerFactory,
    SamplingParams,
    stage_backend,
)
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.evaluate.ranking import aggregate
from prmkit.formats import read_as
from prmkit.grading import extract_answer, grade_many, last_boxed
from prmkit.prm.checks import check_prm
from prmkit.prm.model import load_prm
from prmkit.prm.score import score
from prmkit.prm.served import ServedPRM, score_served
from prmkit.prompting import render
from prmkit.records import write_jsonl
from prmkit.runner import ShardedStage, executor_options, stage_config
from prmkit.steps import STEP_SEPARATOR, join_steps

METHODS = ("greedy", "beam", "dvts", "best_of_n")
RANKINGS = ("last", "min", "prod")
_FINAL = re.compile(r"answer is|####", re.IGNORECASE)


@dataclass(frozen=True)
class SearchConfig:
    problems: str = setting(REQUIRED, "Problems file (prmkit JSONL, or another --format).",
                            positional=True)
    model: str = setting(REQUIRED, "The policy: a model folder (hf), or the served model name "
                         "(openai).")
    prm: str = setting(REQUIRED, "The PRM: a folder or hub id, or its served name with "
                       "--prm-base-url.")
    method: str = setting("greedy", "greedy (Table 8), beam, dvts or best_of_n.",
                          choices=METHODS)
    prompt: str = setting("qwen-math", "How a problem becomes the prompt (prmkit.prompting).")
    format: str = setting("prmkit", "Format of the problems file (see `prmkit formats`).")
    n: int = setting(8, "Candidates a step (greedy), the beams' budget (beam, dvts: n / width "
                     "beams or subtrees), or solutions (best_of_n).", ge=1)
    width: int = setting(4, "beam, dvts: expansions of each beam a step.", ge=1)
    aggregation: str = setting("last", "How a partial solution is ranked from its step "
                               "scores: last, min or prod.", choices=RANKINGS)
    temperature: float = setting(1.0, "Sampling temperature of the steps (Table 8: 1.0).", ge=0)
    top_p: float = setting(1.0, "Nucleus sampling mass (Table 8: 1.0).", gt=0, le=1)
    step_tokens: int = setting(512, "Tokens a step at most.", ge=1)
    solution_tokens: int = setting(2048, "best_of_n: tokens a whole solution at most.", ge=1)
    max_steps: int = setting(30, "Steps a solution at most.", ge=1)
    seed: int = setting(0, "Seed; every completion has its own, derived from it.")
    prm_format: str | None = setting(None, "The PRM's input format (default: the folder's).")
    prm_base_url: str | None = setting(None, "A served PRM: vLLM's pooling server or prmkit "
                                       "serve --prm (prmkit.prm.served).")
    prm_tokenizer: str | None = setting(None, "With --prm-base-url: the PRM's tokenizer "
                                        "(default: --prm).")
    shard_size: int = setting(16, "Problems a resumable shard.", ge=1)

    def validate(self) -> "SearchConfig":
        config.check_values(self)
        if self.method in ("beam", "dvts") and (self.n % self.width or self.n < self.width):
            raise InputError(f"n={self.n} is not a multiple of width={self.width}: {self.method} "
                             "runs n / width beams", field="n")
        return self

    @property
    def groups(self) -> tuple[int, int, int]:
        """(groups, kept a group, expansions a kept solution): the three step methods as one
        loop. Greedy: one group keeps 1 of n; beam: one group keeps n/width, each expanded
        width times; dvts: n/width groups, each keeps 1 of width."""
        if self.method == "greedy":
            return 1, 1, self.n
        if self.method == "beam":
            return 1, self.n // self.width, self.width
        return self.n // self.width, 1, self.width


@dataclass
class Node:
    """A partial solution in the tree: its steps, the PRM's step scores, where it came from."""
    id: int
    parent: int | None
    group: int
    steps: list[str]
    scores: list[float | None] = field(default_factory=list)
    finished: bool = False
    kept: bool = False

    @property
    def depth(self) -> int:
        return len(self.steps)

    def rank(self, aggregation: str) -> float:
        value = aggregate(aggregation, self.scores) if self.scores else None
        return -1.0 if value is None else value  # a step past the PRM's context ranks last

    def record(self) -> dict:
        return {"id": self.id, "parent": self.parent, "group": self.group, "depth": self.depth,
                "step": self.steps[-1] if self.steps else "", "score": (self.scores or [None])[-1],
                "kept": self.kept, "finished": self.finished}


def is_final(step: str) -> bool:
    """Whether a step gives the final answer."""
    return last_boxed(step) is not None or _FINAL.search(step) is not None


class Searcher:
    """One problem's search with one policy backend and one PRM scorer."""

    def __init__(self, cfg: SearchConfig, backend, scorer):
        self.cfg, self.backend, self.scorer = cfg, backend, scorer

    def params(self, n: int, whole: bool = False, group: int = 0) -> SamplingParams:
        """A completion's seed comes from the prompt and its sample index; DVTS's subtrees
        start from one prompt, so each group samples with a seed of its own."""
        return SamplingParams(n=n, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                              max_new_tokens=self.cfg.solution_tokens if whole
                              else self.cfg.step_tokens,
                              seed=self.cfg.seed + 1_000_003 * group,
                              stop=() if whole else (STEP_SEPARATOR,))

    def prompt(self, problem: str, steps: list[str]):
        partial = join_steps(steps) + STEP_SEPARATOR if steps else ""
        return render(self.cfg.prompt, problem, self.backend.tokenizer, partial=partial)

    def run(self, problems: list[str]) -> list[tuple[Node | None, list[Node], Counter]]:
        """For each problem: (the pick, every node, counts: tokens and PRM calls). All the
        problems advance a step together: one generation call a step (a group), one PRM call,
        whatever the number of problems (each completion's seed is its own, so the results do
        not depend on which problems share a call)."""
        if self.cfg.method == "best_of_n":
            return self._best_of_n(problems)
        groups, keep, expand = self.cfg.groups
        trees = [Tree(problem, [Node(g, None, g, [], kept=True) for g in range(groups)])
                 for problem in problems]
        for tree in trees:
            tree.active = list(tree.nodes)
        for depth in range(self.cfg.max_steps):
            live = [tree for tree in trees if tree.active]
            if not live:
                break
            children = self._expand(live, expand)
            self._score([(tree, child) for tree in live for child in children[id(tree)]])
            last = depth == self.cfg.max_steps - 1
            for tree in live:
                tree.active = []
                for g in range(groups):
                    mine = sorted((c for c in children[id(tree)] if c.group == g),
                                  key=lambda c: -c.rank(self.cfg.aggregation))
                    for chosen in mine[:keep]:
                        chosen.kept = True
                        chosen.finished = chosen.finished or last
                        if not chosen.finished:
                            tree.active.append(chosen)
        return [(tree.pick(self.cfg.aggregation), tree.nodes, tree.counts) for tree in trees]

    def _expand(self, trees: list["Tree"], expand: int) -> dict[int, list[Node]]:
        """Every active node of every tree expanded ``expand`` times: tree -> its children."""
        wanted = [(tree, node) for tree in trees for node in tree.active]
        fits = getattr(self.backend, "fits", None)
        if fits is not None:  # a solution that fills the policy's context ends there
            room = fits([self.prompt(tree.problem, node.steps) for tree, node in wanted])
            for (_, node), ok in zip(wanted, room):
                node.finished = node.finished or not ok
            wanted = [pair for pair, ok in zip(wanted, room) if ok]
        outputs = []
        for g in sorted({node.group for _, node in wanted}):  # one call a group: its own seed
            mine = [(tree, node) for tree, node in wanted if node.group == g]
            outputs += zip(mine, self.backend.generate(
                [self.prompt(tree.problem, node.steps) for tree, node in mine],
                self.params(expand, group=g)))
        children: dict[int, list[Node]] = {id(tree): [] for tree in trees}
        for (tree, node), out in outputs:
            for completion in out:
                tree.counts["tokens"] += completion.num_tokens
                step = completion.text.strip()
                if not step:  # the policy has nothing more to say: the solution ended
                    child = Node(len(tree.nodes), node.id, node.group, node.steps, node.scores,
                                 finished=True)
                else:
                    child = Node(len(tree.nodes), node.id, node.group, [*node.steps, step],
                                 finished=is_final(step))
                tree.nodes.append(child)
                children[id(tree)].append(child)
        return children

    def _score(self, pairs: list[tuple["Tree", Node]]) -> None:
        """The PRM's step scores of every new partial solution, in one call."""
        fresh = [(tree, node) for tree, node in pairs if len(node.scores) != node.depth]
        if not fresh:
            return
        rows = self.scorer([tree.problem for tree, _ in fresh], [n.steps for _, n in fresh])
        for (tree, node), row in zip(fresh, rows):
            tree.counts["prm_calls"] += 1
            node.scores = row

    def _best_of_n(self, problems: list[str]) -> list[tuple[Node, list[Node], Counter]]:
        trees = [Tree(problem, []) for problem in problems]
        outputs = self.backend.generate([self.prompt(problem, []) for problem in problems],
                                        self.params(self.cfg.n, True))
        for tree, out in zip(trees, outputs):
            for completion in out:
                tree.counts["tokens"] += completion.num_tokens
                steps = [s.strip() for s in completion.text.split(STEP_SEPARATOR) if s.strip()]
                tree.nodes.append(Node(len(tree.nodes), None, 0, steps or [completion.text],
                                       finished=True, kept=True))
        self._score([(tree, node) for tree in trees for node in tree.nodes])
        return [(tree.pick(self.cfg.aggregation), tree.nodes, tree.counts) for tree in trees]


@dataclass
class Tree:
    """One problem's search: every node so far, the ones still growing, what it cost."""
    problem: str
    nodes: list[Node]
    active: list[Node] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def pick(self, aggregation: str) -> Node | None:
        """The best finished solution (None: none finished with a step)."""
        finished = [n for n in self.nodes if n.kept and n.finished and n.steps]
        return max(finished, key=lambda n: n.rank(aggregation), default=None)


def prm_scorer(cfg: SearchConfig):
    """``scorer(problems, steps) -> step scores`` with the search's PRM, loaded (or reached)
    once."""
    if cfg.prm_base_url:
        served = ServedPRM(cfg.prm_base_url, cfg.prm, cfg.prm_tokenizer or cfg.prm,
                           cfg.prm_format)
        return lambda problems, steps: score_served(served, problems, steps)
    prm = load_prm(cfg.prm, fmt=cfg.prm_format)
    return lambda problems, steps: score(problems, steps, prm)


@dataclass(frozen=True)
class Loaded:
    """A policy backend and a PRM scorer already loaded, for searches that run one after
    another in this process (the pipeline's methods and budgets): loaded once, not a stage."""
    backend: object
    scorer: object


class SearchWorker:
    """Searches shards of problems with one policy backend and one PRM, loaded once."""

    def __init__(self, cfg: SearchConfig, backend, scorer=None):
        self.cfg, self.backend = cfg, backend
        self.scorer = scorer or prm_scorer(cfg)

    def __call__(self, problems: list[dict], index: int) -> list[dict]:
        searcher = Searcher(self.cfg, self.backend, self.scorer)
        found = [(p, *result) for p, result in zip(
            problems, searcher.run([p["problem"] for p in problems]))]
        grades = iter(grade_many([(extract_answer(join_steps(pick.steps)) if pick else None,
                                   p.get("answer")) for p, pick, _, _ in found]))
        return [self._record(p, pick, nodes, counts, next(grades))
                for p, pick, nodes, counts in found]

    def _record(self, problem: dict, pick: Node | None, nodes: list[Node], counts: Counter,
                grade) -> dict:
        return {"id": problem["id"], "problem_id": problem["id"], "problem": problem["problem"],
                "steps": pick.steps if pick else [], "gold_answer": problem.get("answer"),
                "final_answer": grade.answer, "outcome": grade.outcome.value,
                "reason": grade.reason, "final_answer_correct": grade.correct,
                "step_scores": pick.scores if pick else [], "generator": self.cfg.model,
                "search": {"method": self.cfg.method, "n": self.cfg.n,
                           "tokens": counts["tokens"], "prm_calls": counts["prm_calls"],
                           "found": pick is not None, "tree": [n.record() for n in nodes]}}


def summarize(records: list[dict]) -> dict:
    n = len(records)
    return {"n_problems": n,
            "accuracy": sum(r["final_answer_correct"] for r in records) / n if n else None,
            "outcomes": dict(Counter(r["outcome"] for r in records)),
            "not_found": sum(not r["search"]["found"] for r in records),
            "mean_tokens": sum(r["search"]["tokens"] for r in records) / n if n else None,
            "mean_prm_calls": sum(r["search"]["prm_calls"] for r in records) / n if n else None}


def run(cfg: SearchConfig, out: str | Path, *, backend: BackendConfig | None = None,
        force: bool = False, progress: bool = True, loaded: Loaded | None = None) -> dict:
    """Search every problem into ``out/solutions.jsonl`` (resuming an interrupted run).
    ``loaded``: the policy and the PRM already loaded in this process (they must be those of
    ``cfg`` and ``backend``); the search then runs here, whatever the executor."""
    cfg.validate()
    if loaded is None and cfg.prm_base_url is None:
        check_prm(cfg.prm, cfg.prm_format)
    elif loaded is None:
        ServedPRM(cfg.prm_base_url, cfg.prm, cfg.prm_tokenizer or cfg.prm,
                  cfg.prm_format).layout()
    backend = stage_backend(backend, cfg.model if loaded is None else None, cfg.prompt)
    factory = BackendWorkerFactory(SearchWorker, cfg, backend) if loaded is None else \
        (lambda: SearchWorker(cfg, loaded.backend, loaded.scorer))
    executor = executor_options(backend) if loaded is None else \
        {**executor_options(backend), "executor": "local"}

    def read() -> list[dict]:
        problems = read_as(cfg.problems, cfg.format, "problem")
        if not problems:
            raise InputError("no problems in this file", path=cfg.problems, field="problems")
        return problems

    def finish(folder: Path, records: list[dict]) -> dict:
        write_jsonl(folder / "solutions.jsonl", records)
        return summarize(records)

    prm_input = cfg.prm if cfg.prm_base_url is None and Path(cfg.prm).exists() else None
    return ShardedStage(
        config=stage_config("search", cfg, drop=("shard_size",),
                            backend=backend.output_relevant()),
        inputs={"problems": cfg.problems, "prm": prm_input}, read=read,
        factory=factory, finish=finish, shard_size=cfg.shard_size, executor=executor,
        label=f"search ({cfg.method})",
    ).run(out, force=force, progress=progress)
