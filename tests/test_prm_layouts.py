"""Saved PRMs in the layouts the field reads (prmkit.prm.model.save_prm), checked without
prmkit: the Qwen2.5-Math-PRM model card's own procedure on real ProcessBench items with the real
Qwen2.5 vocabulary, and transformers' AutoModelForTokenClassification for other backbones."""
from __future__ import annotations

import json

import pytest
from helpers import (
    CHATML,
    PRM_STEPS,
    bpe_tokenizer,
    model_card_scores,
    qwen_tokenizer,
    release_folder,
    tiny_qwen2,
)

from prmkit.prm.model import build_prm, load_prm, save_prm
from prmkit.prm.score import encode, score
from prmkit.prm.train import TrainConfig, train
from prmkit.records import write_jsonl


def qwen_prm_tokenizer():
    """The real Qwen2.5 vocabulary with Qwen2.5-Math-PRM's step token and the ChatML layout."""
    tokenizer = qwen_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    tokenizer.chat_template = CHATML
    tokenizer.padding_side = "right"
    return tokenizer


def real_items(processbench_items, n: int = 12) -> list[dict]:
    """Items from every subset, LaTeX and Unicode included, of varied length."""
    by_subset = {}
    for item in processbench_items:
        by_subset.setdefault(item["subset"], []).append(item)
    picked = []
    for items in by_subset.values():
        items = sorted(items, key=lambda r: len("".join(r["steps"])))
        picked += [items[i * (len(items) - 1) // 2] for i in range(3)]  # short, middle, long
    return picked[:n]


@pytest.mark.slow
def test_a_qwen_prm_release_scores_as_its_model_card_on_real_processbench(tmp_path,
                                                                          processbench_items):
    tokenizer = qwen_prm_tokenizer()
    folder = release_folder(tmp_path, tokenizer)
    prm = load_prm(folder, dtype="float32", device="cpu")
    assert prm.format.name == "qwen2.5-math-prm"
    items = real_items(processbench_items)
    ours = score([i["problem"] for i in items], [i["steps"] for i in items], prm, batch_size=4)
    for item, mine in zip(items, ours):
        card = model_card_scores(folder, item["problem"], item["steps"])
        assert len(card) == len(item["steps"]) == len(mine), item["id"]
        assert max(abs(a - b) for a, b in zip(mine, card)) < 1e-4, item["id"]


@pytest.mark.slow
def test_a_prm_trained_on_qwen2_saves_as_the_release_and_scores_as_its_model_card(
        tmp_path, processbench_items):
    """prmkit trains a PRM on a Qwen2 backbone in the qwen2.5-math-prm format; the saved folder
    has the release's architecture, head names and step token, and the model card's procedure
    gives prmkit's scores, after save and load."""
    from safetensors import safe_open
    from transformers import Qwen2ForCausalLM

    tokenizer = qwen_prm_tokenizer()
    Qwen2ForCausalLM(tiny_qwen2(tokenizer)).save_pretrained(tmp_path / "backbone")
    tokenizer.save_pretrained(tmp_path / "backbone")
    items = real_items(processbench_items)
    write_jsonl(tmp_path / "data.jsonl", items)
    cfg = TrainConfig(data=str(tmp_path / "data.jsonl"), labels="label",
                      model=str(tmp_path / "backbone"), format="qwen2.5-math-prm", max_steps=3,
                      batch_size=4, lr=1e-3, eval_fraction=0.0, device="cpu", bf16=False)
    train(cfg, tmp_path / "run", progress=False)
    folder = tmp_path / "run" / "final"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForProcessRewardModel"]
    from transformers import AutoConfig
    assert AutoConfig.from_pretrained(folder).num_labels == 2  # two is the default: not written
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        head = sorted(k for k in f.keys() if not k.startswith("model."))
    assert head == ["score.0.bias", "score.0.weight", "score.2.bias", "score.2.weight"]
    prm = load_prm(folder, dtype="float32", device="cpu")
    assert prm.format.name == "qwen2.5-math-prm"
    assert prm.tokenizer.convert_ids_to_tokens(prm.separator_id) == "<extra_0>"
    ours = score([i["problem"] for i in items], [i["steps"] for i in items], prm, batch_size=4)
    for item, mine in zip(items, ours):
        card = model_card_scores(folder, item["problem"], item["steps"])
        assert max(abs(a - b) for a, b in zip(mine, card)) < 1e-4, item["id"]
    assert len({round(x, 6) for s in ours for x in s}) > 10  # trained: scores vary by step


def test_a_prm_on_another_backbone_loads_in_plain_transformers_with_its_head(tmp_path):
    """A Llama backbone gets the one-layer head and is saved as LlamaForTokenClassification:
    AutoModelForTokenClassification loads every tensor (nothing missing, nothing unused) and its
    softmax at each separator is prmkit's score."""
    import torch
    from transformers import AutoModelForTokenClassification, LlamaConfig
    tokenizer = bpe_tokenizer()
    tokenizer.padding_side = "right"
    config = LlamaConfig(vocab_size=len(tokenizer) + 8, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    prm = build_prm(config, tokenizer, seed=3)
    assert prm.module.head_layers == 1
    with torch.no_grad():  # a head that is not near zero, so the check has teeth
        prm.module.score[0].weight.normal_(0, 1.0)
    problem = "Ann has 7 coins."
    [ours] = score([problem], [PRM_STEPS], prm)
    save_prm(prm, tmp_path / "prm")
    saved = json.loads((tmp_path / "prm" / "config.json").read_text())
    assert saved["architectures"] == ["LlamaForTokenClassification"]
    model, info = AutoModelForTokenClassification.from_pretrained(
        tmp_path / "prm", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    tokens = encode(prm, problem, PRM_STEPS)
    with torch.no_grad():
        logits = model.eval()(input_ids=torch.tensor([tokens.input_ids])).logits[0]
    plain = torch.softmax(logits[tokens.positions], -1)[:, 1].tolist()
    assert plain == pytest.approx(ours, abs=1e-5)
    assert score([problem], [PRM_STEPS], load_prm(tmp_path / "prm"))[0] == \
        pytest.approx(ours, abs=1e-5)
