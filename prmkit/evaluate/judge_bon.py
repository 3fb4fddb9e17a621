"""LLM-as-a-judge for Best-of-N, with no PRM (``prmkit eval judge-bon``): the paper's Tables
11-12, where a judge model picks among a problem's N candidates itself.

    pointwise  the judge critiques each candidate on its own, as the label judge does
               (``prmkit.annotate.judge``: any critique prompt, the paper's Appendix C by
               default, ``samples`` critiques voted). A candidate's score is the share of its
               steps judged correct (the paper's rule): the steps before the first error the
               judge names, all of them when it names none. The judge stops at the first
               error, so the steps after it count as not correct.
    pairwise   a single-elimination tournament, N-1 comparisons a problem (the paper's). Each
               round pairs the candidates still in, in their order (1 against 2, 3 against 4,
               ...; an odd one out goes through unplayed); the judge reads both solutions and
               boxes the number of the better one (``prompts/pairwise_judge.txt``, or any
               template with ``{problem}``, ``{response_1}`` and ``{response_2}``); ``samples``
               verdicts are voted, a tie going to the first. A candidate's score is the number
               of rounds it survived. The bracket nests (the first 2^k candidates play a bracket
               of their own), so the highest score among the first N is the winner of their own
               tournament at every power of two N: the only N pairwise measures.

Both go through Best-of-N as a response-level score (``bon``'s ``response`` method, with
maj@N, pass@N and a random pick; a judge's score is no step score, so no PRM aggregation is
reported): the highest score is the pick, ties to the earliest. A candidate without a verdict
(pointwise: none of its critiques parsed) has no score and is never picked (counted:
``judge.no_verdict``); a comparison without a verdict goes to the first of the pair (counted in
``judge.outcomes``). An empty candidate (no steps, no text) is never read: it has no score, and
in a tournament it loses unasked (``judge.empty_candidates``). Position bias is left as it is:
the order is the candidates' own, as the paper gives no other.

Resumable: pointwise runs the judge stage in shards (``OUT/judge``), reused whenever its
settings are the same (a change of N or of the grouping redoes the measurement alone); pairwise
writes every comparison to ``OUT/comparisons.jsonl`` after each round, and a re-run reuses each
answer given by the same judge, served the same way, to the same prompt with the same sampling
settings. N larger than some problem's candidates is refused before any verdict is asked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from prmkit import config
from prmkit.annotate import judge as label_judge
from prmkit.backends import BackendConfig, SamplingParams, load_backend, stage_backend
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.evaluate import bon
from prmkit.prompting import PROMPTS, Prompt, chat_prompt, read_template
from prmkit.records import read_records, write_jsonl
from prmkit.rundir import StaleFolder, run_stage
from prmkit.runner import stage_config
from prmkit.steps import split_steps

MODES = ("pointwise", "pairwise")
PAIRWISE_PROMPT = PROMPTS / "pairwise_judge.txt"
PAIRWISE_PLACEHOLDERS = ("problem", "response_1", "response_2")
COMPARISON_OUTCOMES = ("ok", "no-verdict", "truncated")


@dataclass(frozen=True)
class JudgeBonConfig:
    candidates: list[str] = setting(REQUIRED, "Candidate-set files, one a benchmark (named "
                                    "by its file stem).", positional=True)
    judge: str = setting(REQUIRED, "The judge model: a folder or hub id (hf, vllm), or a "
                         "served model's name (openai).")
    mode: str = setting("pointwise", "pointwise (each candidate critiqued alone; its score: "
                        "the share of its steps judged correct) or pairwise (a single-"
                        "elimination tournament).", choices=MODES)
    format: str = setting("prmkit", "Format of the candidate files: prmkit or qwen_eval.")
    judge_prompt: str | None = setting(None, "pointwise: paper (default), processbench or a "
                                       "critique template; pairwise: a template with "
                                       "{problem}, {response_1} and {response_2} (default: "
                                       "prmkit's).")
    samples: int = setting(1, "Verdicts a candidate (pointwise) or a comparison (pairwise), "
                           "majority-voted.", ge=1)
    temperature: float = setting(0.0, "0 = greedy; use ~0.7 with samples > 1.", ge=0)
    top_p: float = setting(1.0, "Nucleus sampling mass.", gt=0, le=1)
    max_new_tokens: int = setting(8192, "Tokens a verdict at most (a critique of a long "
                                  "solution is long).", ge=1)
    seed: int = setting(0, "Seed of the verdicts.")
    chat: bool = setting(True, "Wrap the prompt in the judge's chat template as the user turn.")
    critique_format: str | None = setting(None, "pointwise: how critiques are read, boxed or "
                                          "conclusion (default: the prompt's own style).")
    n: list[int] | None = setting(None, "N values (default: 1, 2, 4, ... up to the set size; "
                                  "pairwise: powers of two only).", ge=1)
    group_by: str = bon.group_by_setting()
    processes: int = setting(1, "Worker processes for grading.", ge=1)
    shard_size: int = setting(64, "pointwise: candidates a resumable shard.", ge=1)

    def validate(self) -> "JudgeBonConfig":
        config.check_values(self)
        names = [Path(p).stem for p in self.candidates]
        if len(set(names)) != len(names):
            raise InputError("two candidate files share a name; benchmarks are named by file "
                             "stem", field="candidates")
        if self.mode == "pairwise" and any(n & (n - 1) for n in self.n or []):
            raise InputError(f"{self.n}: a tournament picks the best of the first N only at "
                             "powers of two (1, 2, 4, 8, ...)", field="n")
        if self.mode == "pairwise":
            check_pairwise_template(self.judge_prompt or PAIRWISE_PROMPT)
        return self


def check_pairwise_template(path: str | Path) -> Path:
    """A pairwise template fills as a format string with the problem and both responses."""
    path = Path(path)
    if not path.is_file():
        raise InputError("pairwise prompt file not found", path=path, field="judge_prompt")
    text = path.read_text(encoding="utf-8")
    try:
        text.format(**dict.fromkeys(PAIRWISE_PLACEHOLDERS, ""))
    except (KeyError, IndexError, ValueError) as e:
        raise InputError(f"not a template prmkit can fill ({type(e).__name__}: {e}): its "
                         "placeholders are {problem}, {response_1} and {response_2}, and a "
                         "literal brace is written twice", path=path,
                         field="judge_prompt") from None
    missing = [p for p in PAIRWISE_PLACEHOLDERS if f"{{{p}}}" not in text]
    if missing:
        raise InputError(f"the pairwise prompt lacks {', '.join('{' + m + '}' for m in missing)}",
                         path=path, field="judge_prompt")
    return path


# --- the scores -----------------------------------------------------------------------------------

def share_correct(first_error: int | None, n_steps: int) -> float | None:
    """The pointwise score: the share of the steps before the first error (1 when there is
    none); None without a verdict."""
    if first_error is None:
        return None
    return 1.0 if first_error < 0 else first_error / n_steps


def read_choice(text: str, finish_reason: str | None = None) -> tuple[int | None, str]:
    """A pairwise verdict: the last ``\\boxed{...}`` holding 1 or 2 (``\\text{2}`` read too),
    as 0 or 1; with its status."""
    boxed = re.findall(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", text)
    if boxed:
        inner = re.sub(r"\\text\{([^{}]*)\}", r"\1", boxed[-1]).strip().strip("$").strip()
        if inner in ("1", "2"):
            return int(inner) - 1, "ok"
    return None, "truncated" if finish_reason == "length" else "no-verdict"


def bracket(alive: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
    """One round: the candidates still in, paired in order; an odd one out goes through."""
    pairs = [(alive[i], alive[i + 1]) for i in range(0, len(alive) - 1, 2)]
    return pairs, alive[len(pairs) * 2:]


# --- running the judge ----------------------------------------------------------------------------

def _candidate_steps(record: dict, candidate: dict, path) -> list[str]:
    """A candidate's steps (its text split on blank lines); [] for an empty one, which the
    judge never reads: it has no score (pointwise) or loses unasked (pairwise)."""
    if not record.get("problem"):
        raise InputError(f"set {record['id']!r} has no problem text for the judge", path=path,
                         field="problem")
    return candidate.get("steps") or split_steps(candidate.get("text") or "")


def critique_config(cfg: JudgeBonConfig, solutions: str | Path = "-"
                    ) -> label_judge.JudgeConfig:
    """The label judge's settings for pointwise critiques (checked: its prompt template)."""
    return label_judge.JudgeConfig(
        solutions=str(solutions), kind="model", model=cfg.judge, samples=cfg.samples,
        temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed, chat=cfg.chat, judge_prompt=cfg.judge_prompt or "paper",
        critique_format=cfg.critique_format, shard_size=cfg.shard_size).validate()


