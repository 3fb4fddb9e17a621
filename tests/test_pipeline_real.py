"""The pipeline on real data: the shipped recipe prmkit/recipes/qwen2.5-math.yaml, run as
shipped (its hub data sets, from their local copies in a hub cache, and its --quick sizes) on
CPU with stand-ins for its models alone (a local OpenAI-compatible server on a tiny Qwen2 with
the real Qwen2.5 vocabulary as policy and judge, that model as the PRM backbone), goes through
every stage, writes its report, and a second run reuses every stage; a run killed in any stage
resumes to the same files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_serve import policy  # noqa: F401  (the tiny policy fixture)

from prmkit import config
from prmkit.cli import main
from prmkit.pipeline.recipe import load as load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "prmkit" / "recipes"
# every shipped recipe of real data (the demo and the recipes built on it are the toy world's:
# tests/test_pipeline.py)
REAL_RECIPES = sorted(p.name for p in RECIPES.glob("*.yaml") if p.name != "demo.yaml"
                      and yaml.safe_load(p.read_text()).get("base") != "demo")


@pytest.mark.slow
@pytest.mark.parametrize("recipe", REAL_RECIPES)
def test_every_shipped_recipe_runs_as_shipped_with_stand_in_models(
        recipe, policy, reward_models, hub_cache, tmp_path, monkeypatch):  # noqa: F811
    """Each recipe file as shipped, its data the hub data sets it names (their local copies in
    the hub cache) and its own --quick sizes: only its models are stand-ins."""
    pytest.importorskip("openai", reason="needs the openai extra")
    from prmkit.serve import serve_in_background
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    httpd, url = serve_in_background(str(policy[0]), name="policy", device="cpu",
                                     dtype="float32")
    command = ["run", str(RECIPES / recipe), "--quick", "--out", str(tmp_path / "run"),
               *stand_in_models(policy[0], url),
               *stand_in_reward_models(RECIPES / recipe, reward_models)]
    try:
        assert main(command) == 0
        _check_run(tmp_path / "run", solutions=16)
        # a second run finds every stage complete and redoes nothing
        timings = json.loads((tmp_path / "run" / "timings.json").read_text())
        assert main(command) == 0
        again = json.loads((tmp_path / "run" / "timings.json").read_text())
        # every stage with a folder; the policy, evaluation and report have none to reuse
        stages = [k for k in timings if k not in ("total", "report", "policy", "evaluation")]
        assert stages and all(again[k]["reused"] for k in stages), again
    finally:
        httpd.shutdown()
        httpd.server_close()


SHIPPED = RECIPES / "qwen2.5-math.yaml"


@pytest.fixture(scope="module")
def reward_models(tmp_path_factory) -> dict[str, Path]:
    """Stand-ins for the released reward models a recipe compares, written without prmkit in
    their releases' layouts (random weights, the real Qwen2.5 vocabulary): a Qwen2.5-Math-PRM
    and an outcome model in Qwen2.5-Math-RM-72B's layout."""
    from helpers import CHATML, qwen_tokenizer, release_folder
    tokenizer = qwen_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    tokenizer.chat_template = CHATML
    root = tmp_path_factory.mktemp("reward-models")
    return {"Qwen2ForProcessRewardModel": release_folder(root, tokenizer),
            "Qwen2ForRewardModel": release_folder(root, tokenizer, "Qwen2ForRewardModel",
                                                  outputs=1, name="orm")}


# the released models a shipped recipe compares, by the architecture of their releases
RELEASED = {"Qwen/Qwen2.5-Math-PRM-7B": "Qwen2ForProcessRewardModel",
            "Qwen/Qwen2.5-Math-PRM-72B": "Qwen2ForProcessRewardModel",
            "Qwen/Qwen2.5-Math-RM-72B": "Qwen2ForRewardModel"}


def stand_in_reward_models(recipe_file: Path, reward_models: dict[str, Path]) -> list[str]:
    """A --set that replaces each compared model of the recipe (its base's too) by the
    stand-in of its layout; the names, formats and everything else stay as shipped. The quick
    section drops the 72B ORM (a smoke run fetches no 72B model): its tiny stand-in comes
    back, so that an outcome model runs through the pipeline too."""
    recipe = load_recipe(recipe_file)  # its layers merged, the base's included
    compare = {name: {"model": str(reward_models[RELEASED[spec["model"]]])}
               for name, spec in recipe["prms"]["compare"].items()}
    return ["--set", f"prms.compare={json.dumps(compare)}"] if compare else []


