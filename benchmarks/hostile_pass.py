"""A hostile pass over prmkit's command line: bad input as careless users and attackers give it.

The issue it keeps true: "every bad input a clear one-line error naming where, exit 2, nothing
marked COMPLETE, no data lost, no hang". The script builds its own fixtures in a temporary
folder (a tiny causal LM with the toy world's character tokenizer, a PRM saved from it, broken
copies of both, small data files of every format, a copy of the real-data recipe pointed at
them, and three base URLs: one nobody listens on, one that never answers, one that serves
another model), checks that the good ones pass, then runs each case as its own
``python -m prmkit.cli ...`` process and checks that:

- it exits with the expected status (2, or what the case says) before its time limit (60 s; a
  case still running then is a hang, and is killed);
- stderr is exactly one non-empty line, starting with ``error:``, holding the case's text (the
  file or field the error must name), and no ``Traceback``;
- nothing new under the case's folder is marked ``COMPLETE``; no ``*.tmp`` file or folder (nor a
  ``.NAME.old`` folder) is left behind; every file that was there before is unchanged (the
  ``.lock`` file aside); no fixture file changed;
- a recipe is refused before its first stage: nothing new appears in its run folder (no
  ``sample/``, ``mc/``, ``recipe.json``, ...), within 20 s;
- a Ray request no node can meet fails within 30 s, Ray's start included, and leaves no Ray
  process behind (a raylet or GCS server that another user starts meanwhile reads as one).

Surfaces: recipes (``prmkit run``, ``prmkit demo``; run folders of other settings, a YAML alias
bomb run under a 1 GiB address-space cap), colliding ids in every reader, broken PRM folders
(``prmkit score`` and ``prmkit eval bon --model``) and broken models, files and disks (an
``--out`` that is a file or the model's own folder, a named pipe, a read-only and a full tmpfs,
mounted as root; skipped with a note where mounting fails), Ray (skipped where it is not
installed), and the command line's own usage errors. Cases run one at a time.

    .venv/bin/python benchmarks/hostile_pass.py              # every case, ~10 min on 2 cores
    .venv/bin/python benchmarks/hostile_pass.py --list       # the cases' names
    .venv/bin/python benchmarks/hostile_pass.py --only recipe --keep   # some; keep the folder
"""

from __future__ import annotations

import argparse
import fcntl
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "prmkit" / "recipes"
TIMEOUT = 60.0        # a case still running after this is a hang
BEFORE_WORK = 20.0    # a recipe refused before its first stage takes seconds
RAY_LIMIT = 30.0      # a Ray request no node can meet, Ray's own start included
MARKER = "COMPLETE"


# -- the cases' shape -----------------------------------------------------------------------------

Argv = Callable[[dict, Path], list[str]]      # (fixtures, the case's folder) -> prmkit's arguments
Setup = Callable[[dict, Path], "Callable[[], None] | None"]  # prepares the folder; returns a cleanup


@dataclass(frozen=True)
class Case:
    name: str
    argv: Argv
    expect: str | tuple[str, ...]  # text the error line must hold: the file, line or field
    status: int = 2
    recipe: bool = False           # refused before the first stage: nothing new in the run folder
    setup: Setup | None = None
    limit: float = TIMEOUT
    needs: str | None = None       # "ray" or "mount": skipped, with a note, where missing
    memory: int | None = None      # an address-space cap (bytes), for cases that may eat memory


def cli(*args, out: str | None = "{here}/out") -> Argv:
    """prmkit's arguments, each ``{name}`` filled from the fixtures (``{here}``: the case's
    folder), then ``--out`` (none with ``out=None``)."""
    def build(f: dict, here: Path) -> list[str]:
        argv = [str(a).format(**f, here=here) for a in args]
        return argv + (["--out", out.format(**f, here=here)] if out else [])
    return build


def sets(*items: str) -> list[str]:
    return [flag for item in items for flag in ("--set", item)]


# the real-data recipe, its models replaced by the tiny LM and its data by small local files
QWEN_BASE = ("policy.model={lm}", "policy.backend.backend=hf", "prms.model={lm}",
             "labels.judge.model={lm}", "labels.judge.backend.backend=hf",
             "problems.path={gsm8k_train}", "evaluate.bon.sets.gsm8k.path={gsm8k_test}",
             "evaluate.bon.sets.math500.path={math500}",
             "evaluate.processbench.path={processbench}")


def demo(*items: str, command: str = "run", extra: tuple = ()) -> Argv:
    """``prmkit run demo.yaml`` (or ``prmkit demo``) with overrides."""
    head = ["run", RECIPES / "demo.yaml"] if command == "run" else ["demo"]
    return cli(*head, *sets(*items), *extra)


def qwen(*items: str, recipe: str = "{qwen}", extra: tuple = ()) -> Argv:
    """The copy of qwen2.5-math.yaml on the tiny model and local data, with overrides."""
    return cli("run", recipe, *sets(*QWEN_BASE, *items), *extra)


def recipe_case(name: str, argv: Argv, expect: str | tuple[str, ...], **more) -> Case:
    return Case(f"recipe: {name}", argv, expect, recipe=True, **more)


# -- recipes: every bad setting refused before the first stage -------------------------------------

