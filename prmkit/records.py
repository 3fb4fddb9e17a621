"""The JSONL records every stage reads and writes, and their validation.

Records are plain dicts (one JSON object a line); each stage adds its own field to a solution.
Each kind below lists the fields prmkit relies on, and ``STAGE_FIELDS`` every field a stage
adds; other fields are kept as they are.

problem      {"id": str, "problem": str, "answer": str | null, "source"?: str}
             ``answer`` is the gold final answer (null when unknown).
solution     {"id": str, "problem": str, "steps": [str, ...] (non-empty),
              "gold_answer"?: str | null, "final_answer"?: str | null,
              "label"?: int (earliest wrong step, 0-based; -1 = every step correct),
              "final_answer_correct"?: bool, "step_labels"?: [number | bool, ...] (one a step),
              "problem_id"?: str}
             ProcessBench items are solutions (``label``, ``final_answer_correct``).
             Added by stages (checked when present; per-step lists have one entry a step):
               prmkit sample     "sample_index", "outcome": correct|incorrect|unparseable,
                                 "reason", "finish_reason": stop|length, "num_tokens",
                                 "generator", "truth"? (a truth hook: {"label", "step_labels",
                                 "kinds", "answer_correct"})
               annotate mc       "mc": {"mode", "k", "threshold", "values", "correct", "hard",
                                 "first_error", "train_mask", "rollouts", "generated",
                                 "outcomes", "rollout_log"?}    (prmkit.annotate.mc)
               annotate judge    "judge": {"kind", "first_error", "calls", "votes"?,
                                 "statuses"?, "prompt_sha256"?, "claims"?, "false_claims"?}
               annotate consensus "consensus": {"kept", "first_error", "sources", "cost",
                                 "step_labels"?}
step_scores  {"id": str, "step_scores": [number | null, ...]}    one score a step, higher = more
             correct; null for a step past the PRM's context (unscored: skipped, and counted).
critique     {"id": str, "critiques": [str, ...]}          generated critiques of one solution;
             ``"critique": str`` is accepted for a single one.
candidates   {"id": str, "problem"?: str, "gold_answer"?: str | null,
              "candidates": [{"answer"?: str | null, "text"?: str, "steps"?: [str],
                              "step_scores"?: [number], "score"?: number,
                              "correct"?: bool}, ...]}
             one problem's N sampled responses for Best-of-N.

Every error names the file, the line and the field (see ``prmkit.errors.InputError``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from prmkit.errors import InputError

Check = Callable[[Any], Any]


# --- value checks: each returns the value (possibly normalised) or raises ValueError ---------

def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return float(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {type(value).__name__}")
    return value


def step_label(value: Any) -> float | bool:
    """A per-step label: a boolean, 0/1, or a soft value in [0, 1]."""
    if isinstance(value, bool):
        return value
    value = number(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"expected a label in [0, 1], got {value}")
    return value


def optional(check: Check) -> Check:
    def checked(value: Any) -> Any:
        return None if value is None else check(value)
    return checked


def list_of(check: Check, *, nonempty: bool = False) -> Check:
    def checked(value: Any) -> list:
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        if nonempty and not value:
            raise ValueError("expected a non-empty list")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(check(item))
            except ValueError as e:
                raise ValueError(f"item {i}: {e}") from None
        return out
    return checked


def one_of(*allowed: str) -> Check:
    def checked(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {list(allowed)}, got {value!r}")
        return value
    return checked


def mapping(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


# --- schemas: field -> (check, required) ------------------------------------------------------

Schema = dict[str, tuple[Check, bool]]


def obj(schema: Schema) -> Check:
    """A nested object (a field a stage adds): checked against ``schema``, returned unchanged;
    an error names the nested field (``mc.values``)."""
    def checked(value: Any) -> dict:
        mapping(value)
        for name, (check, required) in schema.items():
            if name not in value:
                if required:
                    raise _Nested(name, "missing")
                continue
            try:
                check(value[name])
            except _Nested as e:
                raise _Nested(f"{name}.{e.field}", e.why) from None
            except ValueError as e:
                raise _Nested(name, str(e)) from None
        return value
    return checked


class _Nested(ValueError):
    def __init__(self, field: str, why: str):
        super().__init__(why)
        self.field, self.why = field, why

CANDIDATE: Schema = {
    "answer": (optional(text), False),
    "text": (text, False),
    "steps": (list_of(text), False),
    "step_scores": (list_of(optional(number)), False),
    "score": (number, False),
    "correct": (boolean, False),
}


def candidate(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    out = dict(value)
    for name, (check, _) in CANDIDATE.items():
        if name in value:
            try:
                out[name] = check(value[name])
            except ValueError as e:
                raise ValueError(f"'{name}': {e}") from None
    steps, scores = out.get("steps"), out.get("step_scores")
    if steps is not None and scores is not None and len(steps) != len(scores):
        raise ValueError(f"'step_scores' has {len(scores)} scores for {len(steps)} steps")
    return out


# The fields stages add to a solution (under their default names), checked wherever a record
# is read, so a foreign or damaged file gives an error naming the file, the line and the field
# (``mc.values``) instead of a KeyError deep inside a stage. Every part is optional (hand-made
# and foreign files carry what they carry; a stage that needs a part it lacks says so, through
# ``prmkit.labels.Source``), but what is there must have its type, and per-step lists must have
# one entry a step (``_check_solution``).
STAGE_FIELDS: dict[str, Schema] = {
    # prmkit sample, where a truth hook knows every step (the toy world)
    "truth": {"label": (integer, False), "step_labels": (list_of(step_label), False),
              "kinds": (list_of(text), False), "answer_correct": (boolean, False)},
    # prmkit annotate mc
    "mc": {"mode": (one_of("linear", "binary"), False), "k": (integer, False),
           "threshold": (number, False), "values": (list_of(optional(number)), False),
           "correct": (list_of(optional(integer)), False),
           "hard": (list_of(optional(integer)), False), "first_error": (integer, False),
           "train_mask": (list_of(boolean), False), "rollouts": (integer, False),
           "generated": (integer, False), "outcomes": (mapping, False),
           "rollout_log": (list_of(optional(list_of(mapping))), False)},
    # prmkit annotate judge
    "judge": {"kind": (one_of("rule", "model"), False),
              "first_error": (optional(integer), False), "calls": (integer, False),
              "votes": (list_of(optional(integer)), False), "statuses": (list_of(text), False),
              "prompt_sha256": (text, False), "claims": (integer, False),
              "false_claims": (list_of(mapping), False)},
    # prmkit annotate consensus
    "consensus": {"kept": (boolean, False), "first_error": (optional(integer), False),
                  "sources": (mapping, False), "cost": (mapping, False),
                  "step_labels": (list_of(integer), False)},
}
# per-step lists inside the stage fields
_PER_STEP = (("truth", "step_labels"), ("truth", "kinds"), ("mc", "values"), ("mc", "hard"),
             ("mc", "correct"), ("mc", "train_mask"), ("consensus", "step_labels"))

SCHEMAS: dict[str, Schema] = {
    "problem": {
        "id": (text, True),
        "problem": (text, True),
        "answer": (optional(text), True),
        "source": (text, False),
    },
    "solution": {
        "id": (text, True),
        "problem": (text, True),
        "steps": (list_of(text, nonempty=True), True),
        "gold_answer": (optional(text), False),
        "final_answer": (optional(text), False),
        "label": (integer, False),
        "final_answer_correct": (boolean, False),
        "step_labels": (list_of(step_label), False),
        "problem_id": (text, False),
        # what each stage adds (STAGE_FIELDS below)
        **{name: (obj(schema), False) for name, schema in STAGE_FIELDS.items()},
        "sample_index": (integer, False),
        "outcome": (one_of("correct", "incorrect", "unparseable"), False),
        "reason": (optional(text), False),
        "finish_reason": (one_of("stop", "length"), False),
        "num_tokens": (integer, False),
        "generator": (text, False),
    },
    "step_scores": {
        "id": (text, True),
        # null: a step past the PRM's context (unscored; prmkit.labels skips it)
        "step_scores": (list_of(optional(number), nonempty=True), True),
    },
    "critique": {
        "id": (text, True),
        "critiques": (list_of(text, nonempty=True), True),
    },
    "candidates": {
        "id": (text, True),
        "problem": (text, False),
        "gold_answer": (optional(text), False),
        "candidates": (list_of(candidate, nonempty=True), True),
    },
}


def _check_solution(record: dict) -> tuple[str, str] | None:
    """Cross-field rules of a solution; returns (field, message) on failure."""
    n = len(record["steps"])
    if "label" in record and not -1 <= record["label"] < n:
        return "label", f"{record['label']} is not -1 or a step index below {n}"
    if "step_labels" in record and len(record["step_labels"]) != n:
        return "step_labels", f"{len(record['step_labels'])} labels for {n} steps"
    for stage, name in _PER_STEP:
        values = record.get(stage, {}).get(name) if isinstance(record.get(stage), dict) else None
        if values is not None and len(values) != n:
            return f"{stage}.{name}", f"{len(values)} entries for {n} steps"
    return None


def validate(record: Any, kind: str, *, path: str | Path | None = None,
             line: int | None = None, require: Iterable[str] = ()) -> dict:
    """Check one record against its kind; returns it with values normalised.

    ``require`` names optional fields that this use needs (a benchmark needs ``label``)."""
    schema = SCHEMAS[kind]
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}",
                         path=path, line=line)
    if kind == "critique" and "critiques" not in record and "critique" in record:
        record = {**record, "critiques": [record["critique"]]}
    out = dict(record)
    needed = set(require)
    for name, (check, required) in schema.items():
        if name not in record:
            if required or name in needed:
                raise InputError("missing", path=path, line=line, field=name)
            continue
        try:
            out[name] = check(record[name])
        except _Nested as e:
            raise InputError(e.why, path=path, line=line, field=f"{name}.{e.field}") from None
        except ValueError as e:
            raise InputError(str(e), path=path, line=line, field=name) from None
    if kind == "solution" and (problem := _check_solution(out)):
        raise InputError(problem[1], path=path, line=line, field=problem[0])
    return out


# --- reading and writing ------------------------------------------------------------------------

_TOO_DEEP = "JSON nested too deeply to be a record"


def iter_json_items(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value) for a JSONL file or a JSON array file.

    A JSON array (like ProcessBench's official files) is decoded element by element so that
    errors still point at the line where the bad element starts.
    """
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("a folder, where a file belongs", path=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    stripped = content.lstrip()
    if stripped.startswith("["):
        yield from _iter_json_array(content, path)
        return
    for number_, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number_, json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON ({e.msg}, column {e.colno})",
                             path=path, line=number_) from None
        except RecursionError:
            raise InputError(_TOO_DEEP, path=path, line=number_) from None


