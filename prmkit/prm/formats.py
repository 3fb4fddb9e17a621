"""PRM input formats: how a known kind of PRM wants a problem and its steps laid out, and how
its step score is read. Chosen from a model folder's own config (``prm.json``, or the
architecture in ``config.json``), never from a model id.

    step-token        prmkit's default: the problem, a blank line, then every step followed
                      by a dedicated ``<|step|>`` token (added to the tokenizer) and a blank
                      line; score = the step head's positive class at the separator (named
                      ``prmkit`` before; a PRM folder saved under that name still loads)
    plain             the problem, a blank line, then the steps exactly as a policy writes
                      them, a blank line after each; the score is read at the first token of
                      that blank line. No token is inserted, so a PRM initialised from the
                      policy reads the very token sequence the policy wrote (a model that
                      copies across fixed distances, like the toy policy, is thrown off by one
                      inserted token a step)
    qwen2.5-math-prm  Qwen2.5-Math-PRM: chat layout with the system prompt "Please reason step
                      by step, and put your final answer within \\boxed{}.", the problem as the
                      user turn, the steps each followed by ``<extra_0>``, the conversation
                      tokenized whole as the model card does; score = softmax of the
                      two-label head at each ``<extra_0>``, positive class
    math-shepherd     Math-Shepherd: "question Step 1: ... ки\\nStep 2: ... ки" tokenized whole
                      after the tokenizer's BOS, as the model card's ``tokenizer.encode`` has it
                      (with SentencePiece, tokens depend on their neighbours); score =
                      softmax over the LM's logits of the ``+`` and ``-`` tokens at each ``ки``
    qwen2.5-math-rm   an outcome reward model read as a PRM (Qwen2.5-Math-RM-72B's layout:
                      architecture Qwen2ForRewardModel, a Qwen2 backbone and a two-layer head
                      with one output): every step prefix is a whole conversation of its own
                      (the system prompt above, the problem, the steps so far joined by blank
                      lines as the assistant's turn, tokenized whole as the model card does),
                      and the step's score is the sigmoid of the scalar reward at its last
                      token. One forward pass a prefix, since the closing tokens of the chat
                      template follow each prefix; sigmoid maps the unbounded reward into
                      (0, 1), so a reward of 0 is the threshold 0.5 and every threshold of a
                      ProcessBench sweep is a reward threshold too (the paper's ORM baseline)
    trl               a PRM trained by TRL's PRMTrainer (``AutoModelForTokenClassification``,
                      two labels): the tokenizer's BOS if it has one, the prompt, then every step
                      followed by the step separator ("\\n"), each piece tokenized on its own as
                      TRL does; score = softmax of the two labels at the separator, label 1
"""

from __future__ import annotations

from dataclasses import dataclass

from prmkit.errors import InputError


@dataclass(frozen=True)
class PRMFormat:
    name: str
    separator: str                 # the token after every step, where its score is read
    prompt: str                    # raw | plain | chat | shepherd (see prefix_text)
    score_from: str                # where a step's score is read: head (a step head),
                                   # lm-tokens (LM logits of good/bad tokens) or
                                   # token-classification (a two-label token classifier)
    before: str = "{step}"         # a step's text before the separator ({index} counts from 1)
    after: str = ""                # text after the separator
    add_separator: bool = False    # add the separator to a tokenizer that lacks it
    in_text: bool = False          # the separator is text the policy writes itself: read at
                                   # its first token, the rest of it follows as ``after``
    good_bad: str = ""             # lm-tokens: the text whose two tokens are (good, bad)
    bos: bool = False              # the tokenizer's BOS token first, where it has one
    whole_text: bool = False       # tokenize the whole text at once, as the model card does
                                   # (else each piece alone: prmkit.steps.encode_steps)
    per_prefix: bool = False       # an outcome model: each step prefix is a text of its own,
                                   # read at its last token (no separator; never trained here)


