"""Training the tiny policy: the loss falls, the run resumes exactly, the cache is reused."""

from __future__ import annotations

import json

import pytest

from prmkit import plugins, rundir
from prmkit.errors import InputError
from prmkit.toyworld import policy
from prmkit.toyworld.model import TinyModelConfig
from prmkit.toyworld.plugin import resolve_policy, shorter
from prmkit.toyworld.policy import (
    PolicyConfig,
    ensure_policy,
    policy_dir,
    train,
    training_batch,
)
from prmkit.toyworld.problems import PRESETS, make_problems
from prmkit.toyworld.tokenizer import build_char_tokenizer

SMALL = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                        intermediate_size=128, max_length=1024)


def small_config(**overrides) -> PolicyConfig:
    values = dict(model=SMALL, steps=40, batch_size=8, lr=1e-2, warmup_steps=5, snapshots=(20,))
    values.update(overrides)
    return PolicyConfig(**values)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_training_lowers_the_loss(tmp_path, optimizer):
    record = train(small_config(optimizer=optimizer), tmp_path / "run", progress=False)
    losses = record["losses"]
    assert record["finished"] and len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert first > 3.5  # about ln(99): an untrained model knows nothing of the alphabet
    # below 2.5 nats a character: better than knowing only how often each character occurs
    assert last < 0.6 * first and last < 2.5, (first, last)
    assert (tmp_path / "run" / "final" / "config.json").exists()
    assert (tmp_path / "run" / "step-000020" / "model.safetensors").exists()


@pytest.mark.slow
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    cfg = small_config(steps=12, snapshots=())
    straight = train(cfg, tmp_path / "straight", progress=False)

    class Crash(Exception):
        pass

    def crash_at_8(step, loss):
        if step == 7:
            raise Crash

    every = policy.CHECKPOINT_EVERY
    policy.CHECKPOINT_EVERY = 5
    try:
        with pytest.raises(Crash):
            train(cfg, tmp_path / "resumed", progress=False, on_step=crash_at_8)
    finally:
        policy.CHECKPOINT_EVERY = every
    assert not (tmp_path / "resumed" / "final").exists()
    assert not (tmp_path / "resumed" / rundir.MARKER).exists()
    resumed = train(cfg, tmp_path / "resumed", progress=False)
    assert resumed["finished"]
    # steps 0-4 come from the checkpoint; 5-11 were recomputed from the restored state
    assert resumed["losses"] == pytest.approx(straight["losses"], abs=1e-3)


def test_a_time_cap_stops_and_the_next_call_resumes(tmp_path):
    cfg = small_config(steps=10, snapshots=())
    stopped = train(cfg, tmp_path / "run", progress=False, max_seconds=0.0)
    assert not stopped["finished"] and stopped["step"] == 0
    assert train(cfg, tmp_path / "run", progress=False)["finished"]


def test_the_cache_is_keyed_by_config_and_reused(tmp_path, monkeypatch):
    cfg = small_config(steps=6, snapshots=())
    final = ensure_policy(cfg, root=tmp_path, progress=False, evaluate_after=False)
    assert final.parent.name == cfg.key()
    assert rundir.is_complete(final.parent, cfg.to_dict())
    monkeypatch.setattr(policy, "train", lambda *a, **k: pytest.fail("trained again"))
    assert ensure_policy(cfg, root=tmp_path, progress=False, evaluate_after=False) == final
    assert small_config(steps=7).key() != cfg.key()
    metrics = json.loads((final.parent / "metrics.json").read_text())
    assert metrics["training"]["step"] == 6


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    cfg = small_config(steps=6, snapshots=())
    train(cfg, tmp_path / "run", progress=False, max_seconds=0.0)
    (tmp_path / "run" / "last" / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="unreadable checkpoint"):
        train(cfg, tmp_path / "run", progress=False)


@pytest.mark.parametrize("overrides,field", [({"steps": 0}, "steps"), ({"lr": 0.0}, "lr"),
                                             ({"muon_lr": -1.0}, "muon_lr"),
                                             ({"optimizer": "sgd"}, "optimizer"),
                                             ({"snapshots": (50,)}, "snapshots"),
                                             ({"preset": "huge"}, "preset")])
def test_invalid_settings_name_the_field(overrides, field):
    with pytest.raises(InputError) as error:
        small_config(**overrides).validate()
    assert error.value.field == field


def test_labels_cover_the_solution_and_the_end_token_only_when_asked():
    tok = build_char_tokenizer()
    problems = make_problems(PRESETS["easy"], 2, seed=0)
    ids, labels, attention = training_batch(tok, problems, loss_on_problem=False)
    row = labels[0][attention[0].bool()].tolist()
    learned = [t for t in row if t != -100]
    assert tok.decode(learned[:-1]) == problems[0]["solution"]
    assert learned[-1] == tok.eos_token_id
    ids, labels, attention = training_batch(tok, problems, loss_on_problem=True)
    assert (labels[0][attention[0].bool()] != -100).all()


def test_snapshot_names_are_resolved_with_or_without_padding(tmp_path, monkeypatch):
    monkeypatch.setenv("PRMKIT_CACHE", str(tmp_path))
    cfg = PolicyConfig()
    out = policy_dir(cfg)
    rundir.begin(out)
    (out / "final").mkdir()
    (out / "step-000300").mkdir()
    rundir.finish(out, cfg.to_dict())
    for name in ("toy@step-300", "toy@300", "toy@step-000300"):
        assert resolve_policy(name, progress=False) == out / "step-000300"
        # the pipeline finds the toy policy by name, as it would a user's own
        assert plugins.resolve_policy(name, progress=False) == str(out / "step-000300")
    with pytest.raises(InputError, match="step-000005"):
        resolve_policy("toy@step-5", progress=False)
    with pytest.raises(InputError, match="steps=N and seed=N"):
        resolve_policy("toy:epochs=3", progress=False)
    # a shorter run is another policy, cached apart, its late snapshots dropped
    quick = shorter(cfg, 500)
    assert quick.snapshots == (400,) and policy_dir(quick) != out
    assert plugins.resolve_policy("Qwen/Qwen2.5-Math-7B-Instruct") == "Qwen/Qwen2.5-Math-7B-Instruct"
