"""Why do the demo's PRMs not verify steps? Train PRMs on one set of toy solutions under several
settings and measure, side by side, how each ranks the solutions *of one problem*.

Reads a demo run folder (``prmkit demo`` writes ``runs/demo``): its training solutions
(``consensus/annotated.jsonl``, with every label source and the exact truth) and its held-out
solutions (the Best-of-N set's candidates, ``bon-toy/sample/solutions.jsonl``). Every variant trains a PRM with ``prmkit.prm.train`` on
the same solutions and is measured on the held-out ones:

    process AUC   within-problem AUC, sound process vs flawed (exact truth), min step score,
                  with its 95% bootstrap interval over problems
    answer AUC    within-problem AUC, right final answer vs wrong, min step score
    fit           process AUC on its own training solutions (can it fit what it saw?)
    BoN@N         Best-of-N accuracy with the min aggregation; random pick and maj@N beside
    F1            toy ProcessBench F1 at the best threshold (balanced held-out items)

    .venv/bin/python benchmarks/prm_study.py --run runs/demo --out runs/study   # ~25 min
    .venv/bin/python benchmarks/prm_study.py --only "plain layout" --variant \
        "mine=format=plain,readout=likelihood,lr=3e-4" --only mine

With ``--curves`` it trains the exact-truth PRM of the demo's setting for 50 to 400 steps at two
learning rates instead (``CURVES``), and every row also says how the PRM ranks sound solutions
against those whose first error is a misconception, and against those with a slip.

Arms that change the model itself rather than a setting (Math-Shepherd's LM-logit readout,
layers added on top) patch ``prmkit.prm.train`` and ``prmkit.prm.modules`` for their run only. Each variant's PRM is kept
in ``--out/<variant>`` and reused on a second run. The table is in docs/toy-prms.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from prmkit import config, rundir
from prmkit.evaluate import bon, processbench
from prmkit.evaluate.ranking import solution_groups, within_problem_auc
from prmkit.prm import modules as prm_modules
from prmkit.prm import train as prm_train
from prmkit.prm.score import score
from prmkit.prm.train import TrainConfig, train, untrained
from prmkit.records import read_records

# name -> prmkit.prm.train settings (over BASE). The first is the demo's setting before the fix.
BASE = {"labels": "truth.step_labels", "batch_size": 16, "eval_fraction": 0, "max_steps": 50,
        "lr": 1e-3, "format": "step-token"}
VARIANTS = {
    # the field's standard readout: a head on the hidden state at each step's separator
    "separator token (the demo before)": {},
    "separator token, 400 steps": {"max_steps": 400},
    "separator token, lr 3e-4": {"lr": 3e-4},
    "separator token, lr 1e-4": {"lr": 1e-4},
    "separator token, bce head": {"head": "bce"},
    "separator token, fp32": {"bf16": False},
    "separator token, after-error steps": {"include_after_error": True},
    "plain layout": {"format": "plain"},
    "plain, 400 steps": {"format": "plain", "max_steps": 400},
    "plain, lr 1e-4": {"format": "plain", "lr": 1e-4},
    "plain, lr 1e-4, 400 steps": {"format": "plain", "lr": 1e-4, "max_steps": 400},
    "plain, LM-logit readout (+/- rows)": {"format": "plain", "arm": "lm-logits"},
    "plain, LM-logit readout, 400 steps": {"format": "plain", "arm": "lm-logits",
                                           "max_steps": 400},
    "plain, 2 layers added on top": {"format": "plain", "arm": "add-2-layers"},
    "plain, 2 layers added, 400 steps": {"format": "plain", "arm": "add-2-layers",
                                         "max_steps": 400},
    # the head also reads the backbone LM's likelihood of the step's tokens
    "likelihood, separator token, lr 1e-4": {"readout": "likelihood", "lr": 1e-4},
    "likelihood, plain, lr 1e-3": {"format": "plain", "readout": "likelihood"},
    "likelihood, plain, lr 1e-4 (the demo now)": {"format": "plain", "readout": "likelihood",
                                                  "lr": 1e-4},
    "likelihood, plain, lr 1e-4, seed 1": {"format": "plain", "readout": "likelihood",
                                           "lr": 1e-4, "seed": 1},
    "likelihood, plain, head only": {"format": "plain", "readout": "likelihood",
                                     "train_backbone": False},
    # no training at all: the policy's own lowest token probability of each step
    "untrained likelihood PRM (policy's min token prob.)": {"format": "plain",
                                                            "readout": "likelihood",
                                                            "arm": "untrained"},
}

# --curves: the exact-truth PRM's learning curves on a world with misconceptions (the policy's
# confident errors), over training steps, at two learning rates, with the readout of the demo
CURVES = {"no labels (untrained)": {"format": "plain", "readout": "likelihood",
                                    "arm": "untrained"}}
for _lr in ("1e-4", "3e-4"):
    for _steps in (50, 100, 200, 400):
        CURVES[f"lr {_lr}, {_steps} steps"] = {"format": "plain", "readout": "likelihood",
                                               "lr": _lr, "max_steps": _steps}


# --- experiment arms that change the model itself (not prmkit settings) ---------------------

def lm_logit_arm(prm):
    """Math-Shepherd's readout, trained: the step head is one linear map initialised from the
    LM head's rows of '-' and '+' (so the score starts as the LM's own +/- preference)."""
    import torch
    vocab = prm.tokenizer.get_vocab()
    emb = prm.module.model.get_input_embeddings().weight
    head = torch.nn.Linear(emb.shape[1], 2)
    with torch.no_grad():
        head.weight.copy_(emb[[vocab["-"], vocab["+"]]])
        head.bias.zero_()
    prm.module.score = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Identity(), head)


def add_layers_arm(prm, n: int = 2):
    """A larger PRM than the policy: n new decoder layers on top, residual branches zeroed so
    the backbone computes what the policy did until they learn."""
    import torch
    backbone, config = prm.module.model, prm.module.model.config
    layers, start = backbone.layers, len(backbone.layers)
    config.num_hidden_layers = start + n
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types) + [config.layer_types[-1]] * n
    for index in range(start, start + n):
        layer = type(layers[-1])(config, layer_idx=index)
        for name, param in layer.named_parameters():
            if name.endswith("norm.weight"):
                torch.nn.init.ones_(param)
            elif name.endswith(("o_proj.weight", "down_proj.weight", "bias")):
                torch.nn.init.zeros_(param)
            else:
                torch.nn.init.normal_(param, std=config.initializer_range)
        layers.append(layer)


# "untrained": prmkit.prm.train.untrained, the PRM before any step (no labels at all)
ARMS = {"lm-logits": lm_logit_arm, "add-2-layers": add_layers_arm, "untrained": None}


def with_arm(arm: str | None):
    """Patch ``build_prm`` (as training calls it) and ``StepRewardModel`` (loading for scoring)
    for an arm."""
    originals = prm_train.build_prm, prm_modules.StepRewardModel.__init__
    if arm is None or ARMS[arm] is None:
        return originals
    change = ARMS[arm]

    def build(*args, **kwargs):
        prm = originals[0](*args, **kwargs)
        change(prm)
        return prm

    def init(self, backbone, *args, **kwargs):
        originals[1](self, backbone, *args, **kwargs)
        if arm == "lm-logits":  # the saved layout: score.2 is the linear map
            import torch
            self.score = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Identity(),
                                             torch.nn.Linear(backbone.config.hidden_size, 2))
    prm_train.build_prm, prm_modules.StepRewardModel.__init__ = build, init
    return originals


def restore(originals) -> None:
    prm_train.build_prm, prm_modules.StepRewardModel.__init__ = originals


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, settings = text.partition("=")
    out = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        out[key] = value
    return name, out


def within(solutions, scores, good, keep=lambda s: True):
    agg = {s["id"]: min(scores[s["id"]]) if scores[s["id"]] else None for s in solutions}
    return within_problem_auc(solution_groups(solutions, agg, good, keep))


def origin(s: dict) -> str | None:
    return s["truth"].get("first_error_origin")


def measure(prm_folder: Path, train: list[dict], heldout: list[dict], bench: list[dict]) -> dict:
    everything = heldout + train
    rows = score([s["problem"] for s in everything], [s["steps"] for s in everything],
                 str(prm_folder))
    scores = {s["id"]: row for s, row in zip(everything, rows)}
    sound = lambda s: s["truth"]["label"] < 0  # noqa: E731
    right = lambda s: s["final_answer_correct"]  # noqa: E731
    pb = processbench.metrics(bench, step_scores={b["id"]: scores[b["id"]] for b in bench})
    best = pb["best_threshold_per_subset"]["toy"]
    best_of_n = bon.metrics({"toy": bon.candidate_sets(heldout, scores)},
                            group_by="string")["benchmarks"]["toy"]
    by_origin = {o: within(heldout, scores, sound, lambda s, o=o: sound(s) or origin(s) == o)
                 for o in ("misconception", "slip")}
    return {"process": within(heldout, scores, sound), "answer": within(heldout, scores, right),
            "by_origin": by_origin, "fit": within(train, scores, sound), "f1": best.get("f1"),
            "bon": {"ns": best_of_n["ns"],
                    **{m: list(by_n.values()) for m, by_n in best_of_n["accuracy"].items()}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--out", type=Path, default=Path("runs/study"))
    parser.add_argument("--only", action="append", help="run only these variants (names)")
    parser.add_argument("--variant", action="append", default=[],
                        help="an extra variant: NAME=key=value,key=value")
    parser.add_argument("--base", default="", help="settings over the base: key=value,...")
    parser.add_argument("--curves", action="store_true",
                        help="the learning-curve variants (CURVES) instead of VARIANTS")
    args = parser.parse_args()

    data = args.run / "consensus" / "annotated.jsonl"
    policy = json.loads((args.run / "results.json").read_text())["policy"]
    train_set = read_records(data, "solution")
    heldout = read_records(args.run / "bon-toy" / "sample" / "solutions.jsonl", "solution")
    bench = processbench.items_from_truth(heldout, subset="toy")
    variants = dict(CURVES if args.curves else VARIANTS)
    variants.update(parse_variant(v) for v in args.variant)
    base = {**BASE, **parse_variant("base=" + args.base)[1]}
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only}
    results = {}
    for name, settings in variants.items():
        values = {**base, **settings, "data": str(data), "model": policy}
        arm = values.pop("arm", None)
        cfg = config.load(TrainConfig, None, [f"{k}={v}" for k, v in values.items()])
        folder = args.out / rundir.slug(name)
        began = time.monotonic()
        originals = with_arm(arm)
        try:
            metrics = untrained(cfg, folder) if arm == "untrained" else \
                train(cfg, folder, progress=False)
            results[name] = {**measure(folder / "final", train_set, heldout, bench),
                             "seconds": metrics["seconds"]}
        finally:
            restore(originals)
        r = results[name]
        print(f"{name}: process {r['process']['auc']:.3f} "
              f"[{r['process']['low']:.2f}, {r['process']['high']:.2f}]  fit "
              f"{r['fit']['auc']:.3f}  BoN@8 min {r['bon']['min'][-1]:.1f}  "
              f"({time.monotonic() - began:.0f}s)", flush=True)
    report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study.json").write_text(json.dumps(results, indent=1))


def report(results: dict) -> None:
    if not results:
        return
    first = next(iter(results.values()))["bon"]
    ns = first["ns"]
    print(f"\n| variant | process AUC (within problem) | vs misconceptions | vs slips | "
          f"answer AUC | fit (train) | BoN@{'/'.join(map(str, ns))} (min) | F1 | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        p, o = r["process"], r["by_origin"]
        print(f"| {name} | {p['auc']:.3f} [{p['low']:.2f}, {p['high']:.2f}] | "
              f"{_auc(o['misconception'])} | {_auc(o['slip'])} | "
              f"{r['answer']['auc']:.3f} | {r['fit']['auc']:.3f} | "
              f"{' / '.join(f'{x:.0f}' for x in r['bon']['min'])} | {r['f1']:.1f} | "
              f"{r['seconds']:.0f} |")
    print(f"| random pick / maj@N / pass@N | | | | | | "
          f"{first['random'][-1]:.0f} / {' / '.join(f'{x:.0f}' for x in first['maj'])} / "
          f"{first['pass'][-1]:.0f} | | |")


def _auc(measured: dict) -> str:
    if measured["auc"] is None:
        return "–"
    return f"{measured['auc']:.2f} [{measured['low']:.2f}, {measured['high']:.2f}]"


if __name__ == "__main__":
    main()
