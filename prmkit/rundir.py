"""Output folders that say whether they are finished, and THE stage runner.

A stage writes its outputs, then ``config.json`` (the resolved config, input hashes, package
versions, git commit), then the ``COMPLETE`` marker, last. A folder without the marker is
unfinished whatever else it holds; re-running with the same config on a complete folder does
nothing.

``run_stage`` is that life, written once for every stage (sample, annotate, train, score,
eval, the pipeline's own steps): check and hash the inputs, return the saved result of a
folder complete for this config, drop stale shards on ``force``, open the folder, do the work,
write the result, then the config and the marker. Work that runs in shards resumes through
``prmkit.runner.Shards`` inside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from prmkit import plugins
from prmkit.errors import InputError
from prmkit.records import atomic_write_text, write_json

MARKER = "COMPLETE"
LOCK = ".lock"
_PACKAGES = ("prmkit", "torch", "transformers", "tokenizers", "math-verify", "numpy")


def file_digest(path: str | Path) -> str:
    """sha256 of a file, or of every file below a folder (sorted by path)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def is_complete(out: str | Path, config: dict[str, Any]) -> bool:
    """True when ``out`` finished with this very config."""
    out = Path(out)
    if not (out / MARKER).exists() or not (out / "config.json").exists():
        return False
    try:
        return json.loads((out / "config.json").read_text())["config"] == config
    except (json.JSONDecodeError, KeyError):
        return False


def marker_time(out: str | Path) -> int | None:
    """When the folder was marked complete (None: it is not): a caller compares it before and
    after ``run_stage`` to tell a reused folder from a redone one."""
    marker = Path(out) / MARKER
    return marker.stat().st_mtime_ns if marker.exists() else None


def begin(out: str | Path) -> Path:
    """Open ``out`` for writing: any old marker goes first, so a crash leaves it unfinished."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    return out


def finish(out: str | Path, config: dict[str, Any]) -> None:
    """Record the config and provenance, then mark the folder complete (last)."""
    out = Path(out)
    write_json(out / "config.json", {"config": config, "versions": versions(),
                                     "git_commit": git_commit()})
    atomic_write_text(out / MARKER, lambda f: f.write("ok\n"))


def replace_folder(path: str | Path, fill) -> Path:
    """Build a folder through ``fill(tmp)`` beside ``path``, then move it into place, so a
    reader (or a resumed run) sees the old folder or the new one, never half of one."""
    path = Path(path)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
    except BaseException:  # a full disk, a kill: no half-built folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def input_digests(inputs: Mapping[str, str | Path | None]) -> dict[str, str | None]:
    """sha256 of every input file or folder; a hub source (``hub:NAME``) or a registered
    problem source (``toy:...``, whose spec says all) has none. A missing
    input is an error naming it, before any work."""
    out = {}
    for name, source in inputs.items():
        if source is None or str(source).startswith("hub:") or plugins.source_of(str(source)):
            out[name] = None
            continue
        if not Path(source).exists():
            raise InputError("not found", path=source, field=name)
        if not (Path(source).is_file() or Path(source).is_dir()):  # a pipe would block
            raise InputError("not a regular file or folder", path=source, field=name)
        out[name] = file_digest(source)
    return out


class StaleFolder(InputError):
    """The folder holds work done with other settings: refused, never mixed or overwritten
    without ``--force``."""


@contextmanager
def owned(out: str | Path):
    """Hold ``out`` for this process: a second run on a busy folder is refused with a message
    that names the holder. The lock is the kernel's (``flock`` on ``out/.lock``), so a killed
    process never leaves it stuck: its lock goes with it."""
    out = check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError("cannot make this folder: a file stands in its path", path=out,
                         field="out") from None
    except PermissionError:
        raise InputError("cannot make this folder: permission denied", path=out,
                         field="out") from None
    handle = open(out / LOCK, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise InputError(f"busy: {holder} is writing this folder; wait for it to finish, or "
                         "use another --out", path=out, field="out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({' '.join(sys.argv)[:200]})\n")
    handle.flush()
    try:
        yield out
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def slug(name: str) -> str:
    """A name as a folder name: lower case, a dash for every run of other characters
    (``MC hard`` and ``MC-hard`` are both ``mc-hard``: names a run uses must differ here)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder; this is a file", path=out, field="out")
    return out


def refuse_foreign(out: Path) -> None:
    """A stage writes its ``config.json`` into ``out``: a folder whose config.json is not a
    stage's record (a model's, say: ``--out`` pointed at the model itself) is refused, even
    with ``--force``, before anything of it is overwritten."""
    saved = out / "config.json"
    if not saved.exists():
        return
    try:
        record = json.loads(saved.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        record = None
    if not (isinstance(record, dict) and isinstance(record.get("config"), dict)):
        raise InputError("holds a config.json that is not a prmkit stage's (a model folder?): "
                         "its files would be overwritten; choose another --out", path=out,
                         field="out")


def refuse_other_settings(out: Path, config: dict[str, Any]) -> None:
    """A folder complete with other settings is left exactly as it is: redoing it needs
    ``--force`` (or another --out)."""
    if not (out / MARKER).exists() or not (out / "config.json").exists():
        return
    try:
        saved = json.loads((out / "config.json").read_text())["config"]
    except (json.JSONDecodeError, KeyError):
        return
    changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    raise StaleFolder(f"holds a finished run with other settings (changed: "
                      f"{', '.join(changed)}); use --force to redo it, or another --out",
                      path=out)


def run_stage(out: str | Path, config: dict[str, Any], work: Callable[[Path, dict], dict], *,
              inputs: Mapping[str, str | Path | None] | None = None, force: bool = False,
              result: str = "metrics.json", writer: bool = True) -> dict:
    """Run one stage into ``out``; returns its result (``work(out, config)``'s dict, saved as
    ``result``; the config it gets is the one saved, with the input hashes, for shards to
    check).

    ``config`` is what makes the output what it is; the inputs' hashes join it under
    ``inputs_sha256``. A folder complete with that config is not redone: its saved result is
    returned. ``force`` drops unfinished shards made with other settings. ``writer`` is false in
    data-parallel processes other than the first: they do their share of the work and write
    nothing (their result is ``{}``)."""
    out = check_out(out)
    config = {**config, "inputs_sha256": input_digests(inputs or {})}
    if not writer:  # with --force too: the writer redoes the work, and needs its partners
        if force or not is_complete(out, config):
            work(out, config)
        return {}
    with owned(out):
        refuse_foreign(out)
        if not force and is_complete(out, config):
            return json.loads((out / result).read_text())
        if not force:
            refuse_other_settings(out, config)
        else:
            shutil.rmtree(out / "shards", ignore_errors=True)
        begin(out)
        value = work(out, config)
        write_json(out / result, value)
        finish(out, config)
        return value
