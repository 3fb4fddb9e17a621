"""Step scoring speed: one forward pass a solution (batched, and unbatched) against one pass a
step prefix at batch size 1, the way RLHFlow's and OpenR's evaluation scripts score.

The same solutions (ProcessBench gsm8k, 400 of them, from ../shared/data) are scored with the
same randomly initialised Qwen2-shaped PRM three ways; the step scores must agree within 1e-4.
Goal: one pass batched is at least 8x faster than one pass a prefix.

    .venv/bin/python benchmarks/scoring_speed.py [--hidden 256 --layers 4] [--device cuda
        --dtype bfloat16 --hidden 896 --layers 24 --heads 14 --kv-heads 2]   # 0.5B-shaped

The tokenizer is a byte-level BPE trained here on the benchmark's own text (no hub access);
sequence lengths are therefore close to a real BPE tokenizer's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from prmkit.formats.processbench import read
from prmkit.prm.model import build_prm
from prmkit.prm.score import encode, score_encoded

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "processbench" / "gsm8k.json"


def bpe_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>",
                                   padding_side="right")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16")
    args = parser.parse_args()

    import torch
    from transformers import Qwen2Config
    items = read(args.data)[:args.n]
    tokenizer = bpe_tokenizer([i["problem"] + "\n\n" + "\n\n".join(i["steps"]) for i in items],
                              args.vocab)
    config = Qwen2Config(vocab_size=args.vocab + 8, hidden_size=args.hidden,
                         intermediate_size=args.hidden * 4, num_hidden_layers=args.layers,
                         num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                         max_position_embeddings=8192, pad_token_id=tokenizer.pad_token_id)
    prm = build_prm(config, tokenizer, seed=0)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    prm.module.to(device=args.device, dtype=dtype).eval()
    params = sum(p.numel() for p in prm.module.parameters())

    encoded = [encode(prm, i["problem"], i["steps"]) for i in items]
    tokens = sum(len(e.input_ids) for e in encoded)
    n_steps = sum(len(e.positions) for e in encoded)
    prefixes = [encode(prm, i["problem"], i["steps"][:k]) for i in items
                for k in range(1, len(i["steps"]) + 1)]
    prefix_tokens = sum(len(e.input_ids) for e in prefixes)

    def timed(fn):
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if args.device == "cuda":
            torch.cuda.synchronize()
        return result, time.perf_counter() - start

    score_encoded(prm, encoded[:4], batch_size=4)  # warm-up
    batched, t_batched = timed(lambda: score_encoded(prm, encoded, batch_size=args.batch_size))
    unbatched, t_unbatched = timed(lambda: score_encoded(prm, encoded, batch_size=1))
    per_prefix, t_prefix = timed(lambda: [s[-1] for s in score_encoded(prm, prefixes,
                                                                        batch_size=1)])
    flat_batched = [x for s in batched for x in s]
    flat_unbatched = [x for s in unbatched for x in s]
    diff_prefix = max(abs(a - b) for a, b in zip(flat_batched, per_prefix))
    diff_unbatched = max(abs(a - b) for a, b in zip(flat_batched, flat_unbatched))

    print(f"{len(items)} ProcessBench gsm8k solutions, {n_steps} steps, {tokens} tokens "
          f"({prefix_tokens} over all prefixes); PRM {params / 1e6:.1f}M parameters "
          f"({args.layers} layers x {args.hidden}), {args.device} {args.dtype}")
    print(f"{'method':40}{'seconds':>10}{'tokens/s':>12}")
    print(f"{'one pass a solution, batched':40}{t_batched:>10.2f}{tokens / t_batched:>12.0f}")
    print(f"{'one pass a solution, batch size 1':40}{t_unbatched:>10.2f}"
          f"{tokens / t_unbatched:>12.0f}")
    print(f"{'one pass a prefix, batch size 1':40}{t_prefix:>10.2f}"
          f"{prefix_tokens / t_prefix:>12.0f}")
    print(f"speed-up, one pass batched vs one pass a prefix: {t_prefix / t_batched:.1f}x "
          f"(goal >= 8x); batched vs unbatched one pass: {t_unbatched / t_batched:.1f}x")
    print(f"largest score difference: vs per prefix {diff_prefix:.2e}, vs unbatched "
          f"{diff_unbatched:.2e} (must be < 1e-4)")
    if max(diff_prefix, diff_unbatched) >= 1e-4:
        raise SystemExit("step scores disagree")


if __name__ == "__main__":
    main()
