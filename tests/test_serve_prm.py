"""The reward server (prmkit serve --prm, prmkit.serving.reward): a Qwen2.5-Math-PRM release
(tiny, the real Qwen2.5 vocabulary) served over HTTP gives exactly prmkit score's step scores
through /v1/step_scores and vLLM's /pooling; requests that arrive together share forward
passes; every bad request is a 4xx naming its field, a full queue a 503, and the server keeps
serving correct scores after them."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import CHATML, QWEN_SYSTEM, qwen_tokenizer, release_folder
from test_serve import SOLUTIONS, Client
from transformers import Qwen2Config

from prmkit.cli import main
from prmkit.prm.layout import encode
from prmkit.prm.model import build_prm, load_prm, save_prm
from prmkit.prm.score import score
from prmkit.records import write_jsonl
from prmkit.serving.reward import serve_prm_in_background
from prmkit.toyworld.tokenizer import build_char_tokenizer

PROBLEMS = [s["problem"] for s in SOLUTIONS]
STEPS = [s["steps"] for s in SOLUTIONS]


@pytest.fixture(scope="module")
def prms(tmp_path_factory):
    tokenizer = qwen_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    tokenizer.chat_template = CHATML
    root = tmp_path_factory.mktemp("prms")
    return {"prm": release_folder(root, tokenizer),
            "orm": release_folder(root, tokenizer, "Qwen2ForRewardModel", outputs=1,
                                  name="orm")}


@pytest.fixture(scope="module")
def served(prms):
    httpd, url = serve_prm_in_background(str(prms["prm"]), name="prm", device="cpu",
                                         dtype="float32")
    yield Client(httpd.server_port), load_prm(prms["prm"], dtype="float32", device="cpu")
    httpd.shutdown()
    httpd.server_close()


def close(a, b, tolerance=1e-6) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or abs(x - y) <= tolerance for x, y in zip(a, b))


def test_step_scores_are_prmkit_scores_one_solution_or_many(served):
    client, prm = served
    local = score(PROBLEMS, STEPS, prm)
    status, one, _ = client.post("/v1/step_scores", {"problem": PROBLEMS[0], "steps": STEPS[0]})
    assert status == 200 and close(one["step_scores"], local[0])
    status, many, _ = client.post("/v1/step_scores", {"solutions": [
        {"problem": p, "steps": s} for p, s in zip(PROBLEMS, STEPS)]})
    assert status == 200 and all(close(a, b) for a, b in zip(many["step_scores"], local))


def test_pooling_answers_as_vllm_serves_qwen_prm(served):
    """The client lays the text out as Qwen2.5-Math-PRM's card does; the answer is the
    [negative, positive] pair at every <extra_0>."""
    client, prm = served
    [local] = score(PROBLEMS[:1], STEPS[:1], prm)
    messages = [{"role": "system", "content": QWEN_SYSTEM},
                {"role": "user", "content": PROBLEMS[0]},
                {"role": "assistant", "content": "<extra_0>".join(STEPS[0]) + "<extra_0>"}]
    text = prm.tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=False)
    status, reply, _ = client.post("/pooling", {"model": "prm", "input": text})
    assert status == 200 and reply["object"] == "list" and reply["model"] == "prm"
    [item] = reply["data"]
    assert item["object"] == "pooling" and item["index"] == 0
    assert close([pos for _, pos in item["data"]], local)
    assert all(abs(neg + pos - 1) < 1e-6 for neg, pos in item["data"])
    assert reply["usage"]["prompt_tokens"] == len(prm.tokenizer(text)["input_ids"])
    status, chat, _ = client.post("/pooling", {"model": "prm", "messages": messages})
    assert status == 200 and chat["data"][0]["data"] == item["data"]
    status, listed, _ = client.post("/pooling", {"input": [text, text]})
    assert status == 200 and [d["index"] for d in listed["data"]] == [0, 1]


def test_requests_that_arrive_together_share_forward_passes(served):
    client, prm = served
    local = score(PROBLEMS, STEPS, prm)
    _, before = client.get("/health")
    start = threading.Barrier(16)

    def ask(i: int):
        start.wait()
        return client.post("/v1/step_scores", {"problem": PROBLEMS[i % 2],
                                               "steps": STEPS[i % 2]})
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(ask, range(16)))
    assert all(status == 200 and close(r["step_scores"], local[i % 2])
               for i, (status, r, _) in enumerate(replies))
    _, after = client.get("/health")
    batches = after["batches"] - before["batches"]
    assert batches < 16  # some requests were scored together


@pytest.mark.parametrize("path,body,status,param", [
    ("/v1/step_scores", {"problem": "p"}, 400, "body.steps"),
    ("/v1/step_scores", {"problem": "p", "steps": []}, 400, "body.steps"),
    ("/v1/step_scores", {"problem": 3, "steps": ["a"]}, 400, "body.problem"),
    ("/v1/step_scores", {"problem": "p", "steps": ["a", 2]}, 400, "body.steps[1]"),
    ("/v1/step_scores", {"problem": "p", "steps": ["a"], "temperature": 1}, 400, "body"),
    ("/v1/step_scores", {"solutions": []}, 400, "solutions"),
    ("/v1/step_scores", {"solutions": [{"problem": "p", "steps": ["a"]}] * 300}, 413,
     "solutions"),
    ("/v1/step_scores", [1, 2], 400, None),
    ("/v1/step_scores", b"{not json", 400, None),
    ("/pooling", {"model": "other", "input": "x"}, 404, "model"),
    ("/pooling", {"input": "x", "messages": []}, 400, "input"),
    ("/pooling", {"input": ""}, 400, "input"),
    ("/pooling", {"input": [10**9]}, 400, "input"),
    ("/pooling", {"input": "x", "encoding_format": "base64"}, 400, "encoding_format"),
    ("/pooling", {"input": "x", "truncate_prompt_tokens": 5}, 400, "truncate_prompt_tokens"),
    ("/pooling", {"input": {"a": 1}}, 400, "input"),
    ("/pooling", {"messages": [{"role": "user"}]}, 400, "messages"),
])
def test_bad_requests_are_refused_naming_the_field_and_the_server_keeps_serving(
        served, path, body, status, param):
    client, prm = served
    got, reply, _ = client.post(path, body)
    assert got == status, reply
    assert reply["error"]["param"] == param, reply
    [local] = score(PROBLEMS[:1], STEPS[:1], prm)
    _, ok, _ = client.post("/v1/step_scores", {"problem": PROBLEMS[0], "steps": STEPS[0]})
    assert close(ok["step_scores"], local)


def test_an_outcome_model_is_served_a_prefix_at_a_time_and_refused_on_pooling(prms):
    httpd, _ = serve_prm_in_background(str(prms["orm"]), name="orm", device="cpu",
                                       dtype="float32")
    try:
        client = Client(httpd.server_port)
        local = score(PROBLEMS, STEPS, load_prm(prms["orm"], dtype="float32", device="cpu"))
        status, many, _ = client.post("/v1/step_scores", {"solutions": [
            {"problem": p, "steps": s} for p, s in zip(PROBLEMS, STEPS)]})
        assert status == 200 and all(close(a, b) for a, b in zip(many["step_scores"], local))
        status, reply, _ = client.post("/pooling", {"input": "x"})
        assert status == 400 and "/v1/step_scores" in reply["error"]["message"]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_full_queue_answers_503_and_nothing_is_lost(prms):
    httpd, _ = serve_prm_in_background(str(prms["prm"]), name="prm", device="cpu",
                                       dtype="float32", max_queue=1, max_batch=1)
    try:
        client = Client(httpd.server_port)
        body = {"solutions": [{"problem": PROBLEMS[1], "steps": STEPS[1] * 40}] * 8}
        with ThreadPoolExecutor(12) as pool:
            statuses = [s for s, _, _ in pool.map(lambda _: client.post("/v1/step_scores",
                                                                         body), range(12))]
        assert 503 in statuses and 200 in statuses and set(statuses) <= {200, 503}
        status, reply = client.get("/health")
        assert status == 200 and reply["waiting"] == 0
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_prmkit_score_through_the_server_equals_local_scoring(served, prms, tmp_path):
    """The served PRM as a scorer: laid out here, sent as token ids to /pooling (what vLLM
    serves), every step's score the local one; a step past max_length is null, unsent."""
    client, prm = served
    write_jsonl(tmp_path / "s.jsonl", SOLUTIONS)
    url = f"http://127.0.0.1:{client.port}/v1"
    assert main(["score", str(tmp_path / "s.jsonl"), "--model", "prm", "--base-url", url,
                 "--tokenizer", str(prms["prm"]), "--out", str(tmp_path / "out")]) == 0
    scored = [json.loads(x) for x in (tmp_path / "out" / "scores.jsonl").open()]
    local = score(PROBLEMS, STEPS, prm)
    assert all(close(r["step_scores"], want) for r, want in zip(scored, local))
    cut = len(encode(prm, PROBLEMS[0], STEPS[0][:2]).input_ids)
    assert main(["score", str(tmp_path / "s.jsonl"), "--model", "prm", "--base-url", url,
                 "--tokenizer", str(prms["prm"]), "--max-length", str(cut),
                 "--out", str(tmp_path / "cut")]) == 0
    [first, _] = [json.loads(x) for x in (tmp_path / "cut" / "scores.jsonl").open()]
    assert close(first["step_scores"], local[0][:2] + [None])
    # a format whose steps end in no token of their own cannot be served so: said at once
    assert main(["score", str(tmp_path / "s.jsonl"), "--model", "prm", "--base-url", url,
                 "--tokenizer", str(prms["prm"]), "--model-format", "plain",
                 "--out", str(tmp_path / "plain")]) == 2
    assert not (tmp_path / "plain").exists()


