"""Training a PRM (``prmkit train``): a step head on any backbone, hard or soft labels.

Labels come from one field of the solution records (``labels``), any shape a label source has
(``prmkit.labels``): per-step lists (``truth.step_labels``, ``mc.hard``, ``mc.values``,
``consensus.step_labels``, booleans, 0/1 or floats) or an earliest-error index
(``judge.first_error``, ``label``). A step is negative when its value is at most ``threshold``
(default 0, as the paper's MC-hard labels; ``prmkit.labels``' one threshold rule). Steps
after the first negative are left out unless ``include_after_error`` (the paper's practice);
null labels are left out.

Losses: ``hard`` trains on 0/1 targets, ``soft`` on the value itself. With the two-output head
(``ce``) the hard loss is cross-entropy and the soft loss is cross-entropy against [1-p, p]; with
the one-output head (``bce``) both are binary cross-entropy. Soft values are never cast to
integers (TRL's PRM trainer does that silently).

Tokens go through ``prmkit.steps.encode_steps`` with the PRM's format: the positions trained
are exactly the positions ``prmkit score`` reads. ``format`` picks the layout (``step-token``: a
new separator token after each step; ``plain``: the steps exactly as the policy wrote them) and
``readout`` what the head reads (``separator``: the hidden state at each step's separator, the
field's standard; ``likelihood``: that and the backbone LM's own likelihood of the step's
tokens). A PRM fine-tuned from the policy that wrote its solutions learns to verify far better
with ``format=plain readout=likelihood lr=1e-4`` (``benchmarks/prm_study.py``: within-problem
AUC 0.92 against 0.48 on the toy world). bf16 autocast on CPU (attention kept in fp32,
as for the toy policy), gradient accumulation,
a held-out split evaluated during training, checkpoints that resume, a progress bar. The config
is one typed dataclass (``prmkit.config``): every field is a flag of ``prmkit train`` with its
help, a YAML key of ``--config`` and a ``--set key=value``; unknown keys are rejected; it is
saved beside the checkpoint.

Devices: ``device`` (default ``auto``: one GPU when there is one, else the CPU). Several
processes (``accelerate launch`` or ``torchrun``, on GPUs or CPUs) train data-parallel through Accelerate: each process takes its
own micro-batches, so the global batch is ``batch_size * grad_accum * processes``; only the
first process writes files.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

from prmkit import config, rundir
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.labels import Source
from prmkit.labels import step_targets as label_targets
from prmkit.models import (
    attention_in_fp32,
    load_tokenizer,
    model_folder,
    quiet_transformers,
)
from prmkit.prm.adapters import (
    adapter_state,
    add_lora,
    has_lora,
    load_adapter_state,
    merge_lora,
)
from prmkit.prm.formats import get_format, separator_id, trainable_formats
from prmkit.prm.logs import TrainLog
from prmkit.prm.memory import estimate
from prmkit.prm.model import build_prm, default_head_layers, load_prm, save_prm
from prmkit.prm.processes import Processes, scalar
from prmkit.prm.score import encode, padded_batch
from prmkit.progress import Bar
from prmkit.records import (
    atomic_write_bytes,
    iter_json_items,
    note_id,
    validate,
    write_json,
)

SOFT_LOSSES = ("soft", "mse")  # trained on the label value itself, never rounded


@dataclass(frozen=True)
class TrainConfig:
    data: str = setting(REQUIRED, "Solutions JSONL with the label field.")
    labels: str = setting(REQUIRED, "Label source: a field path (mc.hard, mc.values, "
                          "judge.first_error, consensus.step_labels, ...) or a name of "
                          "prmkit.labels.NAMED_SOURCES.")
    model: str = setting(REQUIRED, "Backbone: a model folder or hub id (normally the policy "
                         "or an instruct model of its family).")
    loss: str = setting("hard", "hard (0/1 targets), soft (the label value itself, cross-"
                        "entropy) or mse (the value itself, squared error of the predicted "
                        "probability: the paper's preliminary trials).",
                        choices=("hard", *SOFT_LOSSES))
    threshold: float = setting(0.0, "A step is negative when its label is at or below this "
                               "(prmkit.labels' one rule).", ge=0, lt=1)
    include_after_error: bool = setting(False, "Also train on the steps after the first error.")
    head: str = setting("ce", "ce (two outputs, softmax) or bce (one output, sigmoid).",
                        choices=("ce", "bce"))
    format: str = setting("step-token", "The PRM's input format (prmkit.prm.formats), one with "
                          "a step head: " + ", ".join(trainable_formats())
                          + "; step-token adds a <|step|> token after each step, plain reads "
                          "the steps as written.")
    readout: str = setting("separator", "separator (the hidden state at each step's end) or "
                           "likelihood (that and the backbone LM's likelihood of the step).",
                           choices=("separator", "likelihood"))
    epochs: float = setting(2.0, "Passes over the training set (unless max_steps).", gt=0)
    max_steps: int | None = setting(None, "Optimizer steps, whatever the data size.", ge=1)
    batch_size: int = setting(16, "Solutions a micro-batch (a process).", ge=1)
    grad_accum: int = setting(1, "Micro-batches an optimizer step.", ge=1)
    lr: float = setting(1e-5, "Peak learning rate (warmup, then cosine decay); the default "
                        "suits fine-tuning an LLM backbone, a small or frozen one wants more.",
                        gt=0)
    warmup_steps: int = setting(10, "Linear warmup steps.", ge=0)
    weight_decay: float = setting(0.0, "AdamW weight decay.", ge=0)
    eval_fraction: float = setting(0.1, "Held-out share of problems, evaluated during training.", ge=0, lt=1)
    eval_every: int = setting(50, "Optimizer steps between held-out evaluations.", ge=1)
    save_every: int = setting(100, "Optimizer steps between resumable checkpoints.", ge=1)
    max_length: int | None = setting(None, "Tokens a solution at most (default: the "
                                     "backbone's context).", ge=1)
    seed: int = setting(0, "Seed of the head, the split and the batch order.")
    device: str = setting("auto", "auto (a GPU when there is one, else the CPU), cpu, cuda or "
                          "cuda:N; data-parallel processes take theirs from the launcher.")
    bf16: bool = setting(True, "bf16 autocast for the MLPs (attention stays fp32).")
    dtype: str = setting("float32", "The weights' and optimizer state's own type: float32, or "
                         "bfloat16 (half the memory, as transformers fine-tunes a model "
                         "loaded in bf16).", choices=("float32", "bfloat16"))
    gradient_checkpointing: bool = setting(False, "Recompute each layer's activations in the "
                                           "backward pass: far less memory, ~30% more time.")
    lora_rank: int = setting(0, "LoRA adapters of this rank on every linear layer of the "
                             "backbone (0: train it whole); merged before saving. Needs the "
                             "lora extra (peft).", ge=0)
    lora_alpha: float = setting(32.0, "LoRA scale numerator (the update is alpha/rank B A).",
                                gt=0)
    lora_dropout: float = setting(0.0, "Dropout on the LoRA adapters' input.", ge=0, lt=1)
    sharding: str = setting("ddp", "With several processes (torchrun / accelerate launch): "
                            "ddp (each holds the whole model) or fsdp (weights, gradients and "
                            "optimizer state split over them).", choices=("ddp", "fsdp"))
    report_to: str = setting("none", "Also log loss and held-out metrics to tensorboard "
                             "(out/tensorboard) or wandb; out/train_log.jsonl always.",
                             choices=("none", "tensorboard", "wandb"))
    train_backbone: bool = setting(True, "false: only the head learns, on features computed "
                                   "once.")
    feature_cache: str = setting("", "A folder where frozen-backbone features are kept for "
                                 "later runs.")
    top_layers: int | None = setting(None, "Train only the top N transformer layers (and the "
                                     "head).", ge=0)
    head_layers: int | None = setting(None, "Step head: 2 layers (Qwen2.5-Math-PRM's) or 1 (a "
                                      "linear token-classification head); default 2 on Qwen2 "
                                      "backbones, 1 elsewhere, so the PRM saves in a layout "
                                      "the field reads.", ge=1, le=2)

    def validate(self) -> "TrainConfig":
        config.check_values(self)  # bounds and choices of every field
        try:
            Source.parse(self.labels)
        except InputError as e:
            raise InputError(e.message, field="labels") from None
        trainable = sorted(trainable_formats())
        if self.format not in trainable:
            raise InputError(f"{self.format!r}: choose one of {trainable} (a step head is "
                             "trained)", field="format")
        return self


def backbone_folder(cfg: TrainConfig) -> Path:
    """The backbone's model folder (a hub id is fetched into the cache); a missing one is an
    error saying what to pass."""
    return model_folder(cfg.model)


# --- data ----------------------------------------------------------------------------------------

def step_targets(record: dict, cfg: TrainConfig) -> list[float | None]:
    """One target a step (None: left out), from the label field."""
    source = Source.parse(cfg.labels)  # a threshold in the spec holds unless one is set
    source = replace(source, threshold=cfg.threshold or source.threshold)
    return label_targets(record, source, soft=cfg.loss in SOFT_LOSSES,
                        include_after_error=cfg.include_after_error)


def load_examples(cfg: TrainConfig, prm) -> tuple[list[dict], list[dict]]:
    """(train, held-out) examples: token ids, label positions and targets; split by problem."""
    examples, seen = [], {}
    for line, value in iter_json_items(cfg.data):
        record = validate(value, "solution", path=cfg.data, line=line)
        note_id(seen, record["id"], path=cfg.data, line=line)  # one solution, learned once
        try:
            targets = step_targets(record, cfg)
        except ValueError as e:
            raise InputError(str(e), path=cfg.data, line=line, field=cfg.labels) from None
        tokens = encode(prm, record["problem"], record["steps"], cfg.max_length)
        kept = [(p, t) for p, t in zip(tokens.positions, targets) if t is not None]
        if kept:
            examples.append({"problem": record.get("problem_id", record["problem"]),
                             "line": line, "ids": tokens.input_ids,
                             "all_positions": tokens.positions, "tokens": tokens,
                             "positions": [p for p, _ in kept],
                             "targets": [t for _, t in kept]})
    if not examples:
        raise InputError("no solution with a usable label", path=cfg.data, field=cfg.labels)
    problems = sorted({e["problem"] for e in examples})
    random.Random(cfg.seed).shuffle(problems)
    held = set(problems[:int(len(problems) * cfg.eval_fraction)])
    return ([e for e in examples if e["problem"] not in held],
            [e for e in examples if e["problem"] in held])


def _batch(examples: list[dict], pad: int):
    """Padded ids, attention mask and step mask (as scoring pads them), and the label rows,
    columns and targets."""
    import torch
    ids, step_mask = padded_batch([e["tokens"] for e in examples], pad)
    lengths = torch.tensor([len(e["ids"]) for e in examples])
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    rows, cols, targets = [], [], []
    for r, e in enumerate(examples):
        rows += [r] * len(e["positions"])
        cols += e["positions"]
        targets += e["targets"]
    return (ids, mask, step_mask, torch.tensor(rows), torch.tensor(cols),
            torch.tensor(targets))


def _logits(model, examples: list[dict], prm, cfg: TrainConfig, device):
    """(head logits, targets) at the label positions of a batch. With a frozen backbone the
    examples carry their features and ``model`` is the head alone."""
    import torch
    if "features" in examples[0]:
        features = torch.cat([e["features"] for e in examples]).to(device)
        targets = torch.tensor([t for e in examples for t in e["targets"]], device=device)
        return model(features), targets
    ids, mask, step_mask, rows, cols, targets = (t.to(device) for t in _batch(
        examples, prm.tokenizer.pad_token_id))
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        return model(ids, mask, step_mask)[rows, cols], targets


def _add_features(prm, examples: list[dict], cfg: TrainConfig, device, init: Path) -> None:
    """The frozen backbone's features at every label position (its last hidden state, and for
    the likelihood readout the step's likelihood), computed once: a head-only run then costs
    one forward pass of the data, not one per epoch. In full precision, as ``prmkit score``
    computes them.

    With ``feature_cache`` the features of every step of every solution are kept in a file
    named by the backbone, the data and the length limit, so runs that train heads on other
    labels of the same solutions (the demo's five PRMs) skip the forward pass."""
    import torch
    cache_file, cached = None, {}
    if cfg.feature_cache:
        cache_file = Path(cfg.feature_cache) / f"features-{_feature_key(cfg, init)}.pt"
        if cache_file.exists():
            cached = torch.load(cache_file, weights_only=True)
    missing = [e for e in examples if e["line"] not in cached]
    missing.sort(key=lambda e: -len(e["ids"]))
    with torch.inference_mode():
        for start in range(0, len(missing), cfg.batch_size):
            batch = missing[start:start + cfg.batch_size]
            rows, cols = _all_positions(batch)
            ids, mask, step_mask, *_ = (t.to(device) for t in _batch(
                batch, prm.tokenizer.pad_token_id))
            features = prm.module.features(ids, mask, step_mask)
            picked = features[rows.to(device), cols.to(device)].float().cpu()
            for row, e in enumerate(batch):
                cached[e["line"]] = picked[rows == row].clone()
    if cache_file is not None and missing:
        buffer = io.BytesIO()
        torch.save(cached, buffer)
        atomic_write_bytes(cache_file, buffer.getvalue())
    for e in examples:
        at = {p: i for i, p in enumerate(e["all_positions"])}
        e["features"] = cached[e["line"]][[at[p] for p in e["positions"]]]


def _freeze_below(backbone, top: int) -> None:
    """Only the top ``top`` layers and the final norm learn: the backward pass stops there,
    which on a CPU roughly halves a step for a 4-layer model trained in its top layer."""
    layers = getattr(backbone, "layers", None)
    if layers is None or not 0 <= top <= len(layers):
        raise InputError(f"{top!r}: the backbone has {len(layers) if layers else 'no'} layers",
                         field="top_layers")
    backbone.requires_grad_(False)
    for layer in list(layers)[len(layers) - top:]:
        layer.requires_grad_(True)
    if getattr(backbone, "norm", None) is not None:
        backbone.norm.requires_grad_(True)


def _feature_key(cfg: TrainConfig, init: Path) -> str:
    """Names the backbone by its folder and its files' sizes and times (hashing a 7B model's
    weights would take longer than the features), the data by its content."""
    files = sorted((str(f.relative_to(init)), f.stat().st_size, f.stat().st_mtime_ns)
                   for f in init.rglob("*") if f.is_file())
    key = json.dumps([str(init.resolve()), files, rundir.file_digest(cfg.data), cfg.max_length,
                      cfg.format, cfg.readout])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _all_positions(examples: list[dict]):
    import torch
    rows = [r for r, e in enumerate(examples) for _ in e["all_positions"]]
    cols = [p for e in examples for p in e["all_positions"]]
    return torch.tensor(rows), torch.tensor(cols)


def step_loss(prm, logits, targets, loss: str = "hard"):
    """Loss at the label positions: logits (n, 2) or (n, 1), targets in [0, 1]; ``mse`` is the
    squared error of the positive class's probability, the others cross-entropy."""
    import torch
    import torch.nn.functional as F
    logits = logits.float()
    if loss == "mse":
        probs = torch.sigmoid(logits[:, 0]) if prm.module.head == "bce" else \
            torch.softmax(logits, dim=-1)[:, 1]
        return F.mse_loss(probs, targets)
    if prm.module.head == "bce":
        return F.binary_cross_entropy_with_logits(logits[:, 0], targets)
    # cross-entropy against [1-p, p] (for hard targets the same as against the class index)
    return F.cross_entropy(logits, torch.stack([1 - targets, targets], dim=-1))


# --- memory, before any is spent ---------------------------------------------------------------

def longest_micro_batch(cfg: TrainConfig) -> tuple[int, int]:
    """(tokens, length): the largest micro-batch the run can draw, batch_size times its longest
    solution as training lays it out (format, separator, max_length), read from the data with
    the backbone's tokenizer and config alone."""
    from transformers import AutoConfig
    init = backbone_folder(cfg)
    tokenizer = load_tokenizer(str(init), padding_side="right")
    fmt = get_format(cfg.format)
    layout = SimpleNamespace(format=fmt, tokenizer=tokenizer,
                             separator_id=separator_id(fmt, tokenizer),
                             module=SimpleNamespace(config=AutoConfig.from_pretrained(init)))
    longest = 0
    for line, value in iter_json_items(cfg.data):
        record = validate(value, "solution", path=cfg.data, line=line)
        tokens = encode(layout, record["problem"], record["steps"], cfg.max_length)
        longest = max(longest, len(tokens.input_ids))
    return cfg.batch_size * longest, longest


def memory_estimate(cfg: TrainConfig, processes: int | None = None):
    """What ``cfg`` needs on each device (``prmkit.prm.memory``), for ``processes`` processes
    (default: the launcher's WORLD_SIZE, else 1)."""
    from transformers import AutoConfig

    cfg.validate()
    model_config = AutoConfig.from_pretrained(backbone_folder(cfg))
    tokens, length = longest_micro_batch(cfg)
    return estimate(model_config, tokens=tokens, length=length,
                    processes=processes or int(os.environ.get("WORLD_SIZE", "1")),
                    sharding=cfg.sharding, dtype=cfg.dtype, autocast_bf16=cfg.bf16,
                    gradient_checkpointing=cfg.gradient_checkpointing,
                    lora_rank=cfg.lora_rank, outputs=2 if cfg.head == "ce" else 1,
                    head_layers=cfg.head_layers or default_head_layers(model_config),
                    train_backbone=cfg.train_backbone)


# --- the loop ------------------------------------------------------------------------------------

def _evaluate(prm, examples: list[dict], cfg: TrainConfig, device) -> dict:
    import torch
    if not examples:
        return {}
    prm.module.eval()
    total, right, loss_sum = 0, 0, 0.0
    model = prm.module.feature_head() if "features" in examples[0] else prm.module
    with torch.inference_mode():
        for i in range(0, len(examples), cfg.batch_size):
            logits, targets = _logits(model, examples[i:i + cfg.batch_size], prm, cfg, device)
            loss_sum += step_loss(prm, logits, targets, cfg.loss).item() * len(targets)
            probs = prm.module.probabilities(logits)
            right += ((probs > 0.5) == (targets > 0.5)).sum().item()
            total += len(targets)
    prm.module.train()
    return {"loss": loss_sum / total, "step_accuracy": right / total, "steps": total}


def train(cfg: TrainConfig, out: str | Path, *, progress: bool = True, on_step=None,
          force: bool = False) -> dict:
    """Train (or resume) a PRM into ``out``; ``out/final`` is the PRM folder. Returns the
    metrics; ``{}`` in data-parallel processes other than the first."""
    quiet_transformers()
    cfg.validate()
    init = backbone_folder(cfg)
    procs = Processes(cfg.device, cfg.sharding)
    progress = progress and procs.is_main

    def work(out: Path, stage_config: dict) -> dict:
        if procs.is_main:
            saved = out / "train_config.json"
            if force or saved.exists() and json.loads(saved.read_text()) != stage_config:
                # a checkpoint of other settings (or data) must not be resumed
                shutil.rmtree(out / "last", ignore_errors=True)
            write_json(saved, stage_config)
        procs.wait()
        return _train(cfg, out, init, procs, progress, on_step)

    try:
        return rundir.run_stage(out, {"stage": "train", **config.to_dict(cfg)}, work,
                                inputs={"data": cfg.data}, writer=procs.is_main, force=force)
    finally:
        procs.close()


def _train(cfg: TrainConfig, out: Path, init: Path, procs: Processes, progress: bool,
           on_step) -> dict:
    import torch
    last = out / "last"
    began = time.monotonic()
    if cfg.lora_rank and procs.sharded:
        raise InputError("LoRA with sharding=fsdp is not supported: use ddp (LoRA's training "
                         "state is small) or train the whole model", field="lora_rank")
    prm, state = _start_or_resume(cfg, last, init)
    _prepare_for_training(prm, cfg, state)
    train_set, held_out = load_examples(cfg, prm)
    per_epoch = math.ceil(len(train_set) / (cfg.batch_size * cfg.grad_accum * procs.world))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    trained = _trained_part(prm, cfg, procs, init, train_set + held_out)
    model, optimizer = procs.prepare(trained, lambda m: torch.optim.AdamW(
        [p for p in m.parameters() if p.requires_grad], lr=cfg.lr,
        weight_decay=cfg.weight_decay))
    if state["optimizer"] is not None:
        procs.load_optimizer_state(model, optimizer, state["optimizer"])
    micro_batches = cfg.grad_accum * procs.world  # a step takes this many, each process its own
    order = _order([len(e["ids"]) for e in train_set], cfg.batch_size,
                   total_steps * cfg.batch_size * micro_batches, cfg.seed)
    bar = Bar(progress, "PRM", total_steps, state["step"])
    log = TrainLog(out, cfg.report_to, config.to_dict(cfg), enabled=procs.is_main,
                   resume_step=state["step"])
    try:
        for step in range(state["step"], total_steps):
            batches = (_micro_batch(train_set, order, step, micro, cfg, procs)
                       for micro in range(cfg.grad_accum))
            entry = _optimizer_step(model, optimizer, prm, batches, step, total_steps, cfg,
                                    procs)
            if (step + 1) % cfg.eval_every == 0 or step + 1 == total_steps:
                entry["held_out"] = _evaluate(prm, held_out, cfg, procs.device)
            state["history"].append({k: entry[k] for k in ("step", "loss", "held_out")
                                     if k in entry})
            log.step(entry)
            if on_step is not None:
                on_step(step, entry["loss"])
            accuracy = entry.get("held_out", {}).get("step_accuracy")
            bar.advance(f"PRM  loss {entry['loss']:.3f}" + (
                f"  held-out step accuracy {accuracy:.3f}" if accuracy is not None else ""))
            if (step + 1) % cfg.save_every == 0 and step + 1 < total_steps:
                _checkpoint(prm, model, optimizer, procs, last, state, step + 1, began)
    finally:
        bar.stop()
        log.close()
    state["seconds"] += time.monotonic() - began
    return _save_final(prm, model, procs, cfg, out, state, total_steps,
                       len(train_set), len(held_out))


def _start_or_resume(cfg: TrainConfig, last: Path, init: Path) -> tuple:
    """(the PRM, the trainer state): from the checkpoint in ``last`` when there is one, else a
    new PRM on the backbone in ``init``, in the weights' dtype."""
    import torch

    if (last / "trainer_state.pt").exists():
        prm = load_prm(last, dtype=cfg.dtype, device="cpu")
        return prm, torch.load(last / "trainer_state.pt", weights_only=False)
    weights = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
    prm = build_prm(str(init), load_tokenizer(str(init), padding_side="right"),
                    head=cfg.head, seed=cfg.seed, fmt=cfg.format, readout=cfg.readout,
                    head_layers=cfg.head_layers, dtype=weights)
    return prm, {"step": 0, "optimizer": None, "history": [], "seconds": 0.0}


def _prepare_for_training(prm, cfg: TrainConfig, state: dict) -> None:
    """Gradient checkpointing, LoRA adapters (with their state when resuming), attention in
    fp32 under bf16 autocast; the module in training mode."""
    if cfg.gradient_checkpointing:  # activations recomputed in the backward pass
        backbone = prm.module.model
        if hasattr(backbone, "activation_checkpointing_enable"):  # transformers 5.x's name
            backbone.activation_checkpointing_enable()  # non-reentrant by default
        else:
            backbone.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora_rank:
        add_lora(prm.module, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
        if state.get("lora") is not None:
            load_adapter_state(prm.module, state["lora"])
    if cfg.bf16 and cfg.dtype == "float32":  # bf16 for the MLPs only: comparing digits
        attention_in_fp32(prm.module)         # needs sharp attention
    prm.module.train()


def _trained_part(prm, cfg: TrainConfig, procs: Processes, init: Path, examples: list[dict]):
    """What the optimizer trains, on the process's device: the whole PRM (its top layers only,
    with ``top_layers``), or with a frozen backbone the head alone, on features computed once
    for ``examples``."""
    if not (procs.sharded and cfg.train_backbone):  # fully_shard moves one layer at a time
        prm.module.to(procs.device)
    trained = prm.module if cfg.train_backbone else prm.module.feature_head()
    if cfg.train_backbone and cfg.top_layers is not None:
        _freeze_below(prm.module.model, cfg.top_layers)
    if not cfg.train_backbone:
        prm.module.model.requires_grad_(False).eval()
        _add_features(prm, examples, cfg, procs.device, Path(init))
    return trained


def _micro_batch(train_set: list[dict], order: list[int], step: int, micro: int,
                 cfg: TrainConfig, procs: Processes) -> list[dict]:
    """This process's examples of micro-batch ``micro`` of optimizer step ``step``: the
    processes take turns along ``order``, so together they take every example once."""
    micro_batches = cfg.grad_accum * procs.world
    start = (step * micro_batches + micro * procs.world + procs.rank) * cfg.batch_size
    return [train_set[i] for i in order[start:start + cfg.batch_size]]


def _optimizer_step(model, optimizer, prm, batches, step: int, total_steps: int,
                    cfg: TrainConfig, procs: Processes) -> dict:
    """One optimizer step (linear warmup, then cosine decay) on gradients accumulated over
    ``batches``, clipped to norm 1; its log entry (loss averaged over the processes)."""
    import torch
    lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps)) * \
        0.5 * (1 + math.cos(math.pi * step / total_steps))
    for group in optimizer.param_groups:
        group["lr"] = lr
    losses = []
    for batch in batches:
        logits, targets = _logits(model, batch, prm, cfg, procs.device)
        loss = step_loss(prm, logits, targets, cfg.loss) / cfg.grad_accum
        procs.backward(loss)
        losses.append(loss.item())
    norm = scalar(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    _stop_if_diverged(step + 1, sum(losses), norm, cfg)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"step": step + 1, "loss": round(procs.mean(sum(losses)), 5), "lr": lr,
            "grad_norm": round(norm, 5)}


