"""The step contract: how a solution text becomes steps, and steps become tokens.

Steps are paragraphs: a policy's completion is split on blank lines ("\\n\\n"), as ProcessBench and
the Qwen PRM papers do; blank paragraphs are dropped. A step keeps its spaces (only stray
newlines at its ends go): Monte Carlo rollouts continue from ``join_steps(steps[:k])``, and that
must be the exact text the policy wrote, not a tidied one it never saw. Training and scoring
build their token layouts from these same steps, through ``encode_steps`` below.
"""

from __future__ import annotations

from dataclasses import dataclass

STEP_SEPARATOR = "\n\n"


def split_steps(text: str) -> list[str]:
    return [s.strip("\n") for s in text.split(STEP_SEPARATOR) if s.strip()]


def join_steps(steps: list[str]) -> str:
    return STEP_SEPARATOR.join(steps)


# --- the token side: where a PRM reads each step's score ---------------------------------------

@dataclass(frozen=True)
class StepTokens:
    """A problem and its steps as token ids, with the position of every kept step's separator.

    ``positions[i]`` is the index in ``input_ids`` where step i's label is trained and its score
    is read; ``starts[i]`` where step i's own tokens begin (they run up to its separator);
    ``dropped`` trailing steps did not fit ``max_length`` and have no position."""
    input_ids: list[int]
    positions: list[int]
    dropped: int
    starts: list[int] = ()

    def step_mask(self) -> list[bool]:
        """True at every token of a step's own text (never the prompt or a separator)."""
        mask = [False] * len(self.input_ids)
        for start, end in zip(self.starts, self.positions):
            mask[start:end] = [True] * (end - start)
        return mask


def encode_steps(tokenizer, prefix: str, steps: list[str], separator_id: int, *,
                 before: str = "{step}", after: str = "", max_length: int | None = None
                 ) -> StepTokens:
    """Token ids of ``prefix``, then for every step ``before`` (with the step), the separator
    token and ``after``.

    Each piece is tokenized on its own and the ids are concatenated, so a step's separator can
    never merge with its neighbours and its position is exact for any tokenizer. Training and
    scoring both call this, which is what makes the positions scored the positions trained.
    Whole trailing steps are dropped when the next one would pass ``max_length``."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    out = ids(prefix)
    positions: list[int] = []
    starts: list[int] = []
    for i, step in enumerate(steps):
        head = ids(before.replace("{step}", step).replace("{index}", str(i + 1)))
        tail = ids(after)
        if max_length is not None and len(out) + len(head) + 1 + len(tail) > max_length:
            return StepTokens(out, positions, len(steps) - i, starts)
        starts.append(len(out))
        out = out + head + [separator_id] + tail
        positions.append(len(out) - 1 - len(tail))
    return StepTokens(out, positions, 0, starts)
