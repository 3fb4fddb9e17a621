"""Training the tiny toy policy from scratch on the CPU, cached and resumable.

The policy learns to write canonical solutions of freshly generated training problems (loss on
the solution and its end token only, never on the problem). Batch ``b`` is made of training
problems ``b*batch_size ...``, so the data stream is a function of the step and a resumed run
sees exactly the batches it would have seen.

Folder layout (under ``$PRMKIT_CACHE``, default ``~/.cache/prmkit``, in ``toy-policy/<key>``,
where key is a hash of the config, so a later run with the same config reuses the checkpoint):

    config.json     the policy config
    last/           latest checkpoint: model, tokenizer, trainer_state.pt (optimizer, step, losses)
    step-000100/    snapshots at ``snapshots`` steps: weaker policies of the same run
    final/          the trained policy, a plain ``save_pretrained`` folder any backend loads
    metrics.json    loss curve and held-out sampled accuracy
    COMPLETE        written last

Interrupting a run (Ctrl-C, a time cap, a crash) keeps ``last/``; the next run resumes from it.
Problems of the held-out ``test`` split are never trained on, even by chance.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prmkit import rundir
from prmkit.backends import SamplingParams, load_backend
from prmkit.errors import InputError
from prmkit.models import attention_in_fp32, load_tokenizer, quiet_transformers
from prmkit.progress import Bar
from prmkit.prompting import render
from prmkit.records import write_json
from prmkit.toyworld.model import TinyModelConfig, build_causal_lm
from prmkit.toyworld.problems import (
    MISCONCEPTIONS,
    Spec,
    budget_for,
    corpus_solution,
    make_problem,
    make_problems,
    preset,
)
from prmkit.toyworld.tokenizer import build_char_tokenizer
from prmkit.toyworld.truth import judge

EVAL_SPLIT, TRAIN_SPLIT = "test", "train"
OPTIMIZERS = ("muon", "adamw")
PROMPT = "plain"  # the prompt layout (prmkit.prompting) the policy is trained and sampled with
HELD_OUT_GUARD = 5000  # training skips any problem whose text is among the first 5000 test ones
CHECKPOINT_EVERY = 50  # steps between resumable checkpoints (about 30 s of training)


@dataclass(frozen=True)
class PolicyConfig:
    preset: str = "mixed"          # toy problem settings (prmkit.toyworld.problems.PRESETS)
    seed: int = 0
    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    steps: int = 800               # about 5 minutes on 2 cores (0.36 s a step)
    batch_size: int = 16
    optimizer: str = "muon"        # "muon": Muon for the hidden matrices, AdamW for the rest
    lr: float = 3e-3               # AdamW's peak learning rate (every parameter under "adamw")
    muon_lr: float = 0.02          # Muon's peak learning rate (its usual scale, not AdamW's)
    warmup_steps: int = 20
    weight_decay: float = 0.1
    bf16: bool = True              # bf16 autocast on CPU for the MLPs (1.2x faster than fp32)
    loss_on_problem: bool = False  # also learn to predict the (random) problem text
    # the wrong rules the corpus teaches (problems.MISCONCEPTIONS), and how often a statement
    # they apply to is solved by them: the policy's confident errors, beside its slips
    misconceptions: tuple[str, ...] = ("fewer-adds",)
    misconception_rate: float = 0.85
    snapshots: tuple[int, ...] = (400, 600)

    def validate(self) -> "PolicyConfig":
        preset(self.preset)
        for name in ("steps", "batch_size", "warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "warmup_steps" else 1):
                raise InputError(f"{value!r}: must be a positive integer", field=name)
        for name in ("lr", "muon_lr"):
            if not getattr(self, name) > 0:
                raise InputError(f"{getattr(self, name)!r}: must be positive", field=name)
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"{self.optimizer!r}: choose one of {list(OPTIMIZERS)}",
                             field="optimizer")
        unknown = [m for m in self.misconceptions if m not in MISCONCEPTIONS]
        if unknown:
            raise InputError(f"{unknown}: unknown; known: {sorted(MISCONCEPTIONS)}",
                             field="misconceptions")
        if not 0 <= self.misconception_rate <= 1:
            raise InputError(f"{self.misconception_rate!r}: must lie between 0 and 1",
                             field="misconception_rate")
        if any(not 0 < s < self.steps for s in self.snapshots):
            raise InputError(f"{list(self.snapshots)}: snapshots must lie between 0 and steps "
                             f"({self.steps})", field="snapshots")
        return self

    def to_dict(self) -> dict:
        out = asdict(self)
        out["snapshots"] = list(self.snapshots)
        out["misconceptions"] = list(self.misconceptions)
        return out

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def cache_root() -> Path:
    return Path(os.environ.get("PRMKIT_CACHE", Path.home() / ".cache" / "prmkit"))


def policy_dir(cfg: PolicyConfig, root: Path | None = None) -> Path:
    return (root or cache_root()) / "toy-policy" / cfg.key()


# --- data ---------------------------------------------------------------------------------------

class ProblemStream:
    """Training problems ``i = 0, 1, ...`` of the train split, minus any held-out look-alike,
    each with the corpus's solution: the canonical one, or a believer's where the corpus applies
    a misconception (drawn from problem ``i``'s own stream, so resuming repeats it)."""

    def __init__(self, cfg: PolicyConfig):
        self.toy = preset(cfg.preset)
        self.seed = cfg.seed
        self.misconceptions, self.rate = tuple(cfg.misconceptions), cfg.misconception_rate
        self.held_out = {p["problem"] for p in make_problems(self.toy, HELD_OUT_GUARD,
                                                             seed=cfg.seed, split=EVAL_SPLIT)}

    def __getitem__(self, i: int) -> dict:
        problem = make_problem(self.toy, self.seed, TRAIN_SPLIT, i)
        if problem["problem"] in self.held_out:  # astronomically rare, but never train on test
            problem = make_problem(self.toy, self.seed, TRAIN_SPLIT + "-resample", i)
        if self.misconceptions and self.rate > 0:
            belief = random.Random(f"prmkit-toy-corpus:{self.seed}:{i}")
            problem["solution"] = corpus_solution(Spec.from_dict(problem["toy"]),
                                                  self.misconceptions, self.rate, belief)
        return problem


def training_batch(tokenizer, problems: list[dict], loss_on_problem: bool = False):
    """Right-padded ids and labels (-100 on padding, and on the problem unless asked).

    The problem text is random draws, so predicting it teaches nothing the policy needs; it is
    off by default and kept as an option for experiments."""
    import torch
    rows, masks = [], []
    for p in problems:
        prompt = tokenizer(render(PROMPT, p["problem"]), add_special_tokens=False)["input_ids"]
        answer = tokenizer(p["solution"], add_special_tokens=False)["input_ids"]
        answer = answer + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        masks.append([int(loss_on_problem)] * len(prompt) + [1] * len(answer))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, :len(r)] = torch.tensor(r)
        labels[i, :len(r)] = torch.tensor([t if keep else -100 for t, keep in zip(r, m)])
        attention[i, :len(r)] = 1
    return ids, labels, attention