def _iter_json_array(content: str, path: Path) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = content.index("[") + 1

    def skip(pos: int) -> int:
        while pos < len(content) and content[pos] in " \t\r\n":
            pos += 1
        return pos

    def line_of(pos: int) -> int:
        return content.count("\n", 0, pos) + 1

    pos = skip(pos)
    if pos < len(content) and content[pos] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(content, pos)
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON ({e.msg}, column {e.colno})",
                             path=path, line=e.lineno) from None
        except RecursionError:
            raise InputError(_TOO_DEEP, path=path, line=line_of(pos)) from None
        yield line_of(pos), value
        pos = skip(end)
        if pos < len(content) and content[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < len(content) and content[pos] == "]":
            if content[pos + 1:].strip():
                raise InputError("unexpected content after the JSON array",
                                 path=path, line=line_of(pos + 1))
            return
        raise InputError("malformed JSON array (expected ',' or ']')", path=path,
                         line=line_of(pos))


def note_id(seen: dict[str, int], record_id: str, *, path: str | Path, line: int,
            field: str = "id") -> None:
    """Note the line an id first appears on; a repeat is an error naming both lines (every
    record a stage writes carries its id, so two records with one id would be merged or
    overwritten downstream, silently). ``field``: the user's field the id came from."""
    if record_id in seen:
        raise InputError(f"duplicate id {record_id!r} (first on line {seen[record_id]})",
                         path=path, line=line, field=field)
    seen[record_id] = line


def read_records_with_lines(path: str | Path, kind: str, *, unique_ids: bool = True,
                            require: Iterable[str] = ()) -> list[tuple[int, dict]]:
    """Read and validate every record of a JSONL (or JSON array) file, with its line."""
    records, seen = [], {}
    for line, value in iter_json_items(path):
        record = validate(value, kind, path=path, line=line, require=require)
        if unique_ids and "id" in record:
            note_id(seen, record["id"], path=path, line=line)
        records.append((line, record))
    return records


def read_records(path: str | Path, kind: str, *, unique_ids: bool = True,
                 require: Iterable[str] = ()) -> list[dict]:
    """Read and validate every record of a JSONL (or JSON array) file."""
    return [r for _, r in read_records_with_lines(path, kind, unique_ids=unique_ids,
                                                  require=require)]


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors' aliases: a settings file needs none, and nested aliases expand to
    billions of nodes when the settings are copied (the "billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed here", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def read_yaml_mapping(path: str | Path, what: str = "settings") -> dict:
    """A YAML file that must hold a mapping (a config, a recipe); errors name the file."""
    try:
        loaded = yaml.load(Path(path).read_text(), Loader=_NoAliases) or {}
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as e:
        raise InputError(f"unreadable ({e.strerror})", path=path) from None
    except yaml.MarkedYAMLError as e:  # one line, at the line YAML stopped on
        mark = e.problem_mark
        raise InputError(f"unreadable YAML ({e.problem})", path=path,
                         line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise InputError(f"unreadable YAML ({str(e).splitlines()[0]})", path=path) from None
    if not isinstance(loaded, dict):
        raise InputError(f"expected a mapping of {what}", path=path)
    return loaded


def _writable(path: Path) -> None:
    """A file can be written at ``path``: not a folder, under folders (made if missing)."""
    if path.is_dir():
        raise InputError("a folder, where a file belongs", path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError("cannot write here: a file stands where a folder belongs",
                         path=path) from None
    except PermissionError:
        raise InputError("cannot write here: permission denied", path=path) from None


def atomic_write_text(path: str | Path, write: Callable[[Any], None]) -> Path:
    """Write a file through ``write(f)`` so that readers never see it half-written."""
    return _atomic(path, "w", write)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic(path, "wb", lambda f: f.write(data))


def _atomic(path: str | Path, mode: str, write: Callable[[Any], Any]) -> Path:
    path = Path(path)
    _writable(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except PermissionError:
        raise InputError("cannot write here: permission denied", path=path) from None
    except OSError as e:  # a read-only or full disk
        raise InputError(f"cannot write here: {e.strerror or e}", path=path) from None
    try:
        # mkstemp makes the file private (0600): give it the mode open() would have
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a full disk: say which file could not be written
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask, read once (reading it means setting it for a moment)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    def write(f):
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return atomic_write_text(path, write)


def write_json(path: str | Path, value: Any) -> Path:
    def write(f):
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return atomic_write_text(path, write)
