"""One progress display for long work (training steps, shards), or nothing when disabled.

On a terminal it is a rich progress bar. Anywhere else (a SLURM log, a file, CI) a live bar
shows nothing until the work ends, so it prints one plain line every 5% of the work instead:
``PRM  loss 0.412: 30/200 (15%), 42s``. Training's loss and held-out numbers reach a log file
this way.
"""

from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

LOG_EVERY = 0.05  # a plain line each time another 5% of the work is done


class Bar:
    def __init__(self, enabled: bool, label: str, total: int, done: int = 0):
        self.bar = None
        self.plain = enabled and not sys.stdout.isatty()
        self.label, self.total, self.done = label, max(1, total), done
        self.began, self.logged = time.monotonic(), -1
        if enabled and not self.plain:
            self.bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn())
            self.task = self.bar.add_task(label, total=total, completed=done)
            self.bar.start()

    def advance(self, description: str | None = None, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            extra = {"description": description} if description else {}
            self.bar.update(self.task, advance=n, **extra)
        elif self.plain:
            step = int(self.done / self.total / LOG_EVERY)
            if step > self.logged or self.done == self.total:
                self.logged = step
                print(f"{description or self.label}: {self.done}/{self.total} "
                      f"({100 * self.done // self.total}%), "
                      f"{time.monotonic() - self.began:.0f}s", flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
