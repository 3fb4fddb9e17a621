"""The report's own tables (the benchmarks bring theirs: ``Benchmark.tables``): how the PRMs
rank the solutions of one problem, the label sources, and the PRMs' training."""

from __future__ import annotations

from prmkit.evaluate.benchmark import ReportTable, percent
from prmkit.evaluate.bon import at
from prmkit.report.findings import above_chance, auc_text, measured_auc

RANKING_LEGEND = (
    "Solutions are ranked by their minimum step score; the AUC is the chance that, of two "
    "solutions of the same problem, the better one scores higher (95% bootstrap interval over "
    "problems). A PRM that only knows which problems are hard scores 0.5 here. A lesson is "
    "tested only on PRMs whose interval lies above 0.5 (on the first Best-of-N set).")


def _share(x, digits: int = 1) -> str:
    return percent(None if x is None else 100 * x, digits)


def ranking_tables(results: dict) -> list[ReportTable]:
    """A table a Best-of-N set: every PRM's within-problem AUC and whether it beats a random
    pick, beside its Best-of-N accuracy."""
    tables = []
    for set_name in results["benchmarks"].get("bon", {}):
        by_prm = {name: prm["bon"][set_name] for name, prm in results["prms"].items()}
        if not by_prm:
            continue
        first = next(iter(by_prm.values()))["bon"]
        n = max(first["ns"])
        truth = any("process" in m["ranking"] for m in by_prm.values())
        head = ["PRM", *(["within-problem AUC: sound vs flawed process"] if truth else []),
                "within-problem AUC: right vs wrong answer", f"BoN@{n} min",
                "better than random pick"]
        rows = [[name, *([auc_text(measured_auc(m["ranking"], "process"))] if truth else []),
                 auc_text(measured_auc(m["ranking"], "answer")), percent(at(m["bon"], "min", n)),
                 "yes" if above_chance(m["ranking"]) else "no"] for name, m in by_prm.items()]
        rows.append([f"random pick@{n}", *(["0.50"] if truth else []), "0.50",
                     percent(at(first, "random", n)), ""])
        cut = "".join(f" {name}: {m['ranking']['past_context']['solutions']} solutions past its "
                      "context, left out of the pairs." for name, m in by_prm.items()
                      if (m["ranking"].get("past_context") or {}).get("solutions"))
        tables.append(ReportTable(f"How the PRMs rank the solutions of one problem: {set_name}",
                                  head, rows, RANKING_LEGEND + cut))
    return tables


def label_tables(results: dict) -> list[ReportTable]:
    """Each label source against the step truth (where the solutions carry it), how the
    sources agree, and what they cost."""
    labels, tables = results["labels"], []
    if labels["quality"] is not None:
        head = ["label source", "first-error accuracy", "kept", "negative precision",
                "negative recall", "rollouts", "judge calls"]
        rows = [[r["source"], _share(r["first_error_accuracy"]), _share(r["kept_share"], 0),
                 _share(r["negative_precision"]), _share(r["negative_recall"]),
                 str(r["rollouts"]), str(r["judge_calls"])] for r in labels["quality"]["rows"]]
        tables.append(ReportTable("Label quality (against the step truth)", head, rows,
                                  "First-error accuracy over the solutions a source keeps (has "
                                  "a verdict on); negative precision and recall of the steps it "
                                  "calls wrong."))
    agreement = labels["agreement"]
    if agreement is not None:
        rows = [[pair, _share(share)] for pair, share in agreement["pairwise_agreement"].items()]
        rows += [[f"{source}: no verdict", str(n)]
                 for source, n in agreement["no_verdict"].items()]
        rows.append(["consensus kept", f"{agreement['kept']} of {agreement['n_solutions']} "
                                       f"({_share(agreement['kept_share'])})"])
        tables.append(ReportTable("Label sources (compared with each other)",
                                  ["sources", "agree on the first error"], rows))
    tables.append(ReportTable("What the labels cost", ["cost", "count"],
                              [[k, str(v)] for k, v in labels["costs"].items()]))
    return tables


def training_table(results: dict) -> list[ReportTable]:
    if not results["training"]:
        return []
    rows = []
    for name, t in results["training"].items():
        history = t["history"] or [{}]
        first, last = history[0].get("loss"), history[-1].get("loss")
        rows.append([name, str(t["steps"]), "–" if first is None else f"{first:.3f}",
                     "–" if last is None else f"{last:.3f}",
                     _share(t["final_held_out"].get("step_accuracy"))])
    return [ReportTable("PRM training", ["PRM", "steps", "first loss", "last loss",
                                         "held-out step accuracy"], rows)]


def _by_n(accuracy: dict, n: int):
    """An accuracy at N, whether its keys are numbers (just measured) or strings (read back
    from a stage's metrics.json)."""
    return accuracy.get(n, accuracy.get(str(n)))


