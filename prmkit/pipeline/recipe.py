"""Recipes: one YAML file that says what ``prmkit run`` does, from the policy to the report.

One schema for real models and the toy world (``prmkit/recipes/qwen2.5-math.yaml``,
``prmkit/recipes/demo.yaml``). Each section is a dataclass, or holds a stage's own settings
(``labels.mc`` holds ``MCConfig`` fields but the ones the pipeline fills in itself), so a typo
or a mistyped value is an error naming the file and the key, never a silently ignored setting.
Overrides (``--set labels.mc.k=4``) are read as YAML values, so numbers and booleans keep their
types. A stage setting the recipe leaves out takes the stage's own default.

The whole recipe is checked before any work: every section, every label source, every
benchmark, and the folder every PRM and every Best-of-N set will be written to (two names that
map to one folder would overwrite each other).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prmkit import config, evaluate, plugins, prompting, rundir, runner
from prmkit.backends import BackendConfig, served_models_include
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError
from prmkit.formats import read_as
from prmkit.formats.data import DataSection
from prmkit.formats.processbench import read as read_processbench
from prmkit.labels import Source
from prmkit.models import model_folder, tokenizer_folder
from prmkit.pipeline import judges, searches
from prmkit.pipeline.judges import JudgeEvalSection
from prmkit.pipeline.labels import LABELERS
from prmkit.pipeline.searches import SearchSection
from prmkit.prm.checks import check_prm
from prmkit.prm.formats import PRM_FORMATS
from prmkit.prm.score import ScoreConfig
from prmkit.prm.train import SOFT_LOSSES, TrainConfig
from prmkit.records import read_yaml_mapping
from prmkit.sample import SampleConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@dataclass(frozen=True)
class PolicySection:
    model: str = setting(REQUIRED, "The policy: a model folder, a hub id, a served model's "
                         "name, or a registered policy (toy, toy@step-400, toy:steps=40, "
                         "toy:seed=1).")
    prompt: str = setting("qwen-math", "How a problem becomes its prompt: plain, qwen-math or "
                          "a .txt template (prmkit.prompting).")
    backend: dict = setting({}, "Where it runs (BackendConfig: backend, workers, base_url, "
                            "...); it samples and it rolls out MC completions.",
                            schema=BackendConfig)


@dataclass(frozen=True)
class ComparedModel:
    model: str = setting(REQUIRED, "A reward model's folder or hub id: a released PRM "
                         "(Qwen/Qwen2.5-Math-PRM-7B), an outcome model in Qwen2.5-Math-RM's "
                         "layout (Qwen/Qwen2.5-Math-RM-72B, read a step prefix at a time), a "
                         "PRM trained elsewhere.")
    format: str | None = setting(None, "Its PRM format (prmkit.prm.formats; default: what the "
                                 "folder records; math-shepherd must be named).",
                                 choices=tuple(PRM_FORMATS))
    score: dict = setting({}, "prmkit score settings for this model alone, over the recipe's "
                          "score section (a 72B model: device_map: auto).",
                          schema=config.section_of(ScoreConfig, drop=(
                              "solutions", "model", "format", "model_format")))


@dataclass(frozen=True)
class OutsideData:
    path: str = setting(REQUIRED, "Labelled solutions from outside the run: a file or folder, "
                        "or hub:NAME[:CONFIG]:SPLIT.")
    format: str = setting("prmkit", "Its format (prm800k: PRM800K's raw human labels; "
                          "math_shepherd; trl_stepwise; prmkit; see `prmkit formats`).")
    labels: str = setting("step_labels", "The label source in it (the readers write "
                          "step_labels).")
    limit: int | None = setting(None, "The first N solutions (all: null).", ge=1)


@dataclass(frozen=True)
class PRMsSection:
    sources: dict = setting(REQUIRED, "PRM name -> label source: a field of the labelled "
                            "solutions (mc.hard, mc.values, judge.first_error, "
                            "consensus.first_error, truth.step_labels, ...); null drops one.")
    model: str | None = setting(None, "The backbone every PRM starts from (default: the "
                                "policy, as the paper starts from the instruct model).")
    soft: list[str] = setting([], "PRM names trained on the label value itself (soft loss).")
    soft_loss: str = setting("soft", "The soft PRMs' loss: soft (cross-entropy against the "
                             "value) or mse (squared error, the paper's preliminary trials).",
                             choices=SOFT_LOSSES)
    sweep: dict = setting({}, "Name -> {source, thresholds}: one hard-label PRM a threshold "
                          "(a step is positive when its value is above it: the paper's Fig. 5), "
                          "named NAME>T, beside sources.")
    ceiling: str | None = setting(None, "The PRM trained on the best labels the run has (the "
                                  "exact truth), named as the reference in the findings.")
    baseline: str | None = setting(None, "A name: also the same PRM before training (no "
                                   "labels), which says what the labels add.")
    outside: dict = setting({}, "Name -> {path, format, labels, limit}: a PRM trained with the "
                            "same backbone and settings on labelled data from outside the run "
                            "(PRM800K's human labels: the paper's human-annotation source).",
                            each=OutsideData)
    compare: dict = setting({}, "Name -> {model, format}: a reward model scored as it is, "
                            "beside the PRMs trained here (a reference: never trained, never "
                            "set against the untrained baseline).", each=ComparedModel)
    train: dict = setting({}, "prmkit train settings shared by every PRM.",
                          schema=config.section_of(TrainConfig,
                                                   drop=("data", "labels", "model", "loss")))


@dataclass(frozen=True)
class ReportSection:
    viewer_solutions: int = setting(240, "Training solutions in the step viewer: those whose "
                                    "label sources disagree first, then a seeded draw.", ge=0)
    viewer_items: int = setting(200, "ProcessBench items some PRM gets wrong in the step "
                                "viewer, at most.", ge=0)


@dataclass(frozen=True)
class Recipe:
    out: str = setting(REQUIRED, "Run folder.")
    policy: PolicySection = setting(None, "The policy that samples and completes.")
    problems: DataSection = setting(None, "Training problems, with their gold answers.")
    sample: dict = setting({}, "prmkit sample settings of every sampling (n, temperature, "
                           "...).", schema=config.section_of(
                               SampleConfig, drop=("problems", "model", "prompt")))
    labels: dict = setting({}, "The label stages, each with its settings (they run in this "
                           "order, whatever the recipe's): "
                           f"{', '.join(LABELERS)}.")
    prms: PRMsSection = setting(None, "The PRMs: one a label source.")
    score: dict = setting({}, "prmkit score settings of every scoring (batch_size, shard_size, "
                          "executor, ...).", schema=config.section_of(
                              ScoreConfig, drop=("solutions", "model", "format")))
    evaluate: dict = setting({}, "The benchmarks, each with its settings: "
                             f"{', '.join(evaluate.BENCHMARKS)}.")
    judge_eval: JudgeEvalSection = setting(None, "The label judge evaluated on its own: as a "
                                           "ProcessBench critic, and picking Best-of-N "
                                           "candidates itself (prmkit.pipeline.judges).")
    search: SearchSection = setting(None, "Test-time search with the run's PRMs on a Best-of-N "
                                    "set's problems (prmkit.pipeline.searches).")
    report: ReportSection = setting(None, "The report.")
    quick: dict = setting({}, "Overrides applied by --quick (a recipe layer of their own).")


def shipped(name: str) -> Path:
    """A recipe shipped with prmkit: ``demo`` or ``qwen2.5-math``."""
    return RECIPES / f"{name}.yaml"


def load(path: str | Path | None = None, overrides: list[str] = (), *, quick: bool = False
         ) -> dict:
    """The recipe file, then its ``quick`` section (with ``quick``), then the overrides, each
    layer checked on its own (so an error names where the bad key came from); returned as a
    plain mapping with every section and default filled in, checked whole."""
    layers = file_layers(path) if path is not None else [({}, None)]
    quick_from = len(layers)
    if quick:
        quick_layers = [(values["quick"], f"{where} (quick)") for values, where in layers
                        if values.get("quick")]
        if not quick_layers:
            raise InputError("--quick: this recipe has no quick section", path=path,
                             field="quick")
        layers += quick_layers
    quick_to = len(layers)
    layers += [(config.parse_overrides([item]), "--set") for item in overrides]
    merged: dict = {}
    origins: dict[str, str] = {}  # a dotted key -> the layer that set it last
    for index, (values, where) in enumerate(layers):
        checked = config.typed(Recipe, values, where)
        if quick_from <= index < quick_to:
            checked = _not_reviving(checked, merged)
        for key, registry in (("labels", _labeler_section), ("evaluate", _benchmark_section)):
            for name, settings in (checked.get(key) or {}).items():
                registry(name, where)  # a known stage or benchmark, even to drop it
                if settings is not None or index == 0:  # null drops one a base recipe ran
                    checked[key][name] = config.typed(registry(name, where), settings or {},
                                                      where, f"{key}.{name}.")
        merged = config.merge(merged, checked)
        origins.update(dict.fromkeys(_dotted_keys(checked), str(where)))
    for key in ("labels", "evaluate"):
        merged[key] = {k: v for k, v in (merged.get(key) or {}).items() if v is not None}
    try:
        recipe = config.to_dict(config.build(Recipe, merged, path))
        recipe["prms"]["sources"] = {**recipe["prms"]["sources"],
                                     **swept_sources(recipe["prms"]["sweep"], path)}
        for name, settings in recipe["evaluate"].items():  # each benchmark's defaults
            recipe["evaluate"][name] = config.to_dict(config.build(
                evaluate.benchmark(name).section, settings, path, f"evaluate.{name}."))
        check(recipe, path)
    except InputError as e:
        raise _blamed(e, origins, path) from None
    return recipe


def _not_reviving(update: dict, merged: dict) -> dict:
    """A quick section's values, but those of an entry the recipe dropped (``name: null``, in
    a file that names this one as its base): a smoke run only shrinks what the recipe runs."""
    out = {}
    for key, value in update.items():
        if key in merged and merged[key] is None and value is not None:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = _not_reviving(value, merged[key])
        out[key] = value
    return out


def swept_sources(sweep: dict, path=None) -> dict[str, str]:
    """The PRMs of ``prms.sweep``: for each name, one hard-label source a threshold
    (``MC>0.25: mc.values:0.25``), as the paper sweeps MC's hard-label threshold (Fig. 5)."""
    sources = {}
    for name, spec in sweep.items():
        where = f"prms.sweep.{name}"
        if not isinstance(spec, dict) or set(spec) != {"source", "thresholds"} or \
                not isinstance(spec["thresholds"], list) or not spec["thresholds"]:
            raise InputError("expected {source: FIELD, thresholds: [T, ...]}", path=path,
                             field=where)
        base = Source.parse(str(spec["source"]))
        if base.threshold:
            raise InputError(f"{spec['source']!r}: the sweep sets the threshold; name the field "
                             "alone", path=path, field=f"{where}.source")
        for t in spec["thresholds"]:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < 1:
                raise InputError(f"{t!r}: a threshold is a number in [0, 1)", path=path,
                                 field=f"{where}.thresholds")
            swept = Source(base.path, float(t), base.only_where)
            sources[f"{name}>{t:g}"] = swept.spec if t else f"{base.spec}"
    return sources