def served(policy_folder: Path, url: str, api: str) -> dict:
    """The stand-in served over the OpenAI API, as vLLM or SGLang would serve the real one."""
    return {"backend": "openai", "base_url": url, "api": api, "tokenizer": str(policy_folder),
            "concurrency": 2}


def stand_in_models(policy_folder: Path, url: str) -> list[str]:
    """--set overrides of the shipped recipe's models alone: a tiny Qwen2 with the real Qwen2.5
    vocabulary, served, as policy and judge, and the same model as the PRMs' backbone."""
    return ["--set", "policy.model=policy",
            "--set", f"policy.backend={json.dumps(served(policy_folder, url, 'completions'))}",
            "--set", "labels.judge.model=policy",
            "--set", f"labels.judge.backend={json.dumps(served(policy_folder, url, 'chat'))}",
            "--set", f"prms.model={policy_folder}"]


def stand_in_recipe(policy_folder: Path, url: str, out: Path) -> dict:
    """The shipped real-data recipe with the stand-in models and small sizes set by hand (a few
    problems, short generations, a few training steps): for the tests that kill a run."""
    shipped = yaml.safe_load(SHIPPED.read_text())
    del shipped["quick"]
    # the kill tests need one PRM to kill in: no outside set, no compared model
    del shipped["prms"]["outside"], shipped["prms"]["compare"]
    stand_ins = {
        "out": str(out),
        "policy": {"model": "policy", "backend": served(policy_folder, url, "completions")},
        "problems": {"limit": 20},
        "sample": {"n": 2, "max_new_tokens": 8},
        "labels": {"mc": {"k": 2, "max_new_tokens": 6, "shard_size": 8},
                   "judge": {"model": "policy", "max_new_tokens": 8,
                             "backend": served(policy_folder, url, "chat")}},
        "prms": {"model": str(policy_folder),
                 "train": {"max_steps": 2, "batch_size": 4, "grad_accum": 1,
                           "eval_fraction": 0.0, "device": "cpu", "dtype": "float32",
                           "gradient_checkpointing": False, "lr": 1e-3}},
        "evaluate": {"processbench": {"limit": 2},
                     "bon": {"n": 2, "sample": {"max_new_tokens": 8},
                             "sets": {"gsm8k": {"limit": 4}, "math500": {"limit": 4}}}},
    }
    return config.merge(shipped, stand_ins)


def _check_run(run: Path, solutions: int) -> None:
    results = json.loads((run / "results.json").read_text())
    recipe = json.loads((run / "recipe.json").read_text())
    assert len([json.loads(x) for x in (run / "sample" / "solutions.jsonl").read_text()
                .splitlines()]) == solutions
    consensus = "consensus" in recipe["labels"]
    if consensus:
        assert results["labels"]["agreement"]["n_solutions"] == solutions
    assert results["labels"]["quality"] is None  # real data: no step truth to measure against
    trained = set(results["training"])
    named = {name for name, field in results["prm_sources"].items() if field is not None}
    if "MC-hard" in named:
        assert "MC-hard" in trained  # the random policy never succeeds: every step negative
        config = json.loads((run / "prm-mc-hard" / "final" / "config.json").read_text())
        assert config["architectures"] == ["Qwen2ForProcessRewardModel"]
    assert trained | set(results["skipped_prms"]) == \
        named | set(results["baselines"]) | set(recipe["prms"]["outside"])
    for name in results["references"]:  # compared as they are: measured, never trained
        assert name not in trained
    for name in trained | set(results["references"]):
        measured = results["prms"][name]
        assert set(measured["processbench"]["subsets"]) == {
            "gsm8k", "math", "olympiadbench", "omnimath"}
        assert set(measured["bon"]) == {"gsm8k", "math500"}
        for bon in measured["bon"].values():
            assert bon["bon"]["n_problems"] == 4 and "auc" in bon["ranking"]["answer"]
            assert "process" not in bon["ranking"]
    report = (run / "report.md").read_text()
    headings = ["## What the labels cost", "## ProcessBench (8 items",
                "## Best-of-N: gsm8k (4 problems x 2 candidates)",
                "## Best-of-N: math500 (4 problems x 2 candidates)",
                "## How the PRMs rank the solutions of one problem: gsm8k"]
    headings += ["## PRM training"] if trained else []
    headings += ["## Label sources (compared with each other)"] if consensus else []
    judged = recipe["judge_eval"]
    if judged["processbench"]:
        headings.append("## The judge as a ProcessBench critic (policy)")
        critic = results["judge_eval"]["processbench"]
        samples = judged["samples"] or 8
        assert critic["critique_stats"]["critiques"] == 8 * samples  # every item's, counted
        assert set(critic["subsets"]) == {"gsm8k", "math", "olympiadbench", "omnimath"}
    if judged["bon"]:
        headings.append("## The judge picks Best-of-2 itself (policy)")
        assert set(results["judge_eval"]["bon"]) == set(judged["bon"])
    for heading in headings:
        assert heading in report, heading
    plots = {"bon.png", "min_on_final_step.png", "processbench_threshold.png"}
    plots |= {"training.png"} if trained else set()
    plots |= {"label_agreement.png"} if consensus else set()
    assert {p.name for p in (run / "plots").iterdir()} == plots
    rendered_in_chromium(run / "report.html", [h.lstrip("# ") for h in headings]
                         + ["Plots", "Step viewer"], figures=len(plots))


