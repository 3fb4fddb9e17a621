import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prmkit.errors import InputError
from prmkit.records import iter_json_items, read_records, validate, write_jsonl


def write(tmp_path, lines, name="x.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_errors_name_file_line_and_field(tmp_path):
    path = write(tmp_path, [json.dumps({"id": "a", "problem": "p", "steps": ["s"]}),
                            json.dumps({"id": "b", "problem": "p", "steps": "not a list"})])
    with pytest.raises(InputError) as e:
        read_records(path, "solution")
    assert (e.value.path, e.value.line, e.value.field) == (str(path), 2, "steps")
    assert str(e.value).startswith(f"{path}:2: field 'steps'")


@pytest.mark.parametrize("record, field", [
    ({"id": "a", "problem": "p", "steps": []}, "steps"),                      # empty step list
    ({"id": "a", "problem": "p"}, "steps"),                                   # missing
    ({"id": 3, "problem": "p", "steps": ["s"]}, "id"),                        # wrong type
    ({"id": "a", "problem": "p", "steps": ["s"], "label": 1}, "label"),       # out of range
    ({"id": "a", "problem": "p", "steps": ["s"], "step_labels": [1, 0]}, "step_labels"),
    ({"id": "a", "problem": "p", "steps": ["s"], "step_labels": [1.5]}, "step_labels"),
])
def test_bad_solutions_are_refused(record, field):
    with pytest.raises(InputError) as e:
        validate(record, "solution", path="f.jsonl", line=7)
    assert e.value.field == field and e.value.line == 7


def test_malformed_json_and_duplicates(tmp_path):
    with pytest.raises(InputError) as e:
        read_records(write(tmp_path, ['{"id": "a"', ""]), "step_scores")
    assert e.value.line == 1 and "malformed JSON" in e.value.message
    dup = write(tmp_path, [json.dumps({"id": "a", "step_scores": [0.5]})] * 2, "d.jsonl")
    with pytest.raises(InputError) as e:
        read_records(dup, "step_scores")
    assert e.value.line == 2 and e.value.field == "id" and "first on line 1" in e.value.message


def test_json_array_items_keep_their_line_numbers(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"id": "a"},\n  {"id": "b",\n   "x": 1},\n  {"id": "c"}\n]\n')
    assert [(line, v["id"]) for line, v in iter_json_items(path)] == [(2, "a"), (3, "b"), (5, "c")]
    path.write_text('[\n  {"id": "a"},\n  {"id": "b" "x"}\n]')
    with pytest.raises(InputError) as e:
        list(iter_json_items(path))
    assert e.value.line == 3


def test_nonfinite_scores_and_critique_shorthand():
    with pytest.raises(InputError):
        validate({"id": "a", "step_scores": [float("nan")]}, "step_scores")
    assert validate({"id": "a", "critique": "x"}, "critique")["critiques"] == ["x"]


def test_write_is_atomic_and_roundtrips(tmp_path):
    records = [{"id": "a", "step_scores": [0.25, 1.0]}, {"id": "ü", "step_scores": [0.0]}]
    path = write_jsonl(tmp_path / "s.jsonl", records)
    assert read_records(path, "step_scores") == records
    assert [p.name for p in tmp_path.iterdir()] == ["s.jsonl"]  # no temp file left behind


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["id", "problem", "steps", "label", "step_scores", "candidates",
                         "answer", "critiques", "x"]), children, max_size=6),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(value=json_values, kind=st.sampled_from(["problem", "solution", "step_scores",
                                                 "critique", "candidates"]))
def test_fuzz_validate_never_crashes(value, kind):
    try:
        validate(value, kind, path="f", line=1)
    except InputError as e:
        assert e.path == "f" and e.line == 1


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_fuzz_jsonl_reader_only_raises_input_errors(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "f.jsonl"
    path.write_text(text, encoding="utf-8")
    try:
        read_records(path, "solution")
    except InputError as e:
        assert e.path == str(path)
