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
