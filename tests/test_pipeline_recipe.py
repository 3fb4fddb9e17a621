"""Recipes (prmkit.pipeline.recipe): one schema for the shipped demo and the real-data recipe,
quick runs, overrides, and a recipe checked whole before any work, errors naming the key."""

import pytest

from prmkit import pipeline
from prmkit.errors import InputError

DEMO, REAL = pipeline.shipped("demo"), pipeline.shipped("qwen2.5-math")


def test_the_shipped_demo_recipe_loads_and_quick_shrinks_it():
    full = pipeline.load(DEMO)
    quick = pipeline.load(DEMO, quick=True)
    assert full["labels"]["mc"] == {"k": 8, "mode": "linear"}
    assert list(full["labels"]) == ["mc", "judge", "consensus"]
    assert quick["labels"]["mc"]["k"] < full["labels"]["mc"]["k"]
    assert quick["labels"]["mc"]["mode"] == "linear"
    assert full["problems"]["path"] == "toy:mixed:prm-train:100"
    assert quick["problems"]["path"] == "toy:mixed:prm-train:12"
    assert quick["prms"]["train"]["max_steps"] == 4
    assert quick["prms"]["train"]["lr"] == 0.0001  # sections merge, never replace
    assert set(full["prms"]["sources"]) == {"exact truth", "MC-hard", "MC-soft", "judge",
                                            "consensus"}


def test_the_shipped_real_data_recipe_is_the_same_kind_and_checked_against_every_stage():
    recipe = pipeline.load(REAL)
    assert recipe["labels"]["mc"]["k"] == 8 and recipe["labels"]["mc"]["threshold"] == 0.0
    assert recipe["labels"]["judge"]["kind"] == "model"
    assert recipe["prms"]["train"]["format"] == "qwen2.5-math-prm"
    assert set(recipe["evaluate"]["bon"]["sets"]) == {"gsm8k", "math500"}
    with pytest.raises(InputError) as error:
        pipeline.load(REAL, ["labels.mc.kk=3"])
    assert error.value.field == "labels.mc.kk"


def test_unknown_settings_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("labels:\n  mc:\n    kk: 4\n")
    with pytest.raises(InputError) as e:
        pipeline.load(path)
    assert e.value.field == "labels.mc.kk" and "r.yaml" in str(e.value)
    with pytest.raises(InputError) as e:
        pipeline.load(None, ["mc.k=4"])  # the old layout: label stages live under labels
    assert e.value.field == "mc"
    with pytest.raises(InputError) as e:
        pipeline.load(None, ["sample.temprature=0.5"])
    assert e.value.field == "sample.temprature"
    # settings the pipeline fills in itself are not the recipe's to give
    with pytest.raises(InputError) as e:
        pipeline.load(DEMO, ["labels.mc.model=other"])
    assert e.value.field == "labels.mc.model"


def test_overrides_keep_their_types_and_null_drops_a_prm():
    loaded = pipeline.load(DEMO, ["labels.mc.k=4", "sample.temperature=0.7",
                                  "prms.sources.judge=null", "prms.train.lr=1e-3"])
    assert loaded["labels"]["mc"]["k"] == 4 and loaded["sample"]["temperature"] == 0.7
    assert loaded["prms"]["sources"]["judge"] is None
    assert loaded["prms"]["train"]["lr"] == 1e-3 and loaded["prms"]["train"]["max_steps"] == 100


