"""Host memory to open a PRM for scoring: prmkit's lazy loader against the eager one it replaced.

A Qwen2 PRM shaped like Qwen2.5-0.5B (24 layers, hidden 896, the 151,936-token vocabulary;
random weights, saved in bf16 with prmkit's head) is opened in fresh processes three ways, and
the peak resident memory above a bare ``import torch, transformers`` (after loading, and after
one forward pass, which touches every weight as scoring does) is printed beside the
checkpoint's size:

    eager     what load_prm did before: the backbone built from its config in fp32 on the CPU,
              the whole state dict read into memory, loaded, then cast
    lazy      load_prm now: the backbone through from_pretrained (straight into its dtype),
              the head read alone with safetensors

    .venv/bin/python benchmarks/prm_loading.py [--layers 24] [--out runs/bench-loading]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from prmkit.prm.formats import get_format
from prmkit.prm.model import LoadedPRM, save_prm
from prmkit.prm.modules import StepRewardModel

MEASURE = r"""
import json, resource, sys, time
import torch, transformers  # the baseline: what any scoring process has loaded anyway
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path, how = sys.argv[1], sys.argv[2]
began = time.perf_counter()
if how == "lazy":
    from prmkit.prm.model import load_prm
    prm = load_prm(path, dtype="bfloat16", device="cpu")
elif how == "eager":
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel
    module = StepRewardModel(AutoModel.from_config(AutoConfig.from_pretrained(path)), "ce",
                             "separator", None)
    module.load_state_dict(load_file(path + "/model.safetensors"))
    module = module.to(dtype=torch.bfloat16)
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
seconds = time.perf_counter() - began
model = prm.module if how == "lazy" else module
with torch.inference_mode():  # scoring touches every weight: the memory it really costs
    model(torch.tensor([[2, 2, 1]]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"loaded_gib": (loaded - base) / 2**20, "above_baseline_gib": (peak - base) / 2**20,
                  "seconds": seconds}))
"""


def build(folder: Path, layers: int) -> None:
    import torch
    from tokenizers import Tokenizer, models
    from transformers import AutoModel, PreTrainedTokenizerFast, Qwen2Config
    config = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=layers,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=4096, tie_word_embeddings=True)
    with torch.device("cpu"):
        backbone = AutoModel.from_config(config, dtype=torch.bfloat16)
    module = StepRewardModel(backbone, "ce", "separator", None).to(torch.bfloat16)
    core = Tokenizer(models.WordLevel({"<pad>": 0, "<|step|>": 1, "a": 2}, unk_token="a"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|step|>"]})
    save_prm(LoadedPRM(module, tokenizer, get_format("step-token"), 1), folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-loading"))
    args = parser.parse_args()
    folder = args.out / f"prm-{args.layers}"
    if not (folder / "model.safetensors").exists():
        build(folder, args.layers)
    size = (folder / "model.safetensors").stat().st_size / 2**30
    print(f"checkpoint: {size:.2f} GiB (bf16, {args.layers} layers, hidden 896, vocab 151,936)")
    results, seconds = {}, {}
    for how in ("eager", "lazy"):
        done = subprocess.run([sys.executable, "-c", MEASURE, str(folder), how],
                              capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        results[how], seconds[how] = measured["above_baseline_gib"], measured["seconds"]
        print(f"{how:6} above import torch, transformers: {measured['loaded_gib']:.2f} GiB "
              f"after loading, {results[how]:.2f} GiB after one forward pass "
              f"({results[how] / size:.2f}x the checkpoint); loaded in {seconds[how]:.1f} s")
    print(f"lazy / eager: memory {results['lazy'] / results['eager']:.2f}, load time "
          f"{seconds['lazy'] / seconds['eager']:.2f}")


if __name__ == "__main__":
    main()
