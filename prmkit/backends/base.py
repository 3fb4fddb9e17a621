"""The generation interface every backend implements.

    backend.generate(prompts, params) -> list[list[Completion]]

Batch-first (one call takes every prompt of a stage, the backend decides how to batch), outputs
in input order, exactly ``params.n`` completions a prompt: ``check_outputs`` enforces the counts
so that a backend bug can never shift a rollout onto the wrong prompt. Sampling parameters are a
value object, as in vLLM, so one backend serves requests with different settings.

Sampling is reproducible per completion: the j-th sample of a prompt draws its randomness from a
seed derived from (``params.seed``, the prompt text, j), so it does not depend on batching, on the
order of prompts or on how many workers run them.

Filters apply as in vLLM and transformers: the temperature first, then ``top_k`` (the k most
likely tokens; 0 = off, so a call that does not ask for it samples exactly as before), then
``top_p`` on what is left. Every backend honours ``top_k``: hf filters the logits itself,
vllm passes it to its engine, openai sends it as vLLM's extra ``top_k`` field, only when set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prmkit.errors import InputError


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1                    # completions a prompt
    temperature: float = 1.0      # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()    # stop strings (not included in the text); EOS always stops
    top_k: int = 0                # sample among the k most likely tokens; 0 = off (vLLM: -1)

    def __post_init__(self) -> None:
        checks = {
            "n": isinstance(self.n, int) and self.n >= 1,
            "temperature": self.temperature >= 0,
            "top_p": 0 < self.top_p <= 1,
            "max_new_tokens": isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1,
            "top_k": isinstance(self.top_k, int) and not isinstance(self.top_k, bool)
                     and self.top_k >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"invalid sampling parameter {getattr(self, name)!r}", field=name)
        object.__setattr__(self, "stop", tuple(self.stop))

    def row_seed(self, prompt: str, sample: int) -> int:
        digest = hashlib.blake2b(f"{self.seed}\0{sample}\0{prompt}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str   # "stop" (EOS or a stop string) or "length" (ran out of tokens)
    num_tokens: int      # tokens generated


class Backend(Protocol):
    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Completion]]:
        ...

    def close(self) -> None:
        ...


def check_outputs(prompts: Sequence[str], params: SamplingParams,
                  outputs: list[list[Completion]]) -> list[list[Completion]]:
    if len(outputs) != len(prompts):
        raise RuntimeError(f"backend returned {len(outputs)} results for {len(prompts)} prompts")
    for i, out in enumerate(outputs):
        if len(out) != params.n:
            raise RuntimeError(f"backend returned {len(out)} completions for prompt {i}, "
                               f"expected {params.n}")
    return outputs


def prompt_texts(prompts: Sequence[str]) -> list[str]:
    """The text a model reads for each prompt; a chat prompt made without its tokenizer's
    template (``prompting.Prompt.templated``) has none, and is an error here."""
    for i, prompt in enumerate(prompts):
        if not getattr(prompt, "templated", True):
            raise InputError(f"prompt {i} is a chat conversation, but the model's tokenizer has "
                             "no chat template to render it", field="prompt")
    return [str(p) for p in prompts]
