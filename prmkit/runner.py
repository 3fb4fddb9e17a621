"""Sharded, resumable execution of a stage.

A stage hands the runner a list of items and a function that turns a shard (a list of items)
into output records. Each shard is written to ``<out>/shards/NNNNN.jsonl`` atomically and then
marked done by ``NNNNN.done``, written last; a re-run skips done shards and redoes the rest, so a
stage killed at any moment loses at most the shards in flight. ``records`` joins the shards'
records in order.

The shard layout is fixed by the stage's config (``shards/config.json``): resuming with another
config is refused rather than mixing outputs of two configs.

Executors: ``local`` runs the shards in this process (the work parallelises inside, for example
over the generation backend's worker processes); ``ray`` hands them to Ray actors, each of which
builds its worker (a backend, a model) once and then handles many shards. Either way the driver
writes every shard, so the files, their atomicity and the resume logic are the same, and for a
fixed seed the merged output does not depend on the executor.

``ShardedStage`` is the one setup of a stage that runs in shards (sample, annotate mc and judge,
score): its folder through ``rundir.run_stage``, its items in shards, its merged records
written. A new sharded stage is its settings, a worker factory and what it makes of the records.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prmkit import config, rundir
from prmkit.errors import InputError
from prmkit.progress import Bar
from prmkit.records import atomic_write_text, iter_json_items, write_json, write_jsonl
from prmkit.rundir import StaleFolder

Work = Callable[[list[Any], int], list[dict]]  # (shard items, shard index) -> records
WorkFactory = Callable[[], Work]  # builds a Work once per process or actor (picklable for Ray)
EXECUTORS = ("local", "ray")
# the settings that say where the shards run (BackendConfig's and ScoreConfig's): they change
# the speed, never the output, so they stay out of every stage's config hash
EXECUTOR_FIELDS = ("executor", "actors", "actor_cpus", "actor_gpus")


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


def ray_module():
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
    # Ray's notice that token authentication is on (it stays on) is no line of ours
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
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


def actors_that_fit(nodes: list[dict], actors: int, actor_cpus: float,
                    actor_gpus: float) -> int:
    """How many of ``actors`` the cluster's live nodes can host at once. Ray leaves an actor
    it cannot place pending for ever, and the shard it was given with it: a request no node can
    meet is an error now, naming what is missing, and actors beyond what fits are not made."""
    live = [node.get("Resources") or {} for node in nodes if node.get("Alive", True)]
    room = 0
    for have in live:
        # a small slack: 1.0 / 0.1 is 9.999... in floating point
        per_node = [have.get(name, 0.0) / asked + 1e-9
                    for name, asked in (("CPU", actor_cpus), ("GPU", actor_gpus)) if asked > 0]
        room += min(int(n) for n in per_node) if per_node else actors
    if room == 0:
        no_gpus = actor_gpus > 0 and all(have.get("GPU", 0.0) < actor_gpus for have in live)
        cpus, gpus = (sum(have.get(name, 0.0) for have in live) for name in ("CPU", "GPU"))
        raise InputError(f"no node of the Ray cluster can host one actor ({actor_cpus:g} CPUs "
                         f"and {actor_gpus:g} GPUs each; the cluster has {cpus:g} CPUs and "
                         f"{gpus:g} GPUs on {len(live)} live node(s)): ask for less, or add "
                         "nodes", field="actor_gpus" if no_gpus else "actor_cpus")
    return min(actors, room)


def run_ray(shards: Shards, factory: WorkFactory, *, actors: int = 2, actor_cpus: float = 1.0,
            actor_gpus: float = 0.0, progress: bool = True, label: str = "") -> None:
    """Run the pending shards on Ray actors, one shard in flight per actor.

    Connects to the cluster named by ``RAY_ADDRESS`` when set, else starts a local Ray. Each
    actor calls ``factory()`` once; the driver writes each shard as its records come back, so a
    killed driver or a lost actor costs only the shards in flight."""
    ray = ray_module()
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
    actors = actors_that_fit(ray.nodes(), actors, actor_cpus, actor_gpus)
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


# --- the one setup of a sharded stage -----------------------------------------------------------

def executor_options(settings) -> dict:
    """``run``'s executor keywords, from the settings that hold them (a BackendConfig, or a
    ScoreConfig)."""
    return {name: getattr(settings, name) for name in EXECUTOR_FIELDS}


def stage_config(stage: str, settings, *, drop: Sequence[str] = (), **extra) -> dict:
    """What makes a stage's output what it is, for its config hash: ``{"stage": stage}``, then
    ``settings`` (a config dataclass) but the fields in ``drop``, then ``extra``."""
    kept = {k: v for k, v in config.to_dict(settings).items() if k not in drop}
    return {"stage": stage, **kept, **extra}


@dataclass(frozen=True, kw_only=True)
class ShardedStage:
    """A stage whose items run in resumable shards, set up once.

    ``run`` opens ``out`` through ``rundir.run_stage`` (a folder complete with ``config`` is
    not redone), then ``read()`` gives the items, ``shard_size`` of them a shard, and the
    pending shards run on workers that ``factory`` builds, on the executor ``executor`` names;
    ``finish(folder, records)`` writes the merged records and returns the metrics."""
    config: dict                                   # hashed into config.json (``stage_config``)
    inputs: Mapping[str, str | Path | None]        # input files, their hashes join the config
    read: Callable[[], list]                       # the items, read once the folder is held
    factory: WorkFactory                           # one worker a process or Ray actor
    finish: Callable[[Path, list[dict]], dict]     # merged records -> files written, metrics
    shard_size: int
    executor: dict                                 # ``executor_options``
    label: str                                     # the progress bar's

    def run(self, out: str | Path, *, force: bool = False, progress: bool = True) -> dict:
        def work(folder: Path, full_config: dict) -> dict:
            shards = Shards(folder, self.read(), self.shard_size, full_config)
            run(shards, self.factory, progress=progress, label=self.label, **self.executor)
            return self.finish(folder, shards.records())
        return rundir.run_stage(out, self.config, work, inputs=self.inputs, force=force)
