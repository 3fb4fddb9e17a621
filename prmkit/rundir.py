"""Output folders that say whether they are finished.

A stage writes its outputs, then ``config.json`` (the resolved config, input hashes, package
versions, git commit), then the ``COMPLETE`` marker, last. A folder without the marker is
unfinished whatever else it holds; re-running with the same config on a complete folder does
nothing.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from prmkit.records import atomic_write_text, write_json

MARKER = "COMPLETE"
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
    import shutil
    path = Path(path)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path
