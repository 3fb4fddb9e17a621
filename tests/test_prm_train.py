"""Training a PRM (prmkit.prm.train): labels at the positions scoring reads, hard and soft
targets, the typed config, learning beyond an untrained PRM, resuming, data parallel, head-only."""
from __future__ import annotations

import json

import pytest
from helpers import PRM_STEPS, char_tokenizer, flawed_toy_solutions

from prmkit import config
from prmkit.cli import main
from prmkit.errors import InputError
from prmkit.evaluate import processbench
from prmkit.prm.adapters import add_lora
from prmkit.prm.memory import estimate
from prmkit.prm.model import build_prm, load_prm
from prmkit.prm.score import encode, score, score_many
from prmkit.prm.train import TrainConfig, load_examples, step_targets, train
from prmkit.records import write_jsonl


def test_training_reads_labels_at_the_positions_scoring_reads(tmp_path, tiny_lm):
    rows = [{"id": f"s{i}", "problem": f"Ann has {i} coins.", "steps": PRM_STEPS[:2 + i % 3],
             "truth": {"step_labels": [1] * (2 + i % 3)}} for i in range(6)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = TrainConfig(data=str(tmp_path / "d.jsonl"), labels="truth.step_labels", model="m",
                      eval_fraction=0.0)
    prm = build_prm(str(tiny_lm), char_tokenizer())
    examples, _ = load_examples(cfg, prm)
    for row, example in zip(rows, examples):
        tokens = encode(prm, row["problem"], row["steps"])
        assert (example["ids"], example["positions"]) == (tokens.input_ids, tokens.positions)


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


@pytest.mark.slow
def test_a_prm_trained_on_exact_truth_beats_an_untrained_one(tmp_path, tiny_lm):
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
        result = processbench.metrics([{**b, "subset": "toy"} for b in bench],
                                      step_scores={b["id"]: s for b, s in zip(bench, scores)})
        return result["subsets"]["toy"]["f1"]

    untrained = build_prm(str(tiny_lm), char_tokenizer(), seed=0)
    trained, before = f1(tmp_path / "run" / "final"), f1(untrained)
    assert trained > before + 40, (trained, before)


@pytest.mark.slow
@pytest.mark.parametrize("settings", [{}, {"lora_rank": 4, "lr": 1e-2}], ids=["full", "lora"])
def test_an_interrupted_training_run_resumes_where_it_stopped(tmp_path, tiny_lm, settings):
    """With LoRA too: the checkpoint keeps the backbone unmerged and the adapters beside the
    optimizer state."""
    if settings:
        pytest.importorskip("peft", reason="needs the lora extra")
    write_jsonl(tmp_path / "train.jsonl", flawed_toy_solutions(60, seed=3))
    cfg = TrainConfig(data=str(tmp_path / "train.jsonl"), model=str(tiny_lm),
                      labels="truth.step_labels", epochs=2, batch_size=8, save_every=3,
                      eval_fraction=0.0, bf16=False, **settings)
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


@pytest.mark.slow
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


def test_a_likelihood_prm_trains_head_only_and_in_full_and_scores_with_its_backbone(
        tmp_path, tiny_lm):
    import torch

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



# --- training at size: checkpointing, bf16 weights, LoRA, sharding, logs ----------------------

def _learning_run(tmp_path, tiny_lm, name, **settings):
    write_jsonl(tmp_path / "train.jsonl", flawed_toy_solutions(160, seed=6))
    cfg = TrainConfig(**{"data": str(tmp_path / "train.jsonl"), "model": str(tiny_lm),
                         "labels": "truth.step_labels", "max_steps": 30, "batch_size": 16,
                         "lr": 3e-3, "eval_fraction": 0.0, "bf16": False, **settings})
    return train(cfg, tmp_path / name, progress=False)


@pytest.mark.slow
def test_gradient_checkpointing_changes_memory_not_the_numbers(tmp_path, tiny_lm):
    plain = _learning_run(tmp_path, tiny_lm, "plain", max_steps=6)
    checkpointed = _learning_run(tmp_path, tiny_lm, "ckpt", max_steps=6,
                                 gradient_checkpointing=True)
    assert [h["loss"] for h in checkpointed["history"]] == \
        pytest.approx([h["loss"] for h in plain["history"]], abs=1e-4)


@pytest.mark.slow
def test_bf16_weights_follow_the_fp32_run_and_are_saved_in_bf16(tmp_path, tiny_lm):
    """Weights and optimizer state in bf16 (half the memory): the loss curve stays within bf16's
    rounding of the fp32 run's, and the PRM is written in bf16."""
    from safetensors import safe_open
    fp32 = _learning_run(tmp_path, tiny_lm, "fp32", max_steps=12)
    bf16 = _learning_run(tmp_path, tiny_lm, "bf16", max_steps=12, dtype="bfloat16")
    assert [h["loss"] for h in bf16["history"]] == \
        pytest.approx([h["loss"] for h in fp32["history"]], abs=0.03)
    assert [h["loss"] for h in bf16["history"]] != [h["loss"] for h in fp32["history"]]
    with safe_open(str(tmp_path / "bf16" / "final" / "model.safetensors"), "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"BF16"}


@pytest.mark.slow
def test_lora_trains_low_rank_updates_merged_into_a_plain_prm(tmp_path, tiny_lm):
    """LoRA (rank 4): the loss falls, the saved PRM has no adapter tensors and the release
    layout, and every adapted weight moved by an update of rank at most 4 (merged)."""
    pytest.importorskip("peft", reason="needs the lora extra")
    import torch
    from safetensors.torch import load_file
    metrics = _learning_run(tmp_path, tiny_lm, "lora", lora_rank=4, lora_alpha=8, lr=1e-2)
    losses = [h["loss"] for h in metrics["history"]]
    assert sum(losses[-10:]) / 10 < 0.8 * losses[0], losses
    final = tmp_path / "lora" / "final"
    after, before = load_file(final / "model.safetensors"), load_file(tiny_lm / "model.safetensors")
    assert not [k for k in after if "lora" in k or "base_layer" in k]
    assert json.loads((final / "prm.json").read_text())["layout"] == "qwen2.5-math-prm"
    name = "model.layers.1.mlp.up_proj.weight"
    delta = after[name].float() - before[name].float()
    assert delta.abs().max() > 1e-4 and torch.linalg.matrix_rank(delta, atol=1e-5) <= 4
    assert score(["Ann has 7 coins."], [PRM_STEPS], load_prm(final))[0]


@pytest.mark.slow
@pytest.mark.parametrize("sharding,port", [("ddp", 29517), ("fsdp", 29519)])
def test_two_processes_train_what_one_process_with_accumulation_does(tmp_path, tiny_lm,
                                                                     sharding, port):
    """torchrun with 2 CPU processes (gloo): each takes its own micro-batches, so the run must
    log the losses of, and end at the weights of, one process accumulating both; with ddp
    (through Accelerate) each holds the whole model, with fsdp half its training state."""
    import os
    import subprocess
    import sys
    pytest.importorskip("accelerate", reason="needs the accelerate extra")
    rows = flawed_toy_solutions(40, seed=5)
    write_jsonl(tmp_path / "train.jsonl", rows)
    common = [f"data={tmp_path / 'train.jsonl'}", f"model={tiny_lm}", "labels=truth.step_labels",
              "epochs=1", "batch_size=4", "eval_fraction=0", "bf16=false", "lr=0.003",
              "save_every=2"]
    train(config.load(TrainConfig, None, common + ["grad_accum=2"]), tmp_path / "one",
          progress=False)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(port), "-m", "prmkit.cli", "train", "--out",
         str(tmp_path / "two"),
         *[x for item in common + [f"sharding={sharding}"] for x in ("--set", item)]],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert one["steps"] == two["steps"] == 5
    assert [h["loss"] for h in two["history"]] == \
        pytest.approx([h["loss"] for h in one["history"]], abs=1e-4)
    problems, steps = [r["problem"] for r in rows[:8]], [r["steps"] for r in rows[:8]]
    a = score(problems, steps, load_prm(tmp_path / "one" / "final"))
    b = score(problems, steps, load_prm(tmp_path / "two" / "final"))
    assert [x for s in a for x in s] == pytest.approx([x for s in b for x in s], abs=1e-4)


def test_every_step_is_logged_to_a_file_and_tensorboard(tmp_path, tiny_lm):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    _learning_run(tmp_path, tiny_lm, "run", max_steps=4, eval_fraction=0.2, eval_every=2,
                  report_to="tensorboard")
    lines = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().split("\n")
             if x]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert all({"loss", "lr", "grad_norm"} <= set(x) for x in lines)
    assert "held_out" in lines[1] and "held_out" not in lines[0]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.value for e in events.Scalars("train/loss")] == \
        pytest.approx([x["loss"] for x in lines], abs=1e-5)
    assert len(events.Scalars("held_out/step_accuracy")) == 2


