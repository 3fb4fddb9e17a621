"""Step-label synthesis: MC estimation (linear and binary), judges, consensus, label quality."""

from __future__ import annotations

import json

import pytest

from prmkit import config
from prmkit.annotate import consensus, judge, mc
from prmkit.annotate.quality import label_quality
from prmkit.backends import BackendConfig, Completion, SamplingParams
from prmkit.labels import Source, parse_critique, quality, vote
from prmkit.errors import InputError
from prmkit.records import read_records, write_jsonl

GOLD = "7"


class ScriptedBackend:
    """Completions decided by the prefix: from a prefix holding a step marked BAD no completion
    reaches the gold answer; otherwise sample j succeeds when j < ``good``. Prompts are
    recorded, so tests can count rollouts."""

    tokenizer = None

    def __init__(self, good: int = 1, text_for_bad: str = "The answer is \\boxed{3}."):
        self.good, self.text_for_bad, self.prompts = good, text_for_bad, []

    def generate(self, prompts, params: SamplingParams):
        self.prompts += prompts
        out = []
        for p in prompts:
            if "BAD" in p:
                out.append([Completion(self.text_for_bad, "stop", 5)] * params.n)
            else:
                out.append([Completion(f"The answer is \\boxed{{{GOLD if j < self.good else 1}}}.",
                                       "stop", 5) for j in range(params.n)])
        return out


def solution(sid: str, steps: list[str], **extra) -> dict:
    correct = "BAD" not in "".join(steps)
    return {"id": sid, "problem": "P", "steps": steps, "gold_answer": GOLD,
            "final_answer_correct": correct, **extra}


def annotate(solutions, mode, k=4, backend=None, **cfg):
    backend = backend or ScriptedBackend()
    config = mc.MCConfig(solutions="-", model="-", prompt="plain", k=k, mode=mode,
                         max_new_tokens=8, **cfg)
    return mc.MCWorker(config, backend)(solutions, 0), backend


STEPS = ["a", "b", "BAD c", "d", "e", "The answer is 2."]


@pytest.mark.parametrize("mode", ["linear", "binary"])
def test_mc_finds_the_first_step_no_completion_recovers_from(mode):
    [record], backend = annotate([solution("s", STEPS)], mode)
    m = record["mc"]
    assert m["first_error"] == 2
    assert m["hard"][:3] == [1, 1, 0]
    assert m["train_mask"] == [True, True, True, False, False, False]
    if mode == "linear":  # every prefix but the last (the solution itself) costs K rollouts
        assert m["rollouts"] == 4 * 5 == len(backend.prompts) * 4
        assert m["values"] == [0.25, 0.25, 0.0, 0.0, 0.0, 0.0]
        assert m["correct"][:5] == [1, 1, 0, 0, 0]
    else:  # binary search over steps 0..5 with step 5 known bad: probes 2, then 1
        assert m["rollouts"] == 8 and m["hard"] == [1, 1, 0, None, None, None]
        assert m["values"][3:5] == [None, None] and m["values"][2] == 0.0
    assert m["outcomes"]["correct"] + m["outcomes"]["incorrect"] == m["rollouts"]


def test_binary_costs_nothing_on_a_correct_answer_and_stays_close_to_linear():
    good = solution("good", ["a", "b", "c", "The answer is 7."])
    [record], backend = annotate([good], "binary")
    assert record["mc"]["first_error"] == -1 and record["mc"]["rollouts"] == 0
    assert backend.prompts == []
    many = [solution(f"s{i}", ["x"] * i + ["BAD"] + ["y"] * (5 - i)) for i in range(6)]
    linear, _ = annotate(many, "linear")
    binary, _ = annotate(many, "binary")
    assert [r["mc"]["first_error"] for r in binary] == [r["mc"]["first_error"] for r in linear] \
        == list(range(6))
    assert sum(r["mc"]["rollouts"] for r in binary) <= 0.6 * sum(r["mc"]["rollouts"]
                                                                 for r in linear)


def test_a_prefix_shared_by_several_solutions_is_rolled_out_once():
    records, backend = annotate([solution("a", ["x", "y", "BAD"]),
                                 solution("b", ["x", "z", "BAD"])], "linear", k=2)
    assert len(backend.prompts) == 3  # "x" once, then "x y" and "x z"
    assert [r["mc"]["rollouts"] for r in records] == [4, 4]
    assert [r["mc"]["generated"] for r in records] == [4, 2]
    assert records[0]["mc"]["values"][0] == records[1]["mc"]["values"][0]


