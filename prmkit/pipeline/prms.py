"""One PRM a label source, each trained from the same backbone with the same settings; one a
labelled set from outside the run (``prms.outside``: PRM800K's human labels), trained the same
way; the same PRM before any training (the baseline that says what the labels add); and the
reward models compared as they are (``prms.compare``: a released PRM, an outcome model)."""

from __future__ import annotations

import json
from pathlib import Path

from prmkit import config, plugins, rundir
from prmkit.formats import read_as
from prmkit.labels import MISSING, Source
from prmkit.prm.train import TrainConfig, train, untrained
from prmkit.records import write_jsonl


def _has_labels(records: list[dict], field: str) -> bool:
    source = Source.parse(field)
    return any(source.value(r) not in (None, MISSING) for r in records)


def train_prms(run, annotated: Path, records: list[dict]) -> dict[str, Path]:
    """PRM name -> its folder (``prm-<name>/final``). A source no solution has a label in (a
    consensus that kept nothing) is skipped and said so, never a failed run."""
    spec = run.recipe["prms"]
    backbone = (plugins.resolve_policy(spec["model"], progress=run.progress) if spec["model"]
                else run.policy)
    # every PRM caches the backbone's features in one place (a head-only run reuses them)
    shared = {**spec["train"], "data": str(annotated), "model": str(backbone),
              "feature_cache": spec["train"].get("feature_cache") or str(run.out / "features")}
    folders = {}
    for name, field in spec["sources"].items():
        if field is None:
            continue
        if not _has_labels(records, field):
            run.stages.skip(name, f"no solution has a label in {field}")
            continue
        cfg = config.load(TrainConfig, given={
            **shared, "labels": field,
            "loss": spec["soft_loss"] if name in spec["soft"] else "hard"})
        folder = run.out / f"prm-{rundir.slug(name)}"
        run.stages(f"PRM ({name})", folder, lambda force, cfg=cfg, folder=folder: train(
            cfg, folder, progress=run.progress, force=force))
        folders[name] = folder / "final"
    for name, data in spec["outside"].items():
        # the outside set as prmkit records, in the run folder: what the stage hashes
        labelled = write_jsonl(run.out / "outside" / f"{rundir.slug(name)}.jsonl",
                               read_as(data["path"], data["format"],
                                       "solution")[:data["limit"] or None])
        cfg = config.load(TrainConfig, given={**shared, "data": str(labelled),
                                              "labels": data["labels"], "loss": "hard"})
        folder = run.out / f"prm-{rundir.slug(name)}"
        run.stages(f"PRM ({name})", folder, lambda force, cfg=cfg, folder=folder: train(
            cfg, folder, progress=run.progress, force=force))
        folders[name] = folder / "final"
    if spec["baseline"]:
        name = spec["baseline"]
        # a training config needs labels; the untrained PRM reads none
        cfg = config.load(TrainConfig, given={**shared, "labels": "-"})
        folder = run.out / f"prm-{rundir.slug(name)}"
        run.stages(f"PRM ({name})", folder, lambda force: untrained(cfg, folder, force=force))
        folders[name] = folder / "final"
    return folders


def compared_models(recipe: dict) -> tuple[dict[str, str], dict[str, dict]]:
    """The reward models of ``prms.compare``: name -> model, and name -> its own score
    settings (its PRM format, and what it changes of the recipe's score section)."""
    compare = recipe["prms"]["compare"]
    return ({name: m["model"] for name, m in compare.items()},
            {name: {**(m.get("score") or {}),
                    **({"model_format": m["format"]} if m["format"] else {})}
             for name, m in compare.items()})


def training_record(folder: Path) -> dict:
    """What the report shows of a PRM's training: its steps and loss curve."""
    metrics = json.loads((folder.parent / "metrics.json").read_text())
    return {"steps": metrics.get("steps"), "history": metrics.get("history", []),
            "final_held_out": metrics.get("final_held_out", {})}