def _save_final(prm, model, procs: Processes, cfg: TrainConfig, out: Path, state: dict,
                total_steps: int, train_examples: int, held_out_examples: int) -> dict:
    """The trained PRM in ``out/final`` (LoRA merged, weights checked) and the run's metrics;
    ``{}`` in processes other than the first, which only help gather the shards."""
    procs.wait()
    gathered = procs.full_state(model)  # every process takes part in gathering the shards
    if not procs.is_main:
        return {}
    if cfg.lora_rank:
        merge_lora(prm.module)
    _check_weights(gathered if gathered is not None else dict(prm.module.named_parameters()))
    save_prm(prm, out / "final", state=gathered)
    return {"steps": total_steps, "train_examples": train_examples,
            "held_out_examples": held_out_examples, "seconds": round(state["seconds"], 1),
            "history": state["history"],
            "final_held_out": state["history"][-1].get("held_out", {})}


def untrained(cfg: TrainConfig, out: str | Path, *, force: bool = False) -> dict:
    """The PRM as ``train`` would start it, its head's own term zeroed, saved without a step of
    training: the baseline that says how much the labels add. With ``readout=likelihood`` a
    step's score is then the backbone LM's verdict alone, sigmoid(log p) of the step's least
    likely token; with the separator readout every score is 0.5. Written as ``train`` writes
    a PRM (``out/final``, ``metrics.json``, the marker last)."""
    import torch

    quiet_transformers()
    cfg.validate()
    init = str(backbone_folder(cfg))

    def work(out: Path, _config: dict) -> dict:
        prm = build_prm(init, load_tokenizer(init, padding_side="right"), head=cfg.head,
                        seed=cfg.seed, fmt=cfg.format, readout=cfg.readout)
        with torch.no_grad():
            prm.module.score[-1].weight.zero_()
            prm.module.score[-1].bias.zero_()
        save_prm(prm, out / "final")
        return {"steps": 0, "seconds": 0.0, "history": []}

    return rundir.run_stage(out, {"stage": "untrained", **config.to_dict(cfg)}, work,
                            force=force)


