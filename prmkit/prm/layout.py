"""How a solution is laid out for a PRM: its format's text, as token ids, with the position
where every step's score is read (``encode``), or, for an outcome model, one text a step
prefix (``encode_prefixes``). Training, local scoring, the reward server and a served PRM's
client all lay solutions out here, so that the positions trained are the positions read.

``prm`` is anything with the PRM's ``format``, ``tokenizer``, ``separator_id`` and
``module.config`` (a loaded PRM, or a stand-in that holds only those).
"""

from __future__ import annotations

from prmkit.prm.formats import after_text, conversation_text, prefix_text
from prmkit.steps import StepTokens, encode_steps, encode_whole_text


def encode(prm, problem: str, steps: list[str], max_length: int | None = None) -> StepTokens:
    fmt = prm.format
    if max_length is None:
        max_length = getattr(prm.module.config, "max_position_embeddings", None)
    bos = prm.tokenizer.bos_token_id if fmt.bos else None
    room = None if max_length is None or bos is None else max_length - 1
    prefix, after = prefix_text(fmt, problem, prm.tokenizer), after_text(fmt, prm.tokenizer)
    if fmt.whole_text:
        tokens = encode_whole_text(prm.tokenizer, prefix, steps, fmt.separator,
                                   prm.separator_id, before=fmt.before, after=after,
                                   max_length=room if bos is not None else max_length)
    else:
        tokens = encode_steps(prm.tokenizer, prefix, steps, prm.separator_id,
                              before=fmt.before, after=after,
                              max_length=room if bos is not None else max_length)
    if bos is None:
        return tokens
    return StepTokens([bos] + tokens.input_ids, [p + 1 for p in tokens.positions],
                      tokens.dropped, [s + 1 for s in tokens.starts])


def encode_prefixes(prm, problem: str, steps: list[str], max_length: int | None = None
                    ) -> list[StepTokens]:
    """An outcome model's texts (a per-prefix format): one for every step prefix, each read
    at its last token. The prefixes past ``max_length`` are left out, with all after them."""
    if max_length is None:
        max_length = getattr(prm.module.config, "max_position_embeddings", None)
    encoded = []
    for k in range(1, len(steps) + 1):
        text = conversation_text(prm.format, problem, steps[:k], prm.tokenizer)
        ids = prm.tokenizer(text, add_special_tokens=False)["input_ids"]
        if max_length is not None and len(ids) > max_length:
            break
        encoded.append(StepTokens(ids, [len(ids) - 1], 0))
    return encoded
