import json

import pytest
from conftest import shared
from hypothesis import given, settings
from hypothesis import strategies as st

from prmkit.errors import InputError
from prmkit.formats import READERS, reader, writer


def test_unknown_format_suggests_the_close_one():
    with pytest.raises(InputError, match="did you mean 'math_shepherd'"):
        reader("math_shepard")


def test_processbench_folder(processbench_items):
    by_subset = {}
    for r in processbench_items:
        by_subset[r["subset"]] = by_subset.get(r["subset"], 0) + 1
    assert by_subset == {"gsm8k": 400, "math": 1000, "olympiadbench": 1000, "omnimath": 1000}
    assert all(-1 <= r["label"] < len(r["steps"]) for r in processbench_items)


def test_prm800k_raw_follows_chosen_completions_to_the_first_error():
    records = reader("prm800k")[0](shared("formats/prm800k_raw_samples.jsonl"))
    first = records[0]
    assert first["gold_answer"] == "29" and first["ratings"] == [1, -1] and first["label"] == 1
    assert first["steps"][1].startswith("The first equation is")
    for r in records:
        assert r["label"] == next((i for i, x in enumerate(r["ratings"]) if x == -1), -1)


def test_math_shepherd_reads_labels_and_roundtrips(tmp_path):
    records = reader("math_shepherd")[0](shared("formats/math_shepherd_samples.jsonl"))
    first = records[0]
    assert first["problem"].startswith("Janet pays $40/hour")
    assert first["steps"][0].startswith("Janet spends 3 hours + 5 hours")
    assert first["step_labels"] == [1.0, 1.0, 1.0, 1.0, 0.0] and first["final_answer"] == "13520"
    out = writer("math_shepherd")[0](records, tmp_path / "ms.jsonl")
    again = reader("math_shepherd")[0](out)
    assert [(r["problem"], r["steps"], r["step_labels"]) for r in again] == \
           [(r["problem"], r["steps"], r["step_labels"]) for r in records]


def test_trl_roundtrip_and_soft_labels_are_refused(tmp_path):
    records = [{"id": "a", "problem": "p", "steps": ["x", "y"], "step_labels": [1.0, 0.0]}]
    out = writer("trl_stepwise")[0](records, tmp_path / "t.jsonl")
    assert json.loads(out.read_text())["labels"] == [True, False]
    back = reader("trl_stepwise")[0](out)[0]
    assert back["steps"] == ["x", "y"] and back["label"] == 1
    with pytest.raises(InputError, match="soft label 0.4"):
        writer("trl_stepwise")[0]([{**records[0], "step_labels": [1.0, 0.4]}], tmp_path / "u.jsonl")


def test_gsm8k_and_math_problems():
    gsm = reader("gsm8k")[0](shared("gsm8k/test.jsonl"))
    assert len(gsm) == 1319 and gsm[0]["answer"] == "18"
    math500 = reader("math")[0](shared("math500/test.jsonl"))
    assert len(math500) == 500 and all(p["answer"] for p in math500)
    olympiad = reader("math")[0](shared("qwen25math_eval/olympiadbench.jsonl"))
    assert olympiad[0]["answer"] == "2"


def test_qwen_eval_roundtrip(tmp_path):
    line = {"idx": 0, "question": "q", "gt": "18", "code": ["a", "b"], "pred": ["18", "17"],
            "score": [True, False], "pred_score": [[0.9], [0.2]]}
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(line) + "\n")
    sets = reader("qwen_eval")[0](path)
    assert sets[0]["candidates"][0] == {"answer": "18", "text": "a", "correct": True, "score": 0.9}
    out = writer("qwen_eval")[0](sets, tmp_path / "back.jsonl")
    back = json.loads(out.read_text())
    assert back["pred"] == line["pred"] and back["pred_score"] == line["pred_score"]
    path.write_text(json.dumps({**line, "score": [True]}) + "\n")
    with pytest.raises(InputError) as e:
        reader("qwen_eval")[0](path)
    assert e.value.field == "score" and e.value.line == 1


