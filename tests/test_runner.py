"""The sharded runner under the annotation stages: a killed run resumes to the same output, and
the local and Ray executors give identical files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from prmkit import rundir
from prmkit.annotate import mc
from prmkit.backends import BackendConfig
from prmkit.errors import InputError
from prmkit.records import read_records, write_jsonl
from prmkit.runner import Shards, run
from prmkit.toyworld.problems import PRESETS, Spec, canonical_steps, make_problems


@pytest.fixture
def toy_solutions(tmp_path):
    """Canonical toy solutions, every other one with its first step's result off by one."""
    rows = []
    for p in make_problems(PRESETS["easy"], 12, seed=3):
        steps = canonical_steps(Spec.from_dict(p["toy"]))
        if len(rows) % 2:
            steps[0] = steps[0][:-2] + str((int(steps[0][-2]) + 1) % 10) + "."
        rows.append({"id": p["id"], "problem": p["problem"], "steps": steps,
                     "gold_answer": p["answer"], "toy": p["toy"]})
    write_jsonl(tmp_path / "solutions.jsonl", rows)
    return tmp_path / "solutions.jsonl"


def mc_command(solutions, model, out) -> list[str]:
    return [sys.executable, "-m", "prmkit.cli", "annotate", "mc", str(solutions), "--model",
            str(model), "--out", str(out), "--k", "2", "--max-new-tokens", "12",
            "--shard-size", "2", "--workers", "1", "--prompt", "plain"]


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_with_every_solution_once(tmp_path, toy_solutions,
                                                                    tiny_lm):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(mc_command(toy_solutions, tiny_lm, out), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((out / "shards").glob("*.done")):  # wait for the first finished shard
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / rundir.MARKER).exists()
    done_before = len(list((out / "shards").glob("*.done")))
    assert 1 <= done_before < 6
    subprocess.run(mc_command(toy_solutions, tiny_lm, out), check=True, env=env,
                   capture_output=True)
    records = read_records(out / "annotated.jsonl", "solution")
    expected = [r["id"] for r in read_records(toy_solutions, "solution")]
    assert [r["id"] for r in records] == expected  # each exactly once, in order
    subprocess.run(mc_command(toy_solutions, tiny_lm, tmp_path / "straight"), check=True,
                   env=env, capture_output=True)
    assert (out / "annotated.jsonl").read_text() == \
        (tmp_path / "straight" / "annotated.jsonl").read_text()


@pytest.fixture
def ray_session():
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_local_and_ray_executors_give_identical_files(tmp_path, toy_solutions, tiny_lm,
                                                      ray_session):
    cfg = mc.MCConfig(solutions=str(toy_solutions), model=str(tiny_lm), prompt="plain", k=2,
                      max_new_tokens=12, shard_size=3)
    # one thread each, as Ray actors run: float sums in another order can flip a near-tied
    # sample, so identical files need identical thread counts
    local = tmp_path / "local"
    mc.run(cfg, local, backend=BackendConfig(workers=2, threads=1), progress=False)
    ray_out = tmp_path / "ray"
    ray_session.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    mc.run(cfg, ray_out, backend=BackendConfig(executor="ray", actors=2, threads=1),
           progress=False)
    assert len(list((ray_out / "shards").glob("*.done"))) == 4
    assert (local / "annotated.jsonl").read_text() == (ray_out / "annotated.jsonl").read_text()

    # sampling takes the same executors: Ray actors (a CPU each here; actor_gpus=1 on a GPU
    # machine puts one model copy on each GPU) write what one local process writes
    from prmkit import sample
    from prmkit.records import write_jsonl
    problems = [{"id": r["id"], "problem": r["problem"], "answer": r["gold_answer"]}
                for r in read_records(toy_solutions, "solution")[:6]]
    write_jsonl(tmp_path / "problems.jsonl", problems)
    scfg = sample.SampleConfig(problems=str(tmp_path / "problems.jsonl"), model=str(tiny_lm),
                               prompt="plain", n=2, max_new_tokens=12, shard_size=2)
    sample.run(scfg, tmp_path / "s-local", backend=BackendConfig(threads=1), progress=False)
    sample.run(scfg, tmp_path / "s-ray", progress=False, backend=BackendConfig(
        executor="ray", actors=2, threads=1, actor_cpus=1, actor_gpus=0))
    assert (tmp_path / "s-local" / "solutions.jsonl").read_text() == \
        (tmp_path / "s-ray" / "solutions.jsonl").read_text()

    # and so does scoring: each actor loads the PRM once and scores whole shards
    from prmkit.models import load_tokenizer
    from prmkit.prm.model import build_prm, save_prm
    from prmkit.prm.score import ScoreConfig
    from prmkit.prm.score import run as score_run
    save_prm(build_prm(str(tiny_lm), load_tokenizer(tiny_lm, padding_side="right")),
             tmp_path / "prm")
    common = {"solutions": str(toy_solutions), "model": str(tmp_path / "prm"), "shard_size": 3,
              "device": "cpu"}
    score_run(ScoreConfig(**common), tmp_path / "score-local", progress=False)
    score_run(ScoreConfig(**common, executor="ray", actors=2), tmp_path / "score-ray",
              progress=False)
    assert len(list((tmp_path / "score-ray" / "shards").glob("*.done"))) == 4
    assert (tmp_path / "score-local" / "scores.jsonl").read_text() == \
        (tmp_path / "score-ray" / "scores.jsonl").read_text()

    # what the cluster (2 CPUs, no GPU) cannot host fails at once, naming what is missing;
    # more actors than fit are not made (each would hold a shard, pending for ever)
    import time
    for asked, field in (({"actor_gpus": 1.0}, "actor_gpus"), ({"actor_cpus": 64.0},
                                                               "actor_cpus")):
        began = time.monotonic()
        with pytest.raises(InputError) as error:
            mc.run(cfg, tmp_path / f"mc-{field}", progress=False,
                   backend=BackendConfig(executor="ray", threads=1, **asked))
        assert error.value.field == field and "no node of the Ray cluster" in str(error.value)
        assert time.monotonic() - began < 10
    mc.run(cfg, tmp_path / "mc-many", progress=False,
           backend=BackendConfig(executor="ray", actors=6, actor_cpus=1.0, threads=1))
    assert (tmp_path / "mc-many" / "annotated.jsonl").read_text() == \
        (local / "annotated.jsonl").read_text()