def test_the_dry_run_counts_what_training_holds_and_writes_nothing(tmp_path, tiny_lm):
    """The estimate's parameter counts are the PRM's own (full, LoRA as peft makes it); fsdp
    splits the training state over the processes; --dry-run prints it and trains nothing."""
    from transformers import AutoConfig

    write_jsonl(tmp_path / "d.jsonl", flawed_toy_solutions(8, seed=1))
    model_config = AutoConfig.from_pretrained(tiny_lm)
    prm = build_prm(str(tiny_lm), char_tokenizer(), seed=0, fmt="plain")  # no token added
    everything = sum(p.numel() for p in prm.module.parameters())
    one = estimate(model_config, tokens=100, length=50)
    assert one.parameters == one.trainable == everything
    assert one.weights == 4 * everything and one.optimizer == 8 * everything
    pytest.importorskip("peft", reason="needs the lora extra")
    add_lora(prm.module, 4, 8.0, 0.0)
    lora = estimate(model_config, tokens=100, length=50, lora_rank=4)
    assert lora.trainable == sum(p.numel() for p in prm.module.parameters() if p.requires_grad)
    assert lora.parameters == sum(p.numel() for p in prm.module.parameters())
    sharded = estimate(model_config, tokens=100, length=50, processes=4, sharding="fsdp")
    assert sharded.optimizer == one.optimizer // 4 and sharded.gathered > 0
    checkpointed = estimate(model_config, tokens=100, length=50, gradient_checkpointing=True)
    assert checkpointed.activations < one.activations

    assert main(["train", "--data", str(tmp_path / "d.jsonl"), "--labels", "truth.step_labels",
                 "--model", str(tiny_lm), "--out", str(tmp_path / "run"), "--dry-run",
                 "--processes", "2", "--sharding", "fsdp"]) == 0
    assert not (tmp_path / "run").exists()


