"""PRM models (prmkit.prm.model): one-pass scores equal per-prefix scores, save and load, the
Qwen2.5-Math-PRM and Math-Shepherd layouts, the likelihood readout."""
from __future__ import annotations

import json
import logging

import pytest
from helpers import PRM_STEPS, bpe_tokenizer, char_tokenizer

from prmkit.errors import InputError
from prmkit.formats import math_shepherd
from prmkit.prm.model import build_prm, load_prm, save_prm
from prmkit.prm.modules import step_likelihood
from prmkit.prm.score import encode, score, score_per_prefix


def tiny_config(tokenizer, **extra):
    from transformers import Qwen2Config
    return Qwen2Config(vocab_size=len(tokenizer) + 8, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                       **extra)


@pytest.fixture
def tiny_prm():
    tokenizer = char_tokenizer()
    tokenizer.padding_side = "right"
    return build_prm(tiny_config(tokenizer), tokenizer, head="ce", seed=1)


def test_one_pass_scores_equal_one_pass_per_prefix(tiny_prm):
    problems = ["Ann has 7 coins.", "Bo has 2.", "Cy has 11 pens and 3 cards."]
    steps = [PRM_STEPS, PRM_STEPS[:2], ["x"] * 7]
    batched = score(problems, steps, tiny_prm, batch_size=3)
    assert [len(s) for s in batched] == [4, 2, 7]
    for p, s, b in zip(problems, steps, batched):
        assert score_per_prefix(tiny_prm, p, s) == pytest.approx(b, abs=1e-5)
    for one, b in zip(score(problems, steps, tiny_prm, batch_size=1), batched):
        assert one == pytest.approx(b, abs=1e-5)


def test_a_saved_prm_loads_and_scores_the_same(tiny_prm, tmp_path):
    before = score(["Ann has 7 coins."], [PRM_STEPS], tiny_prm)
    save_prm(tiny_prm, tmp_path / "prm")
    meta = json.loads((tmp_path / "prm" / "prm.json").read_text())
    assert meta == {"format": "step-token", "head": "ce", "readout": "separator",
                    "head_layers": 2, "layout": "qwen2.5-math-prm"}
    config = json.loads((tmp_path / "prm" / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForProcessRewardModel"]
    loaded = load_prm(tmp_path / "prm")
    assert score(["Ann has 7 coins."], [PRM_STEPS], loaded)[0] == pytest.approx(before[0], abs=1e-6)
    assert score(["Ann has 7 coins."], [PRM_STEPS], tmp_path / "prm")[0] == \
        pytest.approx(before[0], abs=1e-6)


def test_a_folder_saved_under_the_old_names_still_loads(tmp_path):
    """Before the renames, prm.json said "format": "prmkit" (now step-token) and "layout":
    "prmkit" (now prmkit-head)."""
    tokenizer = char_tokenizer()
    tokenizer.padding_side = "right"
    prm = build_prm(tiny_config(tokenizer), tokenizer, head="bce", seed=1)
    save_prm(prm, tmp_path / "prm")
    meta_file = tmp_path / "prm" / "prm.json"
    assert json.loads(meta_file.read_text())["layout"] == "prmkit-head"
    before = score(["Ann has 7 coins."], [PRM_STEPS], prm)[0]
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "format": "prmkit",
                                     "layout": "prmkit"}))
    loaded = load_prm(tmp_path / "prm", dtype="float32", device="cpu")
    assert loaded.format.name == "step-token"
    assert score(["Ann has 7 coins."], [PRM_STEPS], loaded)[0] == pytest.approx(before,
                                                                               abs=1e-6)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _load_output(capfd, load) -> tuple[str, InputError | None]:
    """Everything ``load()`` prints to stdout or stderr or logs through transformers, at
    transformers' default verbosity (a training run earlier in this process lowers it), and
    the error it raised."""
    from transformers.utils import logging as hf_logging
    verbosity, records, error = hf_logging.get_verbosity(), _Records(), None
    hf_logging.set_verbosity_warning()
    logging.getLogger("transformers").addHandler(records)
    capfd.readouterr()
    try:
        load()
    except InputError as e:
        error = e
    finally:
        logging.getLogger("transformers").removeHandler(records)
        hf_logging.set_verbosity(verbosity)
    out, err = capfd.readouterr()
    return "\n".join([out, err, *records.messages]), error


