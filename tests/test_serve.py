"""Generation servers (prmkit.serve, the openai backend): a local OpenAI-compatible server on a
tiny Qwen2 with the real Qwen2.5 vocabulary and a ChatML template records the text its model
is given; Monte Carlo rollouts must reach it as exactly the template-applied problem plus the
given steps, through the completions API and through the chat API's
continue_final_message.

Then the server under hostile and careless clients: every bad field a 400 naming it, bodies
that are not JSON objects a 400, oversized ones a 413, unknown models a 404, streaming that adds
up to the whole answer, 50 concurrent clients all answered, a client that disconnects stopping
its generation, a full queue a 503, and bad options failing before serving with one line."""
from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import tiny_chat_policy

from prmkit.cli import main
from prmkit.prompting import PROMPTS
from prmkit.records import write_jsonl
from prmkit.serve import serve_in_background
from prmkit.steps import STEP_SEPARATOR, join_steps

SOLUTIONS = [
    {"id": "a", "problem": "Janet has 3 apples and buys 4 more. How many now?",
     "steps": ["She starts with 3 apples.", "3 + 4 = 7.", "The answer is \\boxed{7}."],
     "gold_answer": "7"},
    {"id": "b", "problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?",
     "steps": ["Use a common denominator: $\\frac{2}{4} + \\frac{1}{4}$.",
               "  That is $\\frac{3}{4}$ (note the spaces).", "So \\boxed{\\frac{3}{4}}."],
     "gold_answer": "\\frac{3}{4}"},
]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """A tiny random Qwen2 causal LM with Qwen2.5's vocabulary and a ChatML template."""
    return tiny_chat_policy(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="module")
def served(policy, tmp_path_factory):
    """One server for the module (loading the model is most of a test's time); tests that read
    its record empty it first."""
    record = tmp_path_factory.mktemp("record") / "received.jsonl"
    httpd, url = serve_in_background(str(policy[0]), name="policy", record=record,
                                     device="cpu", dtype="float32")
    yield httpd, record, url
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(served, monkeypatch):
    pytest.importorskip("openai", reason="needs the openai extra")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    httpd, record, url = served
    record.unlink(missing_ok=True)
    yield url, record


def received(record) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def expected_prefixes(tokenizer) -> set[str]:
    """The model card way: the system prompt and the problem through the chat template, the
    assistant turn opened, then the steps so far and the blank line after them."""
    system = (PROMPTS / "qwen_math_system.txt").read_text()
    out = set()
    for s in SOLUTIONS:
        head = tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": s["problem"]}],
            tokenize=False, add_generation_prompt=True)
        out |= {head + join_steps(s["steps"][:k]) + STEP_SEPARATOR
                for k in range(1, len(s["steps"]))}
    return out


@pytest.mark.parametrize("api,client_tokenizer", [("completions", True), ("chat", False),
                                                  ("chat", True)])
def test_mc_rollouts_reach_the_server_as_the_exact_prefix(policy, server, tmp_path, api,
                                                          client_tokenizer):
    url, record = server
    write_jsonl(tmp_path / "s.jsonl", SOLUTIONS)
    argv = ["annotate", "mc", str(tmp_path / "s.jsonl"), "--model", "policy", "--prompt",
            "qwen-math", "--backend", "openai", "--base-url", url, "--api", api, "--k", "2",
            "--max-new-tokens", "4", "--out", str(tmp_path / "mc")]
    if client_tokenizer:
        argv += ["--tokenizer", str(policy[0])]
    assert main(argv) == 0
    got = received(record)
    assert {r["api"] for r in got} == {api}
    assert {r["prompt"] for r in got} == expected_prefixes(policy[1])
    assert len(got) == len(expected_prefixes(policy[1]))  # one request a distinct prefix
    annotated = [json.loads(x) for x in (tmp_path / "mc" / "annotated.jsonl").read_text()
                 .splitlines()]
    assert [len(r["mc"]["values"]) for r in annotated] == [3, 3]