def test_a_prm_that_reads_step_likelihoods_is_served_on_step_scores_alone(tmp_path):
    """/pooling's text marks no step's own tokens, which the likelihood readout reads: refused,
    never answered with the features zeroed; /v1/step_scores lays the steps out itself."""
    tokenizer = build_char_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer) + 1, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id)
    folder = save_prm(build_prm(config, tokenizer, fmt="plain", readout="likelihood"),
                      tmp_path / "likelihood")
    httpd, _ = serve_prm_in_background(str(folder), name="l", device="cpu", dtype="float32")
    try:
        client = Client(httpd.server_port)
        status, reply, _ = client.post("/pooling", {"input": "1+1=2.\n\n"})
        assert status == 400 and "/v1/step_scores" in reply["error"]["message"]
        steps = ["1+1=2.", "2+2=4."]
        [local] = score(["add"], [steps], load_prm(folder, dtype="float32", device="cpu"))
        status, reply, _ = client.post("/v1/step_scores", {"problem": "add", "steps": steps})
        assert status == 200 and close(reply["step_scores"], local)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_best_of_n_through_the_server_equals_local_scoring(served, prms, tmp_path):
    client, _ = served
    sets = [{"id": "p", "problem": SOLUTIONS[0]["problem"], "gold_answer": "7", "candidates": [
        {"steps": SOLUTIONS[0]["steps"], "answer": "7"},
        {"steps": SOLUTIONS[0]["steps"][:2] + ["So \\boxed{8}."], "answer": "8"}]}]
    write_jsonl(tmp_path / "toy.jsonl", sets)
    url = f"http://127.0.0.1:{client.port}/v1"
    common = ["eval", "bon", str(tmp_path / "toy.jsonl"), "--dtype", "float32",
              "--device", "cpu"]
    assert main([*common, "--model", str(prms["prm"]), "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--model", "prm", "--base-url", url, "--tokenizer",
                 str(prms["prm"]), "--out", str(tmp_path / "served")]) == 0
    local, served_picks = ([json.loads(x) for x in (tmp_path / d / "predictions.jsonl").open()]
                           for d in ("local", "served"))
    assert served_picks == local and "min" in local[0]["picks"]  # ranked by the PRM
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text())["benchmarks"]
               for d in ("local", "served")]
    assert metrics[0] == metrics[1]
