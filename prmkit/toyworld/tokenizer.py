"""A character-level tokenizer built with ``tokenizers``, wrapped as a ``PreTrainedTokenizerFast``.

One token a character (printable ASCII and the newline), so the tiny policy sees digits one by one
and every string round-trips exactly: no normaliser, no spaces added on decode, no clean-up.
Characters outside the alphabet become ``<unk>``.

Load a saved one with ``PreTrainedTokenizerFast.from_pretrained``, never ``AutoTokenizer``: a
folder whose model config says ``qwen2`` makes ``AutoTokenizer`` build Qwen's own tokenizer
class, which silently replaces this one (``prmkit.models.load_tokenizer`` does the right thing).
"""

from __future__ import annotations

import string

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))


def build_char_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *ALPHABET])}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # every character is its own "word" ([\s\S] so that the newline is one too)
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK,
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=1024)


assert set(string.digits + "+-*/=\\{}") <= set(ALPHABET)