def test_rollout_prompts_continue_the_exact_prefix():
    _, backend = annotate([solution("s", ["one  ", "two", "three"])], "linear", k=1)
    assert backend.prompts == ["P\n\none  \n\n", "P\n\none  \n\ntwo\n\n"]


def test_hard_threshold_and_soft_values():
    [record], _ = annotate([solution("s", ["a", "b", "The answer is 7."])], "linear",
                           backend=ScriptedBackend(good=1), threshold=0.25)
    # one of four completions succeeds: value 0.25 is not above the threshold 0.25
    assert record["mc"]["values"][:2] == [0.25, 0.25] and record["mc"]["first_error"] == 0


def test_unreadable_and_truncated_rollouts_are_counted_not_wrong():
    backend = ScriptedBackend(text_for_bad="no answer here")
    [record], _ = annotate([solution("s", ["BAD", "x", "y"])], "linear", backend=backend,
                           keep_rollouts=True)
    assert record["mc"]["outcomes"]["unparseable"] == 8
    assert record["mc"]["rollout_log"][0][0] == {"text": "no answer here", "answer": None,
                                                 "outcome": "unparseable"}

    class Truncating(ScriptedBackend):
        def generate(self, prompts, params):
            return [[Completion("The answer", "length", 8)] * params.n for _ in prompts]

    [record], _ = annotate([solution("s", ["a", "b"])], "linear", backend=Truncating())
    assert record["mc"]["outcomes"]["length"] == 4 and record["mc"]["hard"][0] == 0


def test_stage_skips_empty_solutions_and_unreadable_gold_then_resumes(tmp_path, tiny_lm):
    rows = [solution("ok", ["a", "The answer is \\boxed{7}."]),
            {"id": "empty", "problem": "P", "steps": [], "gold_answer": "7"},
            solution("nogold", ["a", "b"], gold_answer="\\frac{"),
            solution("ok2", ["a", "b", "c"])]
    write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = mc.MCConfig(solutions=str(tmp_path / "in.jsonl"), model=str(tiny_lm), prompt="plain",
                      k=2, max_new_tokens=6, shard_size=1)
    metrics = mc.run(cfg, tmp_path / "out", progress=False)
    assert metrics["skipped"] == {"count": 2, "reasons": {"no-steps": 1, "gold-unparseable": 1}}
    records = read_records(tmp_path / "out" / "annotated.jsonl", "solution")
    assert [r["id"] for r in records] == ["ok", "ok2"]
    assert all("_line" not in r for r in records)
    assert metrics["rollouts"] == 2 * 1 + 2 * 2 == sum(r["mc"]["rollouts"] for r in records)
    # a complete run is not redone
    before = (tmp_path / "out" / "annotated.jsonl").stat().st_mtime_ns
    mc.run(cfg, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "annotated.jsonl").stat().st_mtime_ns == before


def test_mc_settings_are_checked():
    for field, value in [("mode", "ternary"), ("k", 0), ("threshold", 1.0), ("name", "a.b"),
                         ("k", "four")]:
        with pytest.raises(InputError) as error:
            config.load(mc.MCConfig, given={"solutions": "-", "model": "-", "prompt": "plain",
                                            field: value})
        assert error.value.field == field
    with pytest.raises(InputError, match="give --model") as error:
        config.load(mc.MCConfig, given={"solutions": "-", "prompt": "plain"})


# --- judges -------------------------------------------------------------------------------------

@pytest.mark.parametrize("step,claims", [
    ("Ivy has 2 times as many as Hal:    6*2=12.", [("6*2=12", True)]),
    ("(Leo has 2 more than Oli):        12+2=15.", [("12+2=15", False)]),
    ("Ben gives away 4:  10-4= 6.", [("10-4= 6", True)]),
    ("She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs at $2: 9 * $2 = $18",
     [("16-3-4=9", True), ("9 * $2 = $18", True)]),
    ("$1,200 / 4 = $300, and 10/3 = 3.33 but 10/3=3.4", [("$1,200 / 4 = $300", True),
                                                        ("10/3 = 3.33", True),
                                                        ("10/3=3.4", False)]),
    ("(3 + 4) * 2 = 15", [("(3 + 4) * 2 = 15", False)]),
    ("x = 5, so 2x + 3 = 13 and 20% of 50 = 10", []),  # nothing explicit to recompute
])
def test_rule_judge_recomputes_explicit_arithmetic(step, claims):
    assert judge.arithmetic_claims(step) == claims


