"""Typed settings (prmkit.config): one dataclass a stage, loaded from defaults, YAML, flags and
--set with errors that name the file and the field."""

from dataclasses import dataclass

import pytest

from prmkit import config
from prmkit.config import REQUIRED, setting
from prmkit.errors import InputError


@dataclass(frozen=True)
class Inner:
    size: int = setting(REQUIRED, "How many.")
    name: str = setting("x", "A name.", choices=("x", "y"))


@dataclass(frozen=True)
class Outer:
    path: str = setting(REQUIRED, "A file.")
    rate: float = setting(1e-3, "A rate.")
    steps: int | None = setting(None, "Steps or null.")
    on: bool = setting(True, "A switch.")
    names: tuple[str, ...] = setting(("a",), "Names.")
    inner: Inner = setting(None, "A section.")
    free: dict = setting({}, "Inner settings, checked by key.", schema=Inner)


def test_values_are_coerced_from_yaml_and_command_line_strings():
    kinds = config.hints(Outer)
    assert config.coerce("5e-4", kinds["rate"], "rate") == 5e-4  # YAML 1.1 reads it as text
    assert config.coerce("null", kinds["steps"], "steps") is None
    assert config.coerce("12", kinds["steps"], "steps") == 12
    assert config.coerce(3.0, kinds["steps"], "steps") == 3
    assert config.coerce("no", kinds["on"], "on") is False
    assert config.coerce(["b", "c"], kinds["names"], "names") == ("b", "c")
    for field, value in (("steps", 2.5), ("rate", "fast"), ("on", "maybe"), ("rate", "inf"),
                         ("steps", True), ("path", None)):
        with pytest.raises(InputError) as error:
            config.coerce(value, kinds[field], field)
        assert error.value.field == field


def test_layers_defaults_yaml_flags_then_set(tmp_path):
    (tmp_path / "c.yaml").write_text("path: p.jsonl\nrate: 1e-2\nsteps: 5\n")
    loaded = config.load(Outer, tmp_path / "c.yaml", ["steps=7", "inner.size=4"],
                         {"rate": 0.5, "on": None})  # a flag left out (None) stays out
    assert (loaded.path, loaded.rate, loaded.steps, loaded.on) == ("p.jsonl", 0.5, 7, True)
    assert loaded.inner == Inner(size=4)


def test_errors_name_the_file_the_field_and_the_flag(tmp_path):
    (tmp_path / "c.yaml").write_text("path: p\nrat: 1\n")
    with pytest.raises(InputError) as error:
        config.load(Outer, tmp_path / "c.yaml")
    assert error.value.field == "rat" and "c.yaml" in str(error.value)
    with pytest.raises(InputError, match="give --path"):
        config.load(Outer)
    with pytest.raises(InputError) as error:
        config.load(Outer, None, ["path=p", "free.name=z"])
    assert error.value.field == "free.name" and "choose one of" in str(error.value)
    with pytest.raises(InputError) as error:
        config.load(Outer, None, ["path=p", "free.sise=2"])
    assert error.value.field == "free.sise"


def test_nested_sections_are_built_and_required_settings_named():
    values = config.typed(Outer, {"path": "p", "inner": {"size": "3"}, "free": {"size": 2}})
    built = config.build(Outer, values)
    assert built.inner == Inner(size=3) and built.free == {"size": 2}
    with pytest.raises(InputError) as error:
        config.build(Outer, config.typed(Outer, {"path": "p", "inner": {"name": "y"}}))
    assert error.value.field == "inner.size"
    assert config.to_dict(built)["names"] == ["a"]


def test_overrides_nest_dotted_keys_and_keep_yaml_types():
    assert config.parse_overrides(["a.b=1", "a.c=true", "d=null", "e=[1, 2]"]) == \
        {"a": {"b": 1, "c": True}, "d": None, "e": [1, 2]}
    with pytest.raises(InputError):
        config.parse_overrides(["novalue"])


def test_every_stage_setting_has_help_text():
    from prmkit.annotate.consensus import ConsensusConfig
    from prmkit.annotate.judge import JudgeConfig
    from prmkit.annotate.mc import MCConfig
    from prmkit.backends import BackendConfig
    from prmkit.pipeline.recipe import Recipe
    from prmkit.prm.train import TrainConfig
    from prmkit.sample import SampleConfig
    for cls in (SampleConfig, MCConfig, JudgeConfig, ConsensusConfig, TrainConfig, BackendConfig,
                Recipe):
        for f in config.fields(cls):
            assert config.help_of(f), f"{cls.__name__}.{f.name} has no help"
