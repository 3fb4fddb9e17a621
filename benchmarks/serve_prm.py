"""``prmkit serve --prm`` measured against in-process scoring of the same PRM on the same
solutions, then under hostile load.

1. Throughput: ``prmkit.prm.score.score`` on N toy solutions in this process (batched by length,
   as ``prmkit score`` does), against the server in its own process answering 32 concurrent
   clients, one solution a request (``POST /v1/step_scores``): solutions a second side by side
   and their ratio, each request's latency (p50/p99), and the mean number of requests the
   server scored together (``/health``). Every served score is checked against the local one.
2. Hostile: 1,000 malformed or oversized requests fired together with the 32 clients, twice:
   every one must get a 4xx and every client its exact scores; the server's resident memory
   before, at its peak and after each storm (bounded: the second storm adds nothing).
3. A full queue: a server with ``--max-queue 4`` and 64 clients at once answers 503 to the
   overflow, at once, and the scores of the others.

    .venv/bin/python benchmarks/serve_prm.py          # ~2 minutes on 2 CPU cores

The PRM is a random step-token PRM on a small Qwen2 (hidden 256, 4 layers) with the toy
world's character tokenizer: large enough that the forward passes, not HTTP, take the time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from serve_hostile import PeakMemory, percentiles, request, rss_mb, start_server
from transformers import Qwen2Config

from prmkit.prm.model import build_prm, load_prm, save_prm
from prmkit.prm.score import score
from prmkit.toyworld.problems import PRESETS, Spec, canonical_steps, make_problems
from prmkit.toyworld.tokenizer import build_char_tokenizer

CLIENTS = 32
HOSTILE = 1000
SCORES = "/v1/step_scores"


def tiny_prm(folder: Path) -> Path:
    tokenizer = build_char_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer) + 1, hidden_size=256, intermediate_size=512,
                         num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id)
    save_prm(build_prm(config, tokenizer, fmt="step-token"), folder)
    return folder


def toy_solutions(n: int) -> list[dict]:
    problems = make_problems(PRESETS["mixed"], n, seed=0, split="serve-bench")
    return [{"problem": p["problem"], "steps": canonical_steps(Spec.from_dict(p["toy"]))}
            for p in problems]


def start(prm: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    return start_server(prm, log, *extra, kind="--prm")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def ask(port: int, solution: dict) -> tuple[int, list | None, float]:
    status, body, seconds = request(port, "POST", SCORES, json.dumps(solution).encode())
    scores = json.loads(body)["step_scores"] if status == 200 else None
    return status, scores, seconds


def same(a, b) -> bool:
    return a is not None and len(a) == len(b) and all(abs(x - y) <= 1e-6 for x, y in zip(a, b))


def health(port: int) -> dict:
    status, body, _ = request(port, "GET", "/health")
    return json.loads(body) if status == 200 else {}


def hostile_requests() -> list[tuple[str, bytes, bytes | None]]:
    """(name, body, raw request or None): every kind a malformed or oversized request."""
    def js(payload) -> bytes:
        return json.dumps(payload).encode()
    return [
        ("no steps", js({"problem": "p"}), None),
        ("steps: []", js({"problem": "p", "steps": []}), None),
        ("steps: [1]", js({"problem": "p", "steps": [1]}), None),
        ("problem: null", js({"problem": None, "steps": ["a"]}), None),
        ("unknown field", js({"problem": "p", "steps": ["a"], "n": 4}), None),
        ("1000 solutions", js({"solutions": [{"problem": "p", "steps": ["a"]}] * 1000}), None),
        ("solutions: {}", js({"solutions": {}}), None),
        ("body [1,2]", b"[1,2]", None),
        ("body not JSON", b"{\"problem\": ", None),
        ("body bad UTF-8", b"\xff\xfe", None),
        ("NaN", b"{\"problem\": NaN, \"steps\": [\"a\"]}", None),
        ("nesting bomb", b"[" * 200_000 + b"]" * 200_000, None),
        ("9 MiB body", b"{\"problem\": \"" + b"x" * (9 << 20) + b"\"}", None),
        ("Content-Length 10^12", b"", b"POST /v1/step_scores HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 1000000000000\r\n\r\n{}"),
        ("pooling: unknown model", b"", None),
        ("broken request line", b"", b"BLAH\r\n\r\n"),
    ]


def fire(port: int, kinds: list, i: int) -> tuple[str, int]:
    name, body, raw = kinds[i % len(kinds)]
    if name.startswith("pooling"):
        status, _, _ = request(port, "POST", "/pooling",
                               json.dumps({"model": "gpt-4", "input": "x"}).encode())
    else:
        status, _, _ = request(port, "POST", SCORES, body, raw=raw)
    return name, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    root = Path(tempfile.mkdtemp(prefix="serve-prm-"))
    folder = tiny_prm(root / "prm")
    solutions = toy_solutions(args.solutions)
    prm = load_prm(folder, dtype="float32", device="cpu")
    problems, steps = [s["problem"] for s in solutions], [s["steps"] for s in solutions]
    score(problems[:16], steps[:16], prm)  # warm up
    began = time.perf_counter()
    local = score(problems, steps, prm, batch_size=16)
    in_process = time.perf_counter() - began
    del prm

    proc, port = start(folder, root / "server.log")
    try:
        ask(port, solutions[0])  # warm up
        before = health(port)
        began = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(lambda s: ask(port, s), solutions))
        served = time.perf_counter() - began
        after = health(port)
        wrong = sum(not same(a[1], want) for a, want in zip(answers, local))
        batches = after["batches"] - before["batches"]
        mean_batch = (len(solutions)) / batches if batches else float("nan")
        print(f"{len(solutions)} solutions, {sum(map(len, steps))} steps; {CLIENTS} clients, "
              "one solution a request")
        print(f"  in process   {len(solutions) / in_process:8.1f} solutions/s")
        print(f"  served       {len(solutions) / served:8.1f} solutions/s   "
              f"ratio {in_process / served:.2f}x of in-process   "
              f"{percentiles([a[2] for a in answers])}")
        print(f"  requests scored together: {mean_batch:.1f} on average ({batches} rounds); "
              f"answers different from local scoring: {wrong}")

        kinds = hostile_requests()
        for storm in (1, 2):  # twice: memory that stays bounded does not grow the second time
            rss_before = rss_mb(proc.pid)
            peak = PeakMemory(proc.pid)
            peak.start()
            with ThreadPoolExecutor(64) as pool:
                hostile = pool.map(lambda i: fire(port, kinds, i), range(HOSTILE))
                clients = pool.map(lambda s: ask(port, s), solutions[:CLIENTS])
                hostile, clients = list(hostile), list(clients)
            peak.done.set()
            statuses = Counter(status for _, status in hostile)
            not_4xx = [(n, s) for n, s in hostile if not 400 <= s < 500]
            clients_wrong = sum(not same(c[1], want) for c, want in zip(clients, local))
            again = ask(port, solutions[1])
            print(f"hostile storm {storm}: {HOSTILE} requests -> "
                  f"{dict(sorted(statuses.items()))}; not 4xx: {len(not_4xx)} "
                  f"{sorted(set(not_4xx))[:5]}")
            print(f"  {CLIENTS} clients beside them: {CLIENTS - clients_wrong} exact; "
                  f"afterwards a request is {'exact' if same(again[1], local[1]) else 'WRONG'}")
            print(f"  server memory: {rss_before:.0f} MB before, {peak.peak:.0f} MB at the "
                  f"peak, {rss_mb(proc.pid):.0f} MB after")
    finally:
        stop(proc)

    proc, port = start(folder, root / "small.log", "--max-queue", "4", "--max-batch", "1")
    try:
        big = {"solutions": [solutions[0]] * 16}
        with ThreadPoolExecutor(64) as pool:
            replies = list(pool.map(lambda _: request(port, "POST", SCORES,
                                                      json.dumps(big).encode()), range(64)))
        by_status = Counter(r[0] for r in replies)
        refused = [r[2] for r in replies if r[0] == 503]
        print(f"full queue (--max-queue 4): {dict(sorted(by_status.items()))}; a 503 came "
              f"after {percentiles(refused) if refused else '-'}")
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
