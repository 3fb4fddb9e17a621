"""The hf generation backend: counts, order, reproducibility, stopping, sharding, bad input."""

from __future__ import annotations

import json

import pytest

from prmkit.backends import Completion, SamplingParams, check_outputs, load_backend
from prmkit.backends.hf import _sample
from prmkit.backends.openai_compat import OpenAIBackend
from prmkit.errors import InputError
from prmkit.models import load_tokenizer, tokenizer_folder
from prmkit.prompting import Prompt

PROMPTS = ["Ann has 3 pens.", "Ben has 40 coins. How many coins does Ben have?\n\n", "x"]


def texts(outputs):
    return [[c.text for c in out] for out in outputs]


def test_counts_order_and_reproducibility(tiny_lm):
    params = SamplingParams(n=3, max_new_tokens=12, seed=7)
    with load_backend("hf", str(tiny_lm), batch_size=4) as backend:
        first = backend.generate(PROMPTS, params)
        assert [len(o) for o in first] == [3, 3, 3]
        assert all(isinstance(c, Completion) and c.num_tokens <= 12 for o in first for c in o)
        # the same completions whatever the batch size or the order of prompts
        backend.batch_size = 1
        assert texts(backend.generate(PROMPTS[::-1], params))[::-1] == texts(first)
        # samples of one prompt differ from each other, and another seed gives other samples
        assert len(set(texts(first)[0])) > 1
        assert texts(backend.generate(PROMPTS, SamplingParams(n=3, max_new_tokens=12,
                                                              seed=8))) != texts(first)


@pytest.mark.slow
def test_two_worker_processes_give_the_same_completions(tiny_lm):
    params = SamplingParams(n=2, max_new_tokens=10, seed=1)
    with load_backend("hf", str(tiny_lm), batch_size=2) as one:
        expected = texts(one.generate(PROMPTS, params))
    with load_backend("hf", str(tiny_lm), batch_size=2, workers=2) as two:
        assert texts(two.generate(PROMPTS, params)) == expected


def test_greedy_is_deterministic_and_length_is_reported(tiny_lm):
    with load_backend("hf", str(tiny_lm)) as backend:
        a = backend.generate(PROMPTS, SamplingParams(n=2, temperature=0, max_new_tokens=5))
        assert all(c.text == out[0].text for out in a for c in out)
        # an untrained model rarely emits its end token in 5 steps: those are cut by length
        assert all(c.finish_reason in ("stop", "length") for out in a for c in out)
        assert any(c.finish_reason == "length" and c.num_tokens == 5 for out in a for c in out)


def test_stop_strings_end_a_completion_and_are_not_part_of_it(tiny_lm):
    with load_backend("hf", str(tiny_lm)) as backend:
        free = backend.generate(["Ann"], SamplingParams(n=4, max_new_tokens=40, seed=3))[0]
        char = next(ch for c in free for ch in c.text[3:] if ch.strip())  # seen mid-text
        stopped = backend.generate(["Ann"], SamplingParams(n=4, max_new_tokens=40, seed=3,
                                                           stop=(char,)))[0]
    for before, after in zip(free, stopped):
        if char in before.text:
            assert after.text == before.text[:before.text.index(char)]
            assert after.finish_reason == "stop"


def test_prompt_longer_than_the_context_is_a_clear_error(tiny_lm):
    with load_backend("hf", str(tiny_lm)) as backend:
        with pytest.raises(InputError, match="prompt 1 has 1100 tokens but the model's context "
                                             "is 1024"):
            backend.generate(["ok", "y" * 1100], SamplingParams())


def test_generation_stops_at_the_context_end(tiny_lm):
    with load_backend("hf", str(tiny_lm)) as backend:
        out = backend.generate(["z" * 1018], SamplingParams(max_new_tokens=100, temperature=0))
    assert out[0][0].num_tokens <= 6