def pointwise(sets: dict[str, list[dict]], cfg: JudgeBonConfig, folder: Path,
              backend: BackendConfig, files: dict, force: bool, progress: bool) -> dict:
    """Each candidate critiqued by the label judge's stage (``folder/judge``); its ``score``
    set in place. Returns what the judge did."""
    solutions, candidates, empty = [], [], 0
    for name, records in sets.items():
        for record in records:
            for i, c in enumerate(record["candidates"]):
                steps = _candidate_steps(record, c, files[name])
                c["score"] = None
                if not steps:
                    empty += 1
                    continue
                solutions.append({"id": f"{name}/{record['id']}/{i}",
                                  "problem": record["problem"], "steps": steps})
                candidates.append(c)
    path = write_jsonl(folder / "candidates.jsonl", solutions)
    metrics = _reused_unless_stale(lambda again: label_judge.run(
        critique_config(cfg, path), folder / "judge", backend=backend, force=again,
        progress=progress), force)
    verdicts = {r["id"]: r["judge"]["first_error"]
                for r in read_records(folder / "judge" / "annotated.jsonl", "solution")}
    for solution, candidate in zip(solutions, candidates):
        # a candidate the judge stage skipped (no steps) has no verdict, like one unparsed
        candidate["score"] = share_correct(verdicts.get(solution["id"]), len(solution["steps"]))
    return {"mode": "pointwise", "no_verdict": metrics["no_verdict"] + empty,
            "empty_candidates": empty, "calls": metrics["calls"],
            "outcomes": metrics.get("output_statuses", {}), "skipped": metrics["skipped"]}