def test_mse_trains_on_the_value_itself_with_squared_error(tmp_path, tiny_lm):
    """The paper's preliminary soft-label trials: the squared error of the predicted
    probability against the MC value, never rounded; the PRM learns the values."""
    import torch

    from prmkit.prm.train import step_loss
    mse = TrainConfig(data="x", model="m", labels="mc.values", loss="mse")
    assert step_targets(record([0.5, 0.25, 0.0, 0.75]), mse) == [0.5, 0.25, 0.0, None]
    prm = build_prm(str(tiny_lm), char_tokenizer(), seed=0)
    logits, targets = torch.tensor([[0.0, 0.0], [0.0, 2.0]]), torch.tensor([0.25, 1.0])
    expected = ((0.5 - 0.25) ** 2 + (torch.sigmoid(torch.tensor(2.0)).item() - 1.0) ** 2) / 2
    assert step_loss(prm, logits, targets, "mse").item() == pytest.approx(expected)
    rows = [{"id": f"s{i}", "problem": f"{i}+1?", "steps": [f"{i}+1={i + 1}", "so"],
             "mc": {"values": [1.0, 0.25 if i % 2 else 0.75]}} for i in range(24)]
    write_jsonl(tmp_path / "d.jsonl", rows)
    losses = []
    cfg = TrainConfig(data=str(tmp_path / "d.jsonl"), model=str(tiny_lm), labels="mc.values",
                      loss="mse", max_steps=30, lr=3e-3, batch_size=8, eval_fraction=0.0)
    train(cfg, tmp_path / "run", progress=False, on_step=lambda step, loss: losses.append(loss))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_a_source_filtered_by_a_flag_labels_only_the_flagged_solutions():
    """mc.values@consensus.kept: MC's labels on the solutions consensus kept (the paper's
    filtered cells of Figs. 3-4); the others have no verdict and train nothing."""
    cfg = TrainConfig(data="x", model="m", labels="mc.values@consensus.kept", loss="soft")
    kept = {**record([0.5, 0.0], steps=2), "consensus": {"kept": True}}
    dropped = {**record([0.5, 0.0], steps=2), "consensus": {"kept": False}}
    assert step_targets(kept, cfg) == [0.5, 0.0]
    assert step_targets(dropped, cfg) == [None, None]
    hard = TrainConfig(data="x", model="m", labels="mc.values@consensus.kept", threshold=0.6)
    assert step_targets(kept, hard) == [0.0, None]
    with pytest.raises(ValueError):
        step_targets(record([0.5, 0.0], steps=2), cfg)  # no consensus field at all: an error, not silence