@pytest.mark.parametrize("head,readout", [("ce", "separator"), ("bce", "separator"),
                                          ("ce", "likelihood")])
def test_loading_a_prm_prints_no_load_report_of_its_own_head(tmp_path, capfd, head, readout):
    """transformers reports checkpoint tensors its class does not hold (the PRM's score.*,
    likelihood.*, lm_head.*, read separately) in a LOAD REPORT table: not for a PRM folder."""
    tokenizer = char_tokenizer()
    tokenizer.padding_side = "right"
    config = tiny_config(tokenizer, tie_word_embeddings=False)  # an lm_head of its own
    prm = build_prm(config, tokenizer, head=head, seed=1, readout=readout)
    save_prm(prm, tmp_path / "prm")
    output, error = _load_output(capfd, lambda: load_prm(tmp_path / "prm", device="cpu"))
    assert error is None
    assert "LOAD REPORT" not in output and "UNEXPECTED" not in output, output


def test_a_backbone_weight_missing_from_the_folder_is_reported_and_an_error(tiny_prm, tmp_path,
                                                                            capfd):
    from safetensors.torch import load_file, save_file
    save_prm(tiny_prm, tmp_path / "prm")
    weights = tmp_path / "prm" / "model.safetensors"
    tensors = load_file(weights)
    del tensors["model.norm.weight"]
    save_file(tensors, weights, metadata={"format": "pt"})
    output, error = _load_output(capfd, lambda: load_prm(tmp_path / "prm", device="cpu"))
    # the folder check finds it in the file's header, before transformers loads anything
    assert error is not None and "1 missing (model.norm.weight)" in error.message
    assert error.path == str(weights) and "LOAD REPORT" not in output


def test_qwen25_math_prm_release_layout_loads_without_remote_code(tmp_path):
    """A tiny random model saved the way Qwen2.5-Math-PRM is (backbone under ``model.``, the
    two-layer head under ``score.``, architecture Qwen2ForProcessRewardModel), on a small BPE
    vocabulary: prmkit finds the format from the folder and scores as the model card does
    (tests/test_prm_layouts.py checks the same on the real vocabulary and ProcessBench)."""
    from helpers import CHATML, model_card_scores, release_folder
    tokenizer = bpe_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>",
                                                                "<extra_0>"]})
    tokenizer.chat_template = CHATML
    folder = release_folder(tmp_path, tokenizer)
    prm = load_prm(folder)
    assert prm.format.name == "qwen2.5-math-prm"
    [scores] = score(["What is 7+3?"], [PRM_STEPS], prm)
    assert scores == pytest.approx(model_card_scores(folder, "What is 7+3?", PRM_STEPS),
                                   abs=1e-5)


