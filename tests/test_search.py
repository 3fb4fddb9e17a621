"""PRM-guided search (prmkit search, prmkit.search): greedy, beam, DVTS and Best-of-N on toy
problems with a tiny policy and a tiny PRM; the tree every method explores has the shape its
method promises, every expansion continues the exact prefix the PRM scored (checked on what a
served policy reads), a served PRM gives the local PRM's search, and a search of real GSM8K
problems killed mid-run resumes to the files of one never interrupted."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import shared
from helpers import tiny_chat_policy
from transformers import Qwen2Config

from prmkit.backends import BackendConfig
from prmkit.cli import main
from prmkit.prm.model import build_prm, save_prm
from prmkit.prompting import render
from prmkit.records import write_jsonl
from prmkit.search import SearchConfig, is_final, run
from prmkit.serve import serve_in_background
from prmkit.serving.reward import serve_prm_in_background
from prmkit.steps import STEP_SEPARATOR, join_steps
from prmkit.toyworld.problems import PRESETS, make_problems

SMALL = {"step_tokens": 6, "max_steps": 3, "solution_tokens": 18, "temperature": 1.0}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A served tiny chat policy (Qwen2.5's vocabulary) that records what it reads, a tiny
    step-token PRM on the same vocabulary, and two toy problems."""
    root = tmp_path_factory.mktemp("search")
    policy, tokenizer = tiny_chat_policy(root / "policy")
    config = Qwen2Config(vocab_size=len(tokenizer) + 1, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id)
    prm = save_prm(build_prm(config, tokenizer, fmt="step-token"), root / "prm")
    rows = [{"id": p["id"], "problem": p["problem"], "answer": p["answer"]}
            for p in make_problems(PRESETS["easy"], 2, seed=0, split="search")]
    problems = write_jsonl(root / "problems.jsonl", rows)
    one = write_jsonl(root / "one.jsonl", rows[:1])
    record = root / "received.jsonl"
    httpd, url = serve_in_background(str(policy), name="policy", record=record, device="cpu",
                                     dtype="float32")
    yield {"policy": policy, "tokenizer": tokenizer, "prm": prm, "problems": problems,
           "one": one, "url": url, "record": record}
    httpd.shutdown()
    httpd.server_close()


def searched(world, out, problems: str = "one", **settings) -> list[dict]:
    cfg = SearchConfig(problems=str(world[problems]), model="policy",
                       **{"prm": str(world["prm"]), **SMALL, **settings})
    backend = BackendConfig(backend="openai", base_url=world["url"], api="completions",
                            tokenizer=str(world["policy"]))
    run(cfg, out, backend=backend, progress=False)
    return [json.loads(x) for x in (out / "solutions.jsonl").open()]


@pytest.mark.parametrize("method,n,width", [("greedy", 4, 1), ("beam", 4, 2), ("dvts", 4, 2)])
def test_each_method_explores_the_tree_it_promises_and_continues_exact_prefixes(
        world, tmp_path, method, n, width):
    world["record"].unlink(missing_ok=True)
    records = searched(world, tmp_path / method, method=method, n=n, width=width)
    groups, keep, expand = SearchConfig(problems="-", model="-", prm="-", method=method, n=n,
                                        width=width).groups
    asked = {json.loads(x)["prompt"] for x in world["record"].open()}
    for record in records:
        tree = {node["id"]: node for node in record["search"]["tree"]}
        by_parent: dict = {}
        for node in tree.values():
            by_parent.setdefault(node["parent"], []).append(node)
        roots = by_parent.pop(None)
        assert len(roots) == groups
        for parent, children in by_parent.items():
            assert tree[parent]["kept"] and len(children) == expand  # only kept ones grow
            assert all(c["depth"] in (tree[parent]["depth"], tree[parent]["depth"] + 1)
                       for c in children)
        for depth in range(1, SMALL["max_steps"] + 1):  # each group keeps `keep` a depth
            for g in range(groups):
                kept = [x for x in tree.values() if x["depth"] == depth and x["group"] == g
                        and x["kept"] and x["parent"] is not None
                        and tree[x["parent"]]["depth"] == depth - 1]
                assert len(kept) <= keep
        # every expansion read the exact prefix: the prompt, the steps, a blank line
        for node in tree.values():
            if node["kept"] and not node["finished"]:
                steps = _steps_to(tree, node["id"])
                want = render("qwen-math", record["problem"], world["tokenizer"],
                              partial=join_steps(steps) + STEP_SEPARATOR if steps else "")
                assert str(want) in asked
        if record["search"]["found"]:
            assert record["steps"] == _steps_to(tree, _pick_id(tree, record["steps"]))
        assert record["search"]["tokens"] > 0 and record["search"]["prm_calls"] > 0


