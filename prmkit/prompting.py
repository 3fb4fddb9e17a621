"""Turning a problem into the prompt a policy model sees.

Formats are named; their text lives in ``prmkit/prompts/`` as files, never inline strings.

    plain        the problem, a blank line, then the solution (``prompts/plain.txt``): for
                 base models; the toy world's tiny policy is trained on exactly this
    qwen-math    chat layout with the Qwen2.5-Math system prompt
                 (``prompts/qwen_math_system.txt``) and the problem as the user turn, rendered
                 with the model's own chat template
    FILE.txt     any template file with a ``{problem}`` placeholder, used as plain text
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from prmkit.errors import InputError

PROMPTS = Path(__file__).parent / "prompts"
FORMATS = {"plain": ("plain", "plain.txt"), "qwen-math": ("chat", "qwen_math_system.txt")}


@lru_cache(maxsize=None)
def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("prompt template not found", path=path) from None


def render(fmt: str, problem: str, tokenizer=None) -> str:
    if fmt in FORMATS:
        layout, name = FORMATS[fmt]
        text = _read(str(PROMPTS / name))
    elif fmt.endswith(".txt"):
        layout, text = "plain", _read(fmt)
    else:
        raise InputError(f"unknown prompt format {fmt!r}; use one of {sorted(FORMATS)} or a "
                         ".txt template file", field="prompt")
    if layout == "plain":
        if "{problem}" not in text:
            raise InputError("template has no {problem} placeholder", path=fmt, field="prompt")
        return text.replace("{problem}", problem)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise InputError(f"prompt format {fmt!r} needs a tokenizer with a chat template",
                         field="prompt")
    messages = [{"role": "system", "content": text}, {"role": "user", "content": problem}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
