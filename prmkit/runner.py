"""Sharded, resumable execution of a stage.

A stage hands the runner a list of items and a function that turns a shard (a list of items)
into output records. Each shard is written to ``<out>/shards/NNNNN.jsonl`` atomically and then
marked done by ``NNNNN.done``, written last; a re-run skips done shards and redoes the rest, so a
stage killed at any moment loses at most the shards in flight. ``merge`` joins the shards in
order into one file.

The shard layout is fixed by the stage's config (``shards/config.json``): resuming with another
config is refused rather than mixing outputs of two configs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prmkit.errors import InputError
from prmkit.records import atomic_write_text, iter_json_items, write_json, write_jsonl

Work = Callable[[list[Any], int], list[dict]]  # (shard items, shard index) -> records


class Shards:
    def __init__(self, out: str | Path, items: Sequence[Any], shard_size: int, config: dict):
        if shard_size < 1:
            raise InputError(f"{shard_size}: must be at least 1", field="shard_size")
        self.folder = Path(out) / "shards"
        self.items = list(items)
        self.size = shard_size
        self.config = {**config, "shard_size": shard_size, "n_items": len(self.items)}
        self._claim_folder()

    def _claim_folder(self) -> None:
        saved = self.folder / "config.json"
        if saved.exists():
            try:
                previous = json.loads(saved.read_text())
            except json.JSONDecodeError:
                previous = None
            if previous != self.config:
                raise InputError("these shards were made with another config; use --force to "
                                 "start over (or another --out)", path=saved)
        else:
            write_json(saved, self.config)

    @property
    def count(self) -> int:
        return (len(self.items) + self.size - 1) // self.size

    def path(self, index: int) -> Path:
        return self.folder / f"{index:05d}.jsonl"

    def done(self, index: int) -> bool:
        return (self.folder / f"{index:05d}.done").exists()

    def pending(self) -> list[int]:
        return [i for i in range(self.count) if not self.done(i)]

    def items_of(self, index: int) -> list[Any]:
        return self.items[index * self.size:(index + 1) * self.size]

    def write(self, index: int, records: list[dict]) -> None:
        write_jsonl(self.path(index), records)
        atomic_write_text(self.folder / f"{index:05d}.done", lambda f: f.write(f"{len(records)}\n"))

    def read(self, index: int) -> list[dict]:
        return [record for _, record in iter_json_items(self.path(index))]

    def merge(self, path: str | Path) -> list[dict]:
        missing = self.pending()
        if missing:
            raise RuntimeError(f"cannot merge: shards {missing[:5]} are not done")
        records = [r for i in range(self.count) for r in self.read(i)]
        write_jsonl(path, records)
        return records


def run_local(shards: Shards, work: Work, *, progress: bool = True, label: str = "") -> None:
    """Run every pending shard in this process (the work function parallelises inside)."""
    pending = shards.pending()
    if not pending:
        return
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
        bar = Progress(f"{label or 'shards'}", BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())
        task = bar.add_task(label, total=shards.count, completed=shards.count - len(pending))
        bar.start()
    try:
        for index in pending:
            shards.write(index, work(shards.items_of(index), index))
            if bar is not None:
                bar.update(task, advance=1)
    finally:
        if bar is not None:
            bar.stop()