@pytest.mark.parametrize("bos", [False, True])
def test_math_shepherd_reads_plus_minus_logits_at_its_step_tags(tmp_path, bos):
    import torch
    from transformers import Qwen2ForCausalLM
    tokenizer = bpe_tokenizer()
    tokenizer.add_tokens(["ки"])  # one token in Math-Shepherd's vocabulary, as here
    if bos:  # Mistral's tokenizer, Math-Shepherd's own, puts <s> first in encode()
        tokenizer.add_special_tokens({"bos_token": "<s>"})
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(tiny_config(tokenizer))
    model.save_pretrained(tmp_path / "shepherd")
    tokenizer.save_pretrained(tmp_path / "shepherd")
    with pytest.raises(InputError, match="math-shepherd"):
        load_prm(tmp_path / "shepherd")  # a plain causal LM: the format must be named
    prm = load_prm(tmp_path / "shepherd", fmt="math-shepherd")
    problem = "What is 7+3?"
    [scores] = score([problem], [PRM_STEPS[:2]], prm)
    # the official recipe: "question Step 1: ... ки\nStep 2: ... ки", tokenized whole after
    # the BOS, softmax over the + and - logits at every tag
    text = f"{problem} Step 1: {PRM_STEPS[0]} ки\nStep 2: {PRM_STEPS[1]} ки\n"
    tag, (good, bad) = prm.separator_id, prm.good_bad
    first = [tokenizer.bos_token_id] if bos else []
    ids = torch.tensor([first + tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    expected = torch.softmax(logits[ids[0] == tag][:, [good, bad]], dim=-1)[:, 0].tolist()
    assert scores == pytest.approx(expected, abs=1e-5)


def test_math_shepherd_on_a_sentencepiece_vocabulary_scores_as_its_model_card(tmp_path):
    """Real Math-Shepherd records, a SentencePiece tokenizer built here (BOS from encode(), "▁"
    pieces that depend on their neighbours) and a tiny Mistral: prmkit's scores of the records
    as it reads them equal the model card's procedure on the raw ``input`` text, within 1e-4."""
    import torch
    from conftest import shared
    from helpers import sentencepiece_tokenizer
    from transformers import MistralConfig, MistralForCausalLM

    path = shared("formats/math_shepherd_samples.jsonl")
    raw = [json.loads(line)["input"] for line in path.read_text().splitlines() if line]
    records = math_shepherd.read(path)
    folder = tmp_path / "shepherd"
    tokenizer = sentencepiece_tokenizer(raw, folder)
    config = MistralConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    model.save_pretrained(folder)
    # the model card, line for line in spirit: candidates after the BOS, the tag's last token
    good_bad = tokenizer.encode("+ -")[1:]
    step_tag_id = tokenizer.encode("ки")[-1]
    prm = load_prm(folder, fmt="math-shepherd", dtype="float32", device="cpu")
    assert list(prm.good_bad) == good_bad and prm.separator_id == step_tag_id
    ours = score([r["problem"] for r in records], [r["steps"] for r in records], prm)
    for text, record, mine in zip(raw, records, ours):
        ids = torch.tensor([tokenizer.encode(text)])
        assert ids[0, 0].item() == tokenizer.bos_token_id
        with torch.no_grad():
            logits = model(ids).logits[:, :, good_bad]
        card = logits.softmax(dim=-1)[:, :, 0][ids == step_tag_id].tolist()
        assert len(card) == len(record["steps"]) == len(mine)
        assert max(abs(a - b) for a, b in zip(mine, card)) < 1e-4


def test_a_folder_that_is_no_prm_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        load_prm(tmp_path)


def test_step_likelihood_is_each_steps_lowest_and_mean_token_logprob():
    import torch

    torch.manual_seed(0)
    logprobs = -torch.rand(3, 40) * 8
    spans = [[(2, 7), (9, 15), (16, 30)], [(0, 4), (5, 6)], [(10, 39)]]  # (start, separator)
    mask = torch.zeros(3, 40, dtype=torch.bool)
    for row, steps in enumerate(spans):
        for start, end in steps:
            mask[row, start:end] = True
    features = step_likelihood(logprobs, mask)
    for row, steps in enumerate(spans):
        for start, end in steps:  # read at the separator, as the head is
            expected = logprobs[row, start:end]
            assert features[row, end, 0].item() == pytest.approx(expected.min().item(), abs=1e-5)
            assert features[row, end, 1].item() == pytest.approx(expected.mean().item(),
                                                                 abs=1e-5)
            # and inside the step, only the tokens seen so far
            assert features[row, start + 1, 0].item() == pytest.approx(
                expected[:2].min().item(), abs=1e-5)


@pytest.mark.parametrize("tied", [True, False])
def test_an_untrained_likelihood_prm_scores_by_its_lms_least_likely_step_token(tmp_path, tied):
    """With the head's own term zeroed, a step's score is sigmoid(log p) of its least likely
    token under the causal LM it came from: checked against the LM's own logits, one pass per
    prefix, and after a save and load (an untied LM head is saved with the PRM)."""
    import torch
    from transformers import Qwen2ForCausalLM
    tokenizer = char_tokenizer()
    tokenizer.padding_side = "right"
    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(tiny_config(tokenizer, tie_word_embeddings=tied))
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    prm = build_prm(str(tmp_path / "lm"), tokenizer, fmt="plain", readout="likelihood")
    assert (prm.module.lm_head is None) == tied
    with torch.no_grad():
        prm.module.score[2].weight.zero_()
        prm.module.score[2].bias.zero_()
    problem = "Ann has 7 coins."
    [scores] = score([problem], [PRM_STEPS], prm)
    tokens = encode(prm, problem, PRM_STEPS)
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([tokens.input_ids])).logits[0].float()
    token_logprobs = torch.log_softmax(logits, -1)[:-1].gather(
        -1, torch.tensor(tokens.input_ids[1:])[:, None])[:, 0]
    expected = [torch.sigmoid(token_logprobs[start - 1:end - 1].min()).item()
                for start, end in zip(tokens.starts, tokens.positions)]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert score_per_prefix(prm, problem, PRM_STEPS) == pytest.approx(scores, abs=1e-5)
    save_prm(prm, tmp_path / "prm")
    loaded = load_prm(tmp_path / "prm")
    assert loaded.module.readout == "likelihood" and loaded.format.name == "plain"
    assert score([problem], [PRM_STEPS], loaded)[0] == pytest.approx(scores, abs=1e-5)



@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_a_trl_token_classification_prm_scores_as_trl_lays_it_out(tmp_path, kind):
    """A PRM trained by TRL's PRMTrainer is an AutoModelForTokenClassification with two labels,
    trained on: BOS (if any) + prompt + for every step its tokens and the separator "\\n", each
    piece tokenized on its own, the label at the separator. prmkit reads the same positions and
    gives softmax(...)[1] there, and finds the format from the folder alone."""
    import torch
    from transformers import AutoModelForTokenClassification, Qwen2Config

    tokenizer = {"char": char_tokenizer, "bpe": bpe_tokenizer}[kind]()
    if kind == "bpe":
        tokenizer.add_special_tokens({"bos_token": "<bos>"})
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, num_labels=2)
    torch.manual_seed(0)
    AutoModelForTokenClassification.from_config(config).save_pretrained(tmp_path / "trl")
    tokenizer.save_pretrained(tmp_path / "trl")
    problem, steps = "Ann has 7 coins.", PRM_STEPS[:3]

    # TRL's own layout, written out here from its PRMTrainer.tokenize_row
    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    sep = ids("\n")
    sequence = ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else [])
    sequence += ids(problem)
    positions = []
    for step in steps:
        sequence += ids(step) + sep
        positions.append(len(sequence) - 1)
    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "trl").eval()
    with torch.no_grad():
        logits = model(torch.tensor([sequence])).logits[0]
    expected = torch.softmax(logits, -1)[positions, 1].tolist()

    prm = load_prm(tmp_path / "trl", dtype="float32", device="cpu")
    assert prm.format.name == "trl"
    assert score([problem], [steps], prm)[0] == pytest.approx(expected, abs=1e-5)