def _reused_unless_stale(run_judge, force: bool):
    """The critiques' own stage: reused whenever its settings are the same (a change of N or
    of the grouping redoes the measurement, never the critiques); redone with ``force`` when
    they differ."""
    try:
        return run_judge(False)
    except StaleFolder:
        if not force:
            raise
        return run_judge(True)


class PairwiseJudge:
    """Asks the judge which of two solutions is better; every answer kept (``log``) and reused
    from an earlier run's (``cache``: prompt and settings digest -> entry)."""

    def __init__(self, cfg: JudgeBonConfig, backend: BackendConfig, cache: dict):
        self.cfg, self.cache, self.log = cfg, cache, []
        # an answer is reused only from the same judge, served the same way, sampled alike
        self.asked_of = json.dumps({"judge": cfg.judge, "backend": backend.output_relevant()},
                                   sort_keys=True)
        self.template = read_template(str(cfg.judge_prompt or PAIRWISE_PROMPT))
        self.params = SamplingParams(n=cfg.samples, temperature=cfg.temperature,
                                     top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                     seed=cfg.seed)
        self.backend_config, self.backend = backend, None

    def prompt(self, problem: str, first: list[str], second: list[str]) -> Prompt:
        text = self.template.format(problem=problem, response_1="\n\n".join(first),
                                    response_2="\n\n".join(second))
        tokenizer = getattr(self.backend, "tokenizer", None) if self.backend else None
        if not self.cfg.chat or (tokenizer is not None
                                 and not getattr(tokenizer, "chat_template", None)):
            return Prompt(text)  # raw text: a base model, as the label judge sends it
        return chat_prompt([{"role": "user", "content": text}], tokenizer)

    def decide(self, asked: list[tuple[dict, str, list[str], list[str], dict]]) -> list[int]:
        """Winners (0 or 1) of comparisons ``(set record, where, first steps, second steps,
        ids)``, those not in the cache asked in one batch."""
        if self.backend is None:
            self.backend = load_backend(self.backend_config.backend, self.cfg.judge,
                                        **self.backend_config.options())
        prompts = [self.prompt(record["problem"], a, b) for record, _, a, b, _ in asked]
        settings = json.dumps(asdict(self.params), sort_keys=True)
        keys = [hashlib.sha256(f"{self.asked_of}\0{settings}\0{p}".encode()).hexdigest()
                for p in prompts]
        new = [i for i, k in enumerate(keys) if k not in self.cache]
        outputs = self.backend.generate([prompts[i] for i in new], self.params) if new else []
        for i, out in zip(new, outputs):
            read = [read_choice(c.text, c.finish_reason) for c in out]
            choices = [v for v, _ in read if v is not None]
            votes = Counter(choices)
            # the most votes wins; a tie, or no verdict at all, goes to the first of the pair
            winner = 1 if votes[1] > votes[0] else 0
            self.cache[keys[i]] = {"key": keys[i], "winner": winner,
                                   "verdicts": [v for v, _ in read],
                                   "statuses": [s for _, s in read],
                                   "outputs": [c.text for c in out]}
        winners = []
        for (record, where, _, _, ids), key in zip(asked, keys):
            entry = {**self.cache[key], **ids, "where": where}
            self.log.append(entry)
            winners.append(entry["winner"])
        return winners


