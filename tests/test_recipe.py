"""Recipes (prmkit.recipe): the shipped demo, quick runs, overrides, and errors that name the key."""

import pytest

from prmkit import recipe
from prmkit.errors import InputError


def test_the_shipped_demo_recipe_loads_and_quick_shrinks_it():
    full = recipe.load(recipe.demo_path())
    quick = recipe.load(recipe.demo_path(), quick=True)
    assert full["mc"] == {"k": 8, "mode": "linear"}
    assert quick["mc"]["k"] < full["mc"]["k"] and quick["mc"]["mode"] == "linear"
    assert quick["problems"]["train"] < full["problems"]["train"]
    assert quick["prms"]["train"]["max_steps"] == 4
    assert quick["prms"]["train"]["lr"] == 0.0001  # sections merge, never replace
    assert set(full["prms"]["sources"]) == {"exact truth", "MC-hard", "MC-soft", "judge",
                                            "consensus"}


def test_unknown_settings_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("mc:\n  kk: 4\n")
    with pytest.raises(InputError) as e:
        recipe.load(path)
    assert e.value.field == "mc.kk" and "r.yaml" in str(e.value)
    with pytest.raises(InputError, match="expected a mapping"):
        recipe.load(None, ["mc=4"])
    with pytest.raises(InputError) as e:
        recipe.load(None, ["sample.temprature=0.5"])
    assert e.value.field == "sample.temprature"


def test_overrides_keep_their_types_and_null_drops_a_prm():
    loaded = recipe.load(recipe.demo_path(), ["mc.k=4", "sample.temperature=0.7",
                                              "prms.sources.judge=null", "prms.train.lr=1e-3"])
    assert loaded["mc"]["k"] == 4 and loaded["sample"]["temperature"] == 0.7
    assert loaded["prms"]["sources"]["judge"] is None
    assert loaded["prms"]["train"]["lr"] == 1e-3 and loaded["prms"]["train"]["max_steps"] == 50