RECIPE_CASES = [
    recipe_case("unknown key labels.mc.kk", demo("labels.mc.kk=4"), "field 'labels.mc.kk'"),
    recipe_case("unknown section", demo("evaluatee.bon.n=2"), "field 'evaluatee'"),
    recipe_case("unknown label stage", demo("labels.rm.k=1"), "field 'labels.rm'"),
    recipe_case("unknown benchmark", demo("evaluate.bestofn.n=2"), "evaluate.bestofn"),
    recipe_case("mc.k 0", demo("labels.mc.k=0"), "field 'labels.mc.k'"),
    recipe_case("mc.k 0 from --set, blamed on --set", demo("labels.mc.k=0"),
                ("--set", "field 'labels.mc.k'")),
    recipe_case("mc.threshold 1", demo("labels.mc.threshold=1"), "field 'labels.mc.threshold'"),
    recipe_case("mc.mode bogus", demo("labels.mc.mode=ternary"), "field 'labels.mc.mode'"),
    recipe_case("judge.kind bogus", demo("labels.judge.kind=oracle"), "field 'labels.judge.kind'"),
    recipe_case("judge.samples 0", qwen("labels.judge.samples=0"),
                "field 'labels.judge.samples'"),
    recipe_case("prms.train.lr 0", demo("prms.train.lr=0"), "field 'prms.train.lr'"),
    recipe_case("prms.train.eval_fraction 1", demo("prms.train.eval_fraction=1"),
                "field 'prms.train.eval_fraction'"),
    recipe_case("prms.train.format math-shepherd", demo("prms.train.format=math-shepherd"),
                "field 'prms.train.format'"),
    recipe_case("score.batch_size 0", demo("score.batch_size=0"), "field 'score.batch_size'"),
    recipe_case("score.executor bogus", demo("score.executor=slurm"), "field 'score.executor'"),
    recipe_case("sample.temperature -1", demo("sample.temperature=-1"),
                "field 'sample.temperature'"),
    recipe_case("sample.n 0", demo("sample.n=0"), "field 'sample.n'"),
    recipe_case("evaluate.bon.n 0", demo("evaluate.bon.n=0"), "field 'evaluate.bon.n'"),
    recipe_case("evaluate.bon.ns [0]", demo("evaluate.bon.ns=[0]"), "field 'evaluate.bon.ns"),
    recipe_case("evaluate.bon.sample.top_p 0", demo("evaluate.bon.sample.top_p=0"),
                "field 'evaluate.bon.sample.top_p'"),
    recipe_case("report.viewer_solutions -1", demo("report.viewer_solutions=-1"),
                "field 'report.viewer_solutions'"),
    recipe_case("policy.backend.workers 0", demo("policy.backend.workers=0"),
                "field 'policy.backend.workers'"),
    recipe_case("problems.limit 0", qwen("problems.limit=0"), "field 'problems.limit'"),
    recipe_case("--set without =", demo("labels.mc.k"), "expected key=value"),
    recipe_case("misspelled label source", demo("prms.sources.MC-hard=mc.hardd"),
                "field 'prms.sources.MC-hard'"),
    recipe_case("consensus source no stage writes",
                demo("labels.consensus.sources=[mc.hard, judge2.first_error]"),
                "field 'labels.consensus.sources[1]'"),
    recipe_case("soft names no PRM", demo("prms.soft=[MC-sofft]"), "field 'prms.soft'"),
    recipe_case("ceiling names no PRM", demo("prms.ceiling=exact"), "field 'prms.ceiling'"),
    recipe_case("two PRM names, one folder", demo("prms.sources.MC hard=mc.hard"),
                "would share the folder prm-mc-hard/"),
    recipe_case("baseline named like a PRM", demo("prms.baseline=mc_hard"),
                "would share the folder prm-mc-hard/"),
    recipe_case("a PRM name with no letters", demo("prms.sources.!!=mc.hard"),
                "makes no folder name"),
    recipe_case("two Best-of-N sets, one folder",
                demo("evaluate.bon.sets.Toy.path=toy:mixed:prm-heldout:16"),
                "would share the folder bon-toy/"),
    recipe_case("processbench from a set that is not there",
                demo("evaluate.processbench.from_truth=gsm8k"),
                "field 'evaluate.processbench.from_truth'"),
    recipe_case("missing policy folder", qwen("policy.model={data}/no-such-model"),
                "field 'policy.model'"),
    recipe_case("policy folder without config.json", qwen("policy.model={folder}"),
                "field 'policy.model'"),
    recipe_case("missing PRM backbone", qwen("prms.model={data}/no-such-backbone"),
                "field 'prms.model'"),
    recipe_case("missing judge model", qwen("labels.judge.model={data}/no-such-judge"),
                "field 'labels.judge.model'"),
    recipe_case("served judge nobody listens on",
                qwen("labels.judge.backend.backend=openai",
                     "labels.judge.backend.base_url={dead_url}"),
                "field 'labels.judge.backend.base_url'"),
    recipe_case("served judge that never answers",
                qwen("labels.judge.backend.backend=openai",
                     "labels.judge.backend.base_url={silent_url}"),
                "field 'labels.judge.backend.base_url'"),
    recipe_case("served judge serving another model",
                qwen("labels.judge.backend.backend=openai",
                     "labels.judge.backend.base_url={other_url}"),
                "does not serve"),
    recipe_case("served judge with a missing tokenizer",
                qwen("labels.judge.backend.backend=openai",
                     "labels.judge.backend.base_url={other_url}",
                     "labels.judge.backend.tokenizer={data}/no-such-tokenizer"),
                "field 'labels.judge.backend.tokenizer'"),
    recipe_case("openai judge without base_url",
                qwen("labels.judge.backend.backend=openai", "labels.judge.backend.base_url=null"),
                "field 'labels.judge.backend.base_url'"),
    recipe_case("openai policy with a raw-text prompt on the chat API",
                qwen("policy.backend.backend=openai", "policy.backend.base_url={other_url}",
                     "policy.prompt=plain"), "field 'policy.backend.api'"),
    recipe_case("missing prompt template", qwen("policy.prompt={data}/no-such-prompt.txt"),
                "no-such-prompt.txt"),
    recipe_case("prompt template without {problem}", qwen("policy.prompt={no_placeholder}"),
                "no_placeholder.txt"),
    recipe_case("unknown prompt format", qwen("policy.prompt=qwen"), "field 'policy.prompt'"),
    recipe_case("missing judge prompt",
                qwen("labels.judge.judge_prompt={data}/no-such-judge-prompt.txt"),
                "field 'labels.judge.judge_prompt'"),
    recipe_case("judge prompt without placeholders",
                qwen("labels.judge.judge_prompt={judge_no_tags}"),
                "field 'labels.judge.judge_prompt'"),
    recipe_case("missing problems file", qwen("problems.path={data}/no-such.jsonl"),
                "field 'problems.path'"),
    recipe_case("problems path is a folder", qwen("problems.path={folder}"), "a-folder"),
    recipe_case("empty problems file", qwen("problems.path={empty}"), "problems.path"),
    recipe_case("problems file of another format (ProcessBench as GSM8K)",
                qwen("problems.path={processbench}/gsm8k.json"), "gsm8k.json:2: field"),
    recipe_case("problems format that gives solutions", qwen("problems.format=prm800k"),
                "field 'problems.format'"),
    recipe_case("unknown problems format", qwen("problems.format=gsm8"),
                "field 'problems.format'"),
    recipe_case("malformed JSON line in problems", qwen("problems.path={gsm8k_bad_json}"),
                "gsm8k_bad_json.jsonl:2: malformed JSON"),
    recipe_case("malformed JSON line in a Best-of-N set",
                qwen("evaluate.bon.sets.gsm8k.path={gsm8k_bad_json}"),
                "gsm8k_bad_json.jsonl:2: malformed JSON"),
    recipe_case("ProcessBench path of another format",
                qwen("evaluate.processbench.path={gsm8k_test}"), "gsm8k_test.jsonl:1"),
    recipe_case("GSM8K idx '3' and 3", qwen("problems.path={gsm8k_str_int}"),
                "gsm8k_str_int.jsonl:2: field 'idx': duplicate id"),
    recipe_case("GSM8K missing idx colliding with a line number",
                qwen("problems.path={gsm8k_line_collide}"),
                "gsm8k_line_collide.jsonl:2: field 'idx': duplicate id"),
    recipe_case("MATH repeated unique_id", qwen("evaluate.bon.sets.math500.path={math_dup}"),
                "math_dup.jsonl:2: field 'unique_id': duplicate id"),
    recipe_case("--quick without a quick section", qwen(recipe="{noquick}", extra=("--quick",)),
                "field 'quick'"),
    recipe_case("recipe file missing", cli("run", "{data}/no-such-recipe.yaml"),
                "no-such-recipe.yaml: file not found"),
    recipe_case("recipe is a folder", cli("run", "{folder}"), "a-folder"),
    recipe_case("recipe of malformed YAML", cli("run", "{recipe_bad}"),
                "recipe_bad.yaml:2: unreadable YAML"),
    recipe_case("recipe a YAML list", cli("run", "{recipe_list}"), "recipe_list.yaml: expected"),
    recipe_case("empty recipe file", cli("run", "{recipe_empty}"), "recipe_empty.yaml"),
    # 9^10 strings once its aliases are expanded; capped at 1 GiB, so that it cannot take the
    # machine's memory down with it
    recipe_case("a YAML alias bomb in a free-form section", cli("run", "{recipe_bomb}"),
                "recipe_bomb.yaml", memory=1 << 30),
]


