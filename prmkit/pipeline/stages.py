"""The run's stages in order: each timed, each noted when found complete and reused."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prmkit import rundir
from prmkit.records import write_json


class Stages:
    """Runs stages in order, timing each (``timings.json``) and noting PRMs that could not be
    trained (``skipped``). With ``force``, a stage that holds work of other settings is redone;
    without, it is refused and left as it is."""

    def __init__(self, out: Path, console, force: bool = False):
        self.out, self.console, self.force = out, console, force
        self.timings: dict[str, dict] = {}
        self.skipped: dict[str, str] = {}

    def __call__(self, name: str, folder: Path | None, work: Callable[[bool], Any]) -> Any:
        """``work(force)`` runs the stage; ``force`` starts over a stage whose work was done
        with other settings (the recipe, or an input, changed since): only when the run was
        given --force."""
        before = rundir.marker_time(folder) if folder is not None else None
        began = time.monotonic()
        try:
            result = work(False)
        except rundir.StaleFolder:
            if not self.force:
                raise
            self.console.print(f"[yellow]{name}: the settings changed since the last run; "
                               "starting this stage over (--force)[/yellow]")
            result = work(True)
        seconds = time.monotonic() - began
        # finished earlier and not redone: the marker is the one that was there before
        reused = before is not None and rundir.marker_time(folder) == before
        self.timings[name] = {"seconds": round(seconds, 1), "reused": reused}
        self.console.print(f"[green]✓[/green] {name}: {seconds:.1f}s"
                           + (" (finished earlier, reused)" if reused else ""))
        write_json(self.out / "timings.json", self.timings)
        return result

    def skip(self, prm: str, why: str) -> None:
        """A PRM that cannot be trained (no solution has its label): said, never a failure."""
        self.skipped[prm] = why
        self.console.print(f"[yellow]PRM ({prm}): {why}; skipped[/yellow]")

    def total(self, seconds: float) -> None:
        self.timings["total"] = {"seconds": round(seconds, 1), "reused": False}
        write_json(self.out / "timings.json", self.timings)