@pytest.fixture(scope="module")
def served_policy(policy, hub_cache):  # noqa: F811
    """The stand-in server, one for the module's kill tests, and a run never interrupted."""
    pytest.importorskip("openai", reason="needs the openai extra")
    import os
    import tempfile

    from prmkit.serve import serve_in_background
    os.environ.setdefault("OPENAI_API_KEY", "sk-test")
    httpd, url = serve_in_background(str(policy[0]), name="policy", device="cpu",
                                     dtype="float32")
    root = Path(tempfile.mkdtemp(prefix="real-straight-"))
    recipe = killable_recipe(policy[0], url, root / "run")
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["run", str(root / "recipe.yaml")]) == 0
    yield policy[0], url, root / "run"
    httpd.shutdown()
    httpd.server_close()


def killable_recipe(policy_folder: Path, url: str, out: Path) -> dict:
    """The stand-in recipe in small shards, so that a kill can land inside every stage."""
    recipe = stand_in_recipe(policy_folder, url, out)
    del recipe["evaluate"]["bon"]
    recipe["sample"]["shard_size"] = 4
    recipe["labels"]["judge"]["shard_size"] = 8
    recipe["prms"]["train"].update(max_steps=6, save_every=2)
    recipe["evaluate"]["processbench"]["limit"] = 4  # 16 items and the viewer's, in shards of 4
    recipe["score"] = {"shard_size": 4}
    return recipe


# where a kill lands: the first file that says the stage is under way
KILL_POINTS = {
    "sample": "sample/shards/*.done",
    "mc": "mc/shards/*.done",
    "judge": "judge/shards/*.done",
    "prm-mc-hard": "prm-mc-hard/last/trainer_state.pt",
    "scores/mc-hard": "scores/mc-hard/shards/*.done",
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(KILL_POINTS))
def test_a_real_data_run_killed_in_any_stage_resumes_to_the_same_files(served_policy, tmp_path,
                                                                   stage):
    """kill -9 while a stage is under way, then run again: every stage's files equal those
    of the run never interrupted (the server seeds every request by its text, training
    resumes from its checkpoint)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    policy_folder, url, straight = served_policy
    recipe = killable_recipe(policy_folder, url, tmp_path / "run")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    child = subprocess.Popen([sys.executable, "-m", "prmkit.cli", "run",
                              str(tmp_path / "recipe.yaml")], env={**os.environ},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "run").glob(KILL_POINTS[stage])) and child.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert list((tmp_path / "run").glob(KILL_POINTS[stage])), "the run never reached the stage"
    assert not (tmp_path / "run" / stage / "COMPLETE").exists(), "killed after the stage"
    assert main(["run", str(tmp_path / "recipe.yaml")]) == 0
    for done in ("sample/solutions.jsonl", "mc/annotated.jsonl", "judge/annotated.jsonl",
                 "consensus/annotated.jsonl"):
        assert (tmp_path / "run" / done).read_text() == (straight / done).read_text(), done
    ours, theirs = (json.loads((d / "results.json").read_text()) for d in (tmp_path / "run",
                                                                           straight))
    assert ours["training"] == theirs["training"]
    assert ours["prms"] == theirs["prms"]


def rendered_in_chromium(page: Path, headings: list[str] | None = None,
                         figures: int = 5) -> None:
    """Every section of the page (``headings``), its figures, and the step viewer built by its
    script (cards exist only if the script ran) in headless Chromium; skipped without
    Chromium."""
    import shutil
    import subprocess
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return  # make test installs it where it can; the markdown checks above still ran
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    for heading in headings or ("How the PRMs rank the solutions of one problem",
                                "Label sources (compared with each other)", "ProcessBench (",
                                "Plots", "Step viewer"):
        assert heading in dom, heading
    assert dom.count("<img") == figures
    assert dom.count('class="solution"') > 0 and "first error at step" in dom