# -- run folders: another recipe's work is refused, and left as it is ------------------------------

def begun_run(f: dict, here: Path) -> None:
    """A run folder begun with labels.mc.k=2: its recipe.json and problems."""
    from prmkit import pipeline
    out = here / "out"
    out.mkdir(parents=True)
    recipe = pipeline.load(RECIPES / "demo.yaml", ["labels.mc.k=2"])
    recipe["out"] = str(out)
    (out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    (out / "problems.jsonl").write_text('{"id": "p", "problem": "1+1?", "answer": "2"}\n')
    (out / "sample" / "shards").mkdir(parents=True)
    (out / "sample" / "shards" / "00000.jsonl").write_text('{"id": "p-0"}\n')


def finished_run(f: dict, here: Path) -> None:
    """A finished run folder (labels.mc.k=2): every stage marked complete, a report."""
    begun_run(f, here)
    out = here / "out"
    for stage in ("sample", "mc", "judge", "consensus", "prm-mc-hard", "scores/mc-hard"):
        (out / stage).mkdir(parents=True, exist_ok=True)
        (out / stage / "config.json").write_text('{"config": {}}\n')
        (out / stage / "metrics.json").write_text("{}\n")
        (out / stage / MARKER).write_text("ok\n")
    (out / "results.json").write_text("{}\n")
    (out / "report.md").write_text("# a finished run\n")


def damaged_run(f: dict, here: Path) -> None:
    begun_run(f, here)
    (here / "out" / "recipe.json").write_text('{"out": ')


def busy_run(f: dict, here: Path):
    """A run folder another process holds (its flock on .lock)."""
    (here / "out").mkdir(parents=True)
    handle = open(here / "out" / ".lock", "a+")  # noqa: SIM115 (held until the cleanup)
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write("pid 1 on elsewhere since then (prmkit run)\n")
    handle.flush()

    def release() -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
    return release


def out_is_a_file(f: dict, here: Path) -> None:
    (here / "out").write_text("my notes: not a folder\n")


def users_problems(f: dict, here: Path) -> None:
    """A folder of the user's own, holding their GSM8K problems as problems.jsonl."""
    (here / "out").mkdir(parents=True)
    shutil.copy(f["gsm8k_train"], here / "out" / "problems.jsonl")


# a small run of the demo recipe on the tiny LM (seconds a stage)
SMALL_RUN = ("policy.model={lm}", "sample.n=1", "sample.max_new_tokens=16", "labels.mc.k=1",
             "labels.mc.max_new_tokens=8", "prms.train.max_steps=1", "prms.train.batch_size=2",
             "evaluate.bon.n=1", "evaluate.bon.sets.toy.path=toy:mixed:prm-heldout:2")

RUN_FOLDER_CASES = [
    recipe_case("begun run folder, other settings", demo("labels.mc.k=3"), "labels.mc.k",
                setup=begun_run),
    recipe_case("finished run folder, other settings", demo("labels.mc.k=3"), "labels.mc.k",
                setup=finished_run),
    recipe_case("finished run folder, other settings (prmkit demo)",
                demo("labels.mc.k=3", command="demo"), "labels.mc.k", setup=finished_run),
    recipe_case("run folder with a damaged recipe.json", demo(), "recipe.json: damaged",
                setup=damaged_run),
    recipe_case("run folder another process holds", demo(), "busy", setup=busy_run),
    recipe_case("--out is a file", demo(), "must be a folder", setup=out_is_a_file),
    recipe_case("--out a folder holding the user's own problems.jsonl",
                demo(*SMALL_RUN, "problems.path={here}/out/problems.jsonl",
                     "problems.format=gsm8k", "problems.limit=2", "prms.sources.exact truth=null",
                     "prms.ceiling=null"), "problems.jsonl", setup=users_problems, limit=180),
]


# -- ids: every reader refuses a repeated or colliding id -----------------------------------------

ID_CASES = [
    Case("ids: sample, GSM8K idx '3' and 3",
         cli("sample", "{gsm8k_str_int}", "--format", "gsm8k", "--model", "{lm}", "--prompt",
             "plain"), "gsm8k_str_int.jsonl:2: field 'idx': duplicate id 'gsm8k-3'"),
    Case("ids: sample, GSM8K missing idx colliding with a line number",
         cli("sample", "{gsm8k_line_collide}", "--format", "gsm8k", "--model", "{lm}",
             "--prompt", "plain"), "gsm8k_line_collide.jsonl:2: field 'idx'"),
    Case("ids: sample, MATH repeated unique_id",
         cli("sample", "{math_dup}", "--format", "math", "--model", "{lm}", "--prompt", "plain"),
         "math_dup.jsonl:2: field 'unique_id'"),
    Case("ids: sample, prmkit problems repeated id",
         cli("sample", "{problems_dup}", "--model", "{lm}", "--prompt", "plain"),
         "problems_dup.jsonl:2: field 'id'"),
    Case("ids: score, solutions repeated id",
         cli("score", "{solutions_dup}", "--model", "{prm}"), "solutions_dup.jsonl:2: field 'id'"),
    Case("ids: annotate mc, solutions repeated id",
         cli("annotate", "mc", "{solutions_dup}", "--model", "{lm}", "--prompt", "plain"),
         "solutions_dup.jsonl:2: field 'id'"),
    Case("ids: annotate judge, solutions repeated id",
         cli("annotate", "judge", "{solutions_dup}", "--kind", "rule"),
         "solutions_dup.jsonl:2: field 'id'"),
    Case("ids: consensus, repeated id",
         cli("annotate", "consensus", "{labelled_dup}", "--sources", "mc.hard", "--sources",
             "judge.first_error"), "labelled_dup.jsonl:2: field 'id'"),
    Case("ids: consensus, second file repeats an id",
         cli("annotate", "consensus", "{labelled}", "{join_dup}", "--sources", "mc.hard",
             "--sources", "judge2.first_error"), "join_dup.jsonl:2: field 'id'"),
    Case("ids: consensus, second file has other steps",
         cli("annotate", "consensus", "{labelled}", "{join_other_steps}", "--sources",
             "mc.hard", "--sources", "judge2.first_error"),
         "join_other_steps.jsonl:1: field 'steps'"),
    Case("ids: consensus, second file has another problem",
         cli("annotate", "consensus", "{labelled}", "{join_other_problem}", "--sources",
             "mc.hard", "--sources", "judge2.first_error"),
         "join_other_problem.jsonl:1: field 'problem'"),
    Case("ids: consensus, second file has another label value",
         cli("annotate", "consensus", "{labelled}", "{join_other_value}", "--sources",
             "mc.hard", "--sources", "judge2.first_error"),
         "join_other_value.jsonl:1: field 'mc'"),
    Case("ids: train, repeated id",
         cli("train", "--data", "{labelled_dup}", "--labels", "mc.hard", "--model", "{lm}",
             "--max-steps", "1", "--device", "cpu"), "labelled_dup.jsonl:2: field 'id'"),
    Case("ids: eval bon, repeated candidate-set id",
         cli("eval", "bon", "{candidates_dup}"), "candidates_dup.jsonl:2: field 'id'"),
    Case("ids: eval bon, Qwen eval repeated idx",
         cli("eval", "bon", "{qwen_eval_dup}", "--format", "qwen_eval"),
         "qwen_eval_dup.jsonl:2"),
    Case("ids: eval processbench, one id in two subsets",
         cli("eval", "processbench", "-b", "{processbench_dup}", "--scores", "{pb_scores}"),
         "processbench_dup"),
    Case("ids: eval processbench, repeated id in the scores",
         cli("eval", "processbench", "-b", "{processbench}", "--scores", "{pb_scores_dup}"),
         "pb_scores_dup.jsonl:2: field 'id'"),
    Case("ids: convert, repeated id",
         cli("convert", "{labelled_dup}", "{here}/trl.jsonl", "--format", "prmkit", "--to",
             "trl_stepwise", "--labels", "mc.hard", out=None),
         "labelled_dup.jsonl:2: field 'id'"),
]


# -- PRM folders: a broken one is refused in one line naming its file, before any work -------------

def _json_edit(name: str, change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / name).write_text(json.dumps(change(json.loads((folder / name).read_text()))))
    return damage


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def _remove(*names: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()
    return damage


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:max(4, int(len(data) * keep))])
    return damage


