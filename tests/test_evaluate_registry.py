"""The registry of benchmarks (prmkit.evaluate): a benchmark is one module, and the command
line, the recipe and the report find it by name, whether it is built in or another package's
(the ``prmkit.benchmarks`` entry point)."""

import os
import subprocess
import sys
import textwrap

import pytest

from prmkit import evaluate, pipeline
from prmkit.errors import InputError

# a whole benchmark, as another package would write it: the mean of the last step's score
PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass

    from prmkit.config import REQUIRED, setting
    from prmkit.evaluate.benchmark import Benchmark, ReportTable
    from prmkit.records import read_records


    @dataclass(frozen=True)
    class LastStepConfig:
        scores: str = setting(REQUIRED, "JSONL of {id, step_scores}.")


    @dataclass(frozen=True)
    class LastStepSection:
        path: str = setting(REQUIRED, "Solutions to score.")


    def run(cfg, out=None, *, force=False):
        rows = read_records(cfg.scores, "step_scores")
        return {"mean_last": sum(r["step_scores"][-1] for r in rows) / len(rows)}


    def solutions(section, run):
        return {"all": read_records(section.path, "solution")}


    def measure(section, groups, scores):
        last = [scores["all"][s["id"]][-1] for s in groups["all"]]
        return {"mean_last": sum(last) / len(last)}


    def tables(results):
        return [ReportTable("Last step", ["PRM", "mean"], [
            [name, f"{prm['laststep']['mean_last']:.2f}"]
            for name, prm in results["prms"].items()])]


    BENCHMARK = Benchmark(
        name="laststep", help="The mean score of the last step.", config=LastStepConfig,
        run=run, show=lambda metrics, console: console.print(metrics), section=LastStepSection,
        solutions=solutions, measure=measure, tables=tables)
''')


@pytest.fixture()
def plugin_package(tmp_path, monkeypatch):
    """A package on sys.path that registers ``laststep`` as an entry point."""
    (tmp_path / "laststep_bench.py").write_text(PLUGIN)
    info = tmp_path / "laststep_bench-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: laststep-bench\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[prmkit.benchmarks]\nlaststep = laststep_bench:BENCHMARK\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_built_in_benchmarks_are_found_by_name_and_a_miss_says_what_is_known():
    assert evaluate.names()[:2] == ["bon", "processbench"]
    assert evaluate.benchmark("processbench").name == "processbench"
    with pytest.raises(InputError, match="did you mean 'processbench'"):
        evaluate.benchmark("procesbench")


def test_another_packages_benchmark_plugs_into_the_command_line(plugin_package, tmp_path):
    scores = tmp_path / "scores.jsonl"
    scores.write_text('{"id": "a", "step_scores": [0.9, 0.2]}\n'
                      '{"id": "b", "step_scores": [0.5, 0.6]}\n')
    done = subprocess.run([sys.executable, "-m", "prmkit.cli", "eval", "laststep", "--scores",
                           str(scores)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(plugin_package)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0.4" in done.stdout  # (0.2 + 0.6) / 2


def test_another_packages_benchmark_plugs_into_recipes_and_the_report(plugin_package, tmp_path):
    assert "laststep" in evaluate.names()
    recipe = pipeline.load(pipeline.shipped("demo"), ["evaluate.laststep.path=x.jsonl"])
    assert recipe["evaluate"]["laststep"] == {"path": "x.jsonl"}
    with pytest.raises(InputError) as e:
        pipeline.load(pipeline.shipped("demo"), ["evaluate.laststep.paht=x.jsonl"])
    assert e.value.field == "evaluate.laststep.paht"
    bench = evaluate.benchmark("laststep")
    solutions = [{"id": "s1", "problem": "p", "steps": ["a", "b"]}]
    measured = bench.measure(None, {"all": solutions}, {"all": {"s1": [0.3, 0.7]}})
    [table] = bench.tables({"prms": {"mine": {"laststep": measured}}})
    assert table.rows == [["mine", "0.70"]]
