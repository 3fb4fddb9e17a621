"""The step contract: how a solution text becomes steps, and steps become tokens.

Steps are paragraphs: a policy's completion is split on blank lines ("\\n\\n"), as ProcessBench and
the Qwen PRM papers do; blank paragraphs are dropped. A step keeps its spaces (only stray
newlines at its ends go): Monte Carlo rollouts continue from ``join_steps(steps[:k])``, and that
must be the exact text the policy wrote, not a tidied one it never saw. Training and scoring
build their token layouts from these same steps, through ``encode_steps`` below.
"""

from __future__ import annotations

from dataclasses import dataclass

from prmkit.errors import InputError

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


def encode_whole_text(tokenizer, prefix: str, steps: list[str], separator: str,
                      separator_id: int, *, before: str = "{step}", after: str = "",
                      max_length: int | None = None) -> StepTokens:
    """The same layout as ``encode_steps``, but the whole text tokenized at once, the way model
    cards score (Qwen2.5-Math-PRM's one conversation string, Math-Shepherd's
    ``tokenizer.encode(f"{question} {output}")``).

    For a tokenizer whose tokens depend on their neighbours (SentencePiece's word-initial "▁",
    byte-level BPE merging a prompt's last newline with a step's first spaces), this is the
    token sequence such a model was trained on; ``encode_steps`` can differ at piece borders.
    The separator's position comes from the tokenizer's character offsets, and the token found
    there must be the separator: a separator that merges with its neighbours is an error, never
    a silently shifted score."""
    text, block_starts, separator_at, block_ends = prefix, [], [], []
    for i, step in enumerate(steps):
        block_starts.append(len(text))
        text += before.replace("{step}", step).replace("{index}", str(i + 1))
        separator_at.append(len(text))
        text += separator + after
        block_ends.append(len(text))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]

    def token_at(char: int) -> int:  # the first token that ends after this character
        return next((t for t, (_, end) in enumerate(offsets) if end > char), len(ids))

    positions, starts = [], []
    kept_tokens = token_at(len(prefix) - 1) + 1 if prefix else 0
    for i in range(len(steps)):
        position = token_at(separator_at[i])
        if position >= len(ids) or ids[position] != separator_id:
            raise InputError(f"the step separator {separator!r} is not one token where step "
                             f"{i + 1} ends in this tokenizer's encoding of the whole text",
                             field="format")
        needed = token_at(block_ends[i] - 1) + 1
        if max_length is not None and needed > max_length:
            return StepTokens(ids[:kept_tokens], positions, len(steps) - i, starts)
        positions.append(position)
        starts.append(token_at(block_starts[i]))
        kept_tokens = needed
    return StepTokens(ids[:kept_tokens], positions, 0, starts)
