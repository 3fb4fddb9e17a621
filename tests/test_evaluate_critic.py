"""Critic models on ProcessBench (``prmkit eval processbench --critic``): critiques written with
ProcessBench's sampling settings on any backend, voted as its official script votes, evaluated
as the paper's Table 7 rows; ``top_k`` honoured by every backend."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from helpers import tiny_chat_policy

from prmkit.backends import BackendConfig, Completion, SamplingParams, load_backend
from prmkit.backends.hf import HFBackend, _sample
from prmkit.cli import main
from prmkit.errors import InputError
from prmkit.evaluate import critic, processbench
from prmkit.evaluate.processbench import ProcessBenchConfig
from prmkit.prompting import PROMPTS

# --- the official vote, on tables of outputs ---------------------------------------------------

def boxed(*answers: str) -> list[str]:
    """Critiques as critics write them: reasoning, then the answer in the last box."""
    return [f"Paragraph 0 is fine. Checking paragraph 1: 12 * 3 = 36 holds.\n\nSo the "
            f"earliest error is \\boxed{{{a}}}." for a in answers]


OFFICIAL = [  # (critiques, ProcessBench's prediction, prmkit's prediction)
    (boxed("2", "3", "3"), 3, 3),
    (boxed("2", "3"), 2, 2),                              # a tie: the first seen
    (boxed("3", "2", "2", "3"), 3, 2),                    # first seen, not the earliest error
    (boxed("-1", "1"), -1, 1),                            # first seen; prmkit takes the error
    (boxed("01", "1", "01"), 1, 1),                       # "01" wins as a string, read as 1
    (boxed("1", "01", "2", "2"), 2, 1),                   # "1" and "01" are different answers
    (boxed(" 2 ", "2", "1"), 2, 2),                       # stripped: the same string
    (boxed("", "", "2"), None, 2),                        # an empty box wins, and is no integer
    (boxed("\\text{2}", "\\text{2}", "1"), None, 2),      # read up to the first brace
    (boxed("1.0", "1.0", "0"), None, 0),
    (boxed("+1"), 1, None),                               # what Python's int reads
    (boxed("7"), 7, None),                                # past the steps: still a prediction
    (["no verdict", "none here"], None, None),
    (["no verdict", *boxed("0")], 0, 0),                  # a critique without a box: no vote
    (["\\boxed{1} at first, but on reflection \\boxed{0}", *boxed("1")], 0, 0),  # the last box
]


@pytest.mark.parametrize("critiques,official,prmkit", OFFICIAL)
def test_the_official_vote_reads_raw_strings_and_breaks_ties_by_first_seen(critiques, official,
                                                                            prmkit):
    assert critic.vote_official(critiques) == official
    assert critic.predict(critiques, 4, how="official")[0] == official
    assert critic.predict(critiques, 4, how="prmkit")[0] == prmkit


def rederived(critiques: list[str]):
    """ProcessBench's vote, re-derived by hand: the last box's content up to its first closing
    brace, stripped; the string with the most votes, the earliest to reach that count among
    equals being the first seen; then int() or nothing."""
    answers = []
    for text in critiques:
        at = text.rfind("\\boxed{")
        while at >= 0 and "}" not in text[at + 7:]:
            at = text.rfind("\\boxed{", 0, at)
        if at >= 0:
            answers.append(text[at + 7:text.index("}", at + 7)].strip())
    if not answers:
        return None
    counts = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    best = max(counts.values())
    winner = next(a for a in answers if counts[a] == best)
    try:
        return int(winner)
    except ValueError:
        return None


def test_the_official_vote_matches_a_rederivation_on_random_tables():
    rng = random.Random(0)
    pool = ["-1", "0", "1", "01", "2", " 2", "", "x", "\\text{1", "10"]
    for _ in range(2000):
        critiques = [rng.choice(["no box", f"\\boxed{{{rng.choice(pool)}}}",
                                 f"\\boxed{{{rng.choice(pool)}}} then \\boxed{{{rng.choice(pool)}}}"])
                     for _ in range(rng.randint(1, 8))]
        assert critic.vote_official(critiques) == rederived(critiques), critiques


def items(*labels: int, n_steps: int = 3, subset: str = "s") -> list[dict]:
    return [{"id": f"{subset}-{i}", "subset": subset, "problem": "p", "steps": ["a"] * n_steps,
             "label": label, "final_answer_correct": label == -1}
            for i, label in enumerate(labels)]


def test_an_out_of_range_prediction_is_wrong_and_every_outcome_is_counted():
    bench = items(-1, -1, 1, 2)
    critiques = {"s-0": boxed("-1", "-1"), "s-1": boxed("3", "3", "0"),   # 3: no paragraph
                 "s-2": boxed("1", "01"), "s-3": ["no box", "no box"]}
    reasons = {"s-3": ["stop", "length"]}
    m = processbench.evaluate(bench, critiques=critiques, finish_reasons=reasons, per_item=True)
    s = m["subsets"]["s"]
    assert m["vote"] == "official" and (s["error_acc"], s["correct_acc"]) == (50.0, 50.0)
    assert s["f1"] == 50.0 and m["average_f1"] == 50.0
    assert s["critiques"] == {"ok": 5, "no-index": 1, "out-of-range": 2, "truncated": 1}
    assert s["predictions"] == {"ok": 2, "no-index": 1, "out-of-range": 1}
    assert m["items"][2]["answers"] == ["1", "01"]
    assert m["items"][3]["critique_outcomes"] == ["no-index", "truncated"]
    predicted = {r["id"]: (r["prediction"], r["hit"]) for r in m["items"]}
    assert predicted == {"s-0": (-1, True), "s-1": (3, False), "s-2": (1, True),
                         "s-3": (None, False)}
    assert m["critique_stats"] == {"critiques": 9, "unparseable": 2, "out_of_range": 2,
                                   "solutions_without_prediction": 1}
    # prmkit's vote: the out-of-range votes are dropped and 0 wins
    m = processbench.evaluate(bench, critiques=critiques, vote="prmkit", per_item=True)
    assert {r["id"]: r["prediction"] for r in m["items"]}["s-1"] == 0


def test_presets_and_the_flags_that_override_them():
    qwen = ProcessBenchConfig(benchmark="b", critic="m", critic_settings="qwen-math").sampling
    assert (qwen.samples, qwen.temperature, qwen.top_p, qwen.top_k, qwen.max_new_tokens) == \
        (8, 0.7, 0.8, 20, 8192)
    pb = ProcessBenchConfig(benchmark="b", critic="m").sampling
    assert (pb.samples, pb.temperature, pb.top_p, pb.top_k, pb.max_new_tokens) == \
        (8, 1.0, 0.9, 0, 8192)
    mine = ProcessBenchConfig(benchmark="b", critic="m", critic_settings="qwen-math", top_k=0,
                              samples=4, max_new_tokens=100, seed=3).sampling
    assert mine.params() == SamplingParams(n=4, temperature=0.7, top_p=0.8, top_k=0,
                                           max_new_tokens=100, seed=3)
    with pytest.raises(InputError, match="needs --critic") as e:
        ProcessBenchConfig(benchmark="b", critiques="c.jsonl", temperature=0.5).validate()
    assert e.value.field == "temperature"
    with pytest.raises(InputError, match="exactly one of --scores, --critiques and --critic"):
        ProcessBenchConfig(benchmark="b", critiques="c.jsonl", critic="m").validate()


# --- top_k in the hf backend -------------------------------------------------------------------

def test_top_k_keeps_only_the_k_likeliest_tokens():
    import torch
    logits = torch.tensor([[5.0, 4.9, 4.8, -5.0, -6.0]])
    for k, allowed in ((1, {0}), (2, {0, 1}), (3, {0, 1, 2})):
        seen = {_sample(logits, SamplingParams(top_k=k), [torch.Generator().manual_seed(s)],
                        torch).item() for s in range(300)}
        assert seen == allowed, k
    # top-k first, then the nucleus of what is left (vLLM's and transformers' order)
    seen = {_sample(logits, SamplingParams(top_k=3, top_p=0.5),
                    [torch.Generator().manual_seed(s)], torch).item() for s in range(300)}
    assert seen == {0, 1}


def test_top_k_one_is_greedy_and_outputs_without_top_k_are_unchanged(tiny_lm):
    prompts = ["Ann has 7 coins.", "Ben has"]
    with HFBackend(tiny_lm, batch_size=3) as backend:
        def texts(**kw):
            return [[c.text for c in out] for out in backend.generate(prompts, SamplingParams(
                n=3, max_new_tokens=12, seed=5, **kw))]
        greedy = [[c.text for c in out] for out in backend.generate(
            prompts, SamplingParams(n=1, temperature=0, max_new_tokens=12))]
        assert texts(top_k=1) == [g * 3 for g in greedy]
        free = texts()
        assert len({t for row in free for t in row}) > 2  # the untrained model does sample
        vocab = len(backend.tokenizer)
        assert texts(top_k=0) == free and texts(top_k=vocab) == free and \
            texts(top_k=10 * vocab) == free


def test_top_k_is_checked():
    for bad in (-1, 1.5, True, "20"):
        with pytest.raises(InputError, match="top_k"):
            SamplingParams(top_k=bad)


def test_the_vllm_backend_passes_top_k_only_when_set(tmp_path, tiny_lm, monkeypatch):
    import sys
    import types
    asked = []

    class LLM:
        def __init__(self, **kwargs):
            pass

        def generate(self, texts, sampling, use_tqdm=True):
            asked.extend(sampling)
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(
                index=i, text="x", token_ids=[1], finish_reason="stop") for i in range(s.n)])
                for s in sampling]

    class VSamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(
        LLM=LLM, SamplingParams=VSamplingParams))
    backend = load_backend("vllm", str(tiny_lm))
    backend.generate(["a"], SamplingParams(top_k=20))
    backend.generate(["a"], SamplingParams())
    assert asked[0].top_k == 20 and not hasattr(asked[1], "top_k")


# --- the critic stage on real ProcessBench items -----------------------------------------------

@pytest.fixture(scope="module")
def bench(processbench_dir, tmp_path_factory):
    """Eight short real items: four of GSM8K and four of MATH, half of each correct."""
    folder = tmp_path_factory.mktemp("processbench")
    for subset in ("gsm8k", "math"):
        rows = json.loads((processbench_dir / f"{subset}.json").read_text())
        rows.sort(key=lambda r: len(r["problem"]) + sum(map(len, r["steps"])))
        chosen = [r for r in rows if r["label"] == -1][:2] + [r for r in rows if r["label"] >= 0][:2]
        (folder / f"{subset}.json").write_text(json.dumps(chosen))
    return folder


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """A tiny random Qwen2 with Qwen2.5's vocabulary and a ChatML template."""
    return tiny_chat_policy(tmp_path_factory.mktemp("critic"), context=4096)


