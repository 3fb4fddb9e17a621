"""Judges that name the earliest wrong step (``prmkit annotate judge``).

Model judge: a critique prompt (``--judge-prompt``), ``samples`` generations through any
backend (``hf`` for a local model, ``openai`` for any OpenAI-compatible server), then a
majority vote over the verdicts that parse (``prmkit.labels``: the parsers of both critique
styles and one tie rule for every critique in prmkit). The prompts:

    processbench  prmkit's own, written after ProcessBench's: the problem, the steps as
                  ``<paragraph_i>`` blocks numbered from 0, the answer as ``\\boxed{i}`` (-1:
                  every paragraph right)
    paper         the paper's judge (its Appendix C), in prmkit's words: paragraphs from 1,
                  an ``<analysis_k>`` for each until the first error, then
                  ``<conclusion>Correct|Incorrect</conclusion>``
    FILE.txt      any template, filled as ProcessBench's script fills its own (a Python format
                  string): ProcessBench's official template works as it is

A critique with no verdict, one cut short by the token limit, or one naming no paragraph is
counted under its status (``no-index``, ``no-conclusion``, ``truncated``, ``out-of-range``)
and kept in the log; it never crashes a run. A solution none of whose samples parse has no
verdict (``first_error`` null).

Rule judge: recomputes every explicit arithmetic claim of a step exactly (``12*3=36``,
``36 - 7 = 29``, GSM8K's ``<<48/2=24>>``, toy ledger lines) and flags the first step with a false
one; a step without claims passes. It is the toy world's judge (it sees arithmetic errors, not
misread numbers) and a cheap one for GSM8K-style data.

Each record gains a field (``judge`` unless ``--name`` says otherwise)::

    {"kind": "model" | "rule", "first_error": int | null,
     model: "votes": [int | null], "statuses": ["ok" | "no-index" | "no-conclusion" |
                                                 "truncated" | "out-of-range"],
            "calls": int, "prompt_sha256": str
     rule:  "claims": int, "false_claims": [{"step", "claim"}], "calls": 0}

Every model call is logged in ``judge_log.jsonl``: solution id, sample, prompt hash, sampling
parameters, raw output, parsed index and status.
"""

from __future__ import annotations

import ast
import hashlib
import operator
import re
from collections import Counter
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

from prmkit import config
from prmkit.annotate.inputs import (
    Annotation,
    accuracy_vs_truth,
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
from prmkit.critique_prompt import check_template, critique_prompt
from prmkit.errors import InputError
from prmkit.labels import CRITIQUE_STYLES, CritiqueStyle, read_critique, vote
from prmkit.prompting import PROMPTS, Prompt, chat_prompt
from prmkit.records import write_jsonl
from prmkit.runner import ShardedStage, executor_options, stage_config

KINDS = ("rule", "model")
# the built-in critique prompts, by name, and the style of critique each asks for
PROMPTS_BY_NAME = {"processbench": (PROMPTS / "processbench_critique.txt", "boxed"),
                   "paper": (PROMPTS / "paper_judge.txt", "conclusion")}
TEMPLATE = PROMPTS_BY_NAME["processbench"][0]


# --- the model judge's prompt and its answer ----------------------------------------------------

def template_path(judge_prompt: str) -> Path:
    """A built-in prompt's file (``processbench``, ``paper``), else the path given."""
    return PROMPTS_BY_NAME[judge_prompt][0] if judge_prompt in PROMPTS_BY_NAME \
        else Path(judge_prompt)


# --- the rule judge -----------------------------------------------------------------------------

_NUM = r"\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"  # commas only as thousands separators
_OPERAND = rf"\(*\s*-?{_NUM}\s*\)*"
_CLAIM = re.compile(rf"(?<![\w.,$%])(?P<expr>{_OPERAND}(?:\s*[-+*/×÷]\s*{_OPERAND})+)"
                    rf"\s*=\s*(?P<value>-?{_NUM})(?![\d%])")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}


def _number(text: str) -> Fraction:
    return Fraction(text.replace("$", "").replace(",", ""))


