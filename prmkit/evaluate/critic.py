"""Critic models on ProcessBench: critiques generated with ProcessBench's settings, and read
and voted on as its official script reads and votes (``prmkit eval processbench --critic``).

**Generation.** A critic reads the critique prompt (``--critic-prompt``: prmkit's
``prompts/processbench_critique.txt``, or a template file such as ProcessBench's official one,
filled with ``str.format`` after its surrounding whitespace is stripped, as the official script
does) as the user turn of its chat template, and writes ``samples`` critiques a solution, with
the sampling settings of a preset (``PRESETS``), each value overridable:

    processbench   8 samples, temperature 1.0, top-p 0.9        ProcessBench's, for most critics
    qwen-math      8 samples, temperature 0.7, top-p 0.8,       its setting for Qwen2.5-Math
                   top-k 20                                      instruct models

and at most 8192 new tokens (ProcessBench's; it gives QwQ 32768). Any backend runs it (``hf``,
``vllm``, ``openai``: ``prmkit.backends``), in resumable shards.

**The official vote** (``vote_official``). Each critique's answer is the content of its last
``\\boxed{...}`` as a raw string (up to the first closing brace, surrounding whitespace
stripped), None when it has none. The critiques that have one vote with that string as it is:
``"01"`` and ``"1"`` are different answers, and so are ``"\\text{2"`` and ``"2"``; the most
common string wins, a tie going to the string seen first. The prediction is that string read
as a Python integer, None where it is not one (then the item is a miss, as is an item none of
whose critiques boxes anything); an integer that names no paragraph (past the last, or below
-1) is simply wrong: it cannot equal the label. ``--vote prmkit`` reads and votes as the rest of
prmkit does instead (``prmkit.labels``: ``\\boxed{\\text{2}}`` is read, only indices of the
solution vote, ties go to the earliest error).

**Counted**, never fatal: each critique's outcome (``CRITIQUE_OUTCOMES``: ``ok``, ``no-index``
where no integer can be read, ``out-of-range``, ``truncated`` where the token limit cut it off
before an integer could be read) and each item's prediction (``ok``, ``no-index``,
``out-of-range``).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from prmkit import critique_prompt
from prmkit.backends import SamplingParams
from prmkit.errors import InputError
from prmkit.labels import read_critique, vote
from prmkit.prompting import PROMPTS, Prompt, chat_prompt

VOTES = ("official", "prmkit")
CRITIQUE_OUTCOMES = ("ok", "no-index", "out-of-range", "truncated")
PREDICTION_OUTCOMES = ("ok", "no-index", "out-of-range")
# the built-in critique prompts, by name
PROMPTS_BY_NAME = {"processbench": PROMPTS / "processbench_critique.txt"}
# ProcessBench's critics write long critiques: its script allows 8192 new tokens (QwQ: 32768)
MAX_NEW_TOKENS = 8192


@dataclass(frozen=True)
class CriticSampling:
    """How a critic samples its critiques of one solution."""
    samples: int
    temperature: float
    top_p: float
    top_k: int = 0           # 0: off
    max_new_tokens: int = MAX_NEW_TOKENS
    seed: int = 0

    def params(self) -> SamplingParams:
        return SamplingParams(n=self.samples, temperature=self.temperature, top_p=self.top_p,
                              top_k=self.top_k, max_new_tokens=self.max_new_tokens,
                              seed=self.seed)


# ProcessBench's voting settings (its run_eval.py); Qwen2.5-Math instruct models are sampled
# cooler, and only among their 20 likeliest tokens, "to ensure normal generation"
PRESETS = {
    "processbench": CriticSampling(samples=8, temperature=1.0, top_p=0.9),
    "qwen-math": CriticSampling(samples=8, temperature=0.7, top_p=0.8, top_k=20),
}


def sampling(preset: str, **overrides) -> CriticSampling:
    """A preset with the values given (not None) in place of its own."""
    if preset not in PRESETS:
        raise InputError(f"unknown critic settings {preset!r}; choose one of {sorted(PRESETS)}",
                         field="critic_settings")
    chosen = asdict(PRESETS[preset])
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    return CriticSampling(**chosen)


# --- reading and voting as ProcessBench's script does ------------------------------------------

# the content of \boxed{...} up to its first closing brace (no nesting: "\boxed{\text{2}}"
# reads "\text{2"), as the official script reads it
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")


def boxed_string(text: str) -> str | None:
    """The last ``\\boxed{...}`` content of a critique, stripped; None when there is none."""
    found = _BOXED.findall(text)
    return found[-1].strip() if found else None


def as_integer(answer: str | None) -> int | None:
    """A boxed answer read as Python's ``int`` reads a string ("+1", "01", "1_0" too); None
    when it is not an integer."""
    if answer is None:
        return None
    try:
        return int(answer)
    except ValueError:
        return None


def vote_official(critiques: Sequence[str]) -> int | None:
    """ProcessBench's prediction from one solution's critiques: the most common boxed string
    (ties: the one seen first), read as an integer; None when nothing is boxed or the winning
    string is not an integer. The index is not checked against the solution: one that names
    no paragraph is a prediction, and a wrong one."""
    answers = [a for a in map(boxed_string, critiques) if a is not None]
    if not answers:
        return None
    # a Counter counts in insertion order and most_common sorts stably: first seen wins a tie
    return as_integer(Counter(answers).most_common(1)[0][0])


def outcome(index: int | None, n_steps: int, finish_reason: str | None = None) -> str:
    """What one critique (or one prediction) gave: ``ok`` (-1 or a paragraph), ``out-of-range``
    (an integer naming none), ``truncated`` (cut off by the token limit before an integer), or
    ``no-index``."""
    if index is None:
        return "truncated" if finish_reason == "length" else "no-index"
    return "ok" if -1 <= index < n_steps else "out-of-range"


def read_official(text: str, n_steps: int, finish_reason: str | None = None) -> str:
    """The outcome of one critique as the official script reads it."""
    return outcome(as_integer(boxed_string(text)), n_steps, finish_reason)


def predict(critiques: Sequence[str], n_steps: int, *, how: str = "official",
            finish_reasons: Sequence[str] | None = None) -> tuple[int | None, list[str]]:
    """(prediction, each critique's outcome) of one solution's critiques, voted ``how``
    (``official`` or ``prmkit``)."""
    reasons = list(finish_reasons) if finish_reasons is not None else [None] * len(critiques)
    if how == "official":
        return (vote_official(critiques),
                [read_official(t, n_steps, r) for t, r in zip(critiques, reasons)])
    if how == "prmkit":
        read = [read_critique(t, n_steps, "boxed", r) for t, r in zip(critiques, reasons)]
        return vote([i for i, _ in read]), [s for _, s in read]
    raise InputError(f"unknown vote {how!r}; choose one of {list(VOTES)}", field="vote")


# --- generating critiques -------------------------------------------------------------------------

def prompt_path(name: str) -> Path:
    """A built-in critique prompt's file (``processbench``), else the path given."""
    return PROMPTS_BY_NAME[name] if name in PROMPTS_BY_NAME else Path(name)


def check_prompt(name: str) -> Path:
    path = prompt_path(name)
    critique_prompt.check_template(path, field="critic_prompt")
    return path


@dataclass(frozen=True)
class Critic:
    """A critic model and how it is asked (what makes its critiques what they are)."""
    model: str
    sampling: CriticSampling
    prompt: str = "processbench"
    chat: bool = True


class CriticWorker:
    """Writes one shard's critiques: ``{"id", "prompt_sha256", "critiques", "finish_reasons",
    "num_tokens"}`` an item, in the shard's order."""

    def __init__(self, critic: Critic, backend):
        self.critic, self.backend = critic, backend
        self.params = critic.sampling.params()
        self.template = prompt_path(critic.prompt)

    def prompt(self, item: dict) -> Prompt:
        text = critique_prompt.critique_prompt(item["problem"], item["steps"], self.template,
                                               strip=True)
        if not self.critic.chat:
            return Prompt(text)
        tokenizer = getattr(self.backend, "tokenizer", None)
        if tokenizer is not None and not getattr(tokenizer, "chat_template", None):
            # raw text would be another evaluation than ProcessBench's: said, never silent
            raise InputError("the critic's tokenizer has no chat template; --no-chat sends "
                             "the critique prompt as raw text", field="chat")
        # the user turn: templated here when the tokenizer is at hand, else by a chat server
        return chat_prompt([{"role": "user", "content": text}], tokenizer)

    def __call__(self, items: list[dict], index: int) -> list[dict]:
        prompts = [self.prompt(r) for r in items]
        fits = getattr(self.backend, "fits", None)
        if fits is not None:
            for item, ok in zip(items, fits(prompts)):
                if not ok:
                    raise InputError(f"the critique prompt of {item['id']!r} leaves the critic "
                                     "no room to write: its context is too short for "
                                     "ProcessBench", field="critic")
        outputs = self.backend.generate(prompts, self.params)
        return [{"id": item["id"], "prompt_sha256": hashlib.sha256(p.encode()).hexdigest(),
                 "critiques": [c.text for c in out],
                 "finish_reasons": [c.finish_reason for c in out],
                 "num_tokens": [c.num_tokens for c in out]}
                for item, p, out in zip(items, prompts, outputs)]


def generation_summary(critic: Critic, records: list[dict]) -> dict:
    """What the critic wrote: its settings, finish reasons and lengths."""
    reasons = Counter(r for rec in records for r in rec["finish_reasons"])
    tokens = [t for rec in records for t in rec["num_tokens"]]
    return {"model": critic.model, "prompt": critic.prompt, "chat": critic.chat,
            "sampling": asdict(critic.sampling), "critiques": len(tokens),
            "finish_reasons": dict(sorted(reasons.items())),
            "mean_tokens": sum(tokens) / len(tokens) if tokens else None,
            "max_tokens": max(tokens, default=None)}
