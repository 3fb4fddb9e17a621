"""The report of a real-data run (``prmkit.paper``): ``report.md`` and ``report.html``.

Nothing here needs step truth: label sources are compared with each other, PRMs with the
benchmarks. Sections: the label sources (agreement heatmap, kept share, cost), the PRMs'
training curves, ProcessBench per subset with F1 against threshold, Best-of-N against N with
each PRM's within-problem AUC, the final-step diagnostic (how often a response's lowest step
score is its last step: the MC-trained PRMs' tell in the paper), and the step viewer on the
ProcessBench items some PRM gets wrong. The page is the demo's template
(``demo_template.html``), filled with this run's texts.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

from prmkit.records import atomic_write_bytes, atomic_write_text

VIEWER_ITEMS = 200  # ProcessBench items in the step viewer at most


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
    lines += _table(["cost", "count"], [[k, str(v)] for k, v in results["costs"].items()])
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


# --- plots ---------------------------------------------------------------------------------------

def plots(results: dict) -> dict[str, bytes]:
    """PNG bytes of every figure; a section with nothing to draw says so in its figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(fig) -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    def empty(ax, text: str) -> None:
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)

    out = {}
    matrix = results["consensus"]["agreement_matrix"]
    buckets = list(matrix["counts"])
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    grid = [[matrix["counts"][r][c] for c in buckets] for r in buckets]
    ax.imshow(grid, cmap="Blues")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(buckets)), buckets, rotation=30)
    ax.set_yticks(range(len(buckets)), buckets)
    ax.set_xlabel(f"{matrix['columns']}: first error")
    ax.set_ylabel(f"{matrix['rows']}: first error")
    ax.set_title("Where the label sources put the first error")
    out["label_agreement"] = png(fig)

    def curves(lines: dict[str, tuple[list, list]], xlabel: str, ylabel: str, title: str,
               nothing: str) -> bytes:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for name, (xs, ys) in lines.items():
            ax.plot(xs, [float("nan") if y is None else y for y in ys], marker=".",
                    label=name)
        if not lines:
            empty(ax, nothing)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        return png(fig)

    out["training"] = curves(
        {name: ([h["step"] for h in t["history"]], [h["loss"] for h in t["history"]])
         for name, t in results["training"].items()},
        "optimizer step", "training loss", "PRM training", "no PRM was trained")
    out["processbench_threshold"] = curves(
        {name: ([s["threshold"] for s in m["sweep"]], [s["average_f1"] for s in m["sweep"]])
         for name, m in results["processbench"].items()},
        "threshold (a step at or below it is an error)", "average F1 over subsets",
        "ProcessBench F1 against threshold", "no ProcessBench run")

    sets = [(name, by_prm) for name, by_prm in results["bon"].items() if by_prm]
    fig, axes = plt.subplots(1, max(1, len(sets)), figsize=(5 * max(1, len(sets)), 3.6),
                             squeeze=False)
    for ax, (set_name, by_prm) in zip(axes[0], sets):
        first = next(iter(by_prm.values()))["bon"]
        ns = first["ns"]
        for name, r in by_prm.items():
            ax.plot(ns, [r["bon"]["accuracy"]["min"][n] for n in ns], marker="o",
                    label=f"{name} (min)")
        for method, style in (("maj", "k--"), ("pass", "k:"), ("random", "-.")):
            ax.plot(ns, [first["accuracy"][method][n] for n in ns], style, color="grey"
                    if method == "random" else None, label=f"{method}@N")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_title(f"Best-of-N: {set_name}")
        ax.set_xlabel("N")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if not sets:
        empty(axes[0][0], "no Best-of-N set")
    out["best_of_n"] = png(fig)

    fig, ax = plt.subplots(figsize=(6, 3.4))
    shares = {f"{name} ({set_name})": r["bon"]["min_on_final_step"]["share"]
              for set_name, by_prm in sets for name, r in by_prm.items()}
    ax.bar(list(shares), [v or 0 for v in shares.values()])
    if not shares:
        empty(ax, "no scored responses")
    ax.set_ylabel("% of responses")
    ax.set_title("Lowest step score on the final step")
    ax.tick_params(axis="x", rotation=20)
    ax.grid(alpha=0.3, axis="y")
    out["min_on_final_step"] = png(fig)
    return out


# --- the page -------------------------------------------------------------------------------------

