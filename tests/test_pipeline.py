"""``prmkit demo --quick`` end to end (the CI-sized recipe), its rerun, and its report in a
real browser."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the quick demo: every stage, about a minute


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "prmkit.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    began = time.monotonic()
    done = cli("demo", "--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout, time.monotonic() - began


def test_the_quick_demo_runs_every_stage_and_writes_the_report(quick_run):
    out, stdout, _ = quick_run
    prms = {"exact truth", "MC-hard", "MC-soft", "judge", "consensus", "no labels"}
    for folder in ("sample", "bon-toy/sample", "mc", "judge", "consensus",
                   *[f"scores/{name.lower().replace(' ', '-')}" for name in prms]):
        assert (out / folder / "COMPLETE").exists(), folder
    results = json.loads((out / "results.json").read_text())
    assert set(results["prms"]) == prms
    assert results["baselines"] == ["no labels"]
    for name, prm in results["prms"].items():  # every PRM is judged within problems
        measured = prm["bon"]["toy"]
        assert set(measured["ranking"]) >= {"aggregation", "answer", "process"}, name
        # sound solutions against those whose first error is a slip, or a misconception
        assert set(measured["ranking"].get("process_by_origin", {})) <= {"slip",
                                                                         "misconception"}
        assert measured["bon"]["ns"] == [1, 2, 4] and measured["bon"]["accuracy"]["random"]
        assert set(measured["bon"]["accuracy"]) >= {"maj", "pass", "last", "min", "prod",
                                                    "vote_min"}
        assert (out / f"prm-{name.lower().replace(' ', '-')}" / "final" / "prm.json").exists()
    # the toy world's problems carry their step truth: every label source is measured on it
    sources = {r["source"] for r in results["labels"]["quality"]["rows"]}
    assert sources == {"MC-hard", "MC-majority", "judge", "consensus"}
    assert set(results["labels"]["final_step_errors"]) == {"truth", *sources}
    report = (out / "report.md").read_text()
    assert "## Findings" in report and "Lesson 1" in report and "Lesson 3" in report
    assert "How well the PRMs verify" in report and "within-problem AUC" in report
    assert "## Label quality (against the step truth)" in report
    assert "## Paired comparisons" in report and "exact truth − no labels" in report
    lessons = [line for line in report.splitlines() if line.startswith("- ") and "Lesson" in line]
    assert len(lessons) == 3 and all(  # each three-valued, or said why it was not tested
        any(said in line for said in ("reproduced:**", "contradicted:**", "inconclusive:**",
                                      "not measured", "is not tested")) for line in lessons)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(list((out / "plots").iterdir())) >= 4
    assert '<script id="data" type="application/json">' in page
    assert "%DATA%" not in page and "%FINDINGS%" not in page
    assert "Findings" in stdout


def test_a_second_run_reuses_every_finished_stage(quick_run):
    out, _, first_seconds = quick_run
    began = time.monotonic()
    again = cli("demo", "--quick", "--out", str(out))
    seconds = time.monotonic() - began
    assert again.returncode == 0, again.stderr[-3000:]
    timings = json.loads((out / "timings.json").read_text())
    staged = [name for name in timings if name.startswith(("sample", "Best-of-N", "MC",
                                                          "judge", "consensus", "PRM",
                                                          "scores"))]
    assert len(staged) == 17
    assert all(timings[name]["reused"] for name in staged), timings
    assert seconds < first_seconds


def test_the_toy_search_recipe_adds_search_to_a_finished_demo_run(quick_run):
    """toy-search.yaml on the quick demo's folder, as shipped: the demo's stages are reused,
    and each PRM guides the policy by every method at every budget."""
    out, _, _ = quick_run
    recipe = Path(__file__).resolve().parents[1] / "prmkit" / "recipes" / "toy-search.yaml"
    done = cli("run", str(recipe), "--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    timings = json.loads((out / "timings.json").read_text())
    demo = [name for name in timings if name.startswith(("sample", "MC", "PRM", "scores"))]
    assert demo and all(timings[name]["reused"] for name in demo)
    searched = json.loads((out / "results.json").read_text())["search"]
    assert set(searched["by_prm"]) == {"exact truth", "no labels"}
    for by_method in searched["by_prm"].values():
        assert set(by_method) == {"greedy", "beam", "dvts", "best_of_n"}
        for by_budget in by_method.values():
            assert set(by_budget) == {"2", "4"}
            assert all(m["tokens"] > 0 and m["sound"] is not None for m in by_budget.values())
    assert set(searched["maj"]) == {"2", "4"}
    report = (out / "report.md").read_text()
    assert "## Search at test time: toy (4 problems)" in report
    assert (out / "plots" / "search.png").exists()
    again = cli("run", str(recipe), "--quick", "--out", str(out))
    assert again.returncode == 0, again.stderr[-3000:]
    timings = json.loads((out / "timings.json").read_text())
    searches = [name for name in timings if name.startswith("search (")]
    assert len(searches) == 2 * 4 * 2 and all(timings[name]["reused"] for name in searches)


def test_the_report_renders_in_headless_chromium_with_its_step_viewer(quick_run):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it with apt where it can)")
    out, _, _ = quick_run
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1280,2400", "--virtual-time-budget=5000"]
    url = (out / "report.html").resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    # the viewer is built by the page's script: its cards exist only if the script ran
    shown = json.loads((out / "results.json").read_text())["counts"]["viewer_solutions"]
    assert shown == 30
    assert f"showing 30 of {shown} matching ({shown} solutions)" in dom
    assert dom.count('class="solution"') == 30
    assert 'class="step' in dom and "first error at step" in dom
    shot = out / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