class ScriptedCritic:
    """A backend that critiques as told: it finds the item by its problem in the prompt and
    answers with the critiques ``script`` gives for it; it records every call."""

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script, self.calls = tokenizer, script, []

    def generate(self, prompts, params):
        self.calls.append((list(prompts), params))
        out = []
        for p in prompts:
            texts, reasons = self.script(p)
            assert len(texts) == params.n
            out.append([Completion(t, r, 5) for t, r in zip(texts, reasons)])
        return out

    def close(self):
        pass


def test_a_scripted_critic_end_to_end(bench, policy, tmp_path, monkeypatch, capsys):
    """The critic gets the filled template as the user turn of its chat template, with
    ProcessBench's settings; its critiques are written, voted officially and evaluated as
    Table 7 reads them; the folder is complete and a re-run does nothing; the critiques file
    evaluates to the same numbers."""
    folder, tokenizer = policy
    items = processbench.load_items(str(bench))
    by_problem = {r["problem"]: r for r in items}

    def script(prompt):
        item = next(r for p, r in by_problem.items() if p in prompt)
        right = item["label"]
        if item["id"].startswith("gsm8k"):  # right, by a tie the first seen breaks
            other = "0" if right != 0 else "-1"
            return boxed(str(right), other, other, str(right), "9") + \
                ["cut off \\boxed{"] * 3, ["stop"] * 5 + ["length"] * 3
        # MATH: half right; the wrong half names a paragraph past the last
        wrong = item["label"] == -1 and item is items[4]
        answer = str(len(item["steps"])) if wrong else str(right)
        return boxed(*[answer] * 8), ["stop"] * 8

    made = ScriptedCritic(tokenizer, script)
    monkeypatch.setattr("prmkit.backends.load_backend", lambda name, model, **kw: made)
    out = tmp_path / "run"
    argv = ["eval", "processbench", "-b", str(bench), "--critic", str(folder), "--out", str(out),
            "--critic-settings", "qwen-math", "--shard-size", "3", "--device", "cpu"]
    assert main(argv) == 0
    shown = capsys.readouterr().out
    assert "official vote" in shown and "predictions out-of-range" in shown

    # ProcessBench's settings, and its prompt as the user turn of the chat template
    prompts = [p for call, _ in made.calls for p in call]
    assert [p.n for _, p in made.calls] == [8, 8, 8] and made.calls[0][1] == SamplingParams(
        n=8, temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=8192, seed=0)
    template = (PROMPTS / "processbench_critique.txt").read_text().strip()
    first = items[0]
    tagged = "\n\n".join(f"<paragraph_{i}>\n{s}\n</paragraph_{i}>"
                         for i, s in enumerate(first["steps"]))
    user = template.format(problem=first["problem"], tagged_paragraphs=tagged)
    assert prompts[0] == tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                                       tokenize=False, add_generation_prompt=True)
    assert user.endswith("\\boxed{}.") and len(prompts) == len(items) == 8

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["vote"] == "official" and set(metrics["subsets"]) == {"gsm8k", "math"}
    gsm8k, math = metrics["subsets"]["gsm8k"], metrics["subsets"]["math"]
    assert (gsm8k["error_acc"], gsm8k["correct_acc"], gsm8k["f1"]) == (100.0, 100.0, 100.0)
    assert all(len(r["steps"]) < 9 for r in items[:4])  # "9" names no paragraph
    assert gsm8k["critiques"] == {"ok": 16, "no-index": 0, "out-of-range": 4, "truncated": 12}
    assert gsm8k["predictions"] == {"ok": 4, "no-index": 0, "out-of-range": 0}
    assert (math["error_acc"], math["correct_acc"], math["f1"]) == (100.0, 50.0,
                                                                    pytest.approx(200 / 3))
    assert math["predictions"] == {"ok": 3, "no-index": 0, "out-of-range": 1}
    assert metrics["average_f1"] == pytest.approx((100 + 200 / 3) / 2)
    assert metrics["critic"]["sampling"]["top_k"] == 20
    assert metrics["critic"]["finish_reasons"] == {"length": 12, "stop": 52}

    written = [json.loads(x) for x in (out / "critiques.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written] == [r["id"] for r in items]
    assert all(len(r["critiques"]) == len(r["finish_reasons"]) == 8 for r in written)
    predictions = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert {p["id"]: p["hit"] for p in predictions}[items[4]["id"]] is False
    assert (out / "COMPLETE").exists() and len(list((out / "shards").glob("*.done"))) == 3

    # complete: a re-run generates nothing; the file gives the same numbers
    assert main(argv) == 0 and len(made.calls) == 3
    again = processbench.metrics(str(bench), critiques=out)  # the folder, or its file
    assert again["subsets"] == metrics["subsets"]
    assert main(["eval", "processbench", "-b", str(bench), "--critiques", str(out)]) == 0


def test_a_killed_critic_resumes_where_it_stopped(bench, policy, tmp_path, monkeypatch):
    """A real tiny model on the hf backend: killed after its first shard, the stage resumes
    with the shards not done, and its critiques are those of a run never stopped."""
    folder, _ = policy
    cfg = ProcessBenchConfig(benchmark=str(bench), critic=str(folder), samples=2,
                             max_new_tokens=6, shard_size=3)
    backend = BackendConfig(device="cpu", dtype="float32")
    real = HFBackend.generate
    calls = []

    def dies_on_the_second_shard(self, prompts, params, **kw):
        calls.append(len(prompts))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process killed mid-stage
        return real(self, prompts, params, **kw)

    monkeypatch.setattr(HFBackend, "generate", dies_on_the_second_shard)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        processbench.run(cfg, out, backend=backend, progress=False)
    assert not (out / "COMPLETE").exists() and (out / "shards" / "00000.done").exists()
    first = (out / "shards" / "00000.jsonl").read_text()

    calls.clear()
    monkeypatch.setattr(HFBackend, "generate", lambda self, p, params, **kw: (
        calls.append(len(p)), real(self, p, params, **kw))[1])
    resumed = processbench.run(cfg, out, backend=backend, progress=False)
    assert calls == [3, 2]  # shards 1 and 2 only (8 items, 3 a shard)
    assert (out / "shards" / "00000.jsonl").read_text() == first
    whole = processbench.run(cfg, tmp_path / "whole", backend=backend, progress=False)
    assert (out / "critiques.jsonl").read_text() == \
        (tmp_path / "whole" / "critiques.jsonl").read_text()
    assert resumed["subsets"] == whole["subsets"]
    for m in resumed["subsets"].values():  # the shape of a Table 7 row, plus what was read
        assert {"n", "error_acc", "correct_acc", "f1", "critiques", "predictions"} <= set(m)
        assert sum(m["critiques"].values()) == 2 * m["n"]


@pytest.fixture
def served(policy, monkeypatch):
    """The tiny critic served by prmkit's own server; what each request asked for is kept."""
    pytest.importorskip("openai", reason="needs the openai extra")
    from prmkit.serve import serve_in_background
    from prmkit.serving import openai_api
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    asked = []
    parse = openai_api.chat_request

    def chat_request(body, **kw):
        checked = parse(body, **kw)
        asked.append((body.get("top_k", "absent"), checked.params))
        return checked

    monkeypatch.setattr(openai_api, "chat_request", chat_request)
    httpd, url = serve_in_background(str(policy[0]), name="critic", device="cpu",
                                     dtype="float32")
    yield url, asked
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("settings,top_k", [("qwen-math", 20), ("processbench", "absent")])
def test_the_openai_backend_sends_top_k_only_when_set(bench, served, tmp_path, settings, top_k):
    url, asked = served
    out = tmp_path / "served"
    assert main(["eval", "processbench", "-b", str(bench), "--subset", "math", "--critic",
                 "critic", "--backend", "openai", "--base-url", url, "--critic-settings",
                 settings, "--samples", "2", "--max-new-tokens", "4", "--out", str(out)]) == 0
    assert len(asked) == 4 and {k for k, _ in asked} == {top_k}
    assert {p.top_k for _, p in asked} == {20 if settings == "qwen-math" else 0}
    assert {(p.n, p.max_new_tokens) for _, p in asked} == {(2, 4)}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["subsets"]) == {"math"} and metrics["critic"]["critiques"] == 8


def test_bad_uses_are_one_line_each(bench, tmp_path, capsys):
    assert main(["eval", "processbench", "-b", str(bench), "--critic", "m"]) == 2
    assert "give --out" in capsys.readouterr().err
    assert main(["eval", "processbench", "-b", str(bench), "--scores", "s.jsonl",
                 "--top-k", "20"]) == 2
    assert "needs --critic" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("{problem} only")
    assert main(["eval", "processbench", "-b", str(bench), "--critic", "m", "--critic-prompt",
                 str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "critic_prompt" in capsys.readouterr().err


def test_a_critiques_file_with_finish_reasons_counts_the_cut_off_ones(bench, tmp_path):
    items = processbench.load_items(str(bench))
    rows = [{"id": r["id"], "critiques": boxed(str(r["label"])) + ["\\boxed{"],
             "finish_reasons": ["stop", "length"]} for r in items]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = processbench.metrics(str(bench), critiques=path)
    assert m["average_f1"] == 100.0
    read = sum((Counter(s["critiques"]) for s in m["subsets"].values()), Counter())
    assert +read == Counter({"ok": 8, "truncated": 8})
    rows[2]["finish_reasons"] = ["stop"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match="one finish reason") as e:
        processbench.metrics(str(bench), critiques=path)
    assert (e.value.line, e.value.field) == (3, "finish_reasons")


def test_a_template_in_processbenchs_style_is_filled_as_its_script_fills_it(tmp_path):
    """A template naming the steps {tagged_response}, with a final newline: stripped, then
    filled by str.format with each paragraph tagged from 0, as the official script builds
    them (each block and a blank line, the whole stripped)."""
    from prmkit import critique_prompt
    template = tmp_path / "official.txt"
    template.write_text("[Math Problem]\n\n{problem}\n\n[Solution]\n\n{tagged_response}\n\n"
                        "Put the index in \\boxed{{}}.\n")
    steps = ["Ann has {3} apples.", "3 + 4 = 8.", "So \\boxed{8}."]
    tagged = "".join(f"<paragraph_{i}>\n{s}\n</paragraph_{i}>\n\n"
                     for i, s in enumerate(steps)).strip()
    expected = template.read_text().strip().format(problem="How many {x}?",
                                                   tagged_response=tagged)
    assert critique_prompt.critique_prompt("How many {x}?", steps, template, strip=True) == \
        expected
    assert expected.endswith("in \\boxed{}.") and "{3}" in expected
    critic.check_prompt(str(template))
