"""Rich tables of evaluation metrics, for the terminal."""

from __future__ import annotations

from rich.table import Table


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def processbench_table(metrics: dict) -> Table:
    title = "ProcessBench"
    if metrics["mode"] == "step_scores":
        title += f" (threshold {metrics['threshold']:g}, {metrics['threshold_source']})"
    table = Table(title=title)
    for column in ("subset", "n", "error acc", "correct acc", "F1", "flawed-process, right answer"):
        table.add_column(column, justify="left" if column == "subset" else "right")
    for name, m in metrics["subsets"].items():
        flawed = m["flawed_correct_answer"]
        table.add_row(name, str(m["n"]), _fmt(m["error_acc"]), _fmt(m["correct_acc"]),
                      _fmt(m["f1"]), f"{_fmt(flawed['acc'])} (n={flawed['n']})")
    table.add_row("average", "", "", "", _fmt(metrics["average_f1"]), "", style="bold")
    return table


def sweep_table(metrics: dict) -> Table:
    subsets = list(metrics["subsets"])
    table = Table(title="F1 against threshold (best per subset is an upper bound)")
    for column in ["threshold", *subsets, "average"]:
        table.add_column(column, justify="right")
    for row in metrics["sweep"]:
        table.add_row(f"{row['threshold']:g}", *(_fmt(row["f1"][s]) for s in subsets),
                      _fmt(row["average_f1"]))
    best = metrics["best_threshold_per_subset"]
    table.add_row("best", *(f"{_fmt(best[s]['f1'])} @{best[s]['threshold']:g}" for s in subsets),
                  "", style="bold")
    return table


def bon_table(name: str, accuracy: dict, ns: list[int]) -> Table:
    table = Table(title=f"Best-of-N accuracy: {name}")
    table.add_column("method")
    for n in ns:
        table.add_column(f"N={n}", justify="right")
    order = ["pass", "maj", "last", "min", "prod", "mean", "response",
             "vote_last", "vote_min", "vote_prod", "vote_mean"]
    for method in sorted(accuracy, key=lambda m: order.index(m) if m in order else len(order)):
        table.add_row(method, *(_fmt(accuracy[method].get(n)) for n in ns))
    return table
