"""Step scores in one forward pass a solution (``prmkit score``, ``prmkit.prm.score``).

Every step's separator sits in the one token sequence of its solution, and a causal model's
output at a separator depends only on what precedes it, so one pass gives every step's score:
the same numbers as one pass per step prefix (how RLHFlow's and OpenR's scripts work), for a
fraction of the cost. Solutions are batched by length, longest first, so padding stays small;
right padding never changes a causal model's outputs at real positions.

An outcome model read as a PRM (the ``qwen2.5-math-rm`` format: the paper's ORM baseline) reads
each step prefix as a conversation of its own, closed after it, so it costs one pass a prefix;
all the prefixes are batched together by length.

Steps that do not fit the context are dropped whole from the end (``prmkit.steps``) and get
``None``: never a made-up score. ``prmkit score`` counts them (solutions and steps, with a
warning), and every evaluation counts them again and says what it did with them
(``prmkit.evaluate.ranking``, ``bon``, ``processbench``).

The stage (``ScoreConfig``, ``run``) writes ``scores.jsonl`` into a run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from prmkit import config
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.formats import read_as
from prmkit.models import model_as_input
from prmkit.prm.checks import check_prm
from prmkit.prm.formats import PRM_FORMATS
from prmkit.prm.layout import encode, encode_prefixes
from prmkit.prm.model import load_prm
from prmkit.prm.served import ServedPRM, score_served
from prmkit.progress import Bar
from prmkit.records import write_jsonl
from prmkit.runner import EXECUTOR_FIELDS, ShardedStage, executor_options, stage_config
from prmkit.steps import StepTokens


def _batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices grouped longest first, at most batch_size rows and max_tokens padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) == batch_size or width * (len(current) + 1) > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _step_batches(encoded: list[StepTokens], batch_size: int, max_tokens: int
                  ) -> list[list[int]]:
    """``_batches`` of the solutions with a step to read: one none of whose steps fit runs no
    forward pass (its prompt alone may pass the model's context)."""
    worth = [i for i, e in enumerate(encoded) if e.positions]
    return [[worth[j] for j in batch]
            for batch in _batches([len(encoded[i].input_ids) for i in worth], batch_size,
                                  max_tokens)]


def padded_batch(encoded: list[StepTokens], pad: int):
    """Right-padded token ids of a batch and the mask of every step's own tokens."""
    import torch
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    step_mask = torch.zeros((len(encoded), width), dtype=torch.bool)
    for row, e in enumerate(encoded):
        ids[row, :len(e.input_ids)] = torch.tensor(e.input_ids)
        step_mask[row, :len(e.input_ids)] = torch.tensor(e.step_mask())
    return ids, step_mask


def finite(probs, name: str = "the PRM"):
    """Scores as computed, or an error: a non-finite score (a checkpoint with NaN weights) is
    never written or ranked."""
    import torch
    if not torch.isfinite(probs).all():
        raise InputError(f"{name} gives non-finite step scores (NaN or inf): its weights are "
                         "broken; nothing was written", field="model")
    return probs


def score_encoded(prm, encoded: list[StepTokens], *, batch_size: int = 16,
                  max_tokens: int = 32768, progress: bool = False) -> list[list[float]]:
    import torch
    pad = prm.tokenizer.pad_token_id if prm.tokenizer.pad_token_id is not None else 0
    device = next(prm.module.parameters()).device
    out: list[list[float]] = [[] for _ in encoded]
    batches = _step_batches(encoded, batch_size, max_tokens)
    bar = Bar(progress, "scoring", len(encoded))
    try:
        skipped = len(encoded) - sum(len(b) for b in batches)
        if skipped:
            bar.advance(n=skipped)
        for batch in batches:
            ids, step_mask = padded_batch([encoded[i] for i in batch], pad)
            # right padding needs no attention mask: a causal model's output at a real position
            # never sees the padding after it, and without a mask attention takes its fast path
            with torch.inference_mode():
                probs = finite(prm.probabilities(ids.to(device), None,
                                                 step_mask.to(device)).cpu())
            for row, i in enumerate(batch):
                out[i] = probs[row, encoded[i].positions].tolist()
            bar.advance(n=len(batch))
    finally:
        bar.stop()
    return out


def score(problems: list[str], steps: list[list[str]], prm, *, batch_size: int = 16,
          max_tokens: int = 32768, max_length: int | None = None,
          progress: bool = False) -> list[list[float | None]]:
    """Every step's score (probability that it is correct), one forward pass a solution.

    ``prm`` is a PRM folder or a loaded PRM (``prmkit.prm.model.load_prm``)."""
    if isinstance(prm, (str, Path)):
        prm = load_prm(prm)
    if prm.format.per_prefix:
        return _score_prefixes(problems, steps, prm, batch_size=batch_size,
                               max_tokens=max_tokens, max_length=max_length, progress=progress)
    encoded = [encode(prm, p, s, max_length) for p, s in zip(problems, steps, strict=True)]
    scores = score_encoded(prm, encoded, batch_size=batch_size, max_tokens=max_tokens,
                           progress=progress)
    return [s + [None] * e.dropped for s, e in zip(scores, encoded)]


def _score_prefixes(problems: list[str], steps: list[list[str]], prm, *, batch_size: int,
                    max_tokens: int, max_length: int | None, progress: bool
                    ) -> list[list[float | None]]:
    """An outcome model's step scores: every prefix of every solution scored as a text of its
    own, all of them batched together by length."""
    per_solution = [encode_prefixes(prm, p, s, max_length)
                    for p, s in zip(problems, steps, strict=True)]
    flat = [e for prefixes in per_solution for e in prefixes]
    scored = iter(score_encoded(prm, flat, batch_size=batch_size, max_tokens=max_tokens,
                                progress=progress))
    return [[next(scored)[0] for _ in prefixes] + [None] * (len(s) - len(prefixes))
            for prefixes, s in zip(per_solution, steps)]


def score_per_prefix(prm, problem: str, steps: list[str]) -> list[float]:
    """The slow reference: one forward pass for each step prefix, batch size 1."""
    scores = []
    for k in range(1, len(steps) + 1):
        [[*_, last]] = score_encoded(prm, [encode(prm, problem, steps[:k])], batch_size=1)
        scores.append(last)
    return scores


def same_backbone(prms: list) -> bool:
    """Whether head PRMs share one backbone (the same format, tokenizer and weights), as PRMs
    trained head-only from one policy do."""
    import torch
    first = prms[0]
    if any(p.format.score_from != "head" or p.format.per_prefix for p in prms):
        return False

    def backbone(prm) -> dict:  # the weights the features come from: backbone and LM head
        lm_head = getattr(prm.module, "lm_head", None)
        return {**prm.module.model.state_dict(),
                **({"lm_head": lm_head.weight} if lm_head is not None else {})}
    reference = backbone(first)
    for other in prms[1:]:
        if other.format.name != first.format.name or len(other.tokenizer) != len(first.tokenizer) \
                or other.module.readout != first.module.readout:
            return False
        state = backbone(other)
        if state.keys() != reference.keys() or not all(
                torch.equal(state[k], reference[k]) for k in reference):
            return False
    return True


def score_many(problems: list[str], steps: list[list[str]], prms: dict, *,
               batch_size: int = 16, max_tokens: int = 32768,
               progress: bool = False) -> dict[str, list[list[float | None]]]:
    """Step scores of several PRMs (name -> folder or loaded PRM). PRMs that share a backbone
    (``same_backbone``) cost one backbone pass for all: every head reads the same hidden
    states. Otherwise each PRM scores on its own."""
    import torch

    loaded = {name: load_prm(p) if isinstance(p, (str, Path)) else p for name, p in prms.items()}
    if len(loaded) < 2 or not same_backbone(list(loaded.values())):
        return {name: score(problems, steps, prm, batch_size=batch_size,
                            max_tokens=max_tokens, progress=progress)
                for name, prm in loaded.items()}
    first = next(iter(loaded.values()))
    encoded = [encode(first, p, s) for p, s in zip(problems, steps, strict=True)]
    pad = first.tokenizer.pad_token_id if first.tokenizer.pad_token_id is not None else 0
    out = {name: [[] for _ in encoded] for name in loaded}
    for batch in _step_batches(encoded, batch_size, max_tokens):
        ids, step_mask = padded_batch([encoded[i] for i in batch], pad)
        with torch.inference_mode():
            features = first.module.features(ids, None, step_mask)
            for name, prm in loaded.items():
                probs = finite(prm.module.probabilities(prm.module.feature_head()(features)),
                               name)
                for row, i in enumerate(batch):
                    out[name][i] = probs[row, encoded[i].positions].tolist()
    return {name: [s + [None] * e.dropped for s, e in zip(scores, encoded)]
            for name, scores in out.items()}


# --- the stage: ``prmkit score`` -----------------------------------------------------------------

@dataclass(frozen=True)
class ScoreConfig:
    solutions: str = setting(REQUIRED, "Solutions: prmkit JSONL, or another --format (a "
                             "ProcessBench file or folder).", positional=True)
    model: str = setting(REQUIRED, "The PRM: a folder or hub id of a prmkit PRM, a "
                         "Qwen2.5-Math-PRM, a TRL token-classification PRM, an outcome "
                         "reward model in Qwen2.5-Math-RM's layout (scored a step prefix at "
                         "a time), or a causal LM with --model-format math-shepherd.")
    format: str = setting("prmkit", "Format of the solutions file (see `prmkit formats`).")
    model_format: str | None = setting(None, f"The PRM's input format: "
                                       f"{', '.join(PRM_FORMATS)} (default: from the folder; "
                                       "a folder that records its format refuses another).")
    batch_size: int = setting(16, "Solutions a forward batch.", ge=1)
    dtype: str = setting("auto", "auto (bfloat16 on a GPU, float32 on the CPU), float32, "
                         "bfloat16 or float16.", choices=("auto", "float32", "bfloat16",
                                                          "float16"))
    device: str = setting("auto", "auto (a GPU when there is one, else the CPU), cpu, cuda or "
                          "cuda:N.")
    device_map: str | None = setting(None, "Spread a PRM too large for one GPU over all of "
                                     "them: auto, balanced or sequential (transformers' "
                                     "device_map); default: the whole PRM on --device.")
    shard_size: int = setting(512, "Solutions a resumable shard.", ge=1)
    executor: str = setting("local", "local (this process) or ray (RAY_ADDRESS or a local "
                            "Ray).", choices=("local", "ray"))
    base_url: str | None = setting(None, "A served PRM instead: the URL of vLLM's pooling "
                                   "server or of prmkit serve --prm; --model is its served "
                                   "name, and the solutions are laid out here "
                                   "(prmkit.prm.served).")
    tokenizer: str | None = setting(None, "With --base-url: the PRM's tokenizer, a folder or "
                                    "hub id (default: --model).")
    max_length: int | None = setting(None, "With --base-url: tokens the served PRM reads at "
                                     "most (default: its config.json's context, where the "
                                     "tokenizer folder has one).", ge=1)
    concurrency: int = setting(4, "With --base-url: requests in flight at once.", ge=1)
    actors: int = setting(1, "ray: actors, each loads the PRM once.", ge=1)
    actor_cpus: float = setting(1.0, "ray: CPUs each actor reserves.", ge=0)
    actor_gpus: float = setting(0.0, "ray: GPUs each actor reserves (1: one PRM copy on each "
                                "GPU).", ge=0)

    def validate(self) -> "ScoreConfig":
        return config.check_values(self)


# where and how fast it runs changes nothing; the dtype changes the numbers
SPEED_ONLY = ("device", "device_map", "batch_size", "concurrency", *EXECUTOR_FIELDS)


def run(cfg: ScoreConfig, out: str | Path, *, force: bool = False,
        progress: bool = True) -> dict:
    """Score every solution into ``out/scores.jsonl`` (``{id, step_scores}``); returns the
    metrics: solutions, steps, and the steps past the context (scored ``None``) and the
    solutions that have them. The PRM folder is checked first (``check_prm``)."""
    cfg.validate()
    if cfg.base_url is None:
        check_prm(cfg.model, cfg.model_format)  # a broken folder: one line, before any work
    else:
        served(cfg).layout()  # its tokenizer and format, before any work

    def finish(folder: Path, scored: list[dict]) -> dict:
        write_jsonl(folder / "scores.jsonl", scored)
        cut = [r["step_scores"].count(None) for r in scored]
        return {"n_solutions": len(scored),
                "n_steps": sum(len(r["step_scores"]) for r in scored),
                "steps_past_context": sum(cut),
                "solutions_past_context": sum(1 for n in cut if n)}

    # a served PRM is named by its server and name (what it serves is the server's)
    model, snapshot = model_as_input(cfg.model) if cfg.base_url is None else (None, {})
    return ShardedStage(
        config=stage_config("score", cfg, drop=SPEED_ONLY, **snapshot),
        inputs={"solutions": cfg.solutions, "model": model},
        read=lambda: _solutions(cfg),
        factory=partial(ScoreWorker, cfg), finish=finish, shard_size=cfg.shard_size,
        executor=executor_options(cfg), label="scoring",
    ).run(out, force=force, progress=progress)


class ScoreWorker:
    """Scores shards of solutions with one PRM, loaded once (in this process or a Ray actor)."""

    def __init__(self, cfg: ScoreConfig):
        self.cfg = cfg
        self.prm = None if cfg.base_url else load_prm(
            cfg.model, fmt=cfg.model_format, dtype=cfg.dtype, device=cfg.device,
            device_map=cfg.device_map)

    def __call__(self, records: list[dict], index: int) -> list[dict]:
        problems, steps = [r["problem"] for r in records], [r["steps"] for r in records]
        if self.prm is None:
            scores = score_served(served(self.cfg), problems, steps,
                                  batch_size=self.cfg.batch_size,
                                  concurrency=self.cfg.concurrency)
        else:
            scores = score(problems, steps, self.prm, batch_size=self.cfg.batch_size)
        return [{"id": r["id"], "step_scores": s} for r, s in zip(records, scores)]


def served(cfg: ScoreConfig) -> ServedPRM:
    return ServedPRM(cfg.base_url, cfg.model, cfg.tokenizer or cfg.model, cfg.model_format,
                     cfg.max_length)


def _solutions(cfg: ScoreConfig) -> list[dict]:
    solutions = read_as(cfg.solutions, cfg.format, "solution")
    if not solutions:  # an empty file scored "successfully" would hide a broken stage
        raise InputError("no solutions in this file", path=cfg.solutions, field="solutions")
    return solutions