def _evaluate(expr: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None where it is not one we can read."""
    cleaned = expr.strip().replace("×", "*").replace("÷", "/").replace("$", "")
    cleaned = re.sub(r"(?<=\d),(?=\d{3})", "", cleaned)
    try:
        tree = ast.parse(cleaned, mode="eval").body
    except SyntaxError:
        return None

    def value(node) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError("not arithmetic")

    try:
        return value(tree)
    except (ValueError, ZeroDivisionError):
        return None


def _holds(true: Fraction, claimed_text: str) -> bool:
    """A claim holds when exact, or when rounded to the decimals it is written with."""
    claimed = _number(claimed_text)
    if true == claimed:
        return True
    decimals = len(claimed_text.split(".")[1]) if "." in claimed_text else 0
    return decimals > 0 and abs(true - claimed) <= Fraction(1, 2 * 10 ** decimals)


def arithmetic_claims(step: str) -> list[tuple[str, bool]]:
    """Every ``expression = value`` claim of a step, with whether it holds."""
    claims = []
    for m in _CLAIM.finditer(step):
        true = _evaluate(m["expr"])
        if true is not None:
            claims.append((m.group(0).strip(), _holds(true, m["value"])))
    return claims


def rule_verdict(steps: list[str]) -> dict:
    false_claims, checked = [], 0
    for i, step in enumerate(steps):
        claims = arithmetic_claims(step)
        checked += len(claims)
        false_claims += [{"step": i, "claim": c} for c, ok in claims if not ok]
    first = false_claims[0]["step"] if false_claims else -1
    return {"kind": "rule", "first_error": first, "claims": checked,
            "false_claims": false_claims, "calls": 0}


# --- the stage ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeConfig:
    solutions: str = setting(REQUIRED, "Solutions JSONL.", positional=True)
    kind: str = setting("rule", "rule (recompute explicit arithmetic) or model (a critique "
                        "model).", choices=KINDS)
    model: str | None = setting(None, "The judge model (kind model): a folder (hf) or the "
                                "served model name (openai).")
    samples: int = setting(1, "Critiques a solution (majority vote, prmkit.labels.vote).", ge=1)
    temperature: float = setting(0.0, "0 = greedy; use ~0.7 with samples > 1.", ge=0)
    top_p: float = setting(1.0, "Nucleus sampling mass.", gt=0, le=1)
    max_new_tokens: int = setting(8192, "Tokens a critique at most (ProcessBench generates "
                                  "up to 8192: a judge that reasons at length is not cut "
                                  "short).", ge=1)
    seed: int = setting(0, "Seed of the critiques.")
    chat: bool = setting(True, "Wrap the critique prompt in the judge's chat template (as the "
                         "user turn); false: raw text.")
    judge_prompt: str = setting("processbench", "The critique prompt: processbench "
                                "(prmkit's, in ProcessBench's style), paper (the paper's judge: "
                                "an analysis a paragraph and a conclusion), or a template file "
                                "(a format string with {problem} or {tagged_problem}, and "
                                "{tagged_paragraphs} or {tagged_response}: ProcessBench's "
                                "official template as it is).")
    critique_format: str | None = setting(None, "How critiques are read: boxed (paragraphs "
                                          "from 0, the index in \\boxed{}) or conclusion "
                                          "(paragraphs from 1, <analysis_k> and <conclusion>); "
                                          "default: the built-in prompt's own, boxed for a "
                                          "file.", choices=tuple(CRITIQUE_STYLES))
    name: str = setting("judge", "Field the verdict goes in.")
    shard_size: int = setting(64, "Solutions a resumable shard.", ge=1)

    def validate(self) -> "JudgeConfig":
        config.check_values(self)
        if self.kind == "model" and not self.model:
            raise InputError("a model judge needs --model", field="model")
        if not self.name.isidentifier():
            raise InputError(f"{self.name!r}: must be a plain field name", field="name")
        if self.kind == "model":
            check_template(template_path(self.judge_prompt), field="judge_prompt")
        return self

    @property
    def style(self) -> CritiqueStyle:
        """How this judge's critiques number the paragraphs and are read."""
        own = PROMPTS_BY_NAME.get(self.judge_prompt, (None, "boxed"))[1]
        return CRITIQUE_STYLES[self.critique_format or own]


class RuleJudgeWorker:
    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg

    def __call__(self, solutions: list[dict], index: int) -> list[dict]:
        return [{**strip_private(s), self.cfg.name: rule_verdict(s["steps"])} for s in solutions]


class ModelJudgeWorker:
    def __init__(self, cfg: JudgeConfig, backend):
        self.cfg, self.backend = cfg, backend
        self.params = SamplingParams(n=cfg.samples, temperature=cfg.temperature,
                                     top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                     seed=cfg.seed)

    def prompt(self, solution: dict) -> str:
        text = critique_prompt(solution["problem"], solution["steps"],
                               template_path(self.cfg.judge_prompt),
                               self.cfg.style.first_paragraph)
        tokenizer = getattr(self.backend, "tokenizer", None)
        if not self.cfg.chat or (tokenizer is not None
                                 and not getattr(tokenizer, "chat_template", None)):
            return Prompt(text)  # raw text: a base model, or a server that wraps it itself
        # the critique as the user turn: templated here when the tokenizer is at hand, else
        # left to a chat API server
        return chat_prompt([{"role": "user", "content": text}], tokenizer)

    def __call__(self, solutions: list[dict], index: int) -> list[dict]:
        prompts = [self.prompt(s) for s in solutions]
        outputs = self.backend.generate(prompts, self.params)
        params = asdict(self.params)
        records = []
        for s, prompt, out in zip(solutions, prompts, outputs):
            parsed = [read_critique(c.text, len(s["steps"]), self.cfg.style.name,
                                    c.finish_reason) for c in out]
            digest = hashlib.sha256(prompt.encode()).hexdigest()
            log = [{"id": s["id"], "sample": j, "prompt_sha256": digest, "params": params,
                    "output": c.text, "finish_reason": c.finish_reason, "index": v,
                    "status": status} for j, (c, (v, status)) in enumerate(zip(out, parsed))]
            votes = [v for v, _ in parsed]
            records.append({**strip_private(s), self.cfg.name: {
                "kind": "model", "first_error": vote(votes), "votes": votes,
                "statuses": [st for _, st in parsed], "calls": len(out),
                "prompt_sha256": digest, "log": log}})
        return records


def summarize(records: list[dict], skipped: list[dict], name: str = "judge") -> dict:
    verdicts = [r[name] for r in records]
    metrics = {"n_solutions": len(records), "skipped": skipped_summary(skipped),
               "no_verdict": sum(v["first_error"] is None for v in verdicts),
               "calls": sum(v["calls"] for v in verdicts),
               "first_error": {str(k): c for k, c in sorted(
                   Counter(v["first_error"] for v in verdicts).items(),
                   key=lambda kv: (kv[0] is None, kv[0] or 0))}}
    statuses = Counter(st for v in verdicts for st in v.get("statuses", []))
    if statuses:
        metrics["output_statuses"] = dict(statuses)
    if any(v["kind"] == "rule" for v in verdicts):
        metrics["claims_checked"] = sum(v.get("claims", 0) for v in verdicts)
    accuracy = accuracy_vs_truth([v["first_error"] for v in verdicts], records)
    if accuracy is not None:
        metrics["first_error_accuracy_vs_truth"] = accuracy
    return metrics


def run(cfg: JudgeConfig, out: str | Path, *, backend: BackendConfig | None = None,
        force: bool = False, progress: bool = True) -> dict:
    """Judge ``cfg.solutions`` into ``out`` (resuming an interrupted run); returns metrics."""
    cfg.validate()
    model = cfg.kind == "model"
    backend = stage_backend(backend, cfg.model if model else None)
    factory = (BackendWorkerFactory(ModelJudgeWorker, cfg, backend) if model
               else partial(RuleJudgeWorker, cfg))
    files = Annotation(cfg.solutions,
                       summarize=lambda records, skipped: summarize(records, skipped, cfg.name))

    def finish(folder: Path, records: list[dict]) -> dict:
        logs = [entry for r in records for entry in r[cfg.name].pop("log", [])]
        if model:
            write_jsonl(folder / "judge_log.jsonl", logs)
        return files.finish(folder, records)

    return ShardedStage(
        config=stage_config("annotate-judge", cfg,
                            backend=backend.output_relevant() if model else None),
        inputs=files.inputs, read=files.read, factory=factory,
        finish=finish, shard_size=cfg.shard_size, executor=executor_options(backend),
        label=f"judge ({cfg.kind})",
    ).run(out, force=force, progress=progress)
