"""Evaluation, as a Python API that mirrors ``prmkit eval``.

    from prmkit import evaluate
    metrics = evaluate.processbench("data/processbench", step_scores="scores.jsonl")
    metrics = evaluate.bon({"gsm8k": "gsm8k_candidates.jsonl"}, fmt="qwen_eval")

Inputs may be paths or records already in memory; results are plain dicts (what the CLI writes
to ``metrics.json``). ``ProcessBenchConfig`` and ``BonConfig`` are the commands' settings;
``run_processbench`` and ``run_bon`` run them, into a folder through the stage runner when one
is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.evaluate import bon as _bon
from prmkit.evaluate import processbench as _processbench
from prmkit.records import read_records_with_lines

Source = str | Path


def load_benchmark(source: Source | list[dict]) -> list[dict]:
    """ProcessBench items from a file, a folder of subsets, ``hub:Qwen/ProcessBench``, or records."""
    if isinstance(source, list):
        return source
    from prmkit.formats.processbench import read
    return read(source)


def _load_predictions(source, kind: str, field: str) -> tuple[dict, dict, str]:
    if isinstance(source, Mapping):
        return dict(source), {}, "<predictions>"
    rows = read_records_with_lines(source, kind)
    return ({r["id"]: r[field] for _, r in rows}, {r["id"]: line for line, r in rows}, str(source))


def processbench(benchmark: Source | list[dict], *, step_scores: Source | Mapping | None = None,
                 critiques: Source | Mapping | None = None, threshold: float = 0.5,
                 tune_on: str | None = None, subsets: Iterable[str] | None = None,
                 per_item: bool = False) -> dict:
    """ProcessBench metrics of per-step scores (id -> [score]) or critiques (id -> [text]);
    with ``per_item``, every item's prediction too (``items``)."""
    items = load_benchmark(benchmark)
    if step_scores is not None:
        scores, lines, source = _load_predictions(step_scores, "step_scores", "step_scores")
        return _processbench.evaluate(items, step_scores=scores, threshold=threshold,
                                      tune_on=tune_on, subsets=subsets, source=source, lines=lines,
                                      per_item=per_item)
    texts, lines, source = (_load_predictions(critiques, "critique", "critiques")
                            if critiques is not None else (None, {}, "<predictions>"))
    return _processbench.evaluate(items, critiques=texts, subsets=subsets, source=source,
                                  lines=lines, per_item=per_item)


def load_candidates(source: Source | list[dict], fmt: str = "prmkit") -> list[dict]:
    """Candidate sets from prmkit's JSONL, another format (e.g. ``qwen_eval``), or records."""
    if isinstance(source, list):
        return source
    from prmkit.formats import read_as
    return read_as(source, fmt, "candidates")


def bon(benchmarks: Mapping[str, Source | list[dict]] | Source, *, fmt: str = "prmkit",
        ns: Sequence[int] | None = None, group_by: str = "equivalence",
        processes: int = 1, per_item: bool = False) -> dict:
    """Best-of-N metrics; ``benchmarks`` maps names to candidate files or records; with
    ``per_item``, each benchmark's picks per problem too (``items``)."""
    if not isinstance(benchmarks, Mapping):
        benchmarks = {Path(benchmarks).stem: benchmarks}
    sets = {name: load_candidates(src, fmt) for name, src in benchmarks.items()}
    return _bon.evaluate(sets, ns=ns, group_by=group_by, processes=processes,
                         per_item=per_item)


# --- the commands' settings --------------------------------------------------------------------

@dataclass(frozen=True)
class ProcessBenchConfig:
    benchmark: str = setting(REQUIRED, "ProcessBench: a JSON/JSONL file, a folder of subset "
                             "files, or hub:Qwen/ProcessBench.", short="-b")
    scores: str | None = setting(None, "JSONL of {id, step_scores}, or a `prmkit score` "
                                 "folder.")
    critiques: str | None = setting(None, "JSONL of {id, critiques: [text]}.")
    threshold: float = setting(0.5, "A step scored at or below this is an error "
                               "(prmkit.labels' one threshold rule).", ge=0, le=1)
    tune_on: str | None = setting(None, "Pick the best-F1 threshold on this subset.")
    subset: list[str] | None = setting(None, "Evaluate only these subsets (repeat).")

    def validate(self) -> "ProcessBenchConfig":
        from prmkit import config
        config.check_values(self)
        if (self.scores is None) == (self.critiques is None):
            raise InputError("give exactly one of --scores and --critiques", field="scores")
        return self


