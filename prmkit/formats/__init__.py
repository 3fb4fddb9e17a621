"""Readers and writers for the formats PRM work meets in the wild.

Every reader turns a file into prmkit records (see ``prmkit.records``) and says which kind it
produced; every writer takes prmkit records of one kind. The registry maps names to
``"module:function"`` strings so that listing formats imports nothing heavy.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from prmkit import plugins
from prmkit.errors import InputError
from prmkit.records import atomic_write_text, read_records

# name -> (module:function, record kind produced or consumed, one-line description)
READERS: dict[str, tuple[str, str, str]] = {
    "prmkit": ("prmkit.formats:read_prmkit_solutions", "solution",
               "prmkit solution JSONL (sampled, annotated or scored records)"),
    "processbench": ("prmkit.formats.processbench:read", "solution",
                     "ProcessBench JSON/JSONL file, a folder of subsets, or hub:Qwen/ProcessBench"),
    "prm800k": ("prmkit.formats.prm800k:read", "solution", "PRM800K raw labeler lines"),
    "math_shepherd": ("prmkit.formats.math_shepherd:read", "solution",
                      "Math-Shepherd (`ки` tags, `+`/`-` labels)"),
    "trl_stepwise": ("prmkit.formats.trl_stepwise:read", "solution",
                     "TRL stepwise supervision (prompt, completions, labels)"),
    "gsm8k": ("prmkit.formats.gsm8k:read", "problem", "GSM8K (question, answer with ####)"),
    "math": ("prmkit.formats.math:read", "problem",
             "MATH / MATH-500 and similar (problem or question; answer or boxed solution)"),
    # the other Best-of-N sets of the paper's Table 6, as Qwen2.5-Math's evaluation reads them
    "minerva_math": ("prmkit.formats.qwen_benchmarks:read_minerva_math", "problem",
                     "Minerva Math (problem; the last \\boxed{} of solution)"),
    "gaokao2023en": ("prmkit.formats.qwen_benchmarks:read_gaokao2023en", "problem",
                     "GaoKao 2023 En (question; answer without $)"),
    "olympiadbench": ("prmkit.formats.qwen_benchmarks:read_olympiadbench", "problem",
                      "OlympiadBench (question; final_answer[0] without $)"),
    "college_math": ("prmkit.formats.qwen_benchmarks:read_college_math", "problem",
                     "College Math (question; answer without $)"),
    "mmlu_stem": ("prmkit.formats.qwen_benchmarks:read_mmlu_stem", "problem",
                  "MMLU STEM (question with its lettered choices; the right option's letter)"),
    "qwen_eval": ("prmkit.formats.qwen_eval:read", "candidates",
                  "Qwen2.5-Math evaluation candidates (question, gt, code|response, pred, score)"),
}

WRITERS: dict[str, tuple[str, str, str]] = {
    "processbench": ("prmkit.formats.processbench:write", "solution", "ProcessBench JSON array"),
    "math_shepherd": ("prmkit.formats.math_shepherd:write", "solution", "Math-Shepherd JSONL"),
    "trl_stepwise": ("prmkit.formats.trl_stepwise:write", "solution", "TRL stepwise JSONL"),
    "qwen_eval": ("prmkit.formats.qwen_eval:write", "candidates", "Qwen2.5-Math candidates"),
}


def _lookup(table: dict[str, tuple[str, str, str]], name: str, what: str) -> tuple[Callable, str]:
    if name not in table:
        close = difflib.get_close_matches(name, table, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise InputError(f"unknown {what} format '{name}'{hint} (known: {', '.join(table)})",
                         field="format")
    target, kind, _ = table[name]
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function), kind


def reader(name: str) -> tuple[Callable, str]:
    """The reader function of a format and the record kind it returns."""
    return _lookup(READERS, name, "input")


def writer(name: str) -> tuple[Callable, str]:
    """The writer function of a format and the record kind it takes."""
    return _lookup(WRITERS, name, "output")


def read_prmkit_solutions(path) -> list[dict]:
    return read_records(path, "solution")


HUB_PREFIX = "hub:"


def hub_cache() -> Path:
    """Where hub splits are kept as JSONL: ``$PRMKIT_HUB_CACHE``, else ``~/.cache/prmkit/hub``.
    A machine without the hub (or without the ``datasets`` library) reads a split from here
    when its file is put in place: ``hub_cache_file`` says the name."""
    configured = os.environ.get("PRMKIT_HUB_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "prmkit" / "hub"


def hub_parts(source: str) -> tuple[str, str | None, str]:
    """(name, config, split) of ``hub:NAME:SPLIT`` or ``hub:NAME:CONFIG:SPLIT``."""
    parts = source[len(HUB_PREFIX):].split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError("a hub source is hub:NAME:SPLIT or hub:NAME:CONFIG:SPLIT",
                         path=source)
    return parts[0], parts[1] if len(parts) == 3 else None, parts[-1]


def hub_cache_file(source: str) -> Path:
    """The JSONL file a hub split is kept in (``hub:openai/gsm8k:main:test`` ->
    ``openai_gsm8k_main_test.jsonl`` in ``hub_cache()``)."""
    name, config, split = hub_parts(source)
    parts = [name, *([config] if config else []), split]
    return hub_cache() / (re.sub(r"[^\w.-]+", "_", ":".join(parts)) + ".jsonl")


def hub_file(source: str) -> Path:
    """A hub data set's split as a local JSONL file (``hub:NAME:SPLIT`` or
    ``hub:NAME:CONFIG:SPLIT``, e.g. ``hub:openai/gsm8k:main:test``), written once into the hub
    cache through the ``datasets`` library (the ``hub`` extra), so that every reader reads it
    as it reads a file."""
    name, config, split = hub_parts(source)
    cached = hub_cache_file(source)
    if cached.exists():
        return cached
    try:
        import datasets
    except ImportError:
        raise InputError(f"reading from the hub needs the hub extra (pip install "
                         f"'prmkit[hub]'), or the split's rows as JSONL in {cached}",
                         path=source) from None
    try:
        rows = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # offline, unknown name or split: one line
        raise InputError(f"could not load it ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]}); offline, put the split's rows as "
                         f"JSONL in {cached}", path=source) from None
    atomic_write_text(cached, lambda f: f.writelines(
        json.dumps(dict(row), ensure_ascii=False) + "\n" for row in rows))
    return cached


def read_as(path, fmt: str, kind: str) -> list[dict]:
    """Records of ``kind`` (problem, solution, candidates) from a file in format ``fmt``:
    prmkit's own JSONL, or any reader that gives that kind; ``hub:NAME[:CONFIG]:SPLIT`` reads
    a hub data set (ProcessBench's reader takes ``hub:NAME`` itself); ``NAME:SPEC`` a problem
    source a package registered (``prmkit.plugins``: ``toy:mixed:test:100``)."""
    registered = plugins.source_of(str(path))
    if registered is not None:
        if kind != "problem":
            raise InputError(f"a problem source gives problem records, not {kind} records",
                             path=path, field="format")
        source, spec = registered
        return source.read(spec)
    if str(path).startswith(HUB_PREFIX) and fmt != "processbench":
        path = hub_file(str(path))
    if fmt == "prmkit":
        return read_records(path, kind)
    read, gives = reader(fmt)
    if gives != kind:
        raise InputError(f"format {fmt!r} gives {gives} records, not {kind} records",
                         field="format")
    return read(path)
