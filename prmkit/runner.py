"""Sharded, resumable execution of a stage.

A stage hands the runner a list of items and a function that turns a shard (a list of items)
into output records. Each shard is written to ``<out>/shards/NNNNN.jsonl`` atomically and then
marked done by ``NNNNN.done``, written last; a re-run skips done shards and redoes the rest, so a
stage killed at any moment loses at most the shards in flight. ``merge`` joins the shards in
order into one file.

The shard layout is fixed by the stage's config (``shards/config.json``): resuming with another
config is refused rather than mixing outputs of two configs.

Executors: ``local`` runs the shards in this process (the work parallelises inside, for example
over the generation backend's worker processes); ``ray`` hands them to Ray actors, each of which
builds its worker (a backend, a model) once and then handles many shards. Either way the driver
writes every shard, so the files, their atomicity and the resume logic are the same, and for a
fixed seed the merged output does not depend on the executor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prmkit.errors import InputError
from prmkit.progress import Bar
from prmkit.records import atomic_write_text, iter_json_items, write_json, write_jsonl
from prmkit.rundir import StaleFolder

Work = Callable[[list[Any], int], list[dict]]  # (shard items, shard index) -> records
WorkFactory = Callable[[], Work]  # builds a Work once per process or actor (picklable for Ray)
EXECUTORS = ("local", "ray")


class StaleShards(StaleFolder):
    """The folder holds shards made with other settings."""


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
                raise StaleShards("these shards were made with another config; use --force to "
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

    def records(self) -> list[dict]:
        """Every shard's records, in order; all shards must be done."""
        missing = self.pending()
        if missing:
            raise RuntimeError(f"cannot merge: shards {missing[:5]} are not done")
        return [r for i in range(self.count) for r in self.read(i)]

    def merge(self, path: str | Path) -> list[dict]:
        records = self.records()
        write_jsonl(path, records)
        return records


def run_local(shards: Shards, work: Work, *, progress: bool = True, label: str = "") -> None:
    """Run every pending shard in this process (the work function parallelises inside)."""
    pending = shards.pending()
    if not pending:
        return
    bar = Bar(progress, label or "shards", shards.count, shards.count - len(pending))
    try:
        for index in pending:
            shards.write(index, work(shards.items_of(index), index))
            bar.advance()
    finally:
        bar.stop()


def run(shards: Shards, factory: WorkFactory, *, executor: str = "local", actors: int = 2,
        actor_cpus: float = 1.0, actor_gpus: float = 0.0, progress: bool = True,
        label: str = "") -> None:
    """Run every pending shard with the chosen executor; builds workers only if there is work."""
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}",
                         field="executor")
    if not shards.pending():
        return
    if executor == "local":
        run_local(shards, factory(), progress=progress, label=label)
    else:
        run_ray(shards, factory, actors=actors, actor_cpus=actor_cpus, actor_gpus=actor_gpus,
                progress=progress, label=label)


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("the ray executor needs Ray: pip install 'prmkit[ray]'",
                         field="executor") from None
    return ray


# Watches the driver. While it lives, it notes every process below the local Ray's helpers
# (the raylet starts agents and workers of its own); when the driver is gone (killed with -9:
# no atexit ran), it ends them all. A pid is only signalled while it still runs a Ray program.
_REAPER = """
import os, signal, sys, time
driver, known = int(sys.argv[1]), {int(p) for p in sys.argv[2:]}
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
def parents():
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    out[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return out
while alive(driver):
    for pid, parent in parents().items():
        if parent in known:
            known.add(pid)
    time.sleep(0.5)
for pid in known:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"ray" in f.read():
                os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


def start_ray(ray) -> None:
    """Connect to the cluster named by ``RAY_ADDRESS``, or start a local Ray that does not
    outlive this process: its helper processes (GCS, raylet, ...) are ended by a small reaper
    when the driver dies, even by ``kill -9``; the actors die with their raylet."""
    import os
    import subprocess
    import sys
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if os.environ.get("RAY_ADDRESS"):
        return  # a cluster this process does not own
    try:
        node = ray._private.worker._global_node
        pids = [str(info.process.pid) for infos in node.all_processes.values()
                for info in infos if info.process is not None]
    except AttributeError:  # another Ray version's internals: nothing to watch
        return
    subprocess.Popen([sys.executable, "-c", _REAPER, str(os.getpid()), *pids],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


def run_ray(shards: Shards, factory: WorkFactory, *, actors: int = 2, actor_cpus: float = 1.0,
            actor_gpus: float = 0.0, progress: bool = True, label: str = "") -> None:
    """Run the pending shards on Ray actors, one shard in flight per actor.

    Connects to the cluster named by ``RAY_ADDRESS`` when set, else starts a local Ray. Each
    actor calls ``factory()`` once; the driver writes each shard as its records come back, so a
    killed driver or a lost actor costs only the shards in flight."""
    ray = _ray()
    pending = shards.pending()
    if not pending:
        return
    if actors < 1:
        raise InputError(f"{actors}: must be at least 1", field="actors")
    if not ray.is_initialized():
        start_ray(ray)

    @ray.remote
    class ShardWorker:
        def __init__(self, factory: WorkFactory):
            self.work = factory()

        def run(self, items: list, index: int) -> tuple[int, list[dict]]:
            return index, self.work(items, index)

    options = {"num_cpus": actor_cpus, "num_gpus": actor_gpus}
    workers = [ShardWorker.options(**options).remote(factory)
               for _ in range(min(actors, len(pending)))]
    queue, in_flight = list(pending), {}

    def submit(worker) -> None:
        index = queue.pop(0)
        in_flight[worker.run.remote(shards.items_of(index), index)] = worker

    bar = Bar(progress, label or "shards", shards.count, shards.count - len(pending))
    try:
        for worker in workers:
            if queue:
                submit(worker)
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            worker = in_flight.pop(ref)
            index, records = ray.get(ref)
            shards.write(index, records)
            bar.advance()
            if queue:
                submit(worker)
    finally:
        bar.stop()
        for worker in workers:
            ray.kill(worker)
