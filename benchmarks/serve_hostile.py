"""``prmkit serve`` under hostile load: 1,000 malformed or oversized requests and abandoned
generations, fired together with 50 concurrent well-behaved clients.

The server runs as ``prmkit serve`` in its own process, on a tiny random model (the toy world's
character tokenizer and a 2-layer Qwen2) or on ``--model``. Before the storm, every well-behaved
request is made once, alone, for its reference answer (each has its own seed). Then, all at
once: the hostile requests (32 at a time: bad fields, bodies that are not JSON objects, a
nesting bomb, a terabyte Content-Length, 2 MiB bodies, unknown models and routes, broken HTTP),
clients that ask for a long generation and walk away, and the 50 clients. It checks that every
hostile request got a 4xx, every client its reference answer, and prints counts by kind,
latency p50/p99 of each group, and the server's resident memory before, at its peak, and after.

    .venv/bin/python benchmarks/serve_hostile.py              # ~15 s on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HOSTILE = 1000
CLIENTS = 50
ABANDONED = 10  # with the 50 clients, within the server's default queue (--max-queue 64)
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_model(folder: Path) -> Path:
    from prmkit.toyworld.model import TinyModelConfig, build_causal_lm
    from prmkit.toyworld.tokenizer import build_char_tokenizer
    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = CHATML
    model = build_causal_lm(tokenizer, TinyModelConfig(hidden_size=32, num_layers=2,
                                                        intermediate_size=64, max_length=1024))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# -- raw HTTP: each request exactly as sent, on its own connection --------------------------------

def request(port: int, method: str, path: str, body: bytes = b"", *,
            headers: dict | None = None, raw: bytes | None = None) -> tuple[int, bytes, float]:
    """(status, reply body, seconds); status 0 if the server dropped the connection."""
    if raw is None:
        head = {"Host": "127.0.0.1", "Content-Type": "application/json",
                "Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
        raw = (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n"
                                                         for k, v in head.items())
               + "\r\n").encode() + body
    began = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(raw)
            reply = b""
            while chunk := sock.recv(1 << 16):
                reply += chunk
    except OSError:
        return 0, b"", time.perf_counter() - began
    match = re.match(rb"HTTP/1\.1 (\d{3})", reply)
    status = int(match.group(1)) if match else 0
    return status, reply.partition(b"\r\n\r\n")[2], time.perf_counter() - began


def post(port: int, path: str, payload) -> tuple[int, bytes, float]:
    return request(port, "POST", path, json.dumps(payload).encode())


def abandon(port: int, seconds: float) -> None:
    """Ask for a long generation, then walk away."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        body = json.dumps({"prompt": "Tell me everything.", "n": 16, "max_tokens": 512}).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(seconds)


# -- the hostile catalogue ------------------------------------------------------------------------

C, CHAT = "/v1/completions", "/v1/chat/completions"
USER = {"role": "user", "content": "hi"}


def hostile_kinds() -> dict[str, tuple]:
    """Name -> (method, path, body bytes, extra headers, raw request or None)."""
    def js(path, payload):
        return ("POST", path, json.dumps(payload).encode(), None, None)

    def raw_body(path, data, headers=None):
        return ("POST", path, data, headers, None)

    return {
        "n: 1000000": js(C, {"prompt": "x", "n": 1_000_000}),
        "n: 2.7": js(C, {"prompt": "x", "n": 2.7}),
        "n: 0": js(C, {"prompt": "x", "n": 0}),
        "n: true": js(C, {"prompt": "x", "n": True}),
        "max_tokens: 0": js(C, {"prompt": "x", "max_tokens": 0}),
        "max_tokens: 10^9": js(C, {"prompt": "x", "max_tokens": 10**9}),
        "temperature: 5": js(C, {"prompt": "x", "temperature": 5}),
        "top_p: 0": js(C, {"prompt": "x", "top_p": 0}),
        "stop: 10 strings": js(C, {"prompt": "x", "stop": list("abcdefghij")}),
        "stream: 'yes'": js(C, {"prompt": "x", "stream": "yes"}),
        "prompt: list": js(C, {"prompt": ["a", "b"]}),
        "prompt past the context": js(C, {"prompt": "x" * 5000}),
        "unknown field": js(C, {"prompt": "x", "best_of": 5}),
        "unknown model": js(C, {"prompt": "x", "model": "gpt-4"}),
        "messages: []": js(CHAT, {"messages": []}),
        "role: wizard": js(CHAT, {"messages": [{"role": "wizard", "content": "x"}]}),
        "image content part": js(CHAT, {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]}),
        "continue without assistant": js(CHAT, {"messages": [USER],
                                                "continue_final_message": True}),
        "body [1,2]": raw_body(C, b"[1,2]"),
        "body null": raw_body(C, b"null"),
        "body not JSON": raw_body(C, b"{\"prompt\": "),
        "body bad UTF-8": raw_body(C, b"\xff\xfe\xfd"),
        "NaN": raw_body(C, b"{\"prompt\": \"x\", \"temperature\": NaN}"),
        "nesting bomb (200k deep)": raw_body(C, b"[" * 200_000 + b"]" * 200_000),
        "2 MiB body": raw_body(C, b"{\"prompt\": \"" + b"x" * (2 << 20) + b"\"}"),
        "Content-Length 10^12": ("POST", C, b"{}", None,
                                 b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Length: 1000000000000\r\n\r\n{}"),
        "unknown route": js("/v1/embeddings", {"input": "x"}),
        "GET on a POST route": ("GET", C, b"", None, None),
        "broken request line": ("POST", C, b"", None, b"BLAH\r\n\r\n"),
        "Content-Length: abc": ("POST", C, b"", None,
                                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: abc\r\n\r\n{}"),
    }


def fire_hostile(port: int, kinds: dict, i: int) -> tuple[str, int, float]:
    name = list(kinds)[i % len(kinds)]
    method, path, body, headers, raw = kinds[name]
    status, _, seconds = request(port, method, path, body, headers=headers, raw=raw)
    return name, status, seconds


# -- the server -----------------------------------------------------------------------------------

def start_server(model: Path, log: Path, *extra: str, kind: str = "--model"
                 ) -> tuple[subprocess.Popen, int]:
    """``prmkit serve`` in its own process (``kind``: --model for a policy, --prm for a PRM),
    and the port it announced."""
    # the log goes to a file: a pipe nobody reads would fill and stall the server
    proc = subprocess.Popen([sys.executable, "-m", "prmkit.cli", "serve", kind, str(model),
                             "--port", "0", "--device", "cpu", "--dtype", "float32", *extra],
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    announced = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", announced)
    if match is None:
        proc.kill()
        raise SystemExit(f"the server did not start: {announced}{log.read_text()[-2000:]}")
    return proc, int(match.group(1))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.pid))


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"p50 {1000 * at(0.5):7.1f} ms  p99 {1000 * at(0.99):7.1f} ms"


