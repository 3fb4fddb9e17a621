"""``report.md`` of a real-data run (``prmkit.paper``): the label sources, the PRMs' training,
ProcessBench per subset, Best-of-N per evaluation set with each PRM's within-problem AUC.

Nothing here needs step truth: label sources are compared with each other, PRMs with the
benchmarks. (The HTML report with plots and the step viewer is the demo's so far,
``report/demo.py``.)
"""

from __future__ import annotations

from pathlib import Path

from prmkit.records import atomic_write_text


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _num(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def markdown(results: dict) -> str:
    lines = [f"# prmkit run: {results['policy']}", "",
             f"Policy `{results['policy']}`, judge `{results['judge']}`.", ""]
    agreement = results["consensus"]
    lines += ["## Label sources", "",
              f"{agreement['n_solutions']} solutions; consensus kept {agreement['kept']} "
              f"({_pct(agreement['kept_share'])}).", ""]
    lines += _table(["sources", "agree on the first error"],
                    [[pair, _pct(share)] for pair, share in
                     agreement["pairwise_agreement"].items()])
    lines += _table(["source", "no verdict"],
                    [[source, str(n)] for source, n in agreement["no_verdict"].items()])
    if results["skipped_prms"]:
        lines += ["Skipped PRMs: " + "; ".join(f"{k} ({v})" for k, v in
                                               results["skipped_prms"].items()), ""]
    lines += ["## PRM training", ""]
    lines += _table(["PRM", "steps", "first loss", "last loss", "held-out step accuracy"], [
        [name, str(t["steps"]), _num((t["history"] or [{}])[0].get("loss"), 3),
         _num((t["history"] or [{}])[-1].get("loss"), 3),
         _pct(t["final_held_out"].get("step_accuracy"))]
        for name, t in results["training"].items()])
    if results["processbench"]:
        lines += ["## ProcessBench (F1, threshold 0.5)", ""]
        subsets = list(next(iter(results["processbench"].values()))["subsets"])
        lines += _table(["PRM", *subsets, "average"], [
            [name, *(_num(m["subsets"][s]["f1"]) for s in subsets), _num(m["average_f1"])]
            for name, m in results["processbench"].items()])
    for set_name, by_prm in results["bon"].items():
        lines += [f"## Best-of-N: {set_name}", ""]
        if not by_prm:
            lines += ["No PRM was trained.", ""]
            continue
        first = next(iter(by_prm.values()))["bon"]
        n = max(first["ns"])
        lines += [f"Accuracy at N={n} ({first['n_scored']} problems); within-problem AUC: how "
                  "often the PRM (min over steps) ranks a right answer above a wrong one of "
                  "the same problem (0.5 = chance).", ""]
        methods = [m for m in first["accuracy"] if m not in ("pass", "random")]
        rows = [[name, *(_num(r["bon"]["accuracy"][m][n]) for m in methods),
                 _num(r["ranking"]["answer"]["auc"], 3)] for name, r in by_prm.items()]
        lines += _table(["PRM", *methods, "within-problem AUC"], rows)
        lines += [f"Without a PRM: a random pick {_num(first['accuracy']['random'][n])}, "
                  f"pass@{n} {_num(first['accuracy']['pass'][n])}.", ""]
    return "\n".join(lines) + "\n"


def write_markdown(out: Path, results: dict) -> Path:
    text = markdown(results)
    return atomic_write_text(Path(out) / "report.md", lambda f: f.write(text))
