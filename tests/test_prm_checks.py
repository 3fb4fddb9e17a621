"""A PRM folder is checked before any work, and steps past a PRM's context are counted by every
evaluation (issue 24, items 5 and 6).

Broken folders: a truncated safetensors file, a malformed config.json, a missing tokenizer, a
config.json that describes another model than the weights, a prm.json that disagrees with
config.json, a --model-format other than the one the folder records. Each is refused by
``prmkit score`` and ``prmkit eval bon --model`` with exit 2 and one line naming the file.

Steps past the context: scored null by ``prmkit.prm.score``; Best-of-N, ProcessBench, the
within-problem ranking and the final-step diagnostic count them and never rank a cut solution
by a prefix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import char_tokenizer

from prmkit import rundir
from prmkit.cli import main
from prmkit.errors import InputError
from prmkit.evaluate import bon, processbench
from prmkit.evaluate.diagnostics import min_on_final_step
from prmkit.evaluate.ranking import ranking
from prmkit.prm.checks import check_prm_folder, safetensors_shapes
from prmkit.prm.model import build_prm, save_prm
from prmkit.prm.score import score
from prmkit.records import write_jsonl

PROBLEM = "Ann has 7 coins."   # 16 characters: 18 tokens with its blank line
SHORT = ["7+3=10.", "So 10."]  # 37 tokens in all, with the step tokens: fits 64
CUT = ["7+3=10.", "x" * 40]    # the second step passes 64: scored null
NONE_FIT = ["x" * 50, "So 9."]  # not even the first step fits


def tiny_config(tokenizer, **extra):
    from transformers import Qwen2Config
    settings = {"vocab_size": len(tokenizer) + 8, "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "max_position_embeddings": 1024, "pad_token_id": tokenizer.pad_token_id}
    return Qwen2Config(**{**settings, **extra})


def new_prm(**extra):
    tokenizer = char_tokenizer()
    tokenizer.padding_side = "right"
    head = extra.pop("head", "ce")
    return build_prm(tiny_config(tokenizer, **extra), tokenizer, head=head, seed=1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """Tiny PRMs saved once: the Qwen2.5-Math-PRM layout (two-label head), prmkit's own
    (a one-output head) and one with a 64-token context."""
    root = tmp_path_factory.mktemp("prms")
    return {"qwen": save_prm(new_prm(), root / "qwen"),
            "prmkit-head": save_prm(new_prm(head="bce"), root / "prmkit-head"),
            "short": save_prm(new_prm(max_position_embeddings=64), root / "short")}


@pytest.fixture
def prm(saved, tmp_path) -> Path:
    """A copy of the Qwen-layout PRM, to break."""
    return Path(shutil.copytree(saved["qwen"], tmp_path / "prm"))


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    write_jsonl(tmp_path / "solutions.jsonl", [{"id": "a", "problem": PROBLEM, "steps": SHORT}])
    write_jsonl(tmp_path / "candidates.jsonl", [{
        "id": "p", "problem": PROBLEM, "gold_answer": "10",
        "candidates": [{"answer": "10", "steps": SHORT, "correct": True},
                       {"answer": "9", "steps": SHORT[:1], "correct": False}]}])
    return {"score": tmp_path / "solutions.jsonl", "bon": tmp_path / "candidates.jsonl"}


def commands(inputs: dict, model: Path, out: Path, *extra) -> dict[str, list]:
    """The two commands that score with a PRM folder."""
    return {"score": ["score", inputs["score"], "--model", model, "--out", out / "scores",
                      *extra],
            "eval bon": ["eval", "bon", inputs["bon"], "--model", model, "--group-by",
                         "string", "--out", out / "bon", *extra]}


def refused(capsys, argv: list, root: Path) -> str:
    """Exit 2 and one line, ``error: <file>: ...``, nothing marked complete."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert list(root.rglob(rundir.MARKER)) == []
    return err


def assert_both_refuse(capsys, inputs, model, tmp_path, *, file: str, says: str,
                       extra: tuple = ()) -> None:
    for name, argv in commands(inputs, model, tmp_path / "runs", *extra).items():
        err = refused(capsys, argv, tmp_path / "runs")
        assert f"{model / file}:" in err and says in err, (name, err)


# --- a broken PRM folder: one line naming the file ------------------------------------------------

