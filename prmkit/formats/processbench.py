"""ProcessBench: the official JSON files, JSONL, a folder of subsets, or the hub copy.

An item is ``{"id", "generator", "problem", "steps", "final_answer_correct", "label"}`` with
``label`` the 0-based earliest wrong step (-1: all correct). Items come back as prmkit
solution records with a ``subset`` field (the file's stem, e.g. ``gsm8k``).
"""

from __future__ import annotations

import json
from pathlib import Path

from prmkit.errors import InputError
from prmkit.formats import HUB_PREFIX, hub_file
from prmkit.records import atomic_write_text, read_records

SUBSETS = ("gsm8k", "math", "olympiadbench", "omnimath")
REQUIRED = ("label", "final_answer_correct")


def read_file(path: str | Path, subset: str | None = None) -> list[dict]:
    subset = subset or Path(path).stem
    return [{**r, "subset": subset} for r in read_records(path, "solution", require=REQUIRED)]


def read_hub(name: str = "Qwen/ProcessBench", subsets=SUBSETS) -> list[dict]:
    """The hub copy, one split a subset, each kept in the hub cache like any hub split
    (``prmkit.formats.hub_file``: offline, put ``Qwen_ProcessBench_gsm8k.jsonl`` and the
    others there)."""
    return [r for subset in subsets
            for r in read_file(hub_file(f"{HUB_PREFIX}{name}:{subset}"), subset)]


RUN_FILES = {"config.json", "summary.json", "metrics.json"}


def read(source: str | Path) -> list[dict]:
    """Read a ProcessBench file, a folder holding ``<subset>.json[l]`` files, or ``hub:NAME``."""
    if str(source).startswith(HUB_PREFIX):
        return read_hub(str(source)[len(HUB_PREFIX):] or "Qwen/ProcessBench")
    path = Path(source)
    if path.is_dir():
        # a prmkit run folder also holds its bookkeeping (config.json, summary.json, ...)
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl")
                       and p.name not in RUN_FILES)
        if not files:
            raise InputError("no .json or .jsonl subset files in this folder", path=path)
        # official subsets first, in the paper's order, then any others
        files.sort(key=lambda p: (SUBSETS.index(p.stem) if p.stem in SUBSETS else len(SUBSETS), p.stem))
        records = [r for f in files for r in read_file(f)]
        ids = {}
        for r in records:
            if r["id"] in ids:
                raise InputError(f"id {r['id']!r} appears in subsets {ids[r['id']]} and {r['subset']}",
                                 path=path, field="id")
            ids[r["id"]] = r["subset"]
        return records
    return read_file(path)


def write(records: list[dict], path: str | Path) -> Path:
    """Write solutions with ``label`` as an official-style ProcessBench JSON array."""
    keys = ("id", "generator", "problem", "steps", "final_answer_correct", "label")
    items = []
    for r in records:
        missing = [k for k in ("label", "final_answer_correct") if k not in r]
        if missing:
            raise InputError(f"record {r['id']!r} has no {missing[0]}", field=missing[0])
        items.append({k: r[k] for k in keys if k in r})
    return atomic_write_text(path, lambda f: json.dump(items, f, indent=2, ensure_ascii=False))