def _steps_to(tree: dict, node_id: int) -> list[str]:
    steps = []
    while node_id is not None and tree[node_id]["parent"] is not None:
        node = tree[node_id]
        if tree[node["parent"]]["depth"] < node["depth"]:
            steps.append(node["step"])
        node_id = node["parent"]
    return steps[::-1]


def _pick_id(tree: dict, steps: list[str]) -> int:
    return next(i for i, node in tree.items() if node["kept"] and node["finished"]
                and node["depth"] == len(steps) and _steps_to(tree, i) == steps)


def test_best_of_n_and_a_served_prm(world, tmp_path):
    records = searched(world, tmp_path / "bon", method="best_of_n", n=4)
    assert all(len(r["search"]["tree"]) == 4 and r["search"]["prm_calls"] == 4 for r in records)
    local = searched(world, tmp_path / "local", method="beam", n=4, width=2)
    httpd, url = serve_prm_in_background(str(world["prm"]), name="prm", device="cpu",
                                         dtype="float32")
    try:
        served = searched(world, tmp_path / "served", method="beam", n=4, width=2,
                          prm="prm", prm_base_url=url, prm_tokenizer=str(world["prm"]))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [r["steps"] for r in served] == [r["steps"] for r in local]


def test_a_search_of_real_gsm8k_problems_killed_mid_run_resumes_to_the_same_files(
        world, tmp_path):
    """kill -9 once the first shard is written, then run again: the files of a search never
    interrupted, on real GSM8K problems through the openai backend."""
    rows = shared("gsm8k/test.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    problems = tmp_path / "gsm8k.jsonl"
    problems.write_text("\n".join(rows) + "\n", encoding="utf-8")
    command = ["search", str(problems), "--format", "gsm8k", "--model", "policy", "--prm",
               str(world["prm"]), "--method", "dvts", "--n", "4", "--width", "2",
               "--step-tokens", "6", "--max-steps", "3", "--shard-size", "1",
               "--backend", "openai", "--base-url", world["url"], "--api", "completions",
               "--tokenizer", str(world["policy"])]
    assert main([*command, "--out", str(tmp_path / "straight")]) == 0
    out = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-m", "prmkit.cli", *command, "--out",
                              str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("shards/*.done")) and child.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert list(out.glob("shards/*.done")) and not (out / "COMPLETE").exists()
    assert main([*command, "--out", str(out)]) == 0
    assert (out / "solutions.jsonl").read_text() == \
        (tmp_path / "straight" / "solutions.jsonl").read_text()
    records = [json.loads(x) for x in (out / "solutions.jsonl").open()]
    assert len(records) == 3 and all(r["gold_answer"] and r["search"]["tree"] for r in records)


def test_the_command_line_and_bad_settings(world, tmp_path):
    assert main(["search", str(world["one"]), "--model", "policy", "--prm",
                 str(world["prm"]), "--method", "greedy", "--n", "2", "--step-tokens", "4",
                 "--max-steps", "2", "--backend", "openai", "--base-url", world["url"],
                 "--api", "completions", "--tokenizer", str(world["policy"]),
                 "--out", str(tmp_path / "cli")]) == 0
    metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert metrics["n_problems"] == 1 and metrics["mean_tokens"] > 0
    assert main(["search", str(world["problems"]), "--model", "policy", "--prm",
                 str(world["prm"]), "--method", "beam", "--n", "5", "--width", "2",
                 "--out", str(tmp_path / "bad")]) == 2
    assert is_final("The answer is \\boxed{7}.") and not is_final("3+4= 7.")
