"""Judges (prmkit.annotate.judge): the rule judge's arithmetic, the critique prompt, the model
judge's votes and log, and an OpenAI-compatible server."""
from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from helpers import solution

from prmkit.annotate import judge
from prmkit.backends import BackendConfig, Completion
from prmkit.critique_prompt import critique_prompt
from prmkit.records import read_records, write_jsonl


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


def test_critique_prompt_tags_paragraphs_from_zero():
    prompt = critique_prompt("What is 1+1?", ["1+1=2.", "The answer is 2."], judge.TEMPLATE)
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


@contextmanager
def chat_server(answer):
    """A local OpenAI-compatible chat server: ``answer(body)`` writes every choice's content;
    yields its base URL and the (path, Authorization header, body) of every request."""
    import http.server
    import threading
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("Authorization"), body))
            n = body.get("n", 1)
            data = json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                               "model": body["model"], "choices": [
                                   {"index": i, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": answer(body)}}
                                   for i in range(n)],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 2 * n,
                                         "total_tokens": 1 + 2 * n}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def test_openai_backend_against_a_local_compatible_server(tmp_path, monkeypatch):
    pytest.importorskip("openai")

    def answer(body):
        return "Paragraph 1 is wrong. \\boxed{1}" if "2+2=5" in \
            body["messages"][0]["content"] else "fine \\boxed{-1}"

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    write_jsonl(tmp_path / "in.jsonl", [solution("bad", ["1+1=2.", "2+2=5."]),
                                        solution("good", ["1+1=2."])])
    cfg = judge.JudgeConfig(solutions=str(tmp_path / "in.jsonl"), kind="model",
                            model="judge-model", samples=3, temperature=0.7)
    with chat_server(answer) as (url, seen):
        metrics = judge.run(cfg, tmp_path / "out", progress=False,
                            backend=BackendConfig(backend="openai", base_url=url))
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



def test_the_judge_prompt_is_a_file_with_either_placeholder_for_the_steps(tmp_path):
    """prmkit's own prompt by default; a user's file (ProcessBench's official template names the
    steps {tagged_response}) fills the same tagged paragraphs; a file without the placeholders
    is refused before any work."""
    from prmkit.annotate.judge import JudgeConfig
    from prmkit.errors import InputError
    official = tmp_path / "official.txt"
    official.write_text("[Math Problem]\n\n{problem}\n\n[Solution]\n\n{tagged_response}\n\n"
                        "Please put your final answer (i.e., the index) in \\boxed{{}}.\n")
    text = critique_prompt("What is {x}?", ["1+1=2.", "So {2}."], official)
    # filled as ProcessBench's script fills it (str.format): single braces reach the judge,
    # and braces in the problem or the steps are left as they are
    assert text == ("[Math Problem]\n\nWhat is {x}?\n\n[Solution]\n\n<paragraph_0>\n1+1=2.\n"
                    "</paragraph_0>\n\n<paragraph_1>\nSo {2}.\n</paragraph_1>\n\n"
                    "Please put your final answer (i.e., the index) in \\boxed{}.\n")
    JudgeConfig(solutions="s.jsonl", kind="model", model="m",
                judge_prompt=str(official)).validate()
    bad = tmp_path / "bad.txt"
    bad.write_text("{problem} only\n")
    with pytest.raises(InputError) as error:
        JudgeConfig(solutions="s.jsonl", kind="model", model="m",
                    judge_prompt=str(bad)).validate()
    assert error.value.field == "judge_prompt"



@pytest.mark.parametrize("text,why", [
    ("{problem} and {tagged_response} in \\boxed{}", "a literal brace is written twice"),
    ("{problem} {tagged_response} {answer}", "KeyError"),
    ("{tagged_problem} only", "needs the problem"),
])
def test_a_template_prmkit_cannot_fill_is_refused_before_any_work(tmp_path, text, why):
    from prmkit.errors import InputError
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(InputError) as error:
        judge.JudgeConfig(solutions="s", kind="model", model="m",
                          judge_prompt=str(tmp_path / "t.txt")).validate()
    assert error.value.field == "judge_prompt" and why in str(error.value), str(error.value)


