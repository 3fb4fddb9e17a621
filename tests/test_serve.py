"""Generation servers (prmkit.serve, the openai backend): a local OpenAI-compatible server on a
tiny Qwen2 with the real Qwen2.5 vocabulary and a ChatML template records the text its model
is given; Monte Carlo rollouts must reach it as exactly the template-applied problem plus the
given steps, through the completions API and through the chat API's
continue_final_message."""
from __future__ import annotations

import json

import pytest
from helpers import qwen_tokenizer

from prmkit.cli import main
from prmkit.prompting import PROMPTS
from prmkit.records import write_jsonl
from prmkit.serve import serve_in_background
from prmkit.steps import STEP_SEPARATOR, join_steps

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
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
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    tokenizer = qwen_tokenizer()
    tokenizer.chat_template = CHATML
    folder = tmp_path_factory.mktemp("policy")
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, tokenizer


@pytest.fixture
def server(policy, tmp_path, monkeypatch):
    pytest.importorskip("openai", reason="needs the openai extra")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    record = tmp_path / "received.jsonl"
    httpd, url = serve_in_background(str(policy[0]), name="policy", record=record,
                                     device="cpu", dtype="float32")
    yield url, record
    httpd.shutdown()
    httpd.server_close()


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