@pytest.mark.parametrize("keep", [0.5, 4 / 9999], ids=["half", "inside-the-header"])
def test_a_truncated_safetensors_file(prm, inputs, tmp_path, capsys, keep):
    weights = prm / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:max(4, int(len(data) * keep))])  # a copy cut short
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="model.safetensors",
                       says="truncated safetensors file")


def test_a_malformed_config_json(prm, inputs, tmp_path, capsys):
    text = (prm / "config.json").read_text()
    (prm / "config.json").write_text(text[:len(text) // 2])
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="config.json",
                       says="malformed JSON")


def test_a_config_json_transformers_cannot_read(prm, inputs, tmp_path, capsys):
    config = json.loads((prm / "config.json").read_text())
    (prm / "config.json").write_text(json.dumps({**config, "model_type": "no-such-model"}))
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="config.json",
                       says="not a config transformers can read")


def test_a_missing_tokenizer(prm, inputs, tmp_path, capsys):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (prm / name).unlink()
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="tokenizer.json",
                       says="missing tokenizer")


def test_a_malformed_tokenizer_json(prm, inputs, tmp_path, capsys):
    (prm / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="tokenizer.json",
                       says="unreadable tokenizer")


def test_a_config_of_another_architecture_than_the_weights(saved, inputs, tmp_path, capsys):
    """A tiny Qwen2 PRM whose config.json is rewritten to a Llama of other sizes: the weights'
    names and shapes (read from the safetensors header) are not that model's."""
    from transformers import LlamaConfig
    model = Path(shutil.copytree(saved["prmkit-head"], tmp_path / "prm"))
    kept = json.loads((model / "config.json").read_text())
    llama = LlamaConfig(vocab_size=kept["vocab_size"], hidden_size=48, intermediate_size=96,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    llama.architectures = kept["architectures"]  # still a prmkit PRM: prm.json agrees
    llama.save_pretrained(model)
    assert_both_refuse(capsys, inputs, model, tmp_path, file="model.safetensors",
                       says="the weights do not match the model that config.json and "
                            "prm.json describe")
    err = refused(capsys, commands(inputs, model, tmp_path / "runs")["score"], tmp_path)
    assert "mis-shaped (model.embed_tokens.weight [" in err and "unexpected (" in err
    assert "LlamaConfig" not in err and "model_type llama" in err


def test_a_release_whose_config_has_other_sizes(prm, inputs, tmp_path, capsys):
    """A Qwen2.5-Math-PRM release (no prm.json: the head's kind is read off its tensors) with
    a config.json of another hidden size."""
    (prm / "prm.json").unlink()
    config = json.loads((prm / "config.json").read_text())
    (prm / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="model.safetensors",
                       says="mis-shaped")


@pytest.mark.parametrize("change,says", [
    ({"layout": "prmkit-head"}, "prm.json says layout 'prmkit-head', but config.json says "
                                "architectures ['Qwen2ForProcessRewardModel']"),
    ({"head": "bce"}, "prm.json says head 'bce' (1 outputs), but config.json has 2 labels"),
    ({"format": "math-shepherd"}, "field 'format': 'math-shepherd' is not one of"),
    ({"readout": "attention"}, "field 'readout'"),
])
def test_a_prm_json_that_disagrees_with_config_json(prm, inputs, tmp_path, capsys, change, says):
    meta = json.loads((prm / "prm.json").read_text())
    (prm / "prm.json").write_text(json.dumps({**meta, **change}))
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="prm.json", says=says)


def test_a_malformed_prm_json(prm, inputs, tmp_path, capsys):
    (prm / "prm.json").write_text('{"format": "step-token",')
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="prm.json", says="malformed JSON")


def test_a_model_format_other_than_the_one_the_folder_records(prm, inputs, tmp_path, capsys):
    """--model-format plain on a step-token PRM would score the steps in the wrong layout."""
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="prm.json",
                       says="saved for the 'step-token' format (prm.json), but 'plain' was "
                            "asked", extra=("--model-format", "plain"))
    # a release records its format in its architecture
    (prm / "prm.json").unlink()
    assert_both_refuse(capsys, inputs, prm, tmp_path, file="config.json",
                       says="saved for the 'qwen2.5-math-prm' format (config.json)",
                       extra=("--model-format", "plain"))


