"""One rich progress bar for long work (training steps, shards), or nothing when disabled."""

from __future__ import annotations


class Bar:
    def __init__(self, enabled: bool, label: str, total: int, done: int = 0):
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeElapsedColumn,
            )
            self.bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn())
            self.task = self.bar.add_task(label, total=total, completed=done)
            self.bar.start()

    def advance(self, description: str | None = None) -> None:
        if self.bar is not None:
            extra = {"description": description} if description else {}
            self.bar.update(self.task, advance=1, **extra)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