def viewer_rows(items: list[dict], scores: dict[str, dict[str, list]],
                threshold: float = 0.5) -> list[dict]:
    """The ProcessBench items some PRM gets wrong (its first step at or below ``threshold``
    is not the labelled first error), with every PRM's step scores, for the step viewer."""
    from prmkit.labels import first_at_or_below
    rows = []
    for item in items:
        by_prm = {name: by_id.get(item["id"]) or [] for name, by_id in scores.items()}
        if all(first_at_or_below(s, threshold) == item["label"] for s in by_prm.values()):
            continue
        rows.append({"id": item["id"], "problem": item["problem"], "steps": item["steps"],
                     "truth": item["label"], "answer_correct": item.get("final_answer_correct"),
                     "verdicts": {}, "scores": {name: [None if x is None else round(x, 3)
                                                       for x in s]
                                                for name, s in by_prm.items()}})
        if len(rows) == VIEWER_ITEMS:
            break
    return rows


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def html_page(results: dict, images: dict[str, bytes], viewer: list[dict]) -> str:
    from prmkit.report.demo import figures_html, fill
    agreement = results["consensus"]
    labels = _html_table(
        ["sources", "agree on the first error"],
        [[pair, _pct(share)] for pair, share in agreement["pairwise_agreement"].items()]
        + [[f"{source}: no verdict", str(n)] for source, n in agreement["no_verdict"].items()]
        + [["consensus kept", f"{agreement['kept']} of {agreement['n_solutions']} "
            f"({_pct(agreement['kept_share'])})"]]
        + [[f"cost: {k}", str(v)] for k, v in results["costs"].items()])
    subsets = sorted({s for m in results["processbench"].values() for s in m["subsets"]})
    prms = _html_table(["PRM", *subsets, "average F1"], [
        [name, *(_num(m["subsets"].get(s, {}).get("f1")) for s in subsets),
         _num(m["average_f1"])] for name, m in results["processbench"].items()])
    ranking = _html_table(["PRM", "set", "within-problem AUC", "95% interval",
                           "Best-of-N (min) at the largest N"], [
        [name, set_name, _num(r["ranking"]["answer"]["auc"], 3),
         f"{_num(r['ranking']['answer']['low'], 3)}–{_num(r['ranking']['answer']['high'], 3)}",
         _num(r["bon"]["accuracy"]["min"][max(r["bon"]["ns"])])]
        for set_name, by_prm in results["bon"].items() for name, r in by_prm.items()])
    findings = [f"Policy {results['policy']}; judge {results['judge']}."]
    findings += [f"No {name} PRM: {why}." for name, why in results["skipped_prms"].items()]
    payload = json.dumps({"solutions": viewer, "prms": list(results["processbench"]),
                          "sources": [], "thresholds": {k: 0.5 for k in
                                                        results["processbench"]}},
                         ensure_ascii=False).replace("</", "<\\/")
    template = (Path(__file__).parent / "demo_template.html").read_text()
    return (fill(template, TITLE="prmkit run report: the paper's pipeline",
                 RANKING_LEGEND="Candidates of one problem ranked by their minimum step score; "
                 "the AUC is the chance that a right answer scores above a wrong one of the "
                 "same problem (0.5: chance; 95% bootstrap interval over problems).",
                 LABELS_TITLE="Label sources (compared with each other)",
                 PRMS_TITLE="ProcessBench (F1 per subset, threshold 0.5)",
                 PRMS_LEGEND="F1: the harmonic mean of the accuracy on erroneous and on "
                 "correct items; a step at or below 0.5 is an error.")
            .replace("%SUMMARY%", html.escape(
                f"{agreement['n_solutions']} training solutions annotated; "
                f"{len(results['training'])} PRMs trained."))
            .replace("%FINDINGS%", "".join(f"<li>{html.escape(f)}</li>" for f in findings))
            .replace("%RANKING%", ranking).replace("%LABELS%", labels)
            .replace("%PRMS%", prms).replace("%FIGURES%", figures_html(images))
            .replace("%VIEWER%", html.escape(
                f"{len(viewer)} ProcessBench items that some PRM gets wrong (at most "
                f"{VIEWER_ITEMS}), scored by every PRM."))
            .replace("%DATA%", payload))


def write(out: Path, results: dict, viewer: list[dict]) -> None:
    out = Path(out)
    images = plots(results)
    for name, png in images.items():
        atomic_write_bytes(out / "plots" / f"{name}.png", png)
    text, page = markdown(results), html_page(results, images, viewer)
    atomic_write_text(out / "report.md", lambda f: f.write(text))
    atomic_write_text(out / "report.html", lambda f: f.write(page))