def _dotted_keys(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys += _dotted_keys(value, f"{prefix}{key}.")
    return keys


def _blamed(error: InputError, origins: dict[str, str], path) -> InputError:
    """A value found wrong once the layers are merged is blamed on the layer that set it
    (``--set labels.mc.k=0`` names --set, not the recipe file)."""
    field = error.field or ""
    setter = origins.get(field) or origins.get(field.split("[")[0])
    if error.path != str(path) or setter is None or setter == str(path):
        return error
    return InputError(error.message, path=setter, line=error.line, field=error.field)


def file_layers(path: str | Path, chain: tuple = ()) -> list[tuple[dict, str | Path]]:
    """A recipe file's sections, after those of the recipe it names as its ``base`` (a shipped
    recipe's name, or a path relative to the file): an experiment recipe says only what it
    changes."""
    values = read_yaml_mapping(path, "sections")
    base = values.pop("base", None)
    if base is None:
        return [(values, path)]
    if not isinstance(base, str) or not base:
        raise InputError("base: a shipped recipe's name or a recipe file", path=path,
                         field="base")
    base_path = shipped(base) if shipped(base).exists() else Path(path).parent / base
    if not base_path.exists():
        raise InputError(f"base recipe not found: {base}", path=path, field="base")
    if base_path.resolve() in chain:
        raise InputError(f"base recipes form a cycle through {base_path}", path=path,
                         field="base")
    return file_layers(base_path, (*chain, Path(path).resolve())) + [(values, path)]


def _labeler_section(name: str, where) -> type:
    if name not in LABELERS:
        raise InputError(f"unknown label stage {name!r} (known: {', '.join(LABELERS)})",
                         path=where, field=f"labels.{name}")
    return LABELERS[name].section


def _benchmark_section(name: str, where) -> type:
    try:
        return evaluate.benchmark(name).section
    except InputError as e:
        raise InputError(e.message, path=where, field=f"evaluate.{name}") from None


def check(recipe: dict, path=None) -> None:
    """Everything a run will need, checked before it starts: the label stages and benchmarks
    built whole, every label source readable, every name used once and every folder unique."""
    if not recipe["labels"]:
        raise InputError("a recipe needs at least one label stage", path=path, field="labels")
    for name, settings in recipe["labels"].items():
        LABELERS[name].check(settings, path, f"labels.{name}.")
    for name, settings in recipe["evaluate"].items():
        config.build(evaluate.benchmark(name).section, settings, path, f"evaluate.{name}.")
    _exists(recipe["problems"]["path"], path, "problems.path")
    for name, data in ((recipe["evaluate"].get("bon") or {}).get("sets") or {}).items():
        _exists(data["path"], path, f"evaluate.bon.sets.{name}.path")
    if (recipe["evaluate"].get("processbench") or {}).get("path"):
        _exists(recipe["evaluate"]["processbench"]["path"], path, "evaluate.processbench.path")
    prms = recipe["prms"]
    names = [k for k, v in prms["sources"].items() if v is not None] + \
        ([prms["baseline"]] if prms["baseline"] else []) + list(prms["outside"])
    for name, data in prms["outside"].items():
        _exists(data["path"], path, f"prms.outside.{name}.path")
        try:
            Source.parse(data["labels"])
        except InputError as e:
            raise InputError(str(e), path=path, field=f"prms.outside.{name}.labels") from None
    for name, field in prms["sources"].items():
        if field is not None:
            try:
                Source.parse(field)
            except InputError as e:
                raise InputError(str(e), path=path, field=f"prms.sources.{name}") from None
    for key, named in (("soft", prms["soft"]), ("ceiling", [prms["ceiling"]])):
        for name in named:
            if name is not None and name not in names:
                raise InputError(f"{name!r} is not a PRM of prms.sources", path=path,
                                 field=f"prms.{key}")
    _unique("prms", names + list(prms["compare"]), "prm-", path)
    sets = (recipe["evaluate"].get("bon") or {}).get("sets") or {}
    _unique("evaluate.bon.sets", list(sets), "bon-", path)
    truth = (recipe["evaluate"].get("processbench") or {}).get("from_truth")
    if truth is not None and truth not in sets:
        raise InputError(f"{truth!r} is not a Best-of-N set (evaluate.bon.sets)", path=path,
                         field="evaluate.processbench.from_truth")
    if recipe["score"].get("base_url"):  # the run's own PRMs are folders it trains
        raise InputError("the run's own PRMs are scored where they are trained: a served "
                         "model is a compared one (prms.compare.NAME.score.base_url)",
                         path=path, field="score.base_url")
    _check_stage_settings(recipe, path)
    _check_label_fields(recipe, path)
    judges.check(recipe, path)
    searches.check(recipe, path)


def check_available(recipe: dict, path=None) -> None:
    """What the recipe names exists, checked when a run starts, before its first stage:
    every model where it will run (a folder, a hub id, a server that serves it) and every data
    source readable in its format. (``load`` checks the recipe itself, without I/O.)"""
    _check_models(recipe, path)
    _check_data(recipe, path)
    _check_ray(recipe, path)


def _built(cls, values: dict, path, where: str):
    """``cls`` built from a recipe section as its stage will build it: unknown keys, types,
    bounds and the config's own checks, each error naming the recipe and ``section.key``."""
    return config.build(cls, config.typed(cls, values, path, where), path, where)


def _check_stage_settings(recipe: dict, path) -> None:
    """The settings of every stage that runs late (training, scoring, the Best-of-N
    candidates), built now with stand-ins for what the pipeline fills in."""
    stand_in = {"problems": "-", "model": "-", "prompt": recipe["policy"]["prompt"]}
    _built(SampleConfig, {**recipe["sample"], **stand_in}, path, "sample.")
    bon = recipe["evaluate"].get("bon")
    if bon:
        _built(SampleConfig, {**recipe["sample"], **(bon.get("sample") or {}), **stand_in,
                              "n": bon["n"]}, path, "evaluate.bon.sample.")
    _built(TrainConfig, {**recipe["prms"]["train"], "data": "-", "model": "-",
                         "labels": "mc.hard"}, path, "prms.train.")
    _built(ScoreConfig, {**recipe["score"], "solutions": "-", "model": "-"}, path, "score.")


def _check_label_fields(recipe: dict, path) -> None:
    """Every label source (what consensus reads, what each PRM trains on) is a field a stage
    of this recipe writes before it is read: a misspelled one would train nothing."""
    offered = []
    if recipe["sample"].get("truth") or plugins.truth_of(recipe["problems"]["path"]):
        offered += ["truth.step_labels", "truth.label"]
    for name in [n for n in LABELERS if n in recipe["labels"]]:
        labeler, settings = LABELERS[name], recipe["labels"][name]
        for i, spec in enumerate(labeler.reads(settings)):
            _written(spec, offered, path, f"labels.{name}.sources[{i}]")
        offered += labeler.fields(settings)
    for prm, spec in recipe["prms"]["sources"].items():
        if spec is not None:
            _written(spec, offered, path, f"prms.sources.{prm}")


def _written(spec: str, offered: list[str], path, field: str) -> None:
    source = Source.parse(spec)
    for needed in (source.path, source.only_where):
        if needed is not None and needed not in offered:
            raise InputError(f"{spec!r}: no stage before it writes {needed} (written: "
                             f"{', '.join(offered) or 'nothing'})", path=path, field=field)


def _check_models(recipe: dict, path) -> None:
    """Every model the recipe names, where it will run: a local folder or hub id (its
    config.json), a registered policy, or a served model the server lists."""
    policy = recipe["policy"]
    backend = _built(BackendConfig, policy["backend"], path, "policy.backend.")
    registered = plugins.policy_resolver(policy["model"]) is not None
    with _located(path, "policy", backend=True, field="prompt"):
        prompting.render(policy["prompt"], "")
    with _located(path, "policy", backend=True, field="model"):
        if not registered:
            backend.check_prompt(policy["prompt"])
            backend.check_model(policy["model"])
    judge = recipe["labels"].get("judge") or {}
    if judge.get("kind") == "model":
        served = _built(BackendConfig, judge.get("backend") or {}, path,
                        "labels.judge.backend.")
        with _located(path, "labels.judge", backend=True):
            served.check_model(judge["model"])
    backbone, prms = recipe["prms"]["model"], recipe["prms"]
    trains = any(prms["sources"].values()) or prms["outside"] or prms["baseline"]
    if trains and backbone and plugins.policy_resolver(backbone) is None:
        with _located(path, "prms"):
            model_folder(backbone)
    for name, compared in recipe["prms"]["compare"].items():
        served = (compared.get("score") or {}).get("base_url")
        if served is None:
            with _located(path, f"prms.compare.{name}", field="model"):
                check_prm(compared["model"], compared["format"])
            continue
        # served elsewhere: the server lists it, and its solutions are laid out here
        with _located(path, f"prms.compare.{name}.score", field="base_url"):
            served_models_include(served.rstrip("/").removesuffix("/v1") + "/v1",
                                  compared["model"])
            tokenizer_folder(compared["score"].get("tokenizer") or compared["model"],
                             field="tokenizer")


def _check_data(recipe: dict, path) -> None:
    """Every data source read in its format now, not hours later: a file of another format, an
    empty one or a bad record is its own located error (the file, the line, the field)."""
    with _located(path, "problems"):
        if not read_as(recipe["problems"]["path"], recipe["problems"]["format"], "problem"):
            raise InputError("no problems here", field="path")
    for name, data in ((recipe["evaluate"].get("bon") or {}).get("sets") or {}).items():
        with _located(path, f"evaluate.bon.sets.{name}"):
            if not read_as(data["path"], data["format"], "problem"):
                raise InputError("no problems here", field="path")
    for name, data in recipe["prms"]["outside"].items():
        with _located(path, f"prms.outside.{name}"):
            if not read_as(data["path"], data["format"], "solution"):
                raise InputError("no solutions here", field="path")
    processbench = (recipe["evaluate"].get("processbench") or {}).get("path")
    if processbench:
        with _located(path, "evaluate.processbench"):
            if not read_processbench(processbench):
                raise InputError("no items here", field="path")


def _check_ray(recipe: dict, path) -> None:
    """Every section that runs on Ray asks for actors some node of the cluster can host: Ray
    would leave them pending for ever, after the stages before (Ray starts here, once, for the
    whole run)."""
    judge = (recipe["labels"].get("judge") or {}).get("backend") or {}
    asked = [(section, config.build(kind, settings))
             for section, kind, settings in (
                 ("policy.backend", BackendConfig, recipe["policy"]["backend"]),
                 ("labels.judge.backend", BackendConfig, judge),
                 ("score", ScoreConfig, {**recipe["score"], "solutions": "-", "model": "-"}))
             if settings.get("executor") == "ray"]
    if not asked:
        return
    ray = runner.ray_module()
    if not ray.is_initialized():
        runner.start_ray(ray)
    nodes = ray.nodes()
    for section, settings in asked:
        with _located(path, section):
            runner.actors_that_fit(nodes, settings.actors, settings.actor_cpus,
                                   settings.actor_gpus)


@contextmanager
def _located(path, section: str, backend: bool = False, field: str = ""):
    """An error of a check made for a recipe's section names the recipe and the setting
    (``labels.judge.backend.base_url``); one located in a data file (with its line) stays as
    it is: that file is where to look."""
    try:
        yield
    except InputError as e:
        if e.line is not None:
            raise
        named = e.field or field
        if backend and named not in ("", "model", "prompt"):
            named = f"backend.{named}"  # a setting of the section's backend
        raise config.located(InputError(e.message, path=e.path, field=named), path,
                             f"{section}.") from None


def _exists(source: str, path, field: str) -> None:
    """A data source is a file or folder that exists, a hub data set (fetched when read) or a
    registered problem source."""
    if source.startswith("hub:") or plugins.source_of(source) or Path(source).exists():
        return
    raise InputError(f"not found: {source}", path=path, field=field)


def _unique(section: str, names: list[str], prefix: str, path) -> None:
    """Names that map to one folder would overwrite each other's files."""
    folders: dict[str, str] = {}
    for name in names:
        folder = prefix + rundir.slug(name)
        if folder == prefix:
            raise InputError(f"{name!r} makes no folder name: use letters or digits",
                             path=path, field=section)
        if folder in folders:
            raise InputError(f"{folders[folder]!r} and {name!r} would share the folder "
                             f"{folder}/: rename one", path=path, field=section)
        folders[folder] = name