@pytest.mark.parametrize("overrides,field,words", [
    (["labels.grader.x=1"], "labels.grader", "unknown label stage"),
    (["evaluate.prmbench.x=1"], "evaluate.prmbench", "unknown benchmark"),
    (["prms.sources.MC hard=mc.hard"], "prms", "share the folder prm-mc-hard"),
    (["prms.baseline=exact-truth"], "prms", "share the folder"),
    (["evaluate.bon.sets.TOY.path=toy:mixed:a:3"], "evaluate.bon.sets", "share the folder"),
    (["evaluate.processbench.from_truth=gsm8k"], "evaluate.processbench.from_truth",
     "not a Best-of-N set"),
    (["evaluate.processbench.path=x"], "evaluate.processbench.path", "exactly one"),
    (["prms.soft=[judge2]"], "prms.soft", "not a PRM"),
    (["prms.sources.judge=judge.first_error:2"], "prms.sources.judge", "threshold"),
    (["labels.mc.k=0"], "labels.mc.k", "at least 1"),
    (["labels.judge.kind=model"], "labels.judge.model", "needs --model"),
    (["labels.judge.backend.workers=0"], "labels.judge.backend.workers", "at least 1"),
    (["labels.judge.backend.backend=tgi"], "labels.judge.backend.backend", "choose one of"),
    (["problems.path=nowhere.jsonl"], "problems.path", "not found"),
    (["evaluate.bon.sets.toy.path=nowhere/"], "evaluate.bon.sets.toy.path", "not found"),
    # the settings of stages that run late are checked before the first one
    (["prms.train.lr=0"], "prms.train.lr", "above 0"),
    (["score.batch_size=0"], "score.batch_size", "at least 1"),
    (["evaluate.bon.sample.temprature=1"], "evaluate.bon.sample.temprature", "unknown"),
    (["evaluate.bon.sample.top_p=0"], "evaluate.bon.sample.top_p", "above 0"),
    (["labels.judge.kind=model", "labels.judge.model=m", "labels.judge.judge_prompt=no.txt"],
     "labels.judge.judge_prompt", "not found (no.txt)"),
    (["labels.judge.kind=model", "labels.judge.model=m", "labels.judge.backend.backend=openai"],
     "labels.judge.backend.base_url", "needs a base_url"),
    # every label source is a field a stage before it writes
    (["prms.sources.typo=mc.hardd"], "prms.sources.typo", "no stage before it writes mc.hardd"),
    (["prms.sources.other=judge2.first_error"], "prms.sources.other", "written: truth."),
    (["labels.consensus.sources=[mc.hard, judgee.first_error]"],
     "labels.consensus.sources[1]", "no stage before it writes judgee.first_error"),
    (["labels.judge.name=rule", "labels.consensus.sources=[mc.hard, rule.first_error]"],
     "prms.sources.judge", "no stage before it writes judge.first_error"),
    (["problems.path=hub:openai/gsm8k:main:train", "problems.format=gsm8k"],
     "prms.sources.exact truth", "no stage before it writes truth.step_labels"),
    # reward models compared as they are, and PRMs trained on outside labels
    (["prms.compare.ORM.format=qwen2.5-math-orm"], "prms.compare.ORM.format", "choose one of"),
    (["prms.compare.ORM.format=qwen2.5-math-rm"], "prms.compare.ORM.model", "required"),
    (["prms.compare.MC-hard.model=m"], "prms", "share the folder prm-mc-hard"),
    (["prms.outside.human.format=prm800k"], "prms.outside.human.path", "required"),
    (["prms.outside.human.path=nowhere.jsonl"], "prms.outside.human.path", "not found"),
    (["prms.outside.human.path=hub:trl-lib/prm800k:train", "prms.outside.human.labels=:0.5"],
     "prms.outside.human.labels", ""),
    # the label judge evaluated on its own needs a model judge and the benchmarks it reads
    (["judge_eval.processbench=true"], "judge_eval", "needs labels.judge with kind: model"),
    (["labels.judge.kind=model", "labels.judge.model=m", "judge_eval.bon=[pointwise]",
      "evaluate.bon=null", "evaluate.processbench=null"], "judge_eval.bon", "needs evaluate.bon"),
    (["judge_eval.bon=[listwise]"], "judge_eval.bon", "choose among"),
    (["score.base_url=http://x/v1"], "score.base_url", "a compared one"),
    # test-time search: on a Best-of-N set's problems, methods and budgets it can run
    (["search.set=other"], "search.set", "not a Best-of-N set"),
    (["search.methods=[mcts]"], "search.methods", "choose among"),
    (["search.budgets=[3, 4]", "search.width=2"], "search.budgets", "not a multiple"),
])
def test_a_recipe_is_checked_whole_before_any_work(overrides, field, words):
    with pytest.raises(InputError) as e:
        pipeline.load(DEMO, overrides)
    assert e.value.field == field and words in str(e.value), str(e.value)


