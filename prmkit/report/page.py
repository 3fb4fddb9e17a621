"""The run report: ``report.md`` and a self-contained ``report.html`` (plots inlined, the step
viewer with its data inside the page), one for every run.

Sections: the findings (``findings.py``), how the PRMs rank the solutions of one problem, the
label sources (against the step truth where the run has it), the PRMs' training, each
benchmark's own tables (``Benchmark.tables``, found in the registry), the figures, and in the
page the step viewer.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from prmkit import evaluate
from prmkit.evaluate.benchmark import ReportTable
from prmkit.records import atomic_write_bytes, atomic_write_text
from prmkit.report import comparisons, plots, sections
from prmkit.report.findings import findings
from prmkit.report.viewer import benchmark_rows, training_rows

TEMPLATE = Path(__file__).parent / "template.html"


def tables(results: dict) -> list[ReportTable]:
    out = [*sections.ranking_tables(results), *comparisons.tables(results),
           *sections.label_tables(results), *sections.training_table(results)]
    for name in results["benchmarks"]:
        out += evaluate.benchmark(name).tables(results)
    return out + sections.judge_tables(results) + sections.search_tables(results)


def figures(results: dict) -> dict[str, bytes]:
    drawn = {}
    for name in results["benchmarks"]:
        drawn.update(evaluate.benchmark(name).plots(results))
    return {**drawn, **plots.figures(results)}


def summary(results: dict) -> str:
    parts = [f"Policy {results['policy']}"
             + (f", judge {results['judge']}" if results.get("judge") else ""),
             f"{results['counts']['train_solutions']} training solutions (labelled, then "
             f"trained on)"]
    for set_name, size in results["benchmarks"].get("bon", {}).items():
        parts.append(f"Best-of-N on {set_name}: {size['n_problems']} problems, "
                     f"{size['n_solutions']} candidates")
    if "processbench" in results["benchmarks"]:
        pb = results["benchmarks"]["processbench"]
        parts.append(f"ProcessBench: {pb['n_items']} items, {pb['n_erroneous']} erroneous")
    if results["labels"]["quality"] is not None:
        parts.append("the step truth of every solution is known")
    return "; ".join(parts) + "."


# --- report.md ------------------------------------------------------------------------------------

def _markdown_table(table: ReportTable) -> list[str]:
    lines = [f"## {table.title}", "", "| " + " | ".join(table.head) + " |",
             "|" + "---|" * len(table.head)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return lines + ([""] + [table.legend] if table.legend else []) + [""]


def markdown(results: dict, made: list[ReportTable], images: dict, timings: dict) -> str:
    lines = ["# prmkit run report", "", summary(results), "", "## Findings", ""]
    lines += [f"- {sentence}" for sentence in findings(results)]
    lines += [f"- No {name} PRM: {why}." for name, why in results["skipped_prms"].items()]
    lines.append("")
    for table in made:
        lines += _markdown_table(table)
    lines += ["Plots: " + ", ".join(f"`plots/{name}.png`" for name in images)
              + "; the step viewer is in `report.html`.", "", "## Time", ""]
    lines += [f"- {name}: {t['seconds']}s" + (" (reused)" if t.get("reused") else "")
              for name, t in timings.items()]
    return "\n".join(lines) + "\n"


# --- report.html -----------------------------------------------------------------------------------

def _inline_markdown(text: str) -> str:
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(table: ReportTable) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in table.head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    legend = f'<p class="legend">{html.escape(table.legend)}</p>' if table.legend else ""
    return (f"<h2>{html.escape(table.title)}</h2><table><thead><tr>{cells}</tr></thead>"
            f"<tbody>{body}</tbody></table>{legend}")


def viewer_data(results: dict, evaluation, items: int) -> dict:
    """The viewer's rows (training solutions, then at most ``items`` ProcessBench items some
    PRM gets wrong), and each PRM's threshold for every group: its best ones where ProcessBench
    measured them."""
    prms = list(results["prms"])
    thresholds = {}
    for name in prms:
        measured = results["prms"][name].get("processbench")
        best = {s: m["threshold"] for s, m in measured["at_best"]["subsets"].items()} \
            if measured else {}
        thresholds[name] = {**best, "training": sum(best.values()) / len(best) if best else 0.5}
    rows = training_rows(evaluation.viewer_solutions, results["labels"]["sources"],
                         evaluation.viewer)
    if evaluation.groups.get("processbench"):
        rows += benchmark_rows(evaluation.groups["processbench"]["items"],
                               {name: evaluation.scores[name]["processbench"]["items"]
                                for name in prms}, thresholds, items)
    return {"solutions": rows, "prms": prms, "sources": list(results["labels"]["sources"]),
            "thresholds": thresholds}


def html_page(results: dict, made: list[ReportTable], images: dict, data: dict) -> str:
    figures_html = "".join(f'<figure><img alt="{name}" src="data:image/png;base64,'
                           f'{base64.b64encode(png).decode()}"></figure>'
                           for name, png in images.items())
    groups = sorted({row["group"] for row in data["solutions"]})
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    viewer = (f"{len(data['solutions'])} solutions ({', '.join(groups) or 'none'}): training "
              f"solutions whose label sources disagree first, then a seeded draw, and the "
              f"ProcessBench items some PRM gets wrong; scored by every PRM.")
    return (TEMPLATE.read_text()
            .replace("%TITLE%", "prmkit run report")
            .replace("%SUMMARY%", html.escape(summary(results)))
            .replace("%FINDINGS%", "".join(f"<li>{_inline_markdown(f)}</li>"
                                           for f in findings(results)))
            .replace("%SECTIONS%", "".join(_html_table(t) for t in made))
            .replace("%FIGURES%", figures_html)
            .replace("%VIEWER%", html.escape(viewer))
            .replace("%DATA%", payload))


def write(out: Path, results: dict, evaluation, timings: dict, viewer_items: int) -> None:
    images = figures(results)
    for name, png in images.items():
        atomic_write_bytes(out / "plots" / f"{name}.png", png)
    made = tables(results)
    text = markdown(results, made, images, timings)
    page = html_page(results, made, images, viewer_data(results, evaluation, viewer_items))
    atomic_write_text(out / "report.md", lambda f: f.write(text))
    atomic_write_text(out / "report.html", lambda f: f.write(page))