# --- training -----------------------------------------------------------------------------------

def _save(model, tokenizer, path: Path, state: dict | None = None) -> None:
    """Write a checkpoint folder atomically (``rundir.replace_folder``)."""
    import torch

    def fill(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if state is not None:
            torch.save(state, folder / "trainer_state.pt")

    rundir.replace_folder(path, fill)


def _lr_at(cfg: PolicyConfig, step: int) -> float:
    """The share of the peak learning rate at ``step``: linear warm-up, then cosine decay to a
    tenth of the peak."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizers(model, cfg: PolicyConfig) -> list:
    """The optimizers of a run; each parameter group keeps its ``peak_lr`` for the schedule.

    Muon (orthogonalised momentum) trains the hidden weight matrices; AdamW the embeddings
    (tied to the output head), norms and biases, as Muon's authors prescribe. Measured on the
    default toy world, 470 steps at batch 16 with the same schedule, held-out accuracy (60
    problems x 8 samples, T=1): AdamW 29%, Muon 84%; a Muon step costs about 10% more."""
    import torch
    hidden = [p for n, p in model.named_parameters() if p.ndim == 2 and "embed" not in n] \
        if cfg.optimizer == "muon" else []
    chosen = {id(p) for p in hidden}
    rest = [(n, p) for n, p in model.named_parameters() if id(p) not in chosen]
    groups = [{"params": [p for n, p in rest if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for n, p in rest if p.ndim < 2], "weight_decay": 0.0}]
    optimizers = [torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr,
                                    betas=(0.9, 0.95))]
    if hidden:
        optimizers.append(torch.optim.Muon(hidden, lr=cfg.muon_lr, weight_decay=cfg.weight_decay))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["peak_lr"] = group["lr"]
    return optimizers


def train(cfg: PolicyConfig, out: Path, *, max_seconds: float | None = None,
          progress: bool = True, on_step=None) -> dict:
    """Train (or resume training) into ``out``; returns the training record.

    ``max_seconds`` caps this call's wall time: training stops at the cap with ``last/`` saved
    and ``out`` left unfinished, so the next call resumes. ``on_step(step, loss)`` is for tests.
    """
    quiet_transformers()
    cfg.validate()
    out = Path(out)
    rundir.begin(out)
    write_json(out / "config.json", {"config": cfg.to_dict()})
    last = out / "last"
    tokenizer, model, state = _start_or_resume(cfg, last)
    optimizers = _optimizers(model, cfg)
    if state["optimizer"] is not None:
        for optimizer, saved in zip(optimizers, state["optimizer"], strict=True):
            optimizer.load_state_dict(saved)
    stream = ProblemStream(cfg)
    if cfg.bf16:
        attention_in_fp32(model)
    model.train()
    start = state["step"]
    seconds_before, began = state["seconds"], time.monotonic()
    bar = Bar(progress, "toy policy", cfg.steps, start)
    step = start
    try:
        for step in range(start, cfg.steps):
            if max_seconds is not None and time.monotonic() - began > max_seconds:
                break
            loss = _training_step(model, optimizers, tokenizer, stream, cfg, step)
            state["losses"].append(round(loss.item(), 5))
            if on_step is not None:
                on_step(step, loss.item())
            bar.advance(f"toy policy  loss {loss.item():.3f}")
            done = step + 1
            if done in cfg.snapshots:
                _save(model, tokenizer, out / f"step-{done:06d}")
            if done % CHECKPOINT_EVERY == 0 and done < cfg.steps:
                state.update(step=done, optimizer=[o.state_dict() for o in optimizers],
                             seconds=seconds_before + time.monotonic() - began)
                _save(model, tokenizer, last, state)
        else:
            step = cfg.steps
    finally:
        bar.stop()
    finished = step >= cfg.steps
    state.update(step=step, optimizer=[o.state_dict() for o in optimizers],
                 seconds=seconds_before + time.monotonic() - began)
    _save(model, tokenizer, last, state)
    if finished:
        model.eval()
        _save(model, tokenizer, out / "final")
    return {"step": step, "finished": finished, "seconds": round(state["seconds"], 1),
            "losses": state["losses"]}


def _start_or_resume(cfg: PolicyConfig, last: Path) -> tuple:
    """(tokenizer, model, trainer state): from the checkpoint in ``last`` when there is one,
    else a new character tokenizer and a model initialised from ``cfg.seed``."""
    import torch
    from transformers import AutoModelForCausalLM
    if not (last / "trainer_state.pt").exists():
        tokenizer = build_char_tokenizer()
        model = build_causal_lm(tokenizer, cfg.model, seed=cfg.seed)
        return tokenizer, model, {"step": 0, "losses": [], "seconds": 0.0, "optimizer": None}
    tokenizer = load_tokenizer(last, padding_side="right")
    try:
        model = AutoModelForCausalLM.from_pretrained(last)
        state = torch.load(last / "trainer_state.pt", weights_only=False)
    except Exception as e:  # torch, pickle and safetensors each raise their own types
        raise InputError(f"unreadable checkpoint ({type(e).__name__}: {e}); delete it to "
                         "start over",
                         path=last) from None
    return tokenizer, model, state


def _training_step(model, optimizers: list, tokenizer, stream: ProblemStream,
                   cfg: PolicyConfig, step: int):
    """Optimizer step ``step``: the schedule's learning rate, batch ``step`` of the problem
    stream, one update; returns the batch's loss."""
    import torch
    scale = _lr_at(cfg, step)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = group["peak_lr"] * scale
    problems = [stream[step * cfg.batch_size + i] for i in range(cfg.batch_size)]
    # right padding needs no attention mask: causal attention never looks ahead, and
    # padded positions carry no loss; without a mask SDPA takes its fast causal path
    ids, labels, _ = training_batch(tokenizer, problems, cfg.loss_on_problem)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for optimizer in optimizers:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss


# --- held-out evaluation ------------------------------------------------------------------------

def evaluate(model_path: str | Path, *, preset_name: str = "mixed", seed: int = 0,
             n_problems: int = 100, samples: int = 8, temperature: float = 1.0,
             workers: int = 2, batch_size: int = 64) -> dict:
    """Sampled accuracy on held-out problems, and how often a problem gets mixed outcomes."""
    problems = make_problems(preset(preset_name), n_problems, seed=seed, split=EVAL_SPLIT)
    budget = budget_for(problems)
    with load_backend("hf", str(model_path), workers=workers, batch_size=batch_size) as backend:
        outputs = backend.generate([render(PROMPT, p["problem"]) for p in problems],
                                   SamplingParams(n=samples, temperature=temperature,
                                                  max_new_tokens=budget, seed=seed))
    correct = mixed = unanswered = process_ok = misconceptions = 0
    by_steps: dict[int, list[int]] = {}
    for p, completions in zip(problems, outputs):
        spec = Spec.from_dict(p["toy"])
        truths = [judge(spec, c.text.split("\n\n")) for c in completions]
        right = sum(t.answer_correct for t in truths)
        correct += right
        unanswered += sum(not t.complete for t in truths)
        process_ok += sum(t.label == -1 and t.complete for t in truths)
        misconceptions += sum(t.first_error_origin == "misconception" for t in truths)
        mixed += 0 < right < samples
        by_steps.setdefault(p["n_steps"], []).append(right)
    total = n_problems * samples
    return {
        "n_problems": n_problems, "samples": samples, "temperature": temperature,
        "accuracy": correct / total, "mixed_share": mixed / n_problems,
        "process_correct": process_ok / total, "no_answer": unanswered / total,
        "first_error_a_misconception": misconceptions / total,
        "accuracy_by_steps": {k: sum(v) / (len(v) * samples) for k, v in sorted(by_steps.items())},
    }


def ensure_policy(cfg: PolicyConfig = PolicyConfig(), *, root: Path | None = None,
                  progress: bool = True, max_seconds: float | None = None,
                  evaluate_after: bool = True) -> Path:
    """The trained policy for ``cfg`` (training or resuming it first); returns ``final/``."""
    out = policy_dir(cfg, root)
    if rundir.is_complete(out, cfg.to_dict()):
        return out / "final"
    record = train(cfg, out, max_seconds=max_seconds, progress=progress)
    if not record["finished"]:
        raise TimeoutError(f"stopped at step {record['step']} of {cfg.steps} after "
                           f"{record['seconds']}s; run again to resume from {out / 'last'}")
    metrics = {"training": {k: record[k] for k in ("step", "seconds")},
               "losses": record["losses"]}
    if evaluate_after:
        metrics["held_out"] = evaluate(out / "final", preset_name=cfg.preset, seed=cfg.seed)
    write_json(out / "metrics.json", metrics)
    rundir.finish(out, cfg.to_dict())
    return out / "final"