@dataclass(frozen=True)
class BonConfig:
    candidates: list[str] = setting(REQUIRED, "Candidate-set files, one a benchmark (named "
                                    "by its file stem).", positional=True)
    format: str = setting("prmkit", "Format of the candidate files: prmkit or qwen_eval.")
    n: list[int] | None = setting(None, "N values, e.g. 1,2,4,8 (default: 1, 2, 4, ... up to "
                                  "the set size).", ge=1)
    group_by: str = setting("equivalence", "Group answers by equivalence or string.",
                            choices=("equivalence", "string"))
    processes: int = setting(1, "Worker processes for grading.", ge=1)
    model: str | None = setting(None, "A PRM folder: score every candidate's steps with it "
                                "first (their `steps`, or their `text` split on blank lines).")
    model_format: str | None = setting(None, "With --model: prmkit, plain, qwen2.5-math-prm or "
                                       "math-shepherd (default: from the folder).")
    batch_size: int = setting(16, "With --model: solutions a forward batch.", ge=1)
    device: str = setting("auto", "With --model: auto (a GPU when there is one), cpu, cuda.")
    device_map: str | None = setting(None, "With --model: spread a PRM too large for one GPU "
                                     "over all of them (auto, balanced, sequential).")
    dtype: str = setting("auto", "With --model: auto (bfloat16 on a GPU, float32 on the CPU), "
                         "float32, bfloat16 or float16.",
                         choices=("auto", "float32", "bfloat16", "float16"))

    def validate(self) -> "BonConfig":
        from prmkit import config
        config.check_values(self)
        names = [Path(p).stem for p in self.candidates]
        if len(set(names)) != len(names):
            raise InputError("two candidate files share a name; benchmarks are named by file "
                             "stem", field="candidates")
        return self


def _into(out: str | Path | None, config: dict, inputs: dict, force: bool,
          compute: Callable[[bool], dict], items: Callable[[dict], list[dict]]) -> dict:
    """The metrics, computed at once or (with ``out``) through the stage runner, which keeps
    the per-item predictions beside them in ``predictions.jsonl`` (``items`` takes them out of
    the metrics)."""
    if out is None:
        return compute(False)
    from prmkit import rundir
    from prmkit.records import write_jsonl

    def work(folder: Path, _config: dict) -> dict:
        metrics = compute(True)
        write_jsonl(folder / "predictions.jsonl", items(metrics))
        return metrics
    return rundir.run_stage(out, config, work, inputs=inputs, force=force)


def run_processbench(cfg: ProcessBenchConfig, out: str | Path | None = None, *,
                     force: bool = False) -> dict:
    """ProcessBench metrics of a ``prmkit eval processbench`` config (into ``out`` if given)."""
    from prmkit import config
    cfg.validate()
    scores = cfg.scores
    if scores is not None and Path(scores).is_dir():  # a `prmkit score` folder
        scores = str(Path(scores) / "scores.jsonl")
    settings = {"stage": "eval.processbench", **config.to_dict(cfg)}
    return _into(out, settings, {"benchmark": cfg.benchmark,
                                 "predictions": scores or cfg.critiques}, force,
                 lambda per_item: processbench(cfg.benchmark, step_scores=scores,
                                               critiques=cfg.critiques,
                                               threshold=cfg.threshold, tune_on=cfg.tune_on,
                                               subsets=cfg.subset, per_item=per_item),
                 lambda metrics: metrics.pop("items"))


def run_bon(cfg: BonConfig, out: str | Path | None = None, *, force: bool = False) -> dict:
    """Best-of-N metrics of a ``prmkit eval bon`` config (into ``out`` if given)."""
    from prmkit import config
    cfg.validate()
    files = {Path(p).stem: p for p in cfg.candidates}
    speed_only = ("processes", "batch_size", "device", "device_map")
    settings = {"stage": "eval.bon", **{k: v for k, v in config.to_dict(cfg).items()
                                        if k not in speed_only}}
    inputs = {**files, **({"model": cfg.model} if cfg.model else {})}

    def compute(per_item: bool) -> dict:
        sets = {name: load_candidates(path, cfg.format) for name, path in files.items()}
        if cfg.model:
            score_candidates(sets, cfg)
        return bon(sets, ns=cfg.n, group_by=cfg.group_by, processes=cfg.processes,
                   per_item=per_item)
    return _into(out, settings, inputs, force, compute,
                 lambda metrics: [{"benchmark": name, **item}
                                  for name, m in metrics["benchmarks"].items()
                                  for item in m.pop("items")])


def score_candidates(sets: Mapping[str, list[dict]], cfg: BonConfig) -> None:
    """Every candidate's ``step_scores`` from the PRM of ``cfg.model``, in place: one forward
    pass a candidate, its ``steps`` or its ``text`` split on blank lines."""
    from prmkit.prm.model import load_prm
    from prmkit.prm.score import score
    from prmkit.steps import split_steps
    problems, steps, where = [], [], []
    for name, records in sets.items():
        for record in records:
            if not record.get("problem"):
                raise InputError(f"set {record['id']!r} has no problem text to score with",
                                 path=name, field="problem")
            for c in record["candidates"]:
                pieces = c.get("steps") or split_steps(c.get("text") or "")
                if not pieces:
                    raise InputError(f"set {record['id']!r}: a candidate has neither steps nor "
                                     "text to score", path=name, field="candidates")
                problems.append(record["problem"])
                steps.append(pieces)
                where.append(c)
    prm = load_prm(cfg.model, fmt=cfg.model_format, dtype=cfg.dtype, device=cfg.device,
                   device_map=cfg.device_map)
    for candidate, row in zip(where, score(problems, steps, prm, batch_size=cfg.batch_size)):
        candidate["step_scores"] = row