def test_a_data_section_left_short_gets_its_defaults():
    """The shipped real-data recipe gives its Best-of-N sets no limit (and might give no
    format): both take their defaults instead of failing at the last stage."""
    from prmkit import config
    from prmkit.evaluate.bon import BestOfNSection
    recipe = pipeline.load(REAL)
    sets = config.build(BestOfNSection, recipe["evaluate"]["bon"]).sets
    assert sets["gsm8k"] == {"path": "hub:openai/gsm8k:main:test", "format": "gsm8k",
                             "limit": None}


def test_quick_on_a_recipe_without_a_quick_section_is_an_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(DEMO.read_text().split("\nquick:")[0])
    with pytest.raises(InputError) as e:
        pipeline.load(path, quick=True)
    assert e.value.field == "quick" and "no quick section" in str(e.value)
    assert pipeline.load(REAL, quick=True)["problems"]["limit"] == 8


@pytest.mark.parametrize("overrides,field,words", [
    (["policy.model=/nowhere/model"], "policy.model", "model folder not found"),
    (["policy.prompt=nowhere.txt"], "policy.prompt", "prompt template not found"),
    (["prms.model=/nowhere/model"], "prms.model", "model folder not found"),
    (["prms.compare.ORM.model=/nowhere/orm"], "prms.compare.ORM.model", "not found"),
    (["prms.compare.ORM.model=orm", "prms.compare.ORM.score.base_url=http://127.0.0.1:9/v1"],
     "prms.compare.ORM.score.base_url", "cannot list the server's models"),
    (["labels.judge.kind=model", "labels.judge.model=/nowhere/judge"], "labels.judge.model",
     "model folder not found"),
    (["labels.judge.kind=model", "labels.judge.model=judge", "labels.judge.backend.backend="
      "openai", "labels.judge.backend.base_url=http://127.0.0.1:9/v1"],
     "labels.judge.backend.base_url", "cannot list the server's models"),
])
def test_every_model_a_recipe_names_is_checked_before_the_first_stage(overrides, field, words,
                                                                      tmp_path):
    recipe = pipeline.load(DEMO, [f"out={tmp_path / 'run'}", *overrides])
    with pytest.raises(InputError) as e:
        pipeline.run(recipe, progress=False, source=DEMO)
    assert e.value.field == field and words in str(e.value), str(e.value)
    assert str(DEMO) in str(e.value)
    assert not (tmp_path / "run").exists()  # no stage ran, no folder made


def test_a_data_file_that_cannot_be_read_in_its_format_fails_before_the_first_stage(tmp_path):
    bad = tmp_path / "problems.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": 3}\n')
    recipe = pipeline.load(DEMO, [f"out={tmp_path / 'run'}", f"problems.path={bad}",
                                  "problems.format=gsm8k", "prms.sources.exact truth=null",
                                  "prms.ceiling=null"])
    with pytest.raises(InputError) as e:
        pipeline.run(recipe, progress=False, source=DEMO)
    assert e.value.path == str(bad) and e.value.line == 2, str(e.value)
    assert not (tmp_path / "run").exists()