def test_the_completions_api_needs_the_template_on_the_client(server, tmp_path, capsys):
    url, record = server
    write_jsonl(tmp_path / "s.jsonl", SOLUTIONS)
    status = main(["annotate", "mc", str(tmp_path / "s.jsonl"), "--model", "policy",
                   "--prompt", "qwen-math", "--backend", "openai", "--base-url", url,
                   "--api", "completions", "--out", str(tmp_path / "mc")])
    assert status == 2 and "chat template" in capsys.readouterr().err
    assert not record.exists()  # nothing was sent


def test_a_raw_text_prompt_through_the_chat_api_is_refused(server, tmp_path, capsys):
    url, _ = server
    write_jsonl(tmp_path / "s.jsonl", SOLUTIONS)
    status = main(["annotate", "mc", str(tmp_path / "s.jsonl"), "--model", "policy",
                   "--prompt", "plain", "--backend", "openai", "--base-url", url,
                   "--out", str(tmp_path / "mc")])
    assert status == 2 and "--api completions" in capsys.readouterr().err


def test_sampling_through_the_chat_api_opens_the_assistant_turn(policy, server, tmp_path):
    url, record = server
    write_jsonl(tmp_path / "p.jsonl", [{"id": s["id"], "problem": s["problem"],
                                        "answer": s["gold_answer"]} for s in SOLUTIONS])
    assert main(["sample", str(tmp_path / "p.jsonl"), "--model", "policy", "--prompt",
                 "qwen-math", "--backend", "openai", "--base-url", url, "--n", "2",
                 "--max-new-tokens", "4", "--out", str(tmp_path / "sample")]) == 0
    heads = {p[:p.index("<|im_start|>assistant\n") + len("<|im_start|>assistant\n")]
             for p in expected_prefixes(policy[1])}
    assert {r["prompt"] for r in received(record)} == heads


# -- the server under hostile clients -------------------------------------------------------------