def test_a_causal_lm_without_a_format_says_which_flag_to_pass(tiny_lm, inputs, tmp_path,
                                                              capsys):
    err = refused(capsys, commands(inputs, tiny_lm, tmp_path / "runs")["score"], tmp_path)
    assert "field 'model_format'" in err and "--model-format math-shepherd" in err
    assert "--format math-shepherd" not in err


def test_sound_folders_pass_and_the_header_gives_every_shape(saved):
    for folder in saved.values():
        check_prm_folder(folder)
    shapes = safetensors_shapes(saved["qwen"] / "model.safetensors")
    assert shapes["score.2.weight"] == [2, 32] and shapes["model.norm.weight"] == [32]
    with pytest.raises(InputError, match="saved for the 'step-token' format"):
        check_prm_folder(saved["qwen"], "plain")


# --- steps past the context: counted everywhere, never ranked by a prefix -------------------------

def test_scoring_gives_null_past_the_context_and_runs_nothing_when_no_step_fits(saved):
    prm = new_prm(max_position_embeddings=64)
    rows = score([PROBLEM] * 3, [SHORT, CUT, NONE_FIT], prm)
    assert [[s is None for s in row] for row in rows] == [[False, False], [False, True],
                                                         [True, True]]


def test_eval_bon_counts_candidates_past_the_context_and_ranks_them_below(saved, tmp_path,
                                                                          capsys):
    """Problem p: the right candidate is cut, so min/last/prod pick the wrong whole one (never
    the cut one by its prefix); problem q: no candidate is whole, no PRM pick, a miss."""
    write_jsonl(tmp_path / "c.jsonl", [
        {"id": "p", "problem": PROBLEM, "gold_answer": "10",
         "candidates": [{"answer": "10", "steps": CUT, "correct": True},
                        {"answer": "9", "steps": SHORT, "correct": False}]},
        {"id": "q", "problem": PROBLEM, "gold_answer": "10",
         "candidates": [{"answer": "10", "steps": CUT, "correct": True},
                        {"answer": "9", "steps": NONE_FIT, "correct": False}]}])
    out = tmp_path / "bon"
    status = main(["eval", "bon", str(tmp_path / "c.jsonl"), "--model", str(saved["short"]),
                   "--group-by", "string", "--n", "2", "--out", str(out)])
    printed = " ".join(capsys.readouterr().out.split())
    assert status == 0
    m = json.loads((out / "metrics.json").read_text())["benchmarks"]["c"]
    assert m["past_context"] == {"candidates": 3, "steps": 4, "no_pick": {"2": 1},
                                 "nothing_fit": False}
    for method in ("last", "min", "prod", "mean", "vote_min"):
        assert m["accuracy"][method]["2"] == 0.0, method
    assert m["accuracy"]["pass"]["2"] == 100.0
    assert m["min_on_final_step"]["n_responses"] == 1  # the one scored whole
    assert m["min_on_final_step"]["past_context"] == {"responses": 3, "steps": 4}
    picks = {r["id"]: r["picks"] for r in map(json.loads, (out / "predictions.jsonl")
                                              .read_text().splitlines())}
    assert picks["p"]["min"]["index"] == 1 and picks["q"]["min"]["index"] is None
    assert "warning: c: 3 candidates have 4 steps past the PRM's context" in printed
    assert "1 at N=2" in printed


def test_eval_bon_when_no_step_fits_keeps_the_methods_null_and_exits_1(saved, tmp_path,
                                                                       capsys):
    write_jsonl(tmp_path / "c.jsonl", [{
        "id": "p", "problem": PROBLEM, "gold_answer": "10",
        "candidates": [{"answer": "10", "steps": NONE_FIT, "correct": True},
                       {"answer": "9", "steps": NONE_FIT, "correct": False}]}])
    out = tmp_path / "bon"
    status = main(["eval", "bon", str(tmp_path / "c.jsonl"), "--model", str(saved["short"]),
                   "--group-by", "string", "--out", str(out)])
    printed = " ".join(capsys.readouterr().out.split())
    assert status == 1
    metrics = json.loads((out / "metrics.json").read_text())
    m = metrics["benchmarks"]["c"]
    assert {"last", "min", "prod", "mean", "vote_min"} <= set(m["accuracy"])
    assert m["accuracy"]["min"] == {"1": None, "2": None}
    assert m["accuracy"]["maj"]["2"] is not None  # what needs no PRM is still measured
    assert m["past_context"]["nothing_fit"] and metrics["past_context"]["nothing_fit"]
    assert "no candidate fits the PRM's context" in printed
    assert "nothing of the PRM was evaluated" in printed


