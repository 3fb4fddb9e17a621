"""A recipe's data section: where records come from (a file or folder, ``hub:...``, or a
problem source a package registered, ``toy:...``), in which format, and how many."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.formats import read_as
from prmkit.records import write_jsonl


@dataclass(frozen=True)
class DataSection:
    path: str = setting(REQUIRED, "A file or folder, hub:NAME[:CONFIG]:SPLIT, or a registered "
                        "problem source (toy:PRESET:SPLIT:COUNT).")
    format: str = setting("prmkit", "Its format (see `prmkit formats`).")
    limit: int | None = setting(None, "The first N records (all: null).", ge=1)


def first_problems(data: Mapping, path: str | Path) -> Path:
    """The first ``limit`` problems of a data section as prmkit records in ``path`` (the
    file's content is what a sample stage hashes: rewriting the same records changes
    nothing)."""
    problems = read_as(data["path"], data["format"], "problem")[:data["limit"] or None]
    if not problems:
        raise InputError("no problems here", path=data["path"], field="path")
    write_jsonl(path, problems)
    return Path(path)
