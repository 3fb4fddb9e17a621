"""Saved PRMs in the layouts the field reads (prmkit.prm.model.save_prm), checked without
prmkit: the Qwen2.5-Math-PRM model card's own procedure on real ProcessBench items with the real
Qwen2.5 vocabulary, and transformers' AutoModelForTokenClassification for other backbones; the
modeling file a folder of a custom layout carries, run by AutoModel with trust_remote_code in a
process that cannot import prmkit."""
from __future__ import annotations

import json

import pytest
from helpers import (
    CHATML,
    PRM_STEPS,
    QWEN_SYSTEM,
    bpe_tokenizer,
    char_tokenizer,
    model_card_scores,
    outcome_model_card_reward,
    qwen_tokenizer,
    release_folder,
    tiny_qwen2,
)

from prmkit.errors import InputError
from prmkit.prm.checks import check_prm_folder
from prmkit.prm.model import build_prm, load_prm, save_prm
from prmkit.prm.score import encode, padded_batch, score
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


def test_an_outcome_model_is_read_per_step_prefix_as_its_model_card_scores_a_response(
        tmp_path, processbench_items):
    """Qwen2.5-Math-RM-72B's layout (the paper's ORM baseline): step k's score is the sigmoid of
    the card's reward for the response cut after step k; prefixes past the context get None."""
    import math
    tokenizer = qwen_prm_tokenizer()
    folder = release_folder(tmp_path, tokenizer, "Qwen2ForRewardModel", outputs=1, name="orm")
    check_prm_folder(folder)
    orm = load_prm(folder, dtype="float32", device="cpu")
    assert orm.format.name == "qwen2.5-math-rm" and orm.module.head == "bce"
    items = real_items(processbench_items, n=4)
    ours = score([i["problem"] for i in items], [i["steps"] for i in items], orm, batch_size=3)
    for item, mine in zip(items, ours):
        card = [1 / (1 + math.exp(-outcome_model_card_reward(
            folder, item["problem"], "\n\n".join(item["steps"][:k]))))
            for k in range(1, len(item["steps"]) + 1)]
        assert len(mine) == len(card), item["id"]
        assert max(abs(a - b) for a, b in zip(mine, card)) < 1e-4, item["id"]
    # a context that holds the first prefixes only: the rest are never scored
    item = max(items, key=lambda i: len(i["steps"]))
    lengths = [len(tokenizer(tokenizer.apply_chat_template(
        [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": item["problem"]},
         {"role": "assistant", "content": "\n\n".join(item["steps"][:k])}], tokenize=False),
        add_special_tokens=False)["input_ids"]) for k in (1, 2)]
    [cut] = score([item["problem"]], [item["steps"]], orm, max_length=lengths[1] - 1)
    assert cut[0] is not None and all(s is None for s in cut[1:])
    with pytest.raises(InputError, match="choose one of"):
        TrainConfig(data="x", labels="mc.hard", model="m", format="qwen2.5-math-rm").validate()


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
    assert config["auto_map"]["AutoModel"].startswith("modeling_prmkit_qwen2_prm.")
    assert (folder / "modeling_prmkit_qwen2_prm.py").exists()  # trust_remote_code reads it
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
    assert "auto_map" not in saved and not list((tmp_path / "prm").glob("*.py"))  # no code
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


# --- a saved PRM's own code: AutoModel with trust_remote_code, where prmkit is not installed ---

# Run first in the child: prmkit's editable install puts a finder on sys.meta_path (a regular
# install would put the package in site-packages beside torch); the finder goes, and a finder
# ahead of all others refuses the name, so whatever the install, only the folder's own code can
# compute the numbers. The child proves it: ``import prmkit`` must fail.
NO_PRMKIT = '''
import importlib.abc, sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if "editable" not in getattr(f, "__name__", type(f).__name__).lower()]
class NoPrmkit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "prmkit":
            raise ModuleNotFoundError(f"no module named {name!r} here", name=name)
sys.meta_path.insert(0, NoPrmkit())
try:
    import prmkit
    raise SystemExit("prmkit is importable in the child")
except ModuleNotFoundError:
    pass
'''