def test_a_run_folder_made_with_other_settings_is_refused_without_force(tmp_path):
    """A second recipe on a finished run folder would redo and replace its stages: it is
    refused, naming what changed, and the folder is left as it is."""
    from prmkit.pipeline.run import refuse_another_recipe
    from prmkit.records import write_json
    out = tmp_path / "run"
    first = pipeline.load(DEMO, [f"out={out}"])
    write_json(out / "recipe.json", first)
    before = (out / "recipe.json").read_text()
    refuse_another_recipe(out, first)  # the same recipe resumes
    refuse_another_recipe(out, {**first, "report": {"viewer_solutions": 3, "viewer_items": 1}})
    changed = pipeline.load(DEMO, [f"out={out}", "labels.mc.k=4", "sample.temperature=0.5"])
    with pytest.raises(InputError) as e:
        pipeline.run(changed, progress=False, source=DEMO)
    assert e.value.field == "out" and "--force" in str(e.value)
    assert "labels.mc.k" in str(e.value) and "sample.temperature" in str(e.value)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "recipe.json"]
    assert (out / "recipe.json").read_text() == before


def test_a_stage_made_with_other_settings_is_redone_only_with_force(tmp_path):
    from rich.console import Console

    from prmkit import rundir
    from prmkit.pipeline.stages import Stages
    calls = []

    def work(force):
        calls.append(force)
        if not force:
            raise rundir.StaleFolder("holds a finished run with other settings", path=tmp_path)
        return {"redone": True}

    with pytest.raises(rundir.StaleFolder):
        Stages(tmp_path, Console(quiet=True))("sample", tmp_path / "sample", work)
    assert calls == [False]
    assert Stages(tmp_path, Console(quiet=True), force=True)(
        "sample", tmp_path / "sample", work) == {"redone": True}
    assert calls == [False, False, True]


def test_a_bad_value_is_blamed_on_the_layer_that_set_it(tmp_path):
    with pytest.raises(InputError) as e:
        pipeline.load(DEMO, ["labels.mc.k=0"])
    assert e.value.path == "--set" and e.value.field == "labels.mc.k"
    path = tmp_path / "r.yaml"
    path.write_text(DEMO.read_text().replace("k: 8", "k: 0", 1))
    with pytest.raises(InputError) as e:
        pipeline.load(path)
    assert e.value.path == str(path) and e.value.field == "labels.mc.k"
    with pytest.raises(InputError) as e:
        pipeline.load(DEMO, ["evaluate.bestofn.n=2"])
    assert str(e.value).count("field") == 1 and "did you mean 'bon'" in str(e.value)


def test_the_papers_label_cells_are_settings_of_a_recipe():
    """Figs. 3-4 (soft or hard labels, with or without consensus filtering), the MSE soft
    loss, and Fig. 5's threshold sweep, as recipe settings the pipeline trains from."""
    recipe = pipeline.load(DEMO, [
        "prms.sources={hard: mc.hard, soft: mc.values, hard-kept: mc.hard@consensus.kept, "
        "soft-kept: mc.values@consensus.kept}", "prms.soft=[soft, soft-kept]",
        "prms.soft_loss=mse", "prms.ceiling=null", "prms.baseline=null",
        "prms.sweep={MC: {source: mc.values, thresholds: [0, 0.25, 0.5]}}"])
    sources = recipe["prms"]["sources"]
    assert sources["soft-kept"] == "mc.values@consensus.kept"
    assert {k: v for k, v in sources.items() if k.startswith("MC>")} == {
        "MC>0": "mc.values", "MC>0.25": "mc.values:0.25", "MC>0.5": "mc.values:0.5"}
    assert recipe["prms"]["soft_loss"] == "mse"
    for bad, field in ((["prms.sweep={MC: {source: mc.values:0.5, thresholds: [0.2]}}"],
                        "prms.sweep.MC.source"),
                       (["prms.sweep={MC: {source: mc.values, thresholds: [1.5]}}"],
                        "prms.sweep.MC.thresholds"),
                       (["prms.sweep={MC: [0.5]}"], "prms.sweep.MC"),
                       (["prms.sources.x=mc.values@consensus.kep"], "prms.sources.x"),
                       (["prms.sweep={MC-hard: {source: mc.values, thresholds: [0]}}",
                         "prms.sources.MC-hard-0=mc.hard"], "prms")):
        with pytest.raises(InputError) as e:
            pipeline.load(DEMO, bad)
        assert e.value.field == field, (bad, str(e.value))


