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


# The seven Best-of-N benchmarks of the paper's Table 6, on their real rows: (format, file,
# rows, {row: (id, text the problem starts with or holds, gold)}, (a right and a wrong solution
# of the first row listed)). Gold answers as Qwen2.5-Math's evaluation reads them.
TABLE6 = [
    ("gsm8k", "qwen25math_eval/gsm8k.jsonl", 1319,
     {0: ("gsm8k-0", "Janet\u2019s ducks lay 16 eggs per day.", "18")},
     ("... so she makes \\boxed{18} dollars.", "#### 17")),
    ("math", "math500/test.jsonl", 500,
     {0: ("test/precalculus/807.json", "Convert the point $(0,3)$",
          "\\left( 3, \\frac{\\pi}{2} \\right)")},
     ("\\boxed{(3, \\pi/2)}", "\\boxed{(3, \\pi)}")),
    ("minerva_math", "qwen25math_eval/minerva_math.jsonl", 272,
     {0: ("minerva_math-0", "Each of the two Magellan telescopes", "1.6"),
      1: ("minerva_math-1", "A white dwarf star", "4.5e33")},  # the last \boxed{} of solution
     ("The diameter is \\boxed{1.6} cm.", "The diameter is \\boxed{1.7} cm.")),
    ("gaokao2023en", "qwen25math_eval/gaokao2023en.jsonl", 385,
     {169: ("gaokao2023en-169", "Which of the following must be true: (A) f(-6)=0", "A"),
      2: ("gaokao2023en-2", "", "-1"),
      0: ("gaokao2023en-0", "Given sets", "\\{x|-2\\leq x < 1\\}"),  # "$" removed
      167: ("gaokao2023en-167", "Compute the probability", None)},  # an empty gold: unknown
     ("So the answer is \\boxed{(A)}.", "So the answer is \\boxed{B}.")),
    ("olympiadbench", "qwen25math_eval/olympiadbench.jsonl", 675,
     {0: ("olympiadbench-0", "Xenia and Sergey play", "2"),
      1: ("olympiadbench-1", "", "\\frac{1}{2 n+2}")},  # final_answer[0], "$" stripped
     ("The maximum is \\boxed{2}.", "The maximum is \\boxed{3}.")),
    ("college_math", "qwen25math_eval/college_math.jsonl", 2818,
     {0: ("college_math-0", "Simplify: $-10-4(n-5)$", "10-4 n"),  # "$" removed
      # a yes/no gold: the question says so, as Qwen's evaluation asks it
      42: ("college_math-42", "State if the given functions are inverses", "Yes")},
     ("\\boxed{10 - 4n}", "\\boxed{10 + 4n}")),
    ("mmlu_stem", "qwen25math_eval/mmlu_stem.jsonl", 3018,
     {0: ("mmlu_stem-0", "Based on the characteristic population curves", "C"),
      2: ("mmlu_stem-2", "To prevent desiccation and injury", "A")},
     ("The answer is \\boxed{C}", "The answer is \\boxed{B}")),
]


@pytest.mark.parametrize("fmt, relative, count, rows, solutions", TABLE6,
                         ids=[t[0] for t in TABLE6])
def test_each_best_of_n_benchmark_reads_as_qwen_evaluation_reads_it(fmt, relative, count, rows,
                                                                    solutions):
    from prmkit.grading import Outcome, grade
    problems = reader(fmt)[0](shared(relative))
    assert len(problems) == count and len({p["id"] for p in problems}) == count
    for row, (ident, text, gold) in rows.items():
        p = problems[row]
        assert (p["id"], p["answer"]) == (ident, gold)
        assert p["problem"].startswith(text) or text in p["problem"]
    gold = problems[next(iter(rows))]["answer"]
    right, wrong = solutions
    assert grade(right, gold).outcome is Outcome.CORRECT
    assert grade(wrong, gold).outcome is Outcome.INCORRECT


def test_mmlu_stem_keeps_its_choices_and_names_the_right_one_by_letter():
    problems = reader("mmlu_stem")[0](shared("qwen25math_eval/mmlu_stem.jsonl"))
    first = problems[0]
    assert first["problem"] == (
        "Based on the characteristic population curves that result from plotting population "
        "growth of a species, the most effective means of controlling the mosquito population "
        "is to\nAnswer Choices: (A) maintain the population at a point corresponding to the "
        "midpoint of its logistic curve (B) opt for zero population control once the K value "
        "of the curve has been reached (C) reduce the carrying capacity cif the environment to "
        "lower the K value (D) increase the mortality rate")
    assert first["answer"] == "C" and len(first["choices"]) == 4
    assert {p["answer"] for p in problems} == {"A", "B", "C", "D"}
    college = reader("college_math")[0](shared("qwen25math_eval/college_math.jsonl"))
    assert college[42]["problem"].endswith("$h(x)=10 x+5$ (Yes or No)")
    # read as MATH, its options would be dropped and its gold taken as the index "2"
    with pytest.raises(InputError) as e:
        reader("math")[0](shared("qwen25math_eval/mmlu_stem.jsonl"))
    assert (e.value.line, e.value.field) == (1, "choices")


@pytest.mark.parametrize("fmt, row, field", [
    ("mmlu_stem", {"question": "q", "choices": ["a", "b"], "answer": 2}, "answer"),
    ("mmlu_stem", {"question": "q", "choices": "ab", "answer": 0}, "choices"),
    ("olympiadbench", {"question": "q", "final_answer": []}, "final_answer"),
    ("minerva_math", {"problem": "q"}, "solution"),
    ("college_math", {"question": 3, "answer": "1"}, "question"),
])
def test_a_malformed_benchmark_row_is_a_located_error(tmp_path, fmt, row, field):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError) as e:
        reader(fmt)[0](path)
    assert (e.value.line, e.value.field) == (1, field)


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
    ("mmlu_stem", [{}, {"idx": 0}], 2, "idx"),  # a row without idx is its position
    ("olympiadbench", [{"idx": 4}, {"idx": "4"}], 2, "idx"),
    ("math_shepherd", [{"id": "x"}, {"id": "x"}], 2, "id"),
    ("trl_stepwise", [{"id": "x"}, {"id": "x"}], 2, "id"),
])
def test_a_repeated_id_in_a_problem_or_solution_file_is_a_located_error(tmp_path, fmt, rows,
                                                                         line, field):
    body = {"gsm8k": {"question": "q", "answer": "x\n#### 3"},
            "math": {"problem": "q", "answer": "3"},
            "mmlu_stem": {"question": "q", "choices": ["a", "b", "c", "d"], "answer": 1},
            "olympiadbench": {"question": "q", "final_answer": ["$3$"]},
            "math_shepherd": {"input": "q Step 1: a ки", "label": "q Step 1: a +"},
            "trl_stepwise": {"prompt": "q", "completions": ["a"], "labels": [True]}}[fmt]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({**body, **row}) + "\n" for row in rows))
    with pytest.raises(InputError, match="duplicate id") as e:
        reader(fmt)[0](path)
    assert (e.value.line, e.value.field, str(e.value.path)) == (line, field, str(path))
    path.write_text("".join(json.dumps({**body, **row}) + "\n" for row in rows[:line - 1]))
    assert len(reader(fmt)[0](path)) == line - 1  # without the repeat, it reads