def judge_tables(results: dict) -> list[ReportTable]:
    """The label judge on its own (``judge_eval``): as a ProcessBench critic, and picking
    Best-of-N candidates itself beside maj@N, pass@N and a random pick."""
    judged = results.get("judge_eval") or {}
    tables = []
    critic = judged.get("processbench")
    if critic:
        rows = [[subset, str(m["n"]), percent(m["error_acc"]), percent(m["correct_acc"]),
                 percent(m["f1"])] for subset, m in critic["subsets"].items()]
        rows.append(["average", "", "", "", percent(critic["average_f1"])])
        stats = critic.get("critique_stats") or {}
        tables.append(ReportTable(
            f"The judge as a ProcessBench critic ({judged['model']})",
            ["subset", "items", "error acc", "correct acc", "F1"], rows,
            "ProcessBench's critique prompt, sampling and official vote (the paper's Table 7 "
            "rows for critic models); compare its average F1 with the PRMs' above. "
            + (f"Of {stats['critiques']} critiques, {stats['unparseable']} named no paragraph "
               f"and {stats['out_of_range']} one out of range; "
               f"{stats['solutions_without_prediction']} items got no prediction."
               if stats else "")))
    modes = judged.get("bon") or {}
    if modes:
        first = next(iter(modes.values()))
        sets = list(first["benchmarks"])
        # the largest N every mode measured (a tournament measures powers of two only)
        measured_ns = [{int(k) for k in m["benchmarks"][sets[0]]["ns"]} for m in modes.values()]
        n = max(set.intersection(*measured_ns) or measured_ns[0])
        head = ["method", *sets, *(["average"] if len(sets) > 1 else [])]

        def row(label: str, measured: dict, method: str) -> list[str]:
            values = [_by_n(measured["benchmarks"][s]["accuracy"][method], n) for s in sets]
            if len(sets) > 1:
                values.append(_by_n(measured["average"].get(method, {}), n))
            return [label, *(percent(v) for v in values)]
        rows = [row(f"judge ({mode})", measured, "response") for mode, measured in modes.items()]
        rows += [row(label, first, method) for label, method in
                 ((f"maj@{n}", "maj"), ("random pick", "random"), (f"pass@{n}", "pass"))]
        verdicts = "; ".join(
            f"{mode}: " + (f"{m['judge']['no_verdict']} candidates without a verdict"
                           if mode == "pointwise" else
                           f"{m['judge']['no_verdict_to_first']} comparisons without a "
                           "verdict (the first went through)")
            for mode, m in modes.items())
        tables.append(ReportTable(
            f"The judge picks Best-of-{n} itself ({judged['model']})", head, rows,
            "Pointwise: each candidate critiqued alone, scored by the share of its steps "
            "judged correct; pairwise: a single-elimination tournament (the paper's Tables "
            f"11-12). {verdicts}."))
    return tables


def search_tables(results: dict) -> list[ReportTable]:
    """Test-time search (``search``): accuracy and the tokens it cost, every method and budget,
    for each PRM, beside majority voting over the same Best-of-N samples."""
    searched = results.get("search")
    if not searched or not searched["by_prm"]:
        return []
    budgets = searched["budgets"]
    largest = max(budgets)
    truth = any(_by_n(m, largest) and _by_n(m, largest).get("sound") is not None
                for by_method in searched["by_prm"].values() for m in by_method.values())
    head = ["PRM", "method", *(f"n={b}: accuracy (tokens)" for b in budgets)]
    head += [f"n={largest}: sound process"] if truth else []

    def cell(m) -> str:
        if not m or m.get("accuracy") is None:
            return "–"
        return f"{m['accuracy']:.1f}% ({m['tokens']:.0f})"
    rows = []
    for prm, by_method in searched["by_prm"].items():
        for method, by_budget in by_method.items():
            row = [prm, method, *(cell(_by_n(by_budget, b)) for b in budgets)]
            if truth:
                row.append(percent((_by_n(by_budget, largest) or {}).get("sound")))
            rows.append(row)
    maj = searched.get("maj") or {}
    if maj:
        rows.append(["–", "maj@n", *(cell(_by_n(maj, b)) for b in budgets),
                     *([""] if truth else [])])
    skipped = (f" Not searched (no such PRM in this run): {', '.join(searched['skipped'])}."
               if searched.get("skipped") else "")
    legend = ("Each PRM guides the policy on the problems of the Best-of-N set "
              f"{searched['set']!r}: greedy keeps the best of n next steps, beam keeps n/width "
              "beams each expanded width times, dvts runs n/width subtrees that never compete, "
              "best_of_n picks the best of n whole solutions; tokens are those the policy "
              "generated a problem. maj@n votes over the same Best-of-N samples. "
              + ("Sound process: the pick's answer is right and every step is right by the "
                 "exact truth. " if truth else "") + skipped)
    return [ReportTable(f"Search at test time: {searched['set']} ({searched['n_problems']} "
                        "problems)", head, rows, legend.strip())]
