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
    (["labels.judge.kind=model"], "model", "needs --model"),
    (["labels.judge.backend.workers=0"], "labels.judge.backend.workers", "at least 1"),
    (["labels.judge.backend.backend=tgi"], "labels.judge.backend.backend", "choose one of"),
    (["problems.path=nowhere.jsonl"], "problems.path", "not found"),
    (["evaluate.bon.sets.toy.path=nowhere/"], "evaluate.bon.sets.toy.path", "not found"),
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
    assert sets["gsm8k"] == {"path": "../shared/data/qwen25math_eval/gsm8k.jsonl",
                             "format": "gsm8k", "limit": None}