class Client:
    """Plain HTTP/1.1 on one connection a request, as a hostile or careless client sends it."""

    def __init__(self, port: int):
        self.port = port

    def connect(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def post(self, path: str, body, *, headers: dict | None = None) -> tuple[int, dict, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn = self.connect()
        try:
            conn.request("POST", path, body=data, headers={"Content-Type": "application/json",
                                                           **(headers or {})})
            reply = conn.getresponse()
            return reply.status, _json_or_text(reply.read()), dict(reply.getheaders())
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, dict]:
        conn = self.connect()
        try:
            conn.request("GET", path)
            reply = conn.getresponse()
            return reply.status, _json_or_text(reply.read())
        finally:
            conn.close()

    def raw(self, request: bytes) -> bytes:
        """Send bytes as they are; the reply's bytes, until the server closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
            return reply

    def abandon(self, path: str, body: dict) -> http.client.HTTPConnection:
        """Send a request and read nothing (the caller closes the connection to walk away)."""
        conn = self.connect()
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        return conn

    def wait_for(self, running: int, waiting: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.get("/health")[1] != {"running": running, "waiting": waiting}:
            assert time.monotonic() < deadline, self.get("/health")
            time.sleep(0.02)


def _json_or_text(data: bytes):
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def client(served):
    return Client(served[0].server_port)


# a request long enough to be cancelled mid-way (16 x 512 tokens: seconds on the tiny model)
LONG = {"prompt": "Count to a thousand:", "n": 16, "max_tokens": 512, "temperature": 1.0}
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def _message(**extra) -> dict:
    return {"role": "user", "content": "What is 3 + 4?", **extra}


INVALID = [  # (path, body, the param the 400 names)
    (COMPLETIONS, {"prompt": 7}, "prompt"),
    (COMPLETIONS, {"prompt": ["a", "b"]}, "prompt"),
    (COMPLETIONS, {}, "prompt"),
    (COMPLETIONS, {"prompt": "x", "n": 0}, "n"),
    (COMPLETIONS, {"prompt": "x", "n": 2.7}, "n"),
    (COMPLETIONS, {"prompt": "x", "n": True}, "n"),
    (COMPLETIONS, {"prompt": "x", "n": 1_000_000}, "n"),
    (COMPLETIONS, {"prompt": "x", "n": "2"}, "n"),
    (COMPLETIONS, {"prompt": "x", "max_tokens": 0}, "max_tokens"),
    (COMPLETIONS, {"prompt": "x", "max_tokens": 10**9}, "max_tokens"),
    (COMPLETIONS, {"prompt": "x", "max_tokens": 4.0}, "max_tokens"),
    (COMPLETIONS, {"prompt": "x", "temperature": 2.5}, "temperature"),
    (COMPLETIONS, {"prompt": "x", "temperature": -0.1}, "temperature"),
    (COMPLETIONS, {"prompt": "x", "temperature": "hot"}, "temperature"),
    (COMPLETIONS, {"prompt": "x", "top_p": 0}, "top_p"),
    (COMPLETIONS, {"prompt": "x", "top_p": 1.5}, "top_p"),
    (COMPLETIONS, {"prompt": "x", "seed": 1.5}, "seed"),
    (COMPLETIONS, {"prompt": "x", "seed": 2**64}, "seed"),
    (COMPLETIONS, {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    (COMPLETIONS, {"prompt": "x", "stop": [""]}, "stop"),
    (COMPLETIONS, {"prompt": "x", "stop": 5}, "stop"),
    (COMPLETIONS, {"prompt": "x", "stream": "yes"}, "stream"),
    (COMPLETIONS, {"prompt": "x", "stream_options": {"include_usage": True}}, "stream_options"),
    (COMPLETIONS, {"prompt": "x", "logprobs": 5}, "logprobs"),
    (COMPLETIONS, {"prompt": "x", "frequency_penalty": 0.5}, "frequency_penalty"),
    (COMPLETIONS, {"prompt": "x", "bogus": 1}, "bogus"),
    (COMPLETIONS, {"prompt": "x", "model": 3}, "model"),
    (CHAT, {"messages": []}, "messages"),
    (CHAT, {"messages": "hi"}, "messages"),
    (CHAT, {}, "messages"),
    (CHAT, {"messages": ["hi"]}, "messages[0]"),
    (CHAT, {"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    (CHAT, {"messages": [{"content": "hi"}]}, "messages[0].role"),
    (CHAT, {"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    (CHAT, {"messages": [{"role": "user", "content": {"text": "hi"}}]}, "messages[0].content"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "http://x/y.png"}}]}]}, "messages[0].content[0].type"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages[0].content[0].text"),
    (CHAT, {"messages": [_message(tool_calls=[])]}, "messages[0].tool_calls"),
    (CHAT, {"messages": [_message()], "continue_final_message": True},
     "continue_final_message"),
    (CHAT, {"messages": [_message(), {"role": "assistant", "content": "It is"}],
            "continue_final_message": True, "add_generation_prompt": True},
     "add_generation_prompt"),
    (CHAT, {"messages": [_message()], "max_completion_tokens": 0}, "max_completion_tokens"),
]


@pytest.mark.parametrize("path,body,param", INVALID,
                         ids=[f"{p.split('/')[-1]}:{param}" for p, _, param in INVALID])
def test_every_bad_field_is_a_400_that_names_it(client, path, body, param):
    status, reply, _ = client.post(path, body)
    assert status == 400, reply
    assert reply["error"]["param"] == param and reply["error"]["type"] == "invalid_request_error"
    assert set(reply["error"]) >= {"message", "type", "param"}


@pytest.mark.parametrize("body,says", [
    (b"[1,2]", "not an array"), (b"null", "not null"), (b"", "not valid JSON"),
    (b"{\"prompt\": ", "not valid JSON"), (b"\xff\xfe{}", "not valid JSON"),
    (b"{\"prompt\": \"x\", \"temperature\": NaN}", "NaN"),
    (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    (b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000, "nests too deeply"),
])
def test_a_body_that_is_not_a_json_object_is_a_400(client, body, says):
    status, reply, _ = client.post(COMPLETIONS, body)
    assert status == 400 and says in reply["error"]["message"], reply


def test_an_unknown_model_is_a_404_and_the_served_one_or_none_is_served(client):
    status, reply, _ = client.post(COMPLETIONS, {"prompt": "x", "model": "gpt-4"})
    assert status == 404 and reply["error"]["param"] == "model"
    assert reply["error"]["code"] == "model_not_found"
    for named in ({"model": "policy"}, {}):
        assert client.post(COMPLETIONS, {"prompt": "x", "max_tokens": 2, **named})[0] == 200
    assert client.get("/v1/models")[1]["data"][0]["id"] == "policy"


def test_unknown_routes_and_methods_are_json_errors(client):
    assert client.get("/v1/nowhere")[0] == 404
    status, reply = client.get(COMPLETIONS)
    assert status == 405 and reply["error"]["message"].startswith("GET is not allowed")


def test_a_body_over_the_limit_is_a_413_and_never_read_whole(client):
    status, reply, _ = client.post(COMPLETIONS, b"{\"prompt\": \"" + b"x" * 2**21 + b"\"}")
    assert status == 413, reply
    # a declared Content-Length of a terabyte: refused at once, nothing allocated
    reply = client.raw(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       b"application/json\r\nContent-Length: 1000000000000\r\n\r\n{}")
    assert reply.startswith(b"HTTP/1.1 413") and b"\"invalid_request_error\"" in reply


def test_n_and_max_tokens_are_honoured_within_the_limits(client):
    status, reply, _ = client.post(COMPLETIONS, {"prompt": "x", "n": 3, "max_tokens": 1})
    assert status == 200 and len(reply["choices"]) == 3
    assert reply["usage"]["completion_tokens"] <= 3
    status, reply, _ = client.post(COMPLETIONS, {"prompt": "x", "max_tokens": 16})
    assert reply["usage"]["completion_tokens"] <= 16
    # without max_tokens a completion gets 512 tokens at most (the limit is the context)
    status, reply, _ = client.post(COMPLETIONS, {"prompt": "x", "temperature": 0})
    assert 0 < reply["usage"]["completion_tokens"] <= 512


def test_text_content_parts_reach_the_model_as_text(client, served):
    parts = [{"type": "text", "text": "What is"}, {"type": "text", "text": "3 + 4?"}]
    record = served[1]
    record.unlink(missing_ok=True)
    status, _, _ = client.post(CHAT, {"messages": [{"role": "user", "content": parts}],
                                      "max_tokens": 1})
    assert status == 200
    [got] = received(record)
    assert got["prompt"] == ("<|im_start|>user\nWhat is\n3 + 4?<|im_end|>\n"
                             "<|im_start|>assistant\n")


def _streamed(client: Client, path: str, body: dict) -> list[dict]:
    conn = client.connect()
    conn.request("POST", path, body=json.dumps({**body, "stream": True}).encode(),
                 headers={"Content-Type": "application/json"})
    reply = conn.getresponse()
    assert reply.status == 200 and reply.getheader("content-type").startswith(
        "text/event-stream")
    events = [e for e in reply.read().decode().split("\n\n") if e]
    conn.close()
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    return [json.loads(e[len("data: "):]) for e in events[:-1]]


@pytest.mark.parametrize("path,body", [
    (COMPLETIONS, {"prompt": "Once upon a time", "n": 2, "max_tokens": 40, "seed": 3}),
    (CHAT, {"messages": [_message()], "n": 2, "max_tokens": 40, "seed": 3}),
])
def test_a_stream_adds_up_to_the_answer_without_streaming(client, path, body):
    status, whole, _ = client.post(path, body)
    assert status == 200
    texts = [c.get("text", c.get("message", {}).get("content")) for c in whole["choices"]]
    # a stop string taken from the middle of the first completion: the stream must stop
    # before it exactly as the whole answer does, though the string spans several tokens
    stop = texts[0][len(texts[0]) // 2:][:3]
    cut_status, cut, _ = client.post(path, {**body, "stop": [stop]})
    cut_texts = [c.get("text", c.get("message", {}).get("content")) for c in cut["choices"]]
    assert cut_status == 200 and cut_texts[0] == texts[0][:texts[0].index(stop)]
    for request, expected, whole_reply in ((body, texts, whole),
                                           ({**body, "stop": [stop]}, cut_texts, cut)):
        chunks = _streamed(client, path, {**request, "stream_options": {"include_usage": True}})
        got, finish = ["", ""], [None, None]
        for chunk in chunks[:-1]:
            for choice in chunk["choices"]:
                piece = choice.get("text", choice.get("delta", {}).get("content"))
                got[choice["index"]] += piece or ""
                finish[choice["index"]] = choice["finish_reason"] or finish[choice["index"]]
        assert got == expected
        assert finish == [c["finish_reason"] for c in whole_reply["choices"]]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole_reply["usage"]
    if path == CHAT:
        assert chunks[0]["object"] == "chat.completion.chunk"
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_fifty_concurrent_clients_all_get_the_same_answer(client):
    body = {"prompt": "Hello", "max_tokens": 4, "seed": 11}
    status, first, _ = client.post(COMPLETIONS, body)
    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(lambda _: client.post(COMPLETIONS, body), range(50)))
    assert [status for status, _, _ in replies] == [200] * 50
    assert all(r["choices"] == first["choices"] for _, r, _ in replies)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_disconnects_stops_its_generation(client, stream):
    gone = client.abandon(COMPLETIONS, {**LONG, "stream": stream})
    client.wait_for(running=1, waiting=0)
    gone.close()  # walks away mid-generation
    started = time.monotonic()
    status, _, _ = client.post(COMPLETIONS, {"prompt": "x", "max_tokens": 2})
    # the abandoned generation would hold the model for seconds more (16 x 512 tokens)
    assert status == 200 and time.monotonic() - started < 1.5


def test_a_full_queue_is_a_503_and_a_queued_client_that_leaves_frees_its_place(busy):
    client = busy
    running = client.abandon(COMPLETIONS, LONG)
    client.wait_for(running=1, waiting=0)
    queued = client.abandon(COMPLETIONS, LONG)
    client.wait_for(running=1, waiting=1)
    status, reply, headers = client.post(COMPLETIONS, {"prompt": "x", "max_tokens": 1})
    assert status == 503 and headers.get("retry-after") == "1"
    assert reply["error"]["type"] == "service_unavailable"
    # each leaves at once, not when the running generation ends (seconds away)
    queued.close()
    client.wait_for(running=1, waiting=0, timeout=3)  # out of the queue, never run
    running.close()
    client.wait_for(running=0, waiting=0, timeout=3)
    assert client.post(COMPLETIONS, {"prompt": "x", "max_tokens": 1})[0] == 200


@pytest.fixture
def busy(policy):
    """A server whose queue holds one request."""
    httpd, _ = serve_in_background(str(policy[0]), name="policy", device="cpu",
                                   dtype="float32", max_queue=1)
    yield Client(httpd.server_port)
    httpd.shutdown()
    httpd.server_close()


# -- starting the server --------------------------------------------------------------------------

def _no_cuda() -> bool:
    import torch
    return not torch.cuda.is_available()


@pytest.mark.parametrize("flags,says", [
    (["--port", "70000"], "70000 is not a port"),
    (["--port", "-1"], "-1 is not a port"),
    (["--host", "no-such-host.invalid"], "cannot resolve the host"),
    (["--dtype", "bogus"], "unknown dtype 'bogus'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    pytest.param(["--device", "cuda"], "no CUDA device", marks=pytest.mark.skipif(
        not _no_cuda(), reason="this machine has CUDA")),
    (["--record", "{tmp}"], "is a folder"),
    (["--record", "{tmp}/no/such/folder/r.jsonl"], "cannot write here"),
    (["--model", "{tmp}/missing"], "model folder not found"),
    (["--max-n", "0"], "must be at least 1"),
    (["--max-tokens", "0"], "must be at least 1"),
])
def test_a_bad_option_fails_before_serving_with_one_line(policy, tmp_path, capsys, flags,
                                                           says):
    argv = ["serve", "--model", str(policy[0]), "--port", "0", "--device", "cpu",
            *[f.format(tmp=tmp_path) for f in flags]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err


def test_a_port_in_use_fails_at_once_before_the_model_loads(served):
    done = subprocess.run([sys.executable, "-m", "prmkit.cli", "serve", "--model",
                           "no-model-here", "--port", str(served[0].server_port)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "the port is in use" in done.stderr


def test_the_server_libraries_load_for_the_serve_command_alone():
    done = subprocess.run([sys.executable, "-c", "import sys, prmkit, prmkit.cli; print(sorted("
                           "m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


@pytest.mark.slow
def test_prmkit_serve_serves_logs_no_bodies_and_stops_on_ctrl_c(policy):
    proc = subprocess.Popen([sys.executable, "-m", "prmkit.cli", "serve", "--model",
                             str(policy[0]), "--port", "0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        announced = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/v1", announced).group(1))
        status, reply, _ = Client(port).post(COMPLETIONS, {"prompt": "a secret prompt",
                                                           "max_tokens": 2})
        assert status == 200 and reply["model"] == policy[0].name
        assert Client(port).post(COMPLETIONS, {"prompt": "x", "n": 0})[0] == 400
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "POST /v1/completions 200" in err and "POST /v1/completions 400" in err
    assert "secret" not in err and "Traceback" not in err


# -- top_k, vLLM's extra sampling parameter -------------------------------------------------------

@pytest.mark.parametrize("path,body", [
    (COMPLETIONS, {"prompt": "x", "top_k": -2}), (COMPLETIONS, {"prompt": "x", "top_k": 2.5}),
    (COMPLETIONS, {"prompt": "x", "top_k": True}), (CHAT, {"messages": [_message()],
                                                            "top_k": "20"}),
    (CHAT, {"messages": [_message()], "top_k": 2**40}),
])
def test_a_bad_top_k_is_a_400_that_names_it(client, path, body):
    status, reply, _ = client.post(path, body)
    assert status == 400 and reply["error"]["param"] == "top_k", reply


@pytest.mark.parametrize("path,body", [
    (COMPLETIONS, {"prompt": "Once upon a time"}), (CHAT, {"messages": [_message()]}),
])
def test_top_k_is_honoured_and_minus_one_or_zero_is_off(client, path, body):
    """top_k 1 samples the likeliest token, so at temperature 1 it is the greedy answer; -1
    and 0 (vLLM's "off") and a k past the vocabulary sample as a request without it does."""
    def texts(**extra):
        status, reply, _ = client.post(path, {**body, "n": 3, "max_tokens": 8, "seed": 4,
                                              **extra})
        assert status == 200, reply
        return [c.get("text", c.get("message", {}).get("content")) for c in reply["choices"]]

    greedy = texts(temperature=0)
    assert texts(temperature=1.0, top_k=1) == greedy
    free = texts(temperature=1.0)
    assert free != greedy  # the tiny random model does sample
    assert texts(temperature=1.0, top_k=-1) == texts(temperature=1.0, top_k=0) == free
    assert texts(temperature=1.0, top_k=10**6) == free
