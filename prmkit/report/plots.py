"""The report's own figures (the benchmarks draw theirs: ``Benchmark.plots``): where the label
sources put the first error, the PRMs' training curves, and the final-step diagnostic."""

from __future__ import annotations

from prmkit.evaluate.benchmark import png


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def label_agreement(results: dict) -> dict[str, bytes]:
    """The first two consensus sources' first errors against each other."""
    agreement = results["labels"]["agreement"]
    if agreement is None:
        return {}
    plt = _pyplot()
    matrix = agreement["agreement_matrix"]
    buckets = list(matrix["counts"])
    grid = [[matrix["counts"][r][c] for c in buckets] for r in buckets]
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    ax.imshow(grid, cmap="Blues")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(buckets)), buckets, rotation=30)
    ax.set_yticks(range(len(buckets)), buckets)
    ax.set(xlabel=f"{matrix['columns']}: first error", ylabel=f"{matrix['rows']}: first error",
           title="Where the label sources put the first error")
    return {"label_agreement": png(fig)}


def training(results: dict) -> dict[str, bytes]:
    curves = {name: t["history"] for name, t in results["training"].items() if t["history"]}
    if not curves:
        return {}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, history in curves.items():
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".",
                label=name)
    ax.set(xlabel="optimizer step", ylabel="training loss", title="PRM training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return {"training": png(fig)}


def min_on_final_step(results: dict) -> dict[str, bytes]:
    """A bar a PRM (and set): how often a response's lowest step score is its final step; red
    for the PRMs trained on MC labels, the paper's suspects."""
    shares = {(name, set_name): measured["bon"]["min_on_final_step"]["share"]
              for name, prm in results["prms"].items()
              for set_name, measured in (prm.get("bon") or {}).items()}
    if not shares:
        return {}
    plt = _pyplot()
    several = len({set_name for _, set_name in shares}) > 1
    mc = set(results["mc_sources"])
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(shares)), 3.4))
    ax.bar([f"{name} ({set_name})" if several else name for name, set_name in shares],
           [v or 0 for v in shares.values()],
           color=["tab:red" if name in mc else "tab:blue" for name, _ in shares])
    ax.set(ylabel="% of responses", title="Lowest step score on the final step (red: MC-trained)")
    ax.tick_params(axis="x", rotation=20)
    ax.grid(alpha=0.3, axis="y")
    return {"min_on_final_step": png(fig)}


def search(results: dict) -> dict[str, bytes]:
    """Accuracy against the tokens the policy generated, a panel a PRM, a line a method (and
    majority voting over the Best-of-N samples in every panel)."""
    searched = results.get("search")
    if not searched or not searched["by_prm"]:
        return {}
    plt = _pyplot()
    prms = list(searched["by_prm"])
    fig, axes = plt.subplots(1, len(prms), figsize=(3.6 * len(prms), 3.4), sharey=True,
                             squeeze=False)

    def points(by_budget: dict) -> tuple[list, list]:
        measured = [by_budget.get(b, by_budget.get(str(b))) for b in searched["budgets"]]
        kept = [m for m in measured if m and m.get("accuracy") is not None]
        return [m["tokens"] for m in kept], [m["accuracy"] for m in kept]
    for ax, prm in zip(axes[0], prms):
        for method, by_budget in searched["by_prm"][prm].items():
            ax.plot(*points(by_budget), marker="o", label=method)
        if searched.get("maj"):
            ax.plot(*points(searched["maj"]), marker="x", linestyle="--", color="grey",
                    label="maj@n")
        ax.set_xscale("log")
        ax.set(title=prm, xlabel="tokens generated a problem")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Search at test time: {searched['set']}", fontsize=10)
    return {"search": png(fig)}


def figures(results: dict) -> dict[str, bytes]:
    return {**label_agreement(results), **training(results), **min_on_final_step(results),
            **search(results)}
