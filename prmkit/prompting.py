"""Turning a problem into the prompt a policy model sees.

Formats are named; their text lives in ``prmkit/prompts/`` as files, never inline strings.

    plain        the problem, a blank line, then the solution (``prompts/plain.txt``): for
                 base models; the toy world's tiny policy is trained on exactly this
    qwen-math    chat layout with the Qwen2.5-Math system prompt
                 (``prompts/qwen_math_system.txt``) and the problem as the user turn, rendered
                 with the model's own chat template (or, with no tokenizer at hand, kept as
                 messages for a chat API server to render)
    FILE.txt     any template file with a ``{problem}`` placeholder, used as plain text
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from prmkit.errors import InputError

PROMPTS = Path(__file__).parent / "prompts"
FORMATS = {"plain": ("plain", "plain.txt"), "qwen-math": ("chat", "qwen_math_system.txt")}


@lru_cache(maxsize=None)
def read_template(path: str) -> str:
    """A prompt template file's text (read once)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("prompt template not found", path=path) from None


class Prompt(str):
    """A prompt: its exact text (what a local model reads, what seeds and logs use) and, for a
    chat layout, the messages it was made from, so that a chat API server, which applies the
    chat template itself, can be sent the conversation instead of the text.

    ``templated`` says the text is the chat template applied to the messages (a tokenizer was
    at hand); without one the text only names the conversation, and a completions API, which
    reads text, cannot take it. A partial assistant answer is the last message, to be
    continued (``continue_final_message``), never answered anew."""

    messages: tuple = ()
    templated: bool = True

    def __new__(cls, text: str, messages=(), templated: bool = True):
        self = super().__new__(cls, text)
        self.messages, self.templated = tuple(messages), templated
        return self

    def __reduce__(self):  # to worker processes and Ray actors with its messages
        return (Prompt, (str(self), self.messages, self.templated))


def chat_prompt(messages: list[dict], tokenizer=None, partial: str = "") -> Prompt:
    """The conversation ready for the assistant's turn, ``partial`` being the start of that
    turn: the template's text plus ``partial`` when ``tokenizer`` has a chat template (byte
    for byte what a server's ``continue_final_message`` makes of the same messages)."""
    full = list(messages) + ([{"role": "assistant", "content": partial}] if partial else [])
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return Prompt(json.dumps(full, ensure_ascii=False), full, templated=False)
    text = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=True)
    return Prompt(text + partial, full)


def render(fmt: str, problem: str, tokenizer=None, partial: str = "") -> Prompt:
    """The prompt of ``problem`` in format ``fmt``, followed by ``partial`` (the steps a Monte
    Carlo rollout continues from)."""
    if fmt in FORMATS:
        layout, name = FORMATS[fmt]
        text = read_template(str(PROMPTS / name))
    elif fmt.endswith(".txt"):
        layout, text = "plain", read_template(fmt)
    else:
        raise InputError(f"unknown prompt format {fmt!r}; use one of {sorted(FORMATS)} or a "
                         ".txt template file", field="prompt")
    if layout == "plain":
        if "{problem}" not in text:
            raise InputError("template has no {problem} placeholder", path=fmt, field="prompt")
        return Prompt(text.replace("{problem}", problem) + partial)
    messages = [{"role": "system", "content": text}, {"role": "user", "content": problem}]
    return chat_prompt(messages, tokenizer, partial)
