"""The ``hf`` backend: batched sampling from any Hugging Face causal LM with a KV cache.

Why a hand-written loop rather than ``model.generate``: three things the pipeline needs that
``generate`` does not give. (1) Each distinct prompt is prefilled once and its KV cache is then
copied to its n samples; MC estimation asks for K completions of the same prefix, and
``generate`` would prefill it K times. (2) Per-completion seeds (Gumbel-max sampling with one
generator a row), so a completion does not depend on batching or on the number of workers.
(3) Finished rows leave the batch, so one long completion does not keep 63 finished rows busy.
The loop itself is the standard one: left padding, explicit position ids, a ``DynamicCache``.

Sharding: with ``workers > 1`` batches go to that many spawned processes, each holding its own
copy of the model with one torch thread. On a small CPU this beats one process with several
threads (``benchmarks/rollout_throughput.py`` measures it); on a GPU use one worker.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prmkit.backends.base import Completion, SamplingParams, check_outputs, prompt_texts
from prmkit.errors import InputError
from prmkit.models import (
    load_causal_lm,
    load_tokenizer,
    model_folder,
    quiet_transformers,
    resolve_device,
)

# called after each decoding step with ((prompt index, sample index), token id) pairs
TokenListener = Callable[[list[tuple[tuple[int, int], int]]], None]


@dataclass(frozen=True)
class _Batch:
    prompts: list[list[int]]     # distinct prompts' token ids
    rows: list[tuple[int, int]]  # (index into prompts, seed) for each completion
    keys: list[tuple[int, int]]  # (prompt index in the call, sample index) for each completion


class _Engine:
    """One model in one process; runs batches of token ids."""

    def __init__(self, path: str, dtype: str, device: str, threads: int | None):
        import torch
        quiet_transformers()
        device = resolve_device(device)
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = device
        self.tokenizer = load_tokenizer(path)
        self.model = load_causal_lm(path, dtype=dtype, device=device)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos.add(self.tokenizer.eos_token_id)
        self.eos = eos
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.context = getattr(self.model.config, "max_position_embeddings", None) or 10**9

    def run(self, batch: _Batch, params: SamplingParams,
            on_tokens: TokenListener | None = None) -> list[tuple[list[int], str]]:
        with self.torch.inference_mode(), warnings.catch_warnings():
            # transformers 5 renames the cache argument; the old name serves every version
            # prmkit supports, and the rename's notice would print once a worker and batch
            warnings.filterwarnings("ignore", message="`past_key_values` is deprecated",
                                    category=FutureWarning)
            return self._run(batch, params, on_tokens)

    def _run(self, batch: _Batch, params: SamplingParams,
             on_tokens: TokenListener | None) -> list[tuple[list[int], str]]:
        torch, device = self.torch, self.device
        width = max(len(p) for p in batch.prompts)
        ids = torch.full((len(batch.prompts), width), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(batch.prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1)
        # copy each prompt's cache to its samples
        expand = torch.tensor([p for p, _ in batch.rows], device=device)
        cache = out.past_key_values
        cache.batch_select_indices(expand)
        logits = out.logits[:, -1, :].float()[expand]
        mask, next_pos = mask[expand], positions[expand, -1] + 1

        generators = []
        for _, seed in batch.rows:
            g = torch.Generator(device=device)
            g.manual_seed(seed)
            generators.append(g)
        tokens: list[list[int]] = [[] for _ in batch.rows]
        finish = ["length"] * len(batch.rows)
        active = list(range(len(batch.rows)))  # rows still generating, in cache order
        budget = min(params.max_new_tokens, self.context - width)
        for step in range(budget):
            chosen = _sample(logits, params, [generators[r] for r in active], torch).tolist()
            keep = []
            for slot, (r, tok) in enumerate(zip(active, chosen)):
                if tok in self.eos:
                    finish[r] = "stop"
                    continue
                tokens[r].append(tok)
                if params.stop and self._hit_stop(tokens[r], params.stop):
                    finish[r] = "stop"
                    continue
                keep.append(slot)
            if on_tokens is not None:  # a server streams these, or raises to stop early
                on_tokens([(batch.keys[r], tok) for r, tok in zip(active, chosen)
                           if tok not in self.eos])
            if not keep or step == budget - 1:
                break
            if len(keep) < len(active):  # finished rows leave the batch
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, next_pos = mask[index], next_pos[index]
                chosen = [chosen[s] for s in keep]
                active = [active[s] for s in keep]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            out = self.model(input_ids=torch.tensor(chosen, device=device)[:, None],
                             attention_mask=mask, position_ids=next_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
        return list(zip(tokens, finish))

    def _hit_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        tail = self.tokenizer.decode(tokens[-64:], skip_special_tokens=True)
        return any(s in tail for s in stop)


def _sample(logits, params: SamplingParams, generators, torch):
    """One token a row: greedy at temperature 0, else Gumbel-max with each row's own generator,
    among the ``top_k`` most likely tokens (all when 0), then within the ``top_p`` nucleus of
    those. The noise is drawn over the whole vocabulary whatever the filters keep, so a
    generator's stream, and every completion without ``top_k``, is what it was without it."""
    if params.temperature == 0:
        return logits.argmax(-1)
    logits = logits / params.temperature
    if 0 < params.top_k < logits.shape[-1]:
        # a token tied with the k-th stays, as in transformers' TopKLogitsWarper
        kth = logits.topk(params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= params.top_p  # keeps the top token
        sorted_logits[drop] = float("-inf")
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    noise = torch.stack([torch.rand(logits.shape[-1], generator=g, device=logits.device)
                         for g in generators])
    gumbel = -torch.log(-torch.log(noise.clamp_min(1e-20)))
    return (logits + gumbel).argmax(-1)


# --- worker processes ---------------------------------------------------------------------------

_ENGINE: _Engine | None = None


def _init_worker(path: str, dtype: str, device: str, threads: int) -> None:
    global _ENGINE
    _ENGINE = _Engine(path, dtype, device, threads)


def _wait_a_little(_: int) -> None:
    time.sleep(0.5)  # long enough that each worker takes one of these, once initialised


def _run_in_worker(job: tuple[_Batch, SamplingParams]) -> list[tuple[list[int], str]]:
    return _ENGINE.run(*job)


class HFBackend:
    """Sampling from a local Hugging Face causal LM folder (a toy policy or a real model)."""

    def __init__(self, model: str | Path, *, batch_size: int = 32, workers: int = 1,
                 threads: int | None = None, dtype: str = "auto", device: str = "auto"):
        if batch_size < 1:
            raise InputError(f"{batch_size}: must be at least 1", field="batch_size")
        if workers < 1:
            raise InputError(f"{workers}: must be at least 1", field="workers")
        self.path = str(model_folder(model))  # a folder, or a hub id resolved to its cache
        self.batch_size, self.workers = batch_size, workers
        self.dtype, self.device = dtype, device
        self.threads = threads or (max(1, (os.cpu_count() or 1) // workers) if workers > 1
                                   else None)
        self.tokenizer = load_tokenizer(self.path)
        self.context = _context_length(self.path)
        self._engine: _Engine | None = None
        self._pool = None

    # -- public ------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], params: SamplingParams, *,
                 on_tokens: TokenListener | None = None) -> list[list[Completion]]:
        """``on_tokens`` (one worker only) is called after every decoding step with the
        ((prompt index, sample index), token id) of each token just generated; an exception it
        raises stops the generation and leaves this call (how a server cancels a request)."""
        if not prompts:  # the tokenizer refuses an empty batch
            return []
        encoded = self.encode(prompts)
        results: dict[tuple[int, int], tuple[list[int], str]] = {}
        batches = self._batches(prompts, encoded, params)
        for batch, outs in zip(batches, self._run(batches, params, on_tokens)):
            results.update(zip(batch.keys, outs))
        outputs = [[self._completion(*results[(i, j)], params.stop) for j in range(params.n)]
                   for i in range(len(prompts))]
        return check_outputs(prompts, params, outputs)

    def fits(self, prompts: Sequence[str]) -> list[bool]:
        """Whether each prompt leaves the model room to generate (a stage skips, with its id,
        a record whose prompt does not, instead of failing on it)."""
        encoded = self.tokenizer(prompt_texts(prompts), add_special_tokens=True)["input_ids"]
        return [len(ids) < self.context for ids in encoded]

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt; a prompt that leaves no room to generate is an error."""
        encoded = self.tokenizer(prompt_texts(prompts), add_special_tokens=True)["input_ids"]
        for i, ids in enumerate(encoded):
            if not ids:
                raise InputError(f"prompt {i} is empty", field="prompt")
            if len(ids) >= self.context:
                raise InputError(f"prompt {i} has {len(ids)} tokens but the model's context is "
                                 f"{self.context} tokens", path=self.path, field="prompt")
        return encoded

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> "HFBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the pool may already be gone
            pass

    # -- internals ---------------------------------------------------------------------------

    def _batches(self, prompts: Sequence[str], encoded: list[list[int]],
                 params: SamplingParams) -> list[_Batch]:
        """Completions in batches of at most ``batch_size`` rows, similar lengths together."""
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        batches, current = [], {"prompts": [], "rows": [], "keys": []}

        def flush():
            if current["rows"]:
                batches.append(_Batch(**current))
            current.update(prompts=[], rows=[], keys=[])

        for i in order:
            j = 0
            while j < params.n:
                if len(current["rows"]) == self.batch_size:
                    flush()
                take = min(params.n - j, self.batch_size - len(current["rows"]))
                current["prompts"].append(encoded[i])
                slot = len(current["prompts"]) - 1
                for s in range(j, j + take):
                    current["rows"].append((slot, params.row_seed(prompts[i], s)))
                    current["keys"].append((i, s))
                j += take
        flush()
        return batches

    def _run(self, batches: list[_Batch], params: SamplingParams,
             on_tokens: TokenListener | None = None):
        if self.workers == 1:
            if self._engine is None:
                self._engine = _Engine(self.path, self.dtype, self.device, self.threads)
            return (self._engine.run(b, params, on_tokens) for b in batches)
        if on_tokens is not None:
            raise ValueError("on_tokens needs workers=1: worker processes cannot call back")
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker,
                                  initargs=(self.path, self.dtype, self.device, self.threads))
        return self._pool.imap(_run_in_worker, [(b, params) for b in batches])

    def _completion(self, tokens: list[int], finish: str, stop: tuple[str, ...]) -> Completion:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cuts = [text.find(s) for s in stop if s in text]
        if cuts:  # like vLLM, the stop string itself is not part of the completion
            text = text[:min(cuts)]
        return Completion(text=text, finish_reason=finish, num_tokens=len(tokens))

    def warm_up(self) -> None:
        """Load the model (or start every worker) now, so that timings exclude start-up."""
        if self.workers == 1:
            self.generate(["x"], SamplingParams(max_new_tokens=1))
            return
        self._run([], SamplingParams())  # creates the pool
        self._pool.map(_wait_a_little, range(self.workers), chunksize=1)


def _context_length(path: str) -> int:
    config = Path(path) / "config.json"
    if not config.exists():
        raise InputError("no config.json here: not a saved Hugging Face model", path=path)
    try:
        value = json.loads(config.read_text()).get("max_position_embeddings")
    except json.JSONDecodeError as e:
        raise InputError(f"unreadable config.json ({e.msg})", path=config) from None
    return int(value) if value else 10**9