def pairwise(sets: dict[str, list[dict]], cfg: JudgeBonConfig, folder: Path,
             backend: BackendConfig, files: dict) -> dict:
    """Every problem's tournament, a round of all problems at a time; each candidate's
    ``score`` (rounds survived) set in place. Returns what the judge did."""
    log_file = folder / "comparisons.jsonl"
    earlier = log_file.read_text(encoding="utf-8").splitlines() if log_file.exists() else []
    cache = {e["key"]: e for e in map(json.loads, filter(None, earlier))}
    judge = PairwiseJudge(cfg, backend, cache)
    problems = [(name, record) for name, records in sets.items() for record in records]
    steps = [[_candidate_steps(record, c, files[name]) for c in record["candidates"]]
             for name, record in problems]
    alive = [list(range(len(record["candidates"]))) for _, record in problems]
    survived = [[0] * len(record["candidates"]) for _, record in problems]
    round_ = 0
    while any(len(a) > 1 for a in alive):
        asked, owners = [], []
        won: dict[int, list[int]] = {}
        for p, ((name, record), still) in enumerate(zip(problems, alive)):
            pairs, _ = bracket(still)
            for a, b in pairs:
                if not (steps[p][a] and steps[p][b]):  # an empty candidate loses unasked
                    won.setdefault(p, []).append(b if steps[p][b] and not steps[p][a] else a)
                    continue
                asked.append((record, f"{name}/{record['id']}",
                              steps[p][a], steps[p][b],
                              {"set": name, "id": record["id"], "round": round_,
                               "first": a, "second": b}))
                owners.append((p, a, b))
        winners = judge.decide(asked) if asked else []
        for (p, a, b), w in zip(owners, winners):
            won.setdefault(p, []).append(b if w else a)
        for p, still in enumerate(alive):
            if len(still) <= 1:
                continue
            _, through = bracket(still)
            alive[p] = sorted(won.get(p, []) + through)
            for c in alive[p]:
                survived[p][c] += 1
        write_jsonl(log_file, judge.log)  # a round done is never asked again
        round_ += 1
    for (_, record), scores, pieces in zip(problems, survived, steps):
        for c, s, read in zip(record["candidates"], scores, pieces):
            c["score"] = float(s) if read else None  # an empty candidate is never picked
    statuses = Counter(s for e in judge.log for s in e["statuses"])
    return {"mode": "pairwise", "comparisons": len(judge.log), "rounds": round_,
            "empty_candidates": sum(not st for row in steps for st in row),
            "outcomes": {k: statuses.get(k, 0) for k in COMPARISON_OUTCOMES},
            "no_verdict_to_first": sum(all(v is None for v in e["verdicts"])
                                       for e in judge.log)}