def test_unreadable_checkpoint_and_missing_folder(tmp_path, tiny_lm):
    with pytest.raises(InputError, match="not found"):
        load_backend("hf", str(tmp_path / "nope"))
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_lm.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    backend = load_backend("hf", str(broken))
    with pytest.raises(InputError, match="unreadable checkpoint"):
        backend.generate(["a"], SamplingParams())
    (broken / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json"):
        load_backend("hf", str(broken))


def test_unknown_backend_suggests_a_name():
    with pytest.raises(InputError, match="did you mean 'hf'"):
        load_backend("hff", "x")


@pytest.mark.parametrize("field,value", [("n", 0), ("temperature", -1.0), ("top_p", 0.0),
                                         ("max_new_tokens", 0)])
def test_sampling_params_are_checked(field, value):
    with pytest.raises(InputError, match=field):
        SamplingParams(**{field: value})


def test_counts_are_checked():
    one = Completion("a", "stop", 1)
    with pytest.raises(RuntimeError, match="2 results for 1 prompts"):
        check_outputs(["p"], SamplingParams(), [[one], [one]])
    with pytest.raises(RuntimeError, match="1 completions for prompt 0, expected 2"):
        check_outputs(["p"], SamplingParams(n=2), [[one]])


def test_top_p_keeps_only_the_nucleus():
    import torch

    logits = torch.tensor([[5.0, 4.9, -5.0, -6.0]])
    params = SamplingParams(top_p=0.9)
    seen = set()
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        seen.add(_sample(logits, params, [g], torch).item())
    assert seen == {0, 1}


def test_the_saved_model_is_a_plain_qwen2_folder(tiny_lm):
    config = json.loads((tiny_lm / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    tok = load_tokenizer(tiny_lm)
    text = "Ben gives away 4: 10-4=6.\n\nThe answer is \\boxed{6}."
    assert tok.decode(tok(text)["input_ids"]) == text


def test_the_vllm_backend_sends_exact_texts_with_prefix_caching(tmp_path, tiny_lm, monkeypatch):
    """vLLM cannot be installed here: a stand-in ``vllm`` module records what the backend asks
    of it. The engine gets prefix caching and the model folder; every prompt goes as its exact
    text with the sampling settings and a seed from its text; outputs come back in sample
    order with vLLM's finish reasons mapped."""
    import sys
    import types

    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            calls["engine"] = kwargs

        def generate(self, texts, sampling, use_tqdm=True):
            calls["generate"] = (texts, sampling)
            return [types.SimpleNamespace(outputs=[
                types.SimpleNamespace(index=i, text=f"{t[-3:]}#{i}", token_ids=[1] * (i + 2),
                                      finish_reason="length" if i else "stop")
                for i in reversed(range(s.n))]) for t, s in zip(texts, sampling)]

    class VSamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(
        LLM=LLM, SamplingParams=VSamplingParams))
    backend = load_backend("vllm", str(tiny_lm), dtype="bfloat16", tensor_parallel=2)
    assert calls["engine"]["enable_prefix_caching"] is True
    assert calls["engine"]["model"] == str(tiny_lm) and calls["engine"]["tensor_parallel_size"] == 2
    params = SamplingParams(n=2, temperature=0.7, top_p=0.9, max_new_tokens=5, stop=("\n\n",),
                            seed=3)
    out = backend.generate(["Ann has 7.\n\nStep", Prompt("abc")], params)
    texts, sampling = calls["generate"]
    assert texts == ["Ann has 7.\n\nStep", "abc"] and all(type(t) is str for t in texts)
    assert [(s.n, s.temperature, s.top_p, s.max_tokens, s.stop) for s in sampling] == \
        [(2, 0.7, 0.9, 5, ["\n\n"])] * 2
    assert sampling[0].seed == params.row_seed("Ann has 7.\n\nStep", 0) % 2**31
    assert [[(c.text, c.finish_reason, c.num_tokens) for c in o] for o in out] == [
        [("tep#0", "stop", 2), ("tep#1", "length", 3)], [("abc#0", "stop", 2),
                                                        ("abc#1", "length", 3)]]
    with pytest.raises(InputError, match="chat template"):
        backend.generate([Prompt("[]", [{"role": "user", "content": "x"}], templated=False)],
                         params)


def test_the_openai_backend_takes_a_tokenizer_folder_without_a_model_config(tmp_path, tiny_lm):
    """``--tokenizer`` names what renders the prompts: a folder with tokenizer.json or
    tokenizer_config.json is enough (AutoTokenizer needs no config.json), and a model folder
    whose config says qwen2 keeps its own (character) tokenizer. A folder with neither file
    is an error that names it."""
    pytest.importorskip("openai", reason="needs the openai extra")
    from helpers import char_tokenizer


    def backend(tokenizer):
        return OpenAIBackend("policy", base_url="http://127.0.0.1:9/v1", tokenizer=tokenizer)

    expected = char_tokenizer()
    expected.save_pretrained(tmp_path / "tokenizer")
    assert not (tmp_path / "tokenizer" / "config.json").exists()
    text = "Ben gives away 4: 10-4=6.\n\n"
    for folder in (tmp_path / "tokenizer", tiny_lm):
        assert backend(str(folder)).tokenizer(text)["input_ids"] == expected(text)["input_ids"]
    (tmp_path / "slow").mkdir()  # a sentencepiece tokenizer has no tokenizer.json
    (tmp_path / "slow" / "tokenizer_config.json").write_text("{}")
    assert tokenizer_folder(tmp_path / "slow") == tmp_path / "slow"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no tokenizer.json or tokenizer_config.json") as error:
        backend(str(tmp_path / "empty"))
    assert (error.value.path, error.value.field) == (str(tmp_path / "empty"), "tokenizer")