def test_an_experiment_recipe_says_only_what_it_changes_over_its_base(tmp_path):
    cells = pipeline.load(pipeline.shipped("paper-label-cells"))
    real = pipeline.load(REAL)
    assert cells["policy"] == real["policy"] and cells["labels"] == real["labels"]
    assert cells["prms"]["sources"]["MC-soft (filtered)"] == "mc.values@consensus.kept"
    assert cells["prms"]["sources"]["judge"] is None and cells["out"] != real["out"]
    quick = pipeline.load(pipeline.shipped("paper-label-cells"), quick=True)
    assert quick["problems"]["limit"] == 8 and quick["out"] == "runs/paper-label-cells-quick"
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    (tmp_path / "c.yaml").write_text("base: nowhere.yaml\n")
    for name, words in (("a.yaml", "cycle"), ("c.yaml", "base recipe not found")):
        with pytest.raises(InputError) as e:
            pipeline.load(tmp_path / name)
        assert e.value.field == "base" and words in str(e.value), str(e.value)


def test_the_critics_experiment_drops_what_it_does_not_run_from_its_base():
    critics = pipeline.load(pipeline.shipped("paper-critics"), quick=True)
    assert list(critics["labels"]) == ["judge"]  # mc and consensus dropped, never revived
    assert not any(critics["prms"]["sources"].values()) and critics["prms"]["outside"] == {}
    assert critics["judge_eval"]["processbench"] and critics["judge_eval"]["bon"] == [
        "pointwise", "pairwise"]
    # a smoke run fetches no 72B model: the ORM is the full run's
    assert set(critics["prms"]["compare"]) == {"Qwen2.5-Math-PRM-7B"}
    assert set(pipeline.load(pipeline.shipped("paper-critics"))["prms"]["compare"]) == {
        "Qwen2.5-Math-PRM-7B", "ORM (Qwen2.5-Math-RM-72B)"}


def test_the_label_sources_experiment_trains_outside_labels_and_compares_released_models():
    """The base recipe is the paper's label-source experiment (Tables 3-4): PRMs on MC, judge
    and consensus labels, the same PRM on PRM800K's human labels and on Math-Shepherd's, the
    untrained baseline, and the released PRM and the ORM scored as they are (Tables 6-7). An
    experiment built on it drops what it does not run with null, and its base's quick section
    never brings a dropped entry back."""
    real = pipeline.load(REAL)
    assert real["prms"]["outside"]["human (PRM800K)"] == {
        "path": "hub:trl-lib/prm800k:train", "format": "trl_stepwise", "labels": "step_labels",
        "limit": None}
    assert real["prms"]["compare"]["ORM (Qwen2.5-Math-RM-72B)"]["model"] == \
        "Qwen/Qwen2.5-Math-RM-72B"
    assert real["prms"]["baseline"] == "untrained"
    assert pipeline.load(REAL, quick=True)["prms"]["outside"]["human (PRM800K)"]["limit"] == 16
    for quick in (False, True):
        cells = pipeline.load(pipeline.shipped("paper-label-cells"), quick=quick)
        assert cells["prms"]["outside"] == {} and cells["prms"]["compare"] == {}
    # --set still brings one back: it is the user's own word, after every file
    revived = pipeline.load(pipeline.shipped("paper-label-cells"), [
        "prms.outside.human (PRM800K)={path: hub:trl-lib/prm800k:train, format: trl_stepwise}"],
        quick=True)
    assert revived["prms"]["outside"]["human (PRM800K)"]["limit"] is None
