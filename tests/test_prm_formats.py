"""The step contract of each PRM format (prmkit.prm.formats): every step is read at its own
position, on a character, a BPE and the real Qwen2.5 vocabulary; truncation drops whole steps."""
from __future__ import annotations

import pytest
from helpers import PRM_STEPS, bpe_tokenizer, char_tokenizer, qwen_tokenizer

from prmkit.prm.formats import PRM_FORMATS, after_text, prefix_text, separator_id
from prmkit.steps import encode_steps, join_steps

TOKENIZERS = {"char": char_tokenizer, "bpe": bpe_tokenizer, "qwen2.5": qwen_tokenizer}


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_every_step_is_scored_at_its_own_separator(kind):
    tokenizer = TOKENIZERS[kind]()
    fmt = PRM_FORMATS["step-token"]
    sep = separator_id(fmt, tokenizer)  # added: none of these has <|step|>
    assert tokenizer.convert_ids_to_tokens(sep) == "<|step|>"
    tokens = encode_steps(tokenizer, "Ann has 7 coins.\n\n", PRM_STEPS, sep, after=fmt.after)
    ids, positions = tokens.input_ids, tokens.positions
    assert len(positions) == len(PRM_STEPS) and tokens.dropped == 0
    assert [ids[p] for p in positions] == [sep] * len(PRM_STEPS)
    assert ids.count(sep) == len(PRM_STEPS)
    # the tokens between two separators decode to exactly that step (and the blank line)
    starts = [len(tokenizer("Ann has 7 coins.\n\n", add_special_tokens=False)["input_ids"])]
    starts += [p + 1 for p in positions[:-1]]
    for step, start, end in zip(PRM_STEPS, starts, positions):
        text = tokenizer.decode(ids[start:end])
        assert text.replace("\n\n", "", 1 if start != starts[0] else 0) == step or \
            text.lstrip("\n") == step


def test_truncation_drops_whole_trailing_steps_and_says_how_many():
    tokenizer = char_tokenizer()
    sep = separator_id(PRM_FORMATS["step-token"], tokenizer)
    full = encode_steps(tokenizer, "P\n\n", PRM_STEPS, sep)
    cut = encode_steps(tokenizer, "P\n\n", PRM_STEPS, sep, max_length=full.positions[1] + 5)
    assert cut.positions == full.positions[:2] and cut.dropped == 2
    assert cut.input_ids == full.input_ids[:full.positions[1] + 1]


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_the_plain_format_reads_the_policy_text_with_nothing_inserted(kind):
    tokenizer = TOKENIZERS[kind]()
    fmt = PRM_FORMATS["plain"]
    size = len(tokenizer)
    sep = separator_id(fmt, tokenizer)
    assert len(tokenizer) == size  # no token added
    prefix = prefix_text(fmt, "Ann has 7 coins.", tokenizer)
    tokens = encode_steps(tokenizer, prefix, PRM_STEPS, sep, after=after_text(fmt, tokenizer))
    # exactly the text a policy wrote: the prompt, the steps and blank lines between them
    assert tokenizer.decode(tokens.input_ids) == prefix + join_steps(PRM_STEPS) + "\n\n"
    for step, start, end in zip(PRM_STEPS, tokens.starts, tokens.positions):
        assert tokenizer.decode(tokens.input_ids[start:end]) == step
        assert tokenizer.decode(tokens.input_ids[end:end + 1]).startswith("\n")
    mask = tokens.step_mask()
    assert sum(mask) == sum(e - s for s, e in zip(tokens.starts, tokens.positions))
    assert not any(mask[p] for p in tokens.positions)

