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
    order = ["pass", "maj", "random", "last", "min", "prod", "mean", "response",
             "vote_last", "vote_min", "vote_prod", "vote_mean"]
    for method in sorted(accuracy, key=lambda m: order.index(m) if m in order else len(order)):
        table.add_row(method, *(_fmt(accuracy[method].get(n)) for n in ns))
    return table


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def toy_stats_table(numbers: dict) -> Table:
    s, r = numbers["solutions"], numbers["rollouts"]
    table = Table(title=f"Toy world: {s['solutions']} sampled solutions, exact truth")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("final answer correct", _pct(s["final_answer_correct"])),
        ("every step correct (process-correct)", _pct(s["process_correct"])),
        ("no answer step", _pct(s["no_answer"])),
        ("correct answer, flawed process", _pct(s["correct_answer_flawed_process"])),
        ("  ... share of the correct answers", _pct(s["flawed_share_of_correct_answers"])),
        *[(f"  ... {cause}", str(count)) for cause, count in s["flawed_right_by_cause"].items()],
        ("first error position (step: count)",
         ", ".join(f"{k}: {v}" for k, v in s["first_error_position"].items())),
        ("first error kind", ", ".join(f"{k} {v}" for k, v in s["first_error_kind"].items())),
        (f"right answer from a wrong prefix ({r['wrong_prefixes']} prefixes x "
         f"{r['rollouts_per_prefix']})", _pct(r["right_answer_from_wrong_prefix"])),
        ("  ... wrong prefixes with any right rollout (MC-hard says 'correct')",
         _pct(r["wrong_prefixes_with_any_right_rollout"])),
        (f"wrong answer from a sound prefix ({r['sound_prefixes']} prefixes)",
         _pct(r["wrong_answer_from_sound_prefix"])),
        ("  ... sound prefixes with no right rollout (MC-hard says 'wrong')",
         _pct(r["sound_prefixes_with_no_right_rollout"])),
    ]
    for row in rows:
        table.add_row(*row)
    return table