def test_rule_judge_flags_the_first_step_with_a_false_claim():
    verdict = judge.rule_verdict(["Half of 48 is 48/2=24.", "24+5=30.", "30*2=60."])
    assert verdict["first_error"] == 1 and verdict["claims"] == 3
    assert verdict["false_claims"] == [{"step": 1, "claim": "24+5=30"}]
    assert judge.rule_verdict(["no numbers", "2+2=4"])["first_error"] == -1


@pytest.mark.parametrize("output,expected", [
    ("The earliest error is in paragraph 2. \\boxed{2}", (2, "ok")),
    ("All correct: \\boxed{-1}", (-1, "ok")),
    ("\\boxed{7}", (None, "out-of-range")),
    ("\\boxed{paragraph 1}", (None, "no-index")),
    ("I cannot tell.", (None, "no-index")),
])
def test_judge_outputs_parse_into_an_index_or_a_counted_status(output, expected):
    assert parse_critique(output, 4) == expected


def test_majority_vote_ties_go_to_the_earliest_error():
    assert vote([2, 2, -1]) == 2
    assert vote([1, -1, None]) == 1
    assert vote([-1, -1, 0]) == -1
    assert vote([None, None]) is None


def test_critique_prompt_tags_paragraphs_from_zero():
    prompt = judge.critique_prompt("What is 1+1?", ["1+1=2.", "The answer is 2."])
    assert "What is 1+1?" in prompt and "\\boxed{}" in prompt
    assert "<paragraph_0>\n1+1=2.\n</paragraph_0>\n\n<paragraph_1>\nThe answer is 2.\n" \
           "</paragraph_1>" in prompt


def test_model_judge_votes_and_logs_every_call_without_crashing():
    class Critic:
        tokenizer = None

        def generate(self, prompts, params):
            outs = ["\\boxed{1}", "no idea", "\\boxed{1}", "\\boxed{9}"]
            return [[Completion(outs[j % 4], "stop", 3) for j in range(params.n)]
                    for _ in prompts]

    cfg = judge.JudgeConfig(solutions="-", kind="model", model="-", samples=4)
    [record] = judge.ModelJudgeWorker(cfg, Critic())([solution("s", ["a", "b", "c"])], 0)
    v = record["judge"]
    assert v["first_error"] == 1 and v["votes"] == [1, None, 1, None]
    assert v["statuses"] == ["ok", "no-index", "ok", "out-of-range"]
    assert len(v["log"]) == 4 and v["log"][1]["output"] == "no idea"
    assert v["log"][0]["prompt_sha256"] == v["prompt_sha256"]


def test_openai_backend_against_a_local_compatible_server(tmp_path, monkeypatch):
    pytest.importorskip("openai")
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("Authorization"), body))
            content = "Paragraph 1 is wrong. \\boxed{1}" if "2+2=5" in \
                body["messages"][0]["content"] else "fine \\boxed{-1}"
            reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": i, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content}}
                                 for i in range(body["n"])],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 2 * body["n"],
                               "total_tokens": 3}}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    write_jsonl(tmp_path / "in.jsonl", [solution("bad", ["1+1=2.", "2+2=5."]),
                                        solution("good", ["1+1=2."])])
    cfg = judge.JudgeConfig(solutions=str(tmp_path / "in.jsonl"), kind="model",
                            model="judge-model", samples=3, temperature=0.7)
    try:
        metrics = judge.run(cfg, tmp_path / "out", progress=False, backend=BackendConfig(
            backend="openai", base_url=f"http://127.0.0.1:{server.server_port}/v1"))
    finally:
        server.shutdown()
    records = read_records(tmp_path / "out" / "annotated.jsonl", "solution")
    assert [r["judge"]["first_error"] for r in records] == [1, -1]
    assert metrics["calls"] == 6 and metrics["output_statuses"] == {"ok": 6}
    path, auth, body = seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test-secret"
    assert body["model"] == "judge-model" and body["n"] == 3 and body["temperature"] == 0.7
    log = [json.loads(line) for line in (tmp_path / "out" / "judge_log.jsonl").open()]
    assert len(log) == 6 and log[0]["output"].endswith("\\boxed{1}")
    assert {"prompt_sha256", "params", "status", "index"} <= set(log[0])
    # the key never lands in the run's files
    for f in (tmp_path / "out").rglob("*"):
        assert f.is_dir() or "sk-test-secret" not in f.read_text()