# The child's work: the model card's procedure for a Qwen2.5-Math-PRM folder ("card"), or a
# prmkit-head folder's forward on token ids laid out by prmkit ("head"). It prints one JSON line.
CHILD = NO_PRMKIT + '''
import filecmp, inspect, json, pathlib
import torch
from transformers import AutoModel, AutoTokenizer
job = json.loads(pathlib.Path(sys.argv[1]).read_text())
out = []
for case in job:
    folder = case["folder"]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    code = pathlib.Path(inspect.getfile(type(model)))
    result = {"class": type(model).__name__, "module": type(model).__module__,
              "code_is_the_folders": filecmp.cmp(code, pathlib.Path(folder) / code.name, False)}
    if case["kind"] == "card":
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        step = tokenizer.encode("<extra_0>")[0]
        result["rewards"], result["input_ids"], result["shapes"] = [], [], []
        for problem, steps in zip(case["problems"], case["steps"]):
            messages = [{"role": "system", "content": case["system"]},
                        {"role": "user", "content": problem},
                        {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
            text = tokenizer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=False)
            input_ids = tokenizer.encode(text, return_tensors="pt")
            result["input_ids"].append(input_ids[0].tolist())
            with torch.no_grad():
                outputs = model(input_ids=input_ids)
            result["shapes"].append(list(outputs[0].shape))
            probabilities = torch.softmax(outputs[0].float(), dim=-1)
            result["rewards"].append(probabilities[0, input_ids[0] == step, 1].tolist())
    else:
        with torch.no_grad():
            outputs = model(input_ids=torch.tensor(case["input_ids"]),
                            step_mask=torch.tensor(case["step_mask"]))
        result["shape"] = list(outputs[0].shape)
        result["probabilities"] = [outputs.probabilities[row, positions].tolist()
                                   for row, positions in enumerate(case["positions"])]
    out.append(result)
out.append({"prmkit_modules": sorted(m for m in sys.modules if m.split(".")[0] == "prmkit")})
print(json.dumps(out))
'''


def without_prmkit(tmp_path, job: list[dict]) -> list[dict]:
    """The results of ``CHILD`` on ``job``, run in a fresh interpreter that cannot import
    prmkit: isolated mode (no PYTHONPATH, no user site, not the current folder on sys.path), a
    folder outside the repository as its working folder, ``NO_PRMKIT`` first, and transformers'
    copies of remote code in a folder of its own."""
    import os
    import subprocess
    import sys
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_MODULES_CACHE=str(tmp_path / "hf_modules"), HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, "-I", "-c", CHILD, str(tmp_path / "job.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    *results, modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert modules == {"prmkit_modules": []}
    return results


# solutions with LaTeX, Unicode and a long step, as real ones have
CARD_ITEMS = [("Ann has 7 coins.", PRM_STEPS),
              ("Compute $\\int_0^1 x^2\\,dx$ and $\\sqrt{16}$.",
               ["We have $\\int_0^1 x^2\\,dx = \\frac{1}{3}$.", "√16 = 4, so the sum is 4⅓.",
                "Hence " + "the total, step by step, " * 12 + "is $\\boxed{\\frac{13}{3}}$."]),
              ("Solve 2x+3=11.", ["2x = 8", "x = 4", "The answer is \\boxed{4}."])]


def test_a_saved_release_loads_with_its_own_code_where_prmkit_is_not_installed(tmp_path):
    """A PRM prmkit saves in the Qwen2.5-Math-PRM layout carries its modeling file and an
    auto_map: ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` in a process without
    prmkit builds the PRM (not the bare Qwen2 decoder), and the model card's procedure
    (AutoTokenizer, the chat template, ``outputs[0]`` at every <extra_0>, softmax, class 1)
    gives prmkit's step scores."""
    import torch
    tokenizer = qwen_prm_tokenizer()
    prm = build_prm(tiny_qwen2(tokenizer), tokenizer, fmt="qwen2.5-math-prm", seed=5)
    with torch.no_grad():  # a head far from its start, so the check has teeth
        for parameter in prm.module.score.parameters():
            parameter.normal_(0, 0.5)
    folder = save_prm(prm, tmp_path / "qwen-prm")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert config["architectures"] == ["Qwen2ForProcessRewardModel"]
    assert config["auto_map"] == {
        "AutoModel": "modeling_prmkit_qwen2_prm.Qwen2ForProcessRewardModel"}
    problems, steps = [p for p, _ in CARD_ITEMS], [s for _, s in CARD_ITEMS]
    loaded = load_prm(folder, dtype="float32", device="cpu")
    ours = score(problems, steps, loaded)
    [card] = without_prmkit(tmp_path, [{"kind": "card", "folder": str(folder),
                                        "system": QWEN_SYSTEM, "problems": problems,
                                        "steps": steps}])
    assert card["class"] == "Qwen2ForProcessRewardModel"
    assert card["module"].startswith("transformers_modules.") and card["code_is_the_folders"]
    for problem, s, input_ids in zip(problems, steps, card["input_ids"]):
        # transformers 5's AutoTokenizer builds its own Qwen2Tokenizer from the saved files:
        # with Qwen2.5's vocabulary, the very tokens prmkit scores (and the card's turn end)
        mine = encode(loaded, problem, s).input_ids
        assert input_ids[:len(mine)] == mine and len(input_ids) == len(mine) + 2
    for shape, rewards, mine, s in zip(card["shapes"], card["rewards"], ours, steps):
        assert shape[0] == 1 and shape[2] == 2
        assert len(rewards) == len(mine) == len(s)
        assert max(abs(a - b) for a, b in zip(rewards, mine)) < 1e-4
    assert len({round(x, 4) for s in ours for x in s}) > 5  # the head tells steps apart


def test_a_prmkit_head_loads_with_its_own_code_where_prmkit_is_not_installed(tmp_path):
    """PRMs saved in prmkit's own layout (here the likelihood readout, with an LM head of its
    own on Qwen2 and a tied one on Llama) carry their modeling file too: AutoModel with
    trust_remote_code builds the backbone and the step head, and its ``probabilities`` at the
    separators are prmkit's scores."""
    import torch
    from transformers import LlamaConfig
    tokenizer = char_tokenizer()
    tokenizer.padding_side = "right"
    qwen = tiny_qwen2(tokenizer, tie_word_embeddings=False)
    qwen.max_position_embeddings = 1024
    llama = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                        tie_word_embeddings=True)
    problems = ["Ann has 7 coins.", "Bo has 2."]
    steps = [PRM_STEPS, PRM_STEPS[:2]]
    job, expected = [], []
    # the default head on Llama has one layer: with the likelihood readout, prmkit's layout too
    for name, config, head, fmt, layers in (("qwen-head", qwen, "bce", "plain", 2),
                                            ("llama-head", llama, "ce", "step-token", 1)):
        prm = build_prm(config, tokenizer, head=head, fmt=fmt, readout="likelihood", seed=7)
        encoded = [encode(prm, p, s) for p, s in zip(problems, steps)]
        ids, step_mask = padded_batch(encoded, tokenizer.pad_token_id)
        with torch.no_grad():  # a head far from its start that weighs the likelihood heavily,
            for parameter in prm.module.score.parameters():  # centred: scores far from 0 and 1
                parameter.normal_(0, 0.5)
            prm.module.likelihood.weight.normal_(0, 4.0)
            logits = prm.module(ids, None, step_mask)[0, encoded[0].positions]
            prm.module.likelihood.bias.sub_(logits.mean(0))
        folder = save_prm(prm, tmp_path / name)
        saved = json.loads((folder / "config.json").read_text())
        assert saved["architectures"] == ["PrmkitStepRewardModel"]
        assert saved["auto_map"] == {
            "AutoModel": "modeling_prmkit_step_reward.PrmkitStepRewardModel"}
        assert saved["prmkit_step_head"] == {"head": head, "readout": "likelihood",
                                             "layers": layers, "lm_head": name == "qwen-head"}
        job.append({"kind": "head", "folder": str(folder), "input_ids": ids.tolist(),
                    "step_mask": step_mask.tolist(),
                    "positions": [e.positions for e in encoded]})
        expected.append(score(problems, steps, load_prm(folder, dtype="float32", device="cpu")))
    for result, ours, case in zip(without_prmkit(tmp_path, job), expected, job):
        assert result["class"] == "PrmkitStepRewardModel" and result["code_is_the_folders"]
        assert result["shape"][:2] == list(torch.tensor(case["input_ids"]).shape)
        for theirs, mine in zip(result["probabilities"], ours):
            assert theirs == pytest.approx(mine, abs=1e-5)
        assert len({round(x, 4) for s in ours for x in s}) > 3