def run(cfg: JudgeBonConfig, out: str | Path | None, *, force: bool = False,
        backend: BackendConfig | None = None, progress: bool = True) -> dict:
    """The judge's picks on every candidate set, measured as Best-of-N: ``out/metrics.json``
    (``judge``: what it did; ``benchmarks``, ``average``: as ``prmkit eval bon``) and
    ``out/predictions.jsonl``."""
    cfg.validate()
    if out is None:
        raise InputError("a judge writes its verdicts into a folder: give --out", field="out")
    if cfg.mode == "pointwise":
        critique_config(cfg)  # its prompt template, before the judge is asked
    backend = stage_backend(backend, cfg.judge)
    files = {Path(p).stem: p for p in cfg.candidates}
    settings = stage_config("eval.judge-bon", cfg, drop=("processes", "shard_size"),
                            backend=backend.output_relevant())

    def work(folder: Path, _config: dict) -> dict:
        sets = {name: bon.load_candidates(path, cfg.format) for name, path in files.items()}
        for name, records in sets.items():
            if not records:
                raise InputError("no candidate sets in this file", path=files[name])
            for record in records:  # the judge's score alone: no PRM's step scores
                for c in record["candidates"]:
                    c.pop("step_scores", None)
        ns = cfg.n or (_powers_of_two(sets) if cfg.mode == "pairwise" else None)
        smallest = min(len(r["candidates"]) for records in sets.values() for r in records)
        if ns and max(ns) > smallest:  # before any verdict is paid for
            raise InputError(f"N={max(ns)} but some problem has only {smallest} candidates",
                             field="n")
        did = (pointwise(sets, cfg, folder, backend, files, force, progress)
               if cfg.mode == "pointwise" else pairwise(sets, cfg, folder, backend, files))
        # the judge's pick beside the baselines; its score is no PRM's step score
        measured = bon.evaluate(sets, ns=ns, group_by=cfg.group_by, processes=cfg.processes,
                                per_item=True, methods=("maj", "response"))
        write_jsonl(folder / "predictions.jsonl",
                    [{"benchmark": name, **item} for name, m in measured["benchmarks"].items()
                     for item in m.pop("items")])
        return {"judge": {"model": cfg.judge, **did}, **measured}
    return run_stage(out, settings, work, inputs=files, force=force)


def _powers_of_two(sets: dict[str, list[dict]]) -> list[int]:
    smallest = min(len(r["candidates"]) for records in sets.values() for r in records)
    return [2 ** k for k in range(smallest.bit_length()) if 2 ** k <= smallest]


def show(measured: dict, console) -> None:
    """What the judge did, then Best-of-N as ``prmkit eval bon`` shows it."""
    judge = measured["judge"]
    if judge["mode"] == "pointwise":
        console.print(f"pointwise judge {judge['model']}: {judge['calls']} critiques, "
                      f"{judge['no_verdict']} candidates without a verdict; outcomes "
                      f"{judge['outcomes']}", markup=False, highlight=False)
    else:
        console.print(f"pairwise judge {judge['model']}: {judge['comparisons']} comparisons in "
                      f"{judge['rounds']} rounds; outcomes {judge['outcomes']}; "
                      f"{judge['no_verdict_to_first']} without a verdict went to the first",
                      markup=False, highlight=False)
    bon.show(measured, console)