def _stop_if_diverged(step: int, loss: float, grad_norm: float, cfg: TrainConfig) -> None:
    """Training stops at the first non-finite loss or gradient: no step is taken with it, and
    nothing is saved (a PRM with NaN weights would score NaN everywhere)."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    what = "loss" if not math.isfinite(loss) else "gradient norm"
    raise InputError(f"training diverged at step {step}: the {what} is "
                     f"{loss if what == 'loss' else grad_norm}; nothing was saved (lower lr, "
                     f"now {cfg.lr:g}, or check the labels)", path=cfg.data, field="lr")


def _check_weights(tensors: dict) -> None:
    import torch
    for name, parameter in tensors.items():
        if parameter.is_floating_point() and not torch.isfinite(parameter).all():
            raise InputError(f"the trained weights hold non-finite values ({name}); nothing "
                             "was saved", field="lr")


def _order(lengths: list[int], batch: int, needed: int, seed: int) -> list[int]:
    """Epochs of shuffled indices, long enough for the whole run (a function of the seed, so a
    resumed run sees the batches it would have seen). Within windows of 8 batches, examples are
    sorted by length, so a batch pads little; the batches themselves stay in shuffled order."""
    rng, order = random.Random(seed), []
    window = 8 * batch
    while len(order) < needed:
        epoch = list(range(len(lengths)))
        rng.shuffle(epoch)
        for start in range(0, len(epoch), window):
            chunk = sorted(epoch[start:start + window], key=lambda i: lengths[i])
            batches = [chunk[i:i + batch] for i in range(0, len(chunk), batch)]
            rng.shuffle(batches)
            order += [i for b in batches for i in b]
    return order


def _checkpoint(prm, model, optimizer, procs: Processes, last: Path, state: dict, step: int,
                began: float) -> None:
    """A resumable checkpoint in ``last``: the PRM folder (LoRA adapters unmerged, kept beside
    the optimizer state) with the trainer state written into it before it is renamed into
    place: all or nothing. Under fsdp every process takes part in gathering the state."""
    import torch

    gathered = procs.full_state(model)
    optimizer_state = procs.full_optimizer_state(model, optimizer)
    if not procs.is_main:
        return
    state.update(step=step, optimizer=optimizer_state,
                 lora=adapter_state(prm.module) if has_lora(prm.module) else None)
    snapshot = {**state, "seconds": state["seconds"] + time.monotonic() - began}
    save_prm(prm, last, state=gathered,
             extra=lambda folder: torch.save(snapshot, folder / "trainer_state.pt"))