def test_the_papers_judge_numbers_paragraphs_from_one_and_reads_its_conclusion():
    cfg = judge.JudgeConfig(solutions="-", kind="model", model="-", judge_prompt="paper",
                            samples=5)
    prompt = critique_prompt("What is 1+1?", ["1+1=2.", "So 3."],
                                   judge.template_path("paper"), cfg.style.first_paragraph)
    assert "<math_problem>\nWhat is 1+1?\n</math_problem>" in prompt
    assert "<paragraph_1>\n1+1=2.\n</paragraph_1>\n\n<paragraph_2>\nSo 3.\n</paragraph_2>" in prompt
    assert "<paragraph_0>" not in prompt and "{" not in prompt

    outputs = [  # recorded in the paper's format: paragraph 2 (0-based 1) is wrong
        "<analysis_1>\n1+1=2 holds.\n</analysis_1>\n<analysis_2>\nThe sum is 2, not 3: "
        "wrong.\n</analysis_2>\n<conclusion>Incorrect</conclusion>",
        "<analysis_1>fine</analysis_1><analysis_2>3 is wrong</analysis_2>"
        "<conclusion> Incorrect </conclusion>",
        "<analysis_1>fine</analysis_1><analysis_2>fine</analysis_2><conclusion>Correct</conclusion>",
        "<analysis_1>fine</analysis_1><analysis_2>I think",                 # cut short
        "<analysis_7>?</analysis_7><conclusion>Incorrect</conclusion>",     # no such paragraph
    ]

    class Critic:
        tokenizer = None

        def generate(self, prompts, params):
            return [[Completion(o, "length" if i == 3 else "stop", 9)
                     for i, o in enumerate(outputs)] for _ in prompts]

    [record] = judge.ModelJudgeWorker(cfg, Critic())([solution("s", ["1+1=2.", "So 3."])], 0)
    v = record["judge"]
    assert v["votes"] == [1, 1, -1, None, None] and v["first_error"] == 1
    assert v["statuses"] == ["ok", "ok", "ok", "truncated", "out-of-range"]
    metrics = judge.summarize([record], [])
    assert metrics["output_statuses"] == {"ok": 3, "truncated": 1, "out-of-range": 1}


def test_the_judges_prompts_reach_an_openai_server_as_filled(tmp_path, monkeypatch):
    """Through the openai backend: ProcessBench's official template arrives with single
    braces, and recorded critiques in the paper's format give the right first error."""
    pytest.importorskip("openai")

    def answer(body):
        prompt = body["messages"][0]["content"]
        wrong = "2+2=5" in prompt
        if "\\boxed{}" in prompt:  # the official template: answered its way
            return "\\boxed{1}" if wrong else "\\boxed{-1}"
        return ("<analysis_1>ok</analysis_1><analysis_2>2+2 is 4</analysis_2>"
                "<conclusion>Incorrect</conclusion>" if wrong else
                "<analysis_1>ok</analysis_1><conclusion>Correct</conclusion>")

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    write_jsonl(tmp_path / "in.jsonl", [solution("bad", ["1+1=2.", "2+2=5."]),
                                        solution("good", ["1+1=2."])])
    official = tmp_path / "official.txt"
    official.write_text("{problem}\n\n{tagged_response}\n\nPut the index in \\boxed{{}}.")
    with chat_server(answer) as (url, seen):
        backend = BackendConfig(backend="openai", base_url=url)
        for name, prompt in (("paper", "paper"), ("official", str(official))):
            cfg = judge.JudgeConfig(solutions=str(tmp_path / "in.jsonl"), kind="model",
                                    model="judge-model", judge_prompt=prompt)
            judge.run(cfg, tmp_path / name, progress=False, backend=backend)
            verdicts = {r["id"]: r["judge"]["first_error"] for r in read_records(
                tmp_path / name / "annotated.jsonl", "solution")}
            assert verdicts == {"bad": 1, "good": -1}, name
    received = [body["messages"][0]["content"] for _, _, body in seen]
    paper, official_prompts = received[:2], received[2:]
    assert all("<paragraph_1>\n1+1=2.\n</paragraph_1>" in p for p in paper)
    assert all(p.endswith("Put the index in \\boxed{}.") and "{{" not in p
               for p in official_prompts)
