"""Consensus filtering (``prmkit annotate consensus``): keep a solution only where its label
sources agree on the earliest error (both -1 counts as agreement), as the paper keeps about 40%
of its data where MC estimation and an LLM judge agree.

Sources are fields of the input records (``prmkit.labels``), so this works on prmkit's
own annotations (``mc.hard``, ``mc.values:0.5``, ``judge.first_error``) and on outside data
(PRM800K-style step labels, a ProcessBench ``label``). Several input files are joined by ``id``:
the first file decides which solutions there are, later files add their fields.

Writes ``consensus.jsonl`` (the kept solutions, each with a ``consensus`` field: the agreed
``first_error`` and the ``step_labels`` it implies), ``annotated.jsonl`` (every solution, with
``consensus.kept``) and ``metrics.json``: the kept share, the pairwise agreement and the
agreement matrix of the first two sources, and, where a reference is present (the toy world's
exact truth), each source's and the consensus's first-error accuracy and negative-step precision
and recall.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from prmkit import config, rundir
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.labels import (
    Source,
    default_truth,
    first_errors,
    labels_from_first_error,
    quality,
)
from prmkit.records import (
    iter_json_items,
    note_id,
    read_records_with_lines,
    write_jsonl,
)

BUCKETS = ("-1", "0", "1", "2", "3", "4+", "none")


@dataclass(frozen=True)
class ConsensusConfig:
    inputs: tuple[str, ...] = setting(REQUIRED, "Annotated JSONL file(s); several are joined "
                                      "by id.", positional=True)
    sources: tuple[str, ...] = setting(("mc.hard", "judge.first_error"), "Label sources that "
                                       "must agree: a field path, ':T' to threshold numbers, "
                                       "or a name of prmkit.labels.NAMED_SOURCES.")
    truth: str | None = setting(None, "Reference labels to measure against (default: "
                                "truth.label, else label, where present).")
    name: str = setting("consensus", "Field the verdict goes in.")

    def validate(self) -> "ConsensusConfig":
        if len(self.sources) < 2:
            raise InputError("consensus needs at least two sources", field="sources")
        return self


def join(paths: list[str]) -> list[tuple[int, dict]]:
    """Records of the first file (with their lines), with the fields of later files added.

    Ids are unique in every file. A later file's record must describe the same solution as the
    first file's record of its id: the same problem and steps where it gives them (a file of
    another run, with the same ids and other steps, would put its labels on the wrong steps),
    and no field it shares with it may hold another value."""
    first, *others = paths
    records = read_records_with_lines(first, "solution")
    if not records:
        raise InputError("no solutions in this file", path=first, field="inputs")
    by_id = {r["id"]: (line, r) for line, r in records}
    for path in others:
        seen: dict[str, int] = {}
        for line, value in iter_json_items(path):
            if not isinstance(value, dict) or not isinstance(value.get("id"), str):
                raise InputError("expected an object with a string id", path=path, line=line,
                                 field="id")
            note_id(seen, value["id"], path=path, line=line)
            if value["id"] in by_id:
                first_line, target = by_id[value["id"]]
                _same_solution(value, target, path, line, f"{first}:{first_line}")
                target.update({k: v for k, v in value.items() if k not in target})
    return records


def _same_solution(value: dict, target: dict, path: str, line: int, where: str) -> None:
    for key in ("problem", "steps", *sorted(k for k in value if k not in ("problem", "steps"))):
        if key in value and key in target and value[key] != target[key]:
            what = ("other steps" if key == "steps" else "another problem" if key == "problem"
                    else f"another {key!r}")
            raise InputError(f"id {value['id']!r} has {what} than in {where}: the files do not "
                             "describe the same solutions (another run's file?)", path=path,
                             line=line, field=key)


def bucket(first_error: int | None) -> str:
    if first_error is None:
        return "none"
    return str(first_error) if first_error < 4 else "4+"


def cost(record: dict, sources: list[Source]) -> dict:
    """What the sources spent on this solution: rollouts (MC) and model judge calls."""
    spent = Counter()
    for top in dict.fromkeys(s.path.split(".")[0] for s in sources):
        value = record.get(top)
        if isinstance(value, dict):
            spent["rollouts"] += value.get("rollouts", 0)
            spent["judge_calls"] += value.get("calls", 0)
    return dict(spent)


def run(cfg: ConsensusConfig, out: str | Path, *, force: bool = False) -> dict:
    cfg.validate()
    sources = [Source.parse(s) for s in cfg.sources]

    def work(folder: Path, _config: dict) -> dict:
        joined = join(list(cfg.inputs))
        records = [r for _, r in joined]
        verdicts = {s.spec: first_errors(joined, s, cfg.inputs[0]) for s in sources}
        truth_source = Source.parse(cfg.truth) if cfg.truth else default_truth(records)
        truth = first_errors(joined, truth_source, cfg.inputs[0]) if truth_source else None
        annotated, kept = [], []
        for i, record in enumerate(records):
            votes = {spec: v[i] for spec, v in verdicts.items()}
            agreed = None not in votes.values() and len(set(votes.values())) == 1
            first = next(iter(votes.values())) if agreed else None
            mark = {"kept": agreed, "first_error": first, "sources": votes,
                    "cost": cost(record, sources)}
            if agreed:
                mark["step_labels"] = labels_from_first_error(first, len(record["steps"]))
            annotated.append({**record, cfg.name: mark})
            if agreed:
                kept.append(annotated[-1])
        write_jsonl(folder / "annotated.jsonl", annotated)
        write_jsonl(folder / "consensus.jsonl", kept)
        return report(records, verdicts, [m[cfg.name]["first_error"] for m in annotated],
                      truth, truth_source)

    stage_config = {"stage": "annotate-consensus", **config.to_dict(cfg)}
    return rundir.run_stage(out, stage_config, work, force=force,
                            inputs={f"inputs[{i}]": p for i, p in enumerate(cfg.inputs)})


def report(records: list[dict], verdicts: dict[str, list], consensus: list[int | None],
           truth: list[int] | None, truth_source: Source | None) -> dict:
    n = len(records)
    kept = sum(c is not None for c in consensus)
    specs = list(verdicts)
    metrics = {
        "n_solutions": n, "kept": kept, "kept_share": kept / n if n else None,
        "no_verdict": {s: sum(v is None for v in verdicts[s]) for s in specs},
        "pairwise_agreement": {
            f"{a} ~ {b}": sum(x == y and x is not None for x, y in zip(verdicts[a], verdicts[b]))
            / n if n else None for a, b in itertools.combinations(specs, 2)},
        "agreement_matrix": {"rows": specs[0], "columns": specs[1], "counts": {
            r: {c: sum(bucket(x) == r and bucket(y) == c
                       for x, y in zip(verdicts[specs[0]], verdicts[specs[1]]))
                for c in BUCKETS} for r in BUCKETS}},
    }
    if truth is not None:
        steps = [len(r["steps"]) for r in records]
        metrics["reference"] = truth_source.spec
        metrics["quality"] = {s: quality(verdicts[s], truth, steps) for s in specs}
        metrics["quality"]["consensus"] = quality(consensus, truth, steps)
        for q in metrics["quality"].values():
            q["kept_share"] = q["n"] / n if n else None
    return metrics
