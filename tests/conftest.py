"""Shared fixtures: the real data in ../shared/data, skipped with a reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def processbench_dir() -> Path:
    return shared("processbench")


@pytest.fixture(scope="session")
def processbench_items(processbench_dir):
    from prmkit.formats.processbench import read
    return read(processbench_dir)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """An untrained tiny Qwen2 causal LM with the character tokenizer, saved like a real model."""
    from prmkit.toyworld.model import TinyModelConfig, build_causal_lm
    from prmkit.toyworld.tokenizer import build_char_tokenizer
    path = tmp_path_factory.mktemp("tiny_lm")
    tokenizer = build_char_tokenizer()
    model = build_causal_lm(tokenizer, TinyModelConfig(hidden_size=32, num_layers=2,
                                                        intermediate_size=64, max_length=1024))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# the hub splits the shipped real-data recipe names, and the local copies that stand for them
HUB_COPIES = {
    "hub:openai/gsm8k:main:train": "gsm8k/train.jsonl",
    "hub:openai/gsm8k:main:test": "gsm8k/test.jsonl",
    "hub:HuggingFaceH4/MATH-500:test": "math500/test.jsonl",
    **{f"hub:Qwen/ProcessBench:{s}": f"processbench/{s}.json"
       for s in ("gsm8k", "math", "olympiadbench", "omnimath")},
}
# hub data sets in TRL's stepwise format, stood for by the real samples of their source data
# (PRM800K's raw labeler lines, Math-Shepherd's tagged steps), written as TRL's rows
HUB_CONVERTED = {
    "hub:trl-lib/prm800k:train": ("formats/prm800k_raw_samples.jsonl", "prm800k"),
    "hub:trl-lib/math_shepherd:train": ("formats/math_shepherd_samples.jsonl", "math_shepherd"),
}


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> Path:
    """A hub cache holding the local copies of the hub splits the shipped recipe names, as a
    user without network puts them (``PRMKIT_HUB_CACHE``): the recipe runs as shipped."""
    import json
    import os

    from prmkit.formats import hub_cache_file, read_as, trl_stepwise
    folder = tmp_path_factory.mktemp("hub")
    before = os.environ.get("PRMKIT_HUB_CACHE")
    os.environ["PRMKIT_HUB_CACHE"] = str(folder)
    for source, relative in HUB_COPIES.items():
        local = shared(relative)
        target = hub_cache_file(source)
        if local.suffix == ".json":  # the official ProcessBench files are JSON arrays
            rows = json.loads(local.read_text(encoding="utf-8"))
            target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                              encoding="utf-8")
        else:
            target.symlink_to(local)
    for source, (relative, fmt) in HUB_CONVERTED.items():
        trl_stepwise.write(read_as(shared(relative), fmt, "solution"), hub_cache_file(source))
    yield folder
    if before is None:
        os.environ.pop("PRMKIT_HUB_CACHE", None)
    else:
        os.environ["PRMKIT_HUB_CACHE"] = before