def valid_body(i: int) -> tuple[str, dict]:
    if i % 2:
        return CHAT, {"messages": [{"role": "user", "content": f"Question {i}?"}],
                      "max_tokens": 24, "n": 2, "seed": i}
    return C, {"prompt": f"Story {i}:", "max_tokens": 24, "n": 2, "seed": i}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a model folder (default: a tiny random one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else tiny_model(Path(tmp) / "tiny")
        proc, port = start_server(model, Path(tmp) / "server.log")
        try:
            ok = storm(proc, port)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
        log = (Path(tmp) / "server.log").read_text()
        tracebacks = log.count("Traceback")
        print(f"server log: {len(log.splitlines())} lines, {tracebacks} tracebacks; exit code "
              f"{proc.returncode}")
        ok = ok and tracebacks == 0 and proc.returncode == 0
    print("ALL CHECKS PASSED" if ok else "CHECKS FAILED")
    sys.exit(0 if ok else 1)


def storm(proc: subprocess.Popen, port: int) -> bool:
    references = {}
    for i in range(CLIENTS):
        path, body = valid_body(i)
        status, reply, _ = post(port, path, body)
        assert status == 200, reply
        references[i] = json.loads(reply)["choices"]
    before = rss_mb(proc.pid)
    peak = PeakMemory(proc.pid)
    peak.start()
    kinds = hostile_kinds()
    began = time.perf_counter()
    with ThreadPoolExecutor(32) as hostile_pool, ThreadPoolExecutor(CLIENTS) as client_pool, \
            ThreadPoolExecutor(ABANDONED) as leaving_pool:
        hostile = [hostile_pool.submit(fire_hostile, port, kinds, i) for i in range(HOSTILE)]
        leaving = [leaving_pool.submit(abandon, port, 0.3) for _ in range(ABANDONED)]
        valid = [client_pool.submit(post, port, *valid_body(i)) for i in range(CLIENTS)]
        hostile = [f.result() for f in hostile]
        valid = [f.result() for f in valid]
        [f.result() for f in leaving]
    storm_s = time.perf_counter() - began
    time.sleep(1.0)  # the abandoned generations are cancelled; memory settles
    peak.done.set()
    after = rss_mb(proc.pid)

    by_kind: dict[str, Counter] = {}
    for name, status, _ in hostile:
        by_kind.setdefault(name, Counter())[status] += 1
    print(f"{HOSTILE} hostile requests, {ABANDONED} abandoned generations and {CLIENTS} "
          f"clients in {storm_s:.1f} s\n")
    print(f"{'hostile request':30} {'count':>5}  statuses")
    for name, statuses in by_kind.items():
        print(f"{name:30} {sum(statuses.values()):5}  "
              + ", ".join(f"{s}x{n}" for s, n in sorted(statuses.items())))
    not_4xx = [(n, s) for n, s, _ in hostile if not 400 <= s < 500]
    answered = [i for i, (status, reply, _) in enumerate(valid) if status == 200
                and json.loads(reply)["choices"] == references[i]]
    print(f"\nhostile answered with a 4xx: {HOSTILE - len(not_4xx)}/{HOSTILE}"
          + (f"  (not: {Counter(not_4xx).most_common(5)})" if not_4xx else ""))
    print(f"clients answered, equal to their reference: {len(answered)}/{CLIENTS}"
          f"  (statuses {dict(Counter(s for s, _, _ in valid))})")
    print(f"latency hostile: {percentiles([s for _, _, s in hostile])}")
    print(f"latency clients: {percentiles([s for _, _, s in valid])}")
    print(f"server memory (RSS): before {before:.0f} MB, peak {peak.peak:.0f} MB, after "
          f"{after:.0f} MB")
    status, health, _ = request(port, "GET", "/health")
    print(f"after the storm: /health {status} {health.decode()}")
    return not not_4xx and len(answered) == CLIENTS and json.loads(health) == {
        "waiting": 0, "running": 0}


if __name__ == "__main__":
    main()