def test_folders_with_and_without_the_modeling_file_load_in_prmkit_alike(tmp_path):
    """prmkit never runs a folder's modeling file: a folder saved now and one saved before the
    file and auto_map existed pass the folder checks and score the same, in both layouts; a
    PRM built on a saved one keeps no auto_map its own folder cannot serve."""
    import torch
    tokenizer = char_tokenizer()
    tokenizer.padding_side = "right"
    config = tiny_qwen2(tokenizer)
    config.max_position_embeddings = 1024
    for name, readout in (("release", "separator"), ("head", "likelihood")):
        prm = build_prm(config, tokenizer, readout=readout, seed=11)
        with torch.no_grad():
            for parameter in prm.module.score.parameters():
                parameter.normal_(0, 0.5)
        before = score(["Ann has 7 coins."], [PRM_STEPS], prm)[0]
        new = save_prm(prm, tmp_path / name)
        [code] = list(new.glob("modeling_*.py"))
        old = save_prm(prm, tmp_path / f"{name}-old")
        (old / code.name).unlink()
        raw = json.loads((old / "config.json").read_text())
        raw.pop("auto_map"), raw.pop("prmkit_step_head", None)
        (old / "config.json").write_text(json.dumps(raw))
        for folder in (new, old):
            check_prm_folder(folder)
            loaded = load_prm(folder, dtype="float32", device="cpu")
            assert type(loaded.module.model).__module__.startswith("transformers.models.")
            assert score(["Ann has 7 coins."], [PRM_STEPS], loaded)[0] == \
                pytest.approx(before, abs=1e-6)
    # a PRM started from a saved one: a token-classification folder ships no code, so it
    # names none; one in prmkit's own layout names its own file
    for head_layers, readout, names in ((1, "separator", None),
                                        (2, "likelihood", "modeling_prmkit_step_reward")):
        again = build_prm(tmp_path / "release", tokenizer, readout=readout,
                          head_layers=head_layers)
        folder = save_prm(again, tmp_path / f"again-{head_layers}")
        saved = json.loads((folder / "config.json").read_text())
        assert (saved.get("auto_map") or {}).get("AutoModel", "").split(".")[0] == (names or "")
        assert sorted(p.stem for p in folder.glob("*.py")) == ([names] if names else [])