def _as_hub_cache(folder, cache, repo: str) -> None:
    """Lay a saved model out as huggingface_hub's cache holds a download of ``repo``."""
    import shutil
    revision = "0" * 40
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)
    shutil.copytree(folder, root / "snapshots" / revision)


def test_a_hub_id_loads_from_the_cache_and_a_missing_one_is_one_clear_error(
        tiny_prm, tmp_path, monkeypatch):
    save_prm(tiny_prm, tmp_path / "prm")
    _as_hub_cache(tmp_path / "prm", tmp_path / "cache", "someone/tiny-prm")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    expected = score(["Ann has 7 coins."], [PRM_STEPS], tiny_prm)[0]
    from_hub = load_prm("someone/tiny-prm", dtype="float32", device="cpu")
    assert score(["Ann has 7 coins."], [PRM_STEPS], from_hub)[0] == \
        pytest.approx(expected, abs=1e-6)
    with pytest.raises(InputError, match="hub copy could not be had"):
        load_prm("someone/not-there")
    with pytest.raises(InputError, match="not a hub id"):
        load_prm(tmp_path / "nowhere" / "deep" / "prm")


def test_a_device_map_spreads_the_backbone_and_scores_the_same(tiny_prm, tmp_path):
    """device_map=auto (here: everything on the CPU, the only device) goes through transformers'
    dispatch; the head joins the backbone's last layer and the scores do not change."""
    pytest.importorskip("accelerate", reason="device_map needs accelerate")
    save_prm(tiny_prm, tmp_path / "prm")
    expected = score(["Ann has 7 coins."], [PRM_STEPS], tiny_prm)[0]
    spread = load_prm(tmp_path / "prm", dtype="float32", device="cpu", device_map="auto")
    assert score(["Ann has 7 coins."], [PRM_STEPS], spread)[0] == pytest.approx(expected,
                                                                              abs=1e-6)