def pb_items() -> list[dict]:
    return [{"id": f"i{k}", "subset": "toy", "problem": PROBLEM, "steps": steps,
             "label": label, "final_answer_correct": label < 0}
            for k, (steps, label) in enumerate([(SHORT, -1), (CUT, -1), (SHORT, 1),
                                                (CUT, 1), (NONE_FIT, 0)])]


def test_processbench_counts_items_past_the_context_and_never_calls_them_correct():
    items = pb_items()
    rows = score([r["problem"] for r in items], [r["steps"] for r in items],
                 new_prm(max_position_embeddings=64))
    scores = {r["id"]: row for r, row in zip(items, rows)}
    # threshold 0: no step is called an error, so only a fully read item can be called correct
    m = processbench.evaluate(items, step_scores=scores, threshold=0.0, per_item=True)
    assert m["past_context"] == {"items": 3, "steps": 4, "no_prediction": 3,
                                 "nothing_fit": False}
    predicted = {p["id"]: p["prediction"] for p in m["items"]}
    assert predicted == {"i0": -1, "i1": None, "i2": -1, "i3": None, "i4": None}
    toy = m["subsets"]["toy"]
    assert toy["correct_acc"] == 50.0 and toy["error_acc"] == 0.0  # the cut ones: misses
    # an error found before the cut is still the earliest error
    assert processbench.predicted_error([0.9, 0.1, None], 0.5) == 1
    assert processbench.predicted_error([0.9, None, 0.1], 0.5) is None


def test_processbench_when_no_item_fits_is_null_and_exits_1(tmp_path, capsys):
    items = pb_items()
    write_jsonl(tmp_path / "items.jsonl", items)
    write_jsonl(tmp_path / "scores.jsonl", [{"id": r["id"], "step_scores": [None] * 2}
                                            for r in items])
    m = processbench.metrics(items, step_scores={r["id"]: [None, None] for r in items})
    assert m["subsets"]["toy"]["f1"] is None and m["average_f1"] is None
    assert "no item has a prediction" in m["subsets"]["toy"]["note"]
    status = main(["eval", "processbench", "-b", str(tmp_path / "items.jsonl"), "--scores",
                   str(tmp_path / "scores.jsonl"), "--out", str(tmp_path / "pb")])
    printed = " ".join(capsys.readouterr().out.split())
    assert status == 1 and "no item has a prediction: all 5 have steps past" in printed
    written = json.loads((tmp_path / "pb" / "metrics.json").read_text())
    assert written["past_context"]["nothing_fit"] and written["average_f1"] is None


def test_ranking_leaves_solutions_past_the_context_out_of_the_pairs_and_counts_them():
    solutions = [{"id": f"s{k}", "problem_id": "p", "problem": PROBLEM, "steps": steps,
                  "final_answer_correct": ok}
                 for k, (steps, ok) in enumerate([(SHORT, True), (CUT, False),
                                                  (SHORT[:1], False), (NONE_FIT, True)])]
    rows = score([PROBLEM] * 4, [s["steps"] for s in solutions],
                 new_prm(max_position_embeddings=64))
    measured = ranking(solutions, {s["id"]: row for s, row in zip(solutions, rows)})
    assert measured["past_context"] == {"solutions": 2, "steps": 3}
    assert measured["answer"]["pairs"] == 1  # s0 against s2: the only whole pair


def test_the_final_step_diagnostic_counts_only_responses_scored_whole():
    diagnostic = min_on_final_step([[0.9, 0.1], [0.9, None], [None, None], [0.5]])
    assert diagnostic == {"n_responses": 1, "share": 100.0,
                          "past_context": {"responses": 2, "steps": 3}}
    sets = [{"id": "p", "gold_answer": "1", "candidates": [
        {"answer": "1", "correct": True, "step_scores": [0.2, None]},
        {"answer": "2", "correct": False, "step_scores": [0.1, 0.3]}]}]
    m = bon.evaluate_set(sets, ns=[2])
    assert m["accuracy"]["last"][2] == 0.0  # the whole one, though its last step is low
    assert m["min_on_final_step"]["n_responses"] == 1