PRM_FORMATS = {
    "step-token": PRMFormat("step-token", "<|step|>", prompt="plain", score_from="head",
                            after="\n\n", add_separator=True),
    "plain": PRMFormat("plain", "\n\n", prompt="plain", score_from="head", in_text=True),
    # added when a backbone lacks it (Qwen2.5-Math-Instruct does; its embedding matrix has
    # spare rows, so the vocabulary grows without a resize)
    "qwen2.5-math-prm": PRMFormat("qwen2.5-math-prm", "<extra_0>", prompt="chat",
                                  score_from="head", whole_text=True, add_separator=True),
    # the model card runs tokenizer.encode(f"{question} {output}"): its BOS comes first
    "math-shepherd": PRMFormat("math-shepherd", "ки", prompt="shepherd",
                               score_from="lm-tokens", before="Step {index}: {step} ",
                               after="\n", good_bad="+ -", bos=True, whole_text=True),
    # the steps are the assistant's response, joined as a policy writes them
    "qwen2.5-math-rm": PRMFormat("qwen2.5-math-rm", "", prompt="chat", score_from="head",
                                 whole_text=True, per_prefix=True),
    "trl": PRMFormat("trl", "\n", prompt="raw", score_from="token-classification", bos=True),
}
# names a PRM folder's prm.json may hold from before a rename: "prmkit" was also the name of
# prmkit's own data format (prmkit.formats), so the PRM format took a name of its own
LEGACY_FORMAT_NAMES = {"prmkit": "step-token"}
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def get_format(name: str) -> PRMFormat:
    if name not in PRM_FORMATS:
        raise InputError(f"unknown PRM format {name!r}; known: {sorted(PRM_FORMATS)}",
                         field="format")
    return PRM_FORMATS[name]


def trainable_formats() -> list[str]:
    """The formats prmkit trains: a step head read at a separator."""
    return [k for k, f in PRM_FORMATS.items() if f.score_from == "head" and not f.per_prefix]


def chat_messages(problem: str) -> list[dict]:
    return [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": problem}]


def _chat_template(fmt: PRMFormat, tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"the {fmt.name} format needs a tokenizer with a chat template",
                         field="format")


def conversation_text(fmt: PRMFormat, problem: str, steps: list[str], tokenizer) -> str:
    """A per-prefix format's whole text of one prefix: the conversation closed after the
    assistant's response, as the outcome model's card builds it."""
    _chat_template(fmt, tokenizer)
    messages = [*chat_messages(problem), {"role": "assistant", "content": "\n\n".join(steps)}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def prefix_text(fmt: PRMFormat, problem: str, tokenizer) -> str:
    if fmt.prompt == "raw":
        return problem
    if fmt.prompt == "plain":
        return problem + "\n\n"
    if fmt.prompt == "shepherd":
        return problem + " "
    _chat_template(fmt, tokenizer)
    return tokenizer.apply_chat_template(chat_messages(problem), tokenize=False,
                                         add_generation_prompt=True)


def separator_id(fmt: PRMFormat, tokenizer) -> int:
    """The separator's token id; a format that owns its separator adds it when missing. A
    per-prefix format has none: -1."""
    if fmt.per_prefix:
        return -1
    if fmt.in_text:
        return tokenizer(fmt.separator, add_special_tokens=False)["input_ids"][0]
    vocab = tokenizer.get_vocab()
    if fmt.separator in vocab:
        return vocab[fmt.separator]
    if fmt.add_separator:
        tokenizer.add_special_tokens({"additional_special_tokens": [fmt.separator]})
        return tokenizer.convert_tokens_to_ids(fmt.separator)
    ids = tokenizer(fmt.separator, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise InputError(f"the tokenizer has no single token for the step separator "
                         f"{fmt.separator!r} ({len(ids)} tokens)", field="format")
    return ids[0]


def after_text(fmt: PRMFormat, tokenizer) -> str:
    """The text after each step's separator token: the format's own, or for a separator that is
    part of the text, the rest of that text (one "\\n" for a character tokenizer's "\\n\\n")."""
    if not fmt.in_text:
        return fmt.after
    ids = tokenizer(fmt.separator, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[1:]) + fmt.after if len(ids) > 1 else fmt.after


def good_bad_ids(fmt: PRMFormat, tokenizer) -> tuple[int, int]:
    ids = tokenizer(fmt.good_bad, add_special_tokens=False)["input_ids"]
    if len(ids) != 2:
        raise InputError(f"{fmt.good_bad!r} is not two tokens for this tokenizer",
                         field="format")
    return ids[0], ids[1]