def test_unknown_executor_is_refused(tmp_path):
    shards = Shards(tmp_path, [1, 2], 1, {})
    with pytest.raises(InputError) as error:
        run(shards, lambda: (lambda items, i: items), executor="dask")
    assert error.value.field == "executor"


def descendants(root: int) -> list[int]:
    parent = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier}
        found += sorted(frontier)
    return found


@pytest.mark.slow
def test_a_killed_driver_leaves_no_ray_processes_behind(tmp_path):
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    script = (
        "import os, ray, time\n"
        "from prmkit.runner import start_ray\n"
        "start_ray(ray)\n"
        "@ray.remote\n"
        "class A:\n"
        "    def pid(self):\n"
        "        return os.getpid()\n"
        "a = A.remote()\n"
        "node = ray._private.worker._global_node\n"
        "pids = [i.process.pid for v in node.all_processes.values() for i in v]\n"
        "pids.append(ray.get(a.pid.remote()))\n"
        "print(' '.join(map(str, pids)), flush=True)\n"
        "time.sleep(120)\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env)
    pids = [int(p) for p in driver.stdout.readline().split()]
    assert len(pids) >= 3  # the GCS, the raylet, ... and the actor
    time.sleep(1)
    pids += descendants(driver.pid)  # the raylet's own agents too
    driver.send_signal(signal.SIGKILL)
    driver.wait()

    def running(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
        except OSError:
            return False
    deadline = time.monotonic() + 30
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [p for p in pids if running(p)] == []


def test_ray_actors_are_made_only_where_a_node_can_host_them():
    from prmkit.runner import actors_that_fit
    nodes = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}},
             {"Alive": True, "Resources": {"CPU": 4.0}},
             {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]
    assert actors_that_fit(nodes, 8, 1.0, 1.0) == 2     # the GPUs of the one GPU node
    assert actors_that_fit(nodes, 8, 1.0, 0.0) == 8     # 12 CPUs
    assert actors_that_fit(nodes, 20, 0.1, 0.0) == 20
    assert actors_that_fit(nodes, 20, 3.0, 0.0) == 3    # 2 on the first node, 1 on the second
    with pytest.raises(InputError) as error:
        actors_that_fit(nodes, 2, 1.0, 4.0)
    assert error.value.field == "actor_gpus" and "2 GPUs on 2 live node(s)" in str(error.value)
    with pytest.raises(InputError) as error:
        actors_that_fit(nodes, 2, 16.0, 0.0)
    assert error.value.field == "actor_cpus"