def _half_text(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        text = (folder / name).read_text()
        (folder / name).write_text(text[:len(text) // 2])
    return damage


# a copy of the good PRM, damaged -> (the damage, text the error must hold)
BROKEN_PRMS: dict[str, tuple[Callable[[Path], None], str]] = {
    "prm-truncated": (_truncate("model.safetensors", 0.5),
                      "prm-truncated/model.safetensors: truncated safetensors"),
    "prm-cut-in-header": (_truncate("model.safetensors", 0.0),
                          "prm-cut-in-header/model.safetensors"),
    "prm-no-weights": (_remove("model.safetensors"), "prm-no-weights"),
    "prm-config-malformed": (_half_text("config.json"),
                             "prm-config-malformed/config.json: malformed JSON"),
    "prm-config-a-list": (_write("config.json", "[1, 2]"),
                          "prm-config-a-list/config.json: expected a JSON object"),
    "prm-config-unknown-type": (_json_edit("config.json", lambda c: {**c, "model_type": "nope"}),
                                "prm-config-unknown-type/config.json"),
    "prm-config-other-sizes": (_json_edit("config.json", lambda c: {**c, "hidden_size": 64,
                                                                     "intermediate_size": 128}),
                               "the weights do not match"),
    "prm-config-llama": (_json_edit("config.json", lambda c: {**c, "model_type": "llama"}),
                         "prm-config-llama/"),
    "prm-no-tokenizer": (_remove("tokenizer.json", "tokenizer_config.json"),
                         "prm-no-tokenizer/tokenizer.json: missing tokenizer"),
    "prm-no-tokenizer-json": (_remove("tokenizer.json"), "prm-no-tokenizer-json/tokenizer"),
    "prm-tokenizer-malformed": (_write("tokenizer.json", '{"version": "1.0", "model": '),
                                "prm-tokenizer-malformed/tokenizer.json"),
    "prm-prm-json-malformed": (_write("prm.json", '{"format": "step-token",'),
                               "prm-prm-json-malformed/prm.json: malformed JSON"),
    "prm-prm-json-a-list": (_write("prm.json", "[]"),
                            "prm-prm-json-a-list/prm.json: expected a JSON object"),
    "prm-prm-json-no-format": (_json_edit("prm.json", lambda m: {k: v for k, v in m.items()
                                                                 if k != "format"}),
                               "prm-prm-json-no-format/prm.json: field 'format'"),
    "prm-prm-json-unknown-format": (_json_edit("prm.json", lambda m: {**m, "format": "magic"}),
                                    "prm-prm-json-unknown-format/prm.json: field 'format'"),
    "prm-prm-json-head-bce": (_json_edit("prm.json", lambda m: {**m, "head": "bce"}),
                              "prm-prm-json-head-bce/prm.json: field 'head'"),
    "prm-prm-json-layout": (_json_edit("prm.json", lambda m: {**m, "layout": "prmkit-head"}),
                            "prm-prm-json-layout/prm.json: field 'layout'"),
    "prm-empty-folder": (lambda folder: [p.unlink() for p in folder.iterdir()],
                         "prm-empty-folder"),
}

# other --model values -> (extra flags, text the error must hold)
OTHER_MODELS: dict[str, tuple[str, tuple, str]] = {
    "a missing folder": ("{data}/no-such-prm", (), "no-such-prm"),
    "a file": ("{solutions}", (), "solutions.jsonl"),
    "a causal LM, no PRM": ("{lm}", (), "field 'model_format'"),
    "--model-format plain on a step-token PRM": ("{prm}", ("--model-format", "plain"),
                                                 "prm/prm.json: field 'model_format'"),
    "--model-format math-shepherd on a step-token PRM": (
        "{prm}", ("--model-format", "math-shepherd"), "prm/prm.json: field 'model_format'"),
    "--model-format unknown": ("{prm}", ("--model-format", "qwen-prm"), "model_format"),
}


def prm_cases() -> list[Case]:
    models = {f"broken PRM {name.removeprefix('prm-')}": ("{" + name + "}", (), expect)
              for name, (_, expect) in BROKEN_PRMS.items()}
    models.update(OTHER_MODELS)
    cases = []
    for what, (model, extra, expect) in models.items():
        cases.append(Case(f"prm folder: {what} (score)",
                          cli("score", "{solutions}", "--model", model, *extra), expect))
        cases.append(Case(f"prm folder: {what} (eval bon)",
                          cli("eval", "bon", "{candidates}", "--model", model, "--group-by",
                              "string", *extra), expect))
    return cases


# a copy of the tiny LM, damaged -> the damage (a policy, a completion model, a backbone)
BROKEN_LMS: dict[str, Callable[[Path], None]] = {
    "lm-no-tokenizer-json": _remove("tokenizer.json"),
    "lm-truncated": _truncate("model.safetensors", 0.5),
    "lm-config-malformed": _half_text("config.json"),
}

MODEL_CASES = [
    Case("models: sample, a policy without tokenizer.json",
         cli("sample", "{problems}", "--model", "{lm-no-tokenizer-json}", "--prompt", "plain",
             "--max-new-tokens", "8"), "lm-no-tokenizer-json"),
    Case("models: sample, a policy with a truncated model.safetensors",
         cli("sample", "{problems}", "--model", "{lm-truncated}", "--prompt", "plain",
             "--max-new-tokens", "8"), "lm-truncated"),
    Case("models: annotate mc, a model with a malformed config.json",
         cli("annotate", "mc", "{solutions}", "--model", "{lm-config-malformed}", "--prompt",
             "plain", "--max-new-tokens", "8"), "lm-config-malformed/config.json"),
    Case("models: train, a backbone without tokenizer.json",
         cli("train", "--data", "{labelled}", "--labels", "mc.hard", "--model",
             "{lm-no-tokenizer-json}", "--max-steps", "1", "--device", "cpu"),
         "lm-no-tokenizer-json"),
    Case("models: train, a truncated backbone",
         cli("train", "--data", "{labelled}", "--labels", "mc.hard", "--model", "{lm-truncated}",
             "--max-steps", "1", "--device", "cpu"), "lm-truncated"),
]

PRM_USE_CASES = [
    Case("prm use: eval bon, nothing fits the PRM's context (exit 1)",
         cli("eval", "bon", "{candidates_long}", "--model", "{prm}", "--group-by", "string",
             out=None), "nothing of the PRM was evaluated", status=1),
    Case("prm use: eval bon, a candidate set without its problem",
         cli("eval", "bon", "{candidates_no_problem}", "--model", "{prm}", "--group-by",
             "string"), "candidates_no_problem.jsonl"),
    Case("prm use: score, a GSM8K file read as ProcessBench",
         cli("score", "{gsm8k_train}", "--format", "processbench", "--model", "{prm}"),
         "gsm8k_train.jsonl:1"),
]


# -- files and disks -------------------------------------------------------------------------------

def disk(options: str) -> Setup:
    """A tmpfs of its own at ``{here}/disk`` (``ro``: read-only; ``size=16k``: full after a
    few files); the case is skipped where this process may not mount."""
    def setup(f: dict, here: Path):
        folder = here / "disk"
        folder.mkdir(parents=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise Skip(f"cannot mount a tmpfs ({done.stderr.strip()[:80] or 'not root'})")
        return lambda: subprocess.run(["umount", "-l", str(folder)], capture_output=True,
                                      check=False)
    return setup


def prm_as_out(f: dict, here: Path) -> None:
    shutil.copytree(f["prm"], here / "out")


def lm_as_out(f: dict, here: Path) -> None:
    shutil.copytree(f["lm"], here / "out")


def finished_mc(f: dict, here: Path) -> None:
    """A finished ``annotate mc`` folder: its annotated.jsonl is the next stage's input."""
    (here / "out").mkdir(parents=True)
    shutil.copy(f["labelled"], here / "out" / "annotated.jsonl")
    (here / "out" / "config.json").write_text(json.dumps({"config": {"stage": "annotate-mc"}}))
    (here / "out" / "metrics.json").write_text("{}\n")
    (here / "out" / MARKER).write_text("ok\n")


def own_copy(f: dict, here: Path) -> None:
    here.mkdir(parents=True, exist_ok=True)
    shutil.copy(f["labelled"], here / "data.jsonl")


def fifo(f: dict, here: Path) -> None:
    """A named pipe where a file belongs, no writer on it (as a finished `<(...)` leaves)."""
    here.mkdir(parents=True, exist_ok=True)
    os.mkfifo(here / "pipe.jsonl")


RO, FULL = disk("ro,size=1m"), disk("size=16k")
ON_DISK = "{here}/disk/out"
READ_ONLY = ("disk/out", "Read-only file system")      # where, and why
FULL_DISK = ("disk/out", "No space left on device")

FILE_CASES = [
    Case("files: score --out is a file", cli("score", "{solutions}", "--model", "{prm}"),
         "must be a folder", setup=out_is_a_file),
    Case("files: consensus --out is a file",
         cli("annotate", "consensus", "{labelled}", "--sources", "mc.hard", "--sources",
             "judge.first_error"), "must be a folder", setup=out_is_a_file),
    Case("files: train --out is a file",
         cli("train", "--data", "{labelled}", "--labels", "mc.hard", "--model", "{lm}",
             "--max-steps", "1", "--device", "cpu"), "must be a folder", setup=out_is_a_file),
    Case("files: eval bon --out is a file", cli("eval", "bon", "{candidates}"),
         "must be a folder", setup=out_is_a_file),
    Case("files: score --out the PRM's own folder",
         cli("score", "{solutions}", "--model", "{here}/out"), "field 'out'", setup=prm_as_out),
    Case("files: eval bon --out the PRM's own folder",
         cli("eval", "bon", "{candidates}", "--model", "{here}/out", "--group-by", "string"),
         "field 'out'", setup=prm_as_out),
    Case("files: train --out the backbone's own folder",
         cli("train", "--data", "{labelled}", "--labels", "mc.hard", "--model", "{here}/out",
             "--max-steps", "1", "--device", "cpu"), "field 'out'", setup=lm_as_out),
    Case("files: consensus --out its input's own finished stage folder",
         cli("annotate", "consensus", "{here}/out/annotated.jsonl", "--sources", "mc.hard",
             "--sources", "judge.first_error"), "other settings", setup=finished_mc),
    Case("files: convert onto its own input",
         cli("convert", "{here}/data.jsonl", "{here}/data.jsonl", "--format", "prmkit", "--to",
             "trl_stepwise", "--labels", "mc.hard", out=None), "data.jsonl", setup=own_copy),
    Case("files: sample, problems a folder",
         cli("sample", "{folder}", "--model", "{lm}", "--prompt", "plain"), "a-folder"),
    Case("files: score, solutions a folder", cli("score", "{folder}", "--model", "{prm}"),
         "a-folder"),
    Case("files: train, data a folder",
         cli("train", "--data", "{folder}", "--labels", "mc.hard", "--model", "{lm}",
             "--device", "cpu"), "a-folder"),
    Case("files: eval bon, candidates a folder", cli("eval", "bon", "{folder}"), "a-folder"),
    Case("files: sample, empty problems",
         cli("sample", "{empty}", "--model", "{lm}", "--prompt", "plain"), "empty.jsonl"),
    Case("files: score, empty solutions", cli("score", "{empty}", "--model", "{prm}"),
         "empty.jsonl"),
    Case("files: score, blank lines only", cli("score", "{blank}", "--model", "{prm}"),
         "blank.jsonl"),
    Case("files: consensus, empty input",
         cli("annotate", "consensus", "{empty}", "--sources", "mc.hard", "--sources",
             "judge.first_error"), "empty.jsonl"),
    Case("files: train, empty data",
         cli("train", "--data", "{empty}", "--labels", "mc.hard", "--model", "{lm}",
             "--device", "cpu"), "empty.jsonl"),
    Case("files: eval bon, empty candidates", cli("eval", "bon", "{empty}"), "empty.jsonl"),
    Case("files: eval processbench, empty scores",
         cli("eval", "processbench", "-b", "{processbench}", "--scores", "{empty}"),
         "empty.jsonl"),
    Case("files: score, not UTF-8", cli("score", "{latin1}", "--model", "{prm}"),
         "latin1.jsonl: not UTF-8"),
    Case("files: score, a line that is a JSON array",
         cli("score", "{array_line}", "--model", "{prm}"), "array_line.jsonl:1"),
    Case("files: score, steps a string",
         cli("score", "{steps_string}", "--model", "{prm}"), "steps_string.jsonl:1: field 'steps'"),
    Case("files: score, solutions a named pipe with no writer",
         cli("score", "{here}/pipe.jsonl", "--model", "{prm}"), "pipe.jsonl", setup=fifo,
         limit=30),
    Case("files: --config file missing",
         cli("score", "{solutions}", "--model", "{prm}", "--config", "{data}/no-such.yaml"),
         "no-such.yaml: file not found"),
    Case("files: --config with an unknown key",
         cli("score", "{solutions}", "--model", "{prm}", "--config", "{config_unknown}"),
         "config_unknown.yaml: field 'batch_sise'"),
    Case("disk: consensus onto a read-only disk",
         cli("annotate", "consensus", "{labelled}", "--sources", "mc.hard", "--sources",
             "judge.first_error", out=ON_DISK), READ_ONLY, setup=RO,
         needs="mount"),
    Case("disk: score onto a read-only disk",
         cli("score", "{solutions}", "--model", "{prm}", out=ON_DISK), READ_ONLY,
         setup=RO, needs="mount"),
    Case("disk: train onto a read-only disk",
         cli("train", "--data", "{labelled}", "--labels", "mc.hard", "--model", "{lm}",
             "--max-steps", "1", "--device", "cpu", out=ON_DISK), READ_ONLY,
         setup=RO, needs="mount"),
    Case("disk: eval bon onto a read-only disk", cli("eval", "bon", "{candidates}", out=ON_DISK),
         READ_ONLY, setup=RO, needs="mount"),
    recipe_case("run onto a read-only disk",
                cli("run", RECIPES / "demo.yaml", out=ON_DISK), READ_ONLY,
                setup=RO, needs="mount"),
    Case("disk: consensus onto a full disk",
         cli("annotate", "consensus", "{labelled_big}", "--sources", "mc.hard", "--sources",
             "judge.first_error", out=ON_DISK), FULL_DISK, setup=FULL,
         needs="mount"),
    Case("disk: train onto a full disk",
         cli("train", "--data", "{labelled}", "--labels", "mc.hard", "--model", "{lm}",
             "--max-steps", "1", "--device", "cpu", out=ON_DISK), FULL_DISK,
         setup=FULL, needs="mount"),
    Case("disk: convert onto a full disk",
         cli("convert", "{labelled_big}", "{here}/disk/trl.jsonl", "--format", "prmkit", "--to",
             "trl_stepwise", "--labels", "mc.hard", out=None),
         ("disk/trl.jsonl", "No space left on device"),
         setup=FULL, needs="mount"),
    Case("disk: sample onto a full disk",
         cli("sample", "{problems}", "--model", "{lm}", "--prompt", "plain", "--n", "64",
             "--max-new-tokens", "64", out=ON_DISK), FULL_DISK, setup=FULL,
         needs="mount"),
]


# -- Ray: what no node can host fails at once, naming what is missing ------------------------------

RAY_CASES = [
    Case("ray: score --actor-gpus 1 on a machine without GPUs",
         cli("score", "{solutions}", "--model", "{prm}", "--executor", "ray", "--actor-gpus",
             "1"), "actor_gpus", limit=RAY_LIMIT, needs="ray"),
    Case("ray: score --actor-cpus 64",
         cli("score", "{solutions}", "--model", "{prm}", "--executor", "ray", "--actor-cpus",
             "64"), "actor_cpus", limit=RAY_LIMIT, needs="ray"),
    Case("ray: annotate mc --actor-gpus 1",
         cli("annotate", "mc", "{solutions}", "--model", "{lm}", "--prompt", "plain",
             "--executor", "ray", "--actor-gpus", "1"), "actor_gpus", limit=RAY_LIMIT,
         needs="ray"),
    recipe_case("scoring on Ray GPUs the machine lacks (a small run on the tiny LM)",
                demo("policy.model={lm}", "problems.path=toy:mixed:prm-train:2", "sample.n=1",
                     "sample.max_new_tokens=16", "labels.mc.k=1", "labels.mc.max_new_tokens=8",
                     "prms.train.max_steps=1", "prms.train.batch_size=2", "evaluate.bon.n=1",
                     "evaluate.bon.sets.toy.path=toy:mixed:prm-heldout:2",
                     "score.executor=ray", "score.actor_gpus=1"),
                "score.actor_gpus", limit=240, needs="ray"),
    Case("ray: sample --actor-cpus 64",
         cli("sample", "{problems}", "--model", "{lm}", "--prompt", "plain", "--executor",
             "ray", "--actor-cpus", "64"), "actor_cpus", limit=RAY_LIMIT, needs="ray"),
]


# -- the command line's own usage errors -----------------------------------------------------------

USAGE_CASES = [
    Case("usage: a word for a number (--batch-size abc)",
         cli("score", "{solutions}", "--model", "{prm}", "--batch-size", "abc"), "batch-size"),
    Case("usage: a misspelled flag (--modle)",
         cli("score", "{solutions}", "--modle", "{prm}"), "--modle"),
    Case("usage: the input left out", cli("score", "--model", "{prm}"), "solutions"),
    Case("usage: --set without = on a stage",
         cli("score", "{solutions}", "--model", "{prm}", "--set", "batch_size"),
         "expected key=value"),
]

CASES = [*RECIPE_CASES, *RUN_FOLDER_CASES, *ID_CASES, *prm_cases(), *MODEL_CASES,
         *PRM_USE_CASES,
         *FILE_CASES, *RAY_CASES, *USAGE_CASES]


# -- fixtures --------------------------------------------------------------------------------------

def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def solution(i, steps=("1+1=2.", "The answer is 2."), **more) -> dict:
    return {"id": f"s{i}", "problem": f"What is 1+{i}?", "steps": list(steps),
            "gold_answer": "2", **more}


def labelled(i) -> dict:
    return solution(i, mc={"hard": [1, i % 2], "values": [1.0, i % 2 / 2]},
                    judge={"first_error": -1 if i % 2 else 1})


def gsm8k(question: str, answer: str, **more) -> dict:
    return {"question": question, "answer": f"We add. <<1+1=2>>\n#### {answer}", **more}


def build_models(root: Path) -> dict:
    """The tiny LM (the toy world's character tokenizer and a 2-layer Qwen2), a PRM built from
    it as ``prmkit train`` would start one, and every broken copy of that PRM."""
    from prmkit.models import load_tokenizer, quiet_transformers
    from prmkit.prm.model import build_prm, save_prm
    from prmkit.toyworld.model import TinyModelConfig, build_causal_lm
    from prmkit.toyworld.tokenizer import build_char_tokenizer
    quiet_transformers()
    lm = root / "lm"
    tokenizer = build_char_tokenizer()
    build_causal_lm(tokenizer, TinyModelConfig(hidden_size=32, num_layers=2,
                                               intermediate_size=64)).save_pretrained(lm)
    tokenizer.save_pretrained(lm)
    prm = save_prm(build_prm(str(lm), load_tokenizer(lm, padding_side="right")), root / "prm")
    out = {"lm": lm, "prm": prm}
    for name, damage in [*((n, d) for n, (d, _) in BROKEN_PRMS.items()), *BROKEN_LMS.items()]:
        out[name] = Path(shutil.copytree(prm if name.startswith("prm") else lm, root / name))
        damage(out[name])
    return out


def build_data(data: Path) -> dict:
    data.mkdir(parents=True)
    f = {"data": data, "folder": data / "a-folder"}
    f["folder"].mkdir()
    f["problems"] = jsonl(data / "problems.jsonl", [{"id": "p1", "problem": "1+1?",
                                                     "answer": "2"}])
    f["problems_dup"] = jsonl(data / "problems_dup.jsonl", [
        {"id": "p1", "problem": "1+1?", "answer": "2"},
        {"id": "p1", "problem": "2+2?", "answer": "4"}])
    f["gsm8k_train"] = jsonl(data / "gsm8k_train.jsonl",
                             [gsm8k(f"Ann has {i} coins and finds 2. How many?", str(i + 2))
                              for i in range(4)])
    f["gsm8k_test"] = jsonl(data / "gsm8k_test.jsonl", [gsm8k("1+1?", "2"), gsm8k("2+2?", "4")])
    f["gsm8k_str_int"] = jsonl(data / "gsm8k_str_int.jsonl", [gsm8k("a?", "1", idx="3"),
                                                              gsm8k("b?", "2", idx=3)])
    f["gsm8k_line_collide"] = jsonl(data / "gsm8k_line_collide.jsonl",
                                    [gsm8k("a?", "1", idx=1), gsm8k("b?", "2")])
    bad = data / "gsm8k_bad_json.jsonl"
    bad.write_text(json.dumps(gsm8k("a?", "1")) + '\n{"question": "b?", "answer": "#### 2"\n')
    f["gsm8k_bad_json"] = bad
    math_row = {"problem": "What is $1+1$?", "answer": "2", "unique_id": "test/algebra/1.json"}
    f["math500"] = jsonl(data / "math500.jsonl", [
        math_row, {**math_row, "unique_id": "test/algebra/2.json"}])
    f["math_dup"] = jsonl(data / "math_dup.jsonl", [math_row, {**math_row, "answer": "3"}])
    item = {"id": "gsm8k-0", "generator": "m", "problem": "1+1?", "steps": ["1+1=2.", "So 2."],
            "final_answer_correct": True, "label": -1}
    for name, subsets in (("processbench", {"gsm8k": [item, {**item, "id": "gsm8k-1",
                                                              "label": 1}]}),
                          ("processbench_dup", {"gsm8k": [item], "math": [item]})):
        (data / name).mkdir()
        for subset, items in subsets.items():
            (data / name / f"{subset}.json").write_text(json.dumps(items, indent=1))
        f[name] = data / name
    f["pb_scores"] = jsonl(data / "pb_scores.jsonl", [{"id": "gsm8k-0", "step_scores": [0.9, 0.8]},
                                                      {"id": "gsm8k-1", "step_scores": [0.9, 0.1]}])
    f["pb_scores_dup"] = jsonl(data / "pb_scores_dup.jsonl",
                               [{"id": "gsm8k-0", "step_scores": [0.9, 0.8]}] * 2)
    f["solutions"] = jsonl(data / "solutions.jsonl", [solution(0), solution(1)])
    f["solutions_dup"] = jsonl(data / "solutions_dup.jsonl", [solution(0), solution(0)])
    f["labelled"] = jsonl(data / "labelled.jsonl", [labelled(i) for i in range(4)])
    f["labelled_dup"] = jsonl(data / "labelled_dup.jsonl", [labelled(0), labelled(0)])
    f["labelled_big"] = jsonl(data / "labelled_big.jsonl", [labelled(i) for i in range(300)])
    extra = [{"id": f"s{i}", "judge2": {"first_error": 1}} for i in range(4)]
    f["join_dup"] = jsonl(data / "join_dup.jsonl", [extra[0], extra[0]])
    f["join_other_steps"] = jsonl(data / "join_other_steps.jsonl",
                                  [{**extra[0], "steps": ["2+2=5.", "So 5."]}])
    f["join_other_problem"] = jsonl(data / "join_other_problem.jsonl",
                                    [{**extra[0], "problem": "Another problem?"}])
    f["join_other_value"] = jsonl(data / "join_other_value.jsonl",
                                  [{**extra[0], "mc": {"hard": [0, 0], "values": [0.0, 0.0]}}])
    cand = {"id": "p", "problem": "Ann has 7 coins and finds 3. How many?", "gold_answer": "10",
            "candidates": [{"answer": "10", "steps": ["7+3=10.", "So 10."], "correct": True},
                           {"answer": "9", "steps": ["7+3=9.", "So 9."], "correct": False}]}
    f["candidates"] = jsonl(data / "candidates.jsonl", [cand])
    f["candidates_dup"] = jsonl(data / "candidates_dup.jsonl", [cand, cand])
    f["candidates_long"] = jsonl(data / "candidates_long.jsonl",
                                 [{**cand, "problem": "x" * 1500}])  # past the 1024 context
    f["candidates_no_problem"] = jsonl(data / "candidates_no_problem.jsonl",
                                       [{k: v for k, v in cand.items() if k != "problem"}])
    f["qwen_eval_dup"] = jsonl(data / "qwen_eval_dup.jsonl",
                               [{"idx": 3, "question": "q", "gt": "1", "pred": ["1"],
                                 "score": [True]}] * 2)
    f["empty"] = data / "empty.jsonl"
    f["empty"].write_text("")
    f["blank"] = data / "blank.jsonl"
    f["blank"].write_text("\n  \n\t\n")
    f["latin1"] = data / "latin1.jsonl"
    f["latin1"].write_bytes('{"id": "s0", "problem": "caf\u00e9", "steps": ["x"]}\n'
                            .encode("latin-1"))
    f["array_line"] = data / "array_line.jsonl"
    f["array_line"].write_text("[1, 2]\n")
    f["steps_string"] = jsonl(data / "steps_string.jsonl",
                              [{"id": "s0", "problem": "p", "steps": "1+1=2. So 2."}])
    f["config_unknown"] = data / "config_unknown.yaml"
    f["config_unknown"].write_text("batch_sise: 4\n")
    f["no_placeholder"] = data / "no_placeholder.txt"
    f["no_placeholder"].write_text("Solve the problem step by step.\n\n")
    f["judge_no_tags"] = data / "judge_no_tags.txt"
    f["judge_no_tags"].write_text("Find the first wrong step of {problem}.\n")
    import yaml
    recipe = (RECIPES / "qwen2.5-math.yaml").read_text()
    f["qwen"] = data / "qwen.yaml"
    f["qwen"].write_text(recipe)
    f["noquick"] = data / "noquick.yaml"
    f["noquick"].write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(recipe).items()
                                            if k != "quick"}, sort_keys=False))
    f["recipe_bad"] = data / "recipe_bad.yaml"
    f["recipe_bad"].write_text("out: [runs/x\npolicy: {model: toy}\n")
    f["recipe_list"] = data / "recipe_list.yaml"
    f["recipe_list"].write_text("- out\n- policy\n")
    f["recipe_empty"] = data / "recipe_empty.yaml"
    f["recipe_empty"].write_text("")
    demo = (RECIPES / "demo.yaml").read_text()
    laughs = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    f["recipe_bomb"] = data / "recipe_bomb.yaml"
    f["recipe_bomb"].write_text(demo[:demo.index("\nquick:")] + "\nquick:\n"
                                + "\n".join(laughs) + "\n")
    return f


class ModelsServer(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible server that serves another model than the one asked for."""

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "someone-else"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_servers() -> dict:
    """Three base URLs: nobody listens (dead), one that accepts and never answers (silent), one
    that lists another model (other)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections complete in the kernel's backlog; nothing ever answers
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ModelsServer)
    other.daemon_threads = True
    threading.Thread(target=other.serve_forever, daemon=True).start()
    return {"dead_url": f"http://127.0.0.1:{dead}/v1",
            "silent_url": f"http://127.0.0.1:{silent.getsockname()[1]}/v1",
            "other_url": f"http://127.0.0.1:{other.server_port}/v1", "_keep": (silent, other)}


def check_fixtures(f: dict) -> None:
    """The good fixtures are good, so that each case fails for its own damage: both base
    recipes load and pass the checks a run makes before its first stage, and the good PRM
    passes the checks a broken one fails."""
    from prmkit import pipeline
    from prmkit.pipeline.recipe import check_available
    from prmkit.prm.score import check_prm
    for path, items in ((RECIPES / "demo.yaml", []), (f["qwen"], list(QWEN_BASE))):
        recipe = pipeline.load(path, [item.format(**f) for item in items])
        check_available(recipe, path)
    check_prm(str(f["prm"]))


# -- running a case --------------------------------------------------------------------------------

class Skip(Exception):
    """A case this machine cannot run (no Ray, no mounting)."""


@dataclass
class Outcome:
    name: str
    ok: bool | None        # None: skipped
    seconds: float
    line: str              # the error line (or why it was skipped)
    problems: list[str]


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Every file and folder below ``folder`` -> (kind, size, mtime) (``.lock`` aside)."""
    out = {}
    if not folder.exists():
        return out
    if not folder.is_dir():
        stat = folder.stat()
        return {".": ("file", stat.st_size, stat.st_mtime_ns)}
    for path in folder.rglob("*"):
        if path.name == ".lock" or (skip is not None and path.is_relative_to(skip)):
            continue
        try:
            stat = path.lstat()
        except OSError:
            continue
        kind = "dir" if path.is_dir() else "file"
        out[str(path.relative_to(folder))] = (kind, 0 if kind == "dir" else stat.st_size,
                                              0 if kind == "dir" else stat.st_mtime_ns)
    return out


def ray_processes() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"raylet" in command or b"gcs_server" in command:
                pids.add(int(entry.name))
    return pids


def environment(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_BASE_URL", "RAY_ADDRESS", "OPENAI_API_KEY")}
    return {**env, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM":
            "false", "PRMKIT_HUB_CACHE": str(home / "cases" / ".hub-cache"), "COLUMNS": "200"}


def run_case(case: Case, f: dict, cases_root: Path, env: dict) -> Outcome:
    here = cases_root / case.name.replace("/", "_").replace(" ", "_")[:100]
    here.mkdir(parents=True)
    if case.needs == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            return Outcome(case.name, None, 0.0, "skipped: ray is not installed", [])
    cleanup = None
    try:
        if case.setup is not None:
            cleanup = case.setup(f, here)
    except Skip as e:
        return Outcome(case.name, None, 0.0, f"skipped: {e}", [])
    try:
        return _run_and_check(case, f, here, env)
    finally:
        if cleanup is not None:
            cleanup()


def _run_and_check(case: Case, f: dict, here: Path, env: dict) -> Outcome:
    out = here / "disk" / "out" if (here / "disk").exists() else here / "out"
    before_here, before_fixtures = snapshot(here), snapshot(f["_root"], skip=f["_cases"])
    rays = ray_processes() if case.needs == "ray" else set()
    argv = [sys.executable, "-m", "prmkit.cli", *case.argv(f, here)]
    if case.memory is not None:  # the cap set by the shell (no preexec_fn: we have threads)
        argv = ["bash", "-c", f'ulimit -v {case.memory // 1024} && exec "$@"', "bash", *argv]
    began = time.monotonic()
    process = subprocess.Popen(argv, cwd=here, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=case.limit)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        hung = True
    seconds = time.monotonic() - began
    lines = [line for line in stderr.splitlines() if line.strip()]
    error = next((line for line in lines if line.startswith("error:")), "")
    shown = error or " | ".join(lines)
    problems = []
    if hung:
        problems.append(f"hang: no exit within {case.limit:.0f} s (killed)")
    elif process.returncode != case.status:
        problems.append(f"exit status {process.returncode}, expected {case.status}")
    if "Traceback" in stderr:
        problems.append("a traceback on stderr")
    wanted = (case.expect,) if isinstance(case.expect, str) else case.expect
    if case.status == 2:
        if len(lines) != 1:
            others = [line for line in lines if line != error]
            problems.append(f"stderr has {len(lines)} non-empty lines, expected 1; "
                            f"{'also' if error else 'no error: line'}: "
                            f"{' | '.join(others)[:300]!r}")
        elif not error:
            problems.append("the line does not start with 'error:'")
        problems += [f"the error does not name {text!r}" for text in wanted if text not in stderr]
        if "<input>" in error[len("error: <input>"):]:
            problems.append("a second location inside the message ('<input>')")
    else:  # another status: the output says why, in a line of its own
        said = [line for line in (stdout + stderr).splitlines()
                if all(text in line for text in wanted)]
        if not said:
            problems.append(f"the output does not say {' ... '.join(wanted)!r}")
        shown = said[0] if said else shown
    problems += leftovers(before_here, here, out, case)
    if snapshot(f["_root"], skip=f["_cases"]) != before_fixtures:
        problems.append("a fixture file changed")
    if case.recipe and seconds > BEFORE_WORK:
        problems.append(f"took {seconds:.0f} s: not refused before any work")
    if case.needs == "ray":
        deadline = time.monotonic() + 10
        while ray_processes() - rays and time.monotonic() < deadline:
            time.sleep(0.5)
        if ray_processes() - rays:
            problems.append(f"Ray processes left running: {sorted(ray_processes() - rays)}")
    return Outcome(case.name, not problems, seconds, shown, problems)


def leftovers(before: dict, here: Path, out: Path, case: Case) -> list[str]:
    """What a refused case must not leave: a new COMPLETE marker, temporary files or folders,
    a changed or lost file, and (for a recipe) anything new in its run folder."""
    after = snapshot(here)
    problems = []
    new = [p for p in after if p not in before]
    complete = [p for p in new if Path(p).name == MARKER]
    if complete:
        problems.append(f"marked complete: {complete[:3]}")
    temporary = [p for p in after if Path(p).name.endswith(".tmp")
                 or (Path(p).name.startswith(".") and Path(p).name.endswith(".old"))]
    if temporary:
        problems.append(f"temporary files left: {temporary[:3]}")
    changed = [p for p, sig in before.items() if after.get(p) != sig]
    if changed:
        problems.append(f"changed or lost: {changed[:3]}")
    if case.recipe and out.is_dir():
        inside = str(out.relative_to(here))
        made = [p for p in new if p.startswith(inside + "/")]
        if made:
            problems.append(f"the run folder gained {[p[len(inside) + 1:] for p in made][:4]}: "
                            "a stage began")
    return problems


# -- the pass --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run the cases whose name holds this text")
    parser.add_argument("--list", action="store_true", help="list the cases and stop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    chosen = [c for c in CASES if not args.only or args.only.lower() in c.name.lower()]
    if args.list:
        print("\n".join(c.name for c in chosen))
        print(f"{len(chosen)} cases")
        return
    if not chosen:
        sys.exit(f"no case's name holds {args.only!r} (--list shows them)")
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names), "two cases share a name"
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="prmkit-hostile-"))
    try:
        f = {**build_data(root / "data"), **build_models(root), **start_servers(),
             "_root": root, "_cases": root / "cases"}
        check_fixtures(f)
        print(f"fixtures in {root} ({time.monotonic() - began:.0f} s); {len(chosen)} cases\n")
        env = environment(root)
        outcomes = []
        for case in chosen:
            outcome = run_case(case, f, root / "cases", env)
            outcomes.append(outcome)
            mark = "skipped" if outcome.ok is None else "ok" if outcome.ok else "FAILED"
            print(f"{case.name[:66]:66} {mark:7} {outcome.seconds:5.1f}s  {outcome.line[:110]}",
                  flush=True)
            for problem in outcome.problems:
                print(f"{'':8}- {problem}", flush=True)
    finally:
        if args.keep:
            print(f"\nkept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    ran = [o for o in outcomes if o.ok is not None]
    handled = sum(o.ok for o in ran)
    skipped = len(outcomes) - len(ran)
    print(f"\n{len(ran)} cases, {handled} handled"
          + (f", {skipped} skipped" if skipped else "")
          + f" ({time.monotonic() - began:.0f} s)")
    failed = [o.name for o in ran if not o.ok]
    if failed:
        print("FAILED: " + "; ".join(failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