def test_processbench_writer_roundtrip(tmp_path, processbench_items):
    from prmkit.formats.processbench import read_file
    items = processbench_items[:5]
    out = writer("processbench")[0](items, tmp_path / "gsm8k.json")
    assert [(r["id"], r["label"], r["steps"]) for r in read_file(out)] == \
           [(r["id"], r["label"], r["steps"]) for r in items]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(READERS)), text=st.text(max_size=300))
def test_fuzz_every_reader_fails_only_with_input_errors(tmp_path_factory, name, text):
    path = tmp_path_factory.mktemp("fuzz") / "f.jsonl"
    path.write_text(text, encoding="utf-8")
    try:
        reader(name)[0](path)
    except InputError:
        pass


@settings(max_examples=80, deadline=None)
@given(value=st.dictionaries(st.sampled_from(["input", "label", "prompt", "completions", "labels",
                                              "question", "answer", "gt", "pred", "code", "score"]),
                             st.text(max_size=30) | st.lists(st.text(max_size=5), max_size=3)
                             | st.lists(st.booleans(), max_size=3), max_size=5),
       name=st.sampled_from(sorted(READERS)))
def test_fuzz_readers_on_json_objects(tmp_path_factory, value, name):
    path = tmp_path_factory.mktemp("fuzz") / "f.jsonl"
    path.write_text(json.dumps(value) + "\n", encoding="utf-8")
    try:
        reader(name)[0](path)
    except InputError:
        pass


def test_a_hub_split_is_read_like_a_file_and_cached(tmp_path, monkeypatch):
    """``hub:NAME:CONFIG:SPLIT`` goes through the datasets library once (a stand-in here: the
    hub is out of reach), then every reader reads the cached JSONL as a file."""
    import sys
    import types

    from prmkit.errors import InputError
    from prmkit.formats import read_as
    monkeypatch.setenv("HOME", str(tmp_path))
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return [{"question": "What is 2+2?", "answer": "2+2=4\n#### 4"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    problems = read_as("hub:openai/gsm8k:main:test", "gsm8k", "problem")
    assert [(p["problem"], p["answer"]) for p in problems] == [("What is 2+2?", "4")]
    assert read_as("hub:openai/gsm8k:main:test", "gsm8k", "problem") == problems
    assert calls == [("openai/gsm8k", "main", "test")]  # the second read came from the cache
    with pytest.raises(InputError, match="hub:NAME:SPLIT"):
        read_as("hub:openai/gsm8k", "gsm8k", "problem")


@pytest.mark.parametrize("fmt, rows, line, field", [
    # two rows with one idx; "3" and 3; a row without idx where an earlier one is idx 1
    ("gsm8k", [{"idx": 1}, {"idx": 1}], 2, "idx"),
    ("gsm8k", [{"idx": "3"}, {"idx": 3}], 2, "idx"),
    ("gsm8k", [{"idx": 1}, {}], 2, "idx"),
    ("math", [{"unique_id": "a/1.json"}, {"unique_id": "b/2.json"},
              {"unique_id": "a/1.json"}], 3, "unique_id"),
    ("math_shepherd", [{"id": "x"}, {"id": "x"}], 2, "id"),
    ("trl_stepwise", [{"id": "x"}, {"id": "x"}], 2, "id"),
])
def test_a_repeated_id_in_a_problem_or_solution_file_is_a_located_error(tmp_path, fmt, rows,
                                                                         line, field):
    body = {"gsm8k": {"question": "q", "answer": "x\n#### 3"},
            "math": {"problem": "q", "answer": "3"},
            "math_shepherd": {"input": "q Step 1: a ки", "label": "q Step 1: a +"},
            "trl_stepwise": {"prompt": "q", "completions": ["a"], "labels": [True]}}[fmt]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({**body, **row}) + "\n" for row in rows))
    with pytest.raises(InputError, match="duplicate id") as e:
        reader(fmt)[0](path)
    assert (e.value.line, e.value.field, str(e.value.path)) == (line, field, str(path))
    path.write_text("".join(json.dumps({**body, **row}) + "\n" for row in rows[:line - 1]))
    assert len(reader(fmt)[0](path)) == line - 1  # without the repeat, it reads