# --- sources, consensus, quality ----------------------------------------------------------------

@pytest.mark.parametrize("spec,value,expected", [
    ("mc.hard", [1, 1, 0, None], 2),
    ("mc.hard", [True, True], -1),
    ("mc.values", [0.5, 0.0, 0.25], 1),
    ("mc.values:0.3", [0.5, 0.25, 0.0], 1),
    ("mc.hard", [1, None, 0], 2),  # unknown steps are skipped
    ("judge.first_error", 3, 3),
    ("judge.first_error", None, None),
])
def test_sources_read_step_labels_or_an_index(spec, value, expected):
    top, field = spec.split(":")[0].split(".")
    assert Source.parse(spec).first_error({top: {field: value}}) == expected


def test_source_quality_counts_negative_steps_from_the_first_error():
    q = quality([1, -1, 2, None], [1, 0, 3, 2], [4, 4, 4, 4])
    assert q["n"] == 3 and q["first_error_accuracy"] == pytest.approx(1 / 3)
    # predicted negatives {1,2,3} + {} + {2,3}; true {1,2,3} + {0..3} + {3}
    assert q["negative_precision"] == pytest.approx(4 / 5)
    assert q["negative_recall"] == pytest.approx(4 / 8)


def annotated_file(tmp_path):
    rows = [
        # (mc hard labels, judge index, truth)
        ([1, 1, 1], -1, -1),
        ([1, 0, 0], 1, 1),
        ([0, 0, 0], 1, 1),
        ([1, 1, 0], -1, 2),
        ([1, 0, 0], None, 1),
    ]
    records = [{"id": f"s{i}", "problem": "P", "steps": ["a", "b", "c"],
                "mc": {"hard": hard, "rollouts": 8}, "judge": {"first_error": j, "calls": 2},
                "truth": {"label": t}} for i, (hard, j, t) in enumerate(rows)]
    write_jsonl(tmp_path / "in.jsonl", records)
    return tmp_path / "in.jsonl"


def test_consensus_keeps_agreement_and_measures_every_source(tmp_path):
    path = annotated_file(tmp_path)
    metrics = consensus.run(consensus.ConsensusConfig(inputs=(str(path),)), tmp_path / "out")
    kept = read_records(tmp_path / "out" / "consensus.jsonl", "solution")
    assert [r["id"] for r in kept] == ["s0", "s1"]
    assert kept[1]["consensus"]["step_labels"] == [1, 0, 0]
    assert metrics["kept"] == 2 and metrics["kept_share"] == pytest.approx(0.4)
    assert metrics["no_verdict"] == {"mc.hard": 0, "judge.first_error": 1}
    counts = metrics["agreement_matrix"]["counts"]
    assert counts["-1"]["-1"] == 1 and counts["0"]["1"] == 1 and counts["1"]["none"] == 1
    q = metrics["quality"]
    assert q["mc.hard"]["first_error_accuracy"] == pytest.approx(4 / 5)
    assert q["judge.first_error"]["first_error_accuracy"] == pytest.approx(3 / 4)
    assert q["consensus"]["first_error_accuracy"] == 1.0 and q["consensus"]["n"] == 2
    table = label_quality(tmp_path / "out" / "annotated.jsonl")
    rows = {row["source"]: row for row in table["rows"]}
    assert set(rows) == {"MC-hard", "judge", "consensus"}  # no mc.values in this file
    assert rows["consensus"]["kept_share"] == pytest.approx(0.4)
    assert rows["consensus"]["rollouts"] == 40 and rows["consensus"]["judge_calls"] == 10
    assert rows["MC-hard"]["rollouts"] == 40 and rows["MC-hard"]["judge_calls"] == 0


def test_consensus_joins_files_by_id_and_names_a_missing_field(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "problem": "P", "steps": ["a", "b"],
                                        "mc": {"hard": [1, 0]}}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "judge": {"first_error": 1}}])
    metrics = consensus.run(consensus.ConsensusConfig(
        inputs=(str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"))), tmp_path / "out")
    assert metrics["kept"] == 1 and "quality" not in metrics  # no reference labels here
    with pytest.raises(InputError) as error:
        consensus.run(consensus.ConsensusConfig(inputs=(str(tmp_path / "a.jsonl"),)),
                      tmp_path / "out2")
    assert (error.value.line, error.value.field) == (1, "judge.first_error")
    assert error.value.path.endswith("a.jsonl")
