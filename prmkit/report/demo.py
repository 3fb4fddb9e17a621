"""The run report: ``report.md`` and a self-contained ``report.html`` (plots inlined, a step
viewer with its data inside the page), with findings written from the measured numbers.

Findings are sentences built from ``results.json``; each of the paper's three lessons is
stated as reproduced or not, with the margin, never as fixed text.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from prmkit.labels import MISSING, Source

BON_AGGREGATION = "min"   # the aggregation the findings use (the report shows all three)
AGGREGATIONS = ("last", "min", "prod")
# A share gap smaller than this is never called a reproduction: PRMs trained with other seeds
# move a share by a point or two. (F1 gaps are judged by a paired bootstrap instead.)
MIN_SHARE_GAP = 2.0


# --- numbers -------------------------------------------------------------------------------------

def _f1(prm: dict) -> float | None:
    """ProcessBench F1 at the PRM's best threshold: hard and soft labels calibrate scores
    differently, so each PRM is read at its own best threshold (tuned on the benchmark itself:
    an upper bound, the same for every PRM). None when the benchmark is empty."""
    if not prm["processbench"]:
        return None
    return prm["processbench"]["best_threshold_per_subset"]["toy"]["f1"] or 0.0


def _best_threshold(prm: dict) -> float:
    if not prm["processbench"]:
        return 0.5
    return prm["processbench"]["best_threshold_per_subset"]["toy"]["threshold"]


NO_BENCH = ("not measured: the toy ProcessBench is empty (the held-out samples hold no complete "
            "correct solution or no erroneous one)")


def _bon(prm: dict, method: str, n: int | None = None) -> float | None:
    accuracy = prm["bon"]["accuracy"][method]
    n = n if n is not None else max(prm["bon"]["ns"])
    return accuracy.get(n, accuracy.get(str(n)))


def _min_final(prm: dict) -> float | None:
    return prm["bon"]["min_on_final_step"]["share"]


def _auc(prm: dict, kind: str) -> dict | None:
    """Within-problem AUC (``process`` or ``answer``) with its interval, or None."""
    auc = prm.get("ranking", {}).get(kind)
    return auc if auc and auc.get("auc") is not None else None


def _verify_kind(prm: dict) -> str:
    """What "ranks correctly" means for this PRM: a sound process when the truth is known,
    else a right answer."""
    return "process" if _auc(prm, "process") else "answer"


def verifies(prm: dict) -> bool:
    """Whether a PRM ranks the solutions of one problem better than a random pick, by more
    than its noise: the 95% interval of its within-problem AUC lies above 0.5."""
    auc = _auc(prm, _verify_kind(prm))
    return auc is not None and auc["low"] > 0.5


def _auc_text(auc: dict | None) -> str:
    return "–" if auc is None else f"{auc['auc']:.2f} [{auc['low']:.2f}, {auc['high']:.2f}]"


def _what_labels_add(results: dict, kind: str) -> str:
    """The ceiling PRM against the same PRM before training: how much the labels added."""
    prms, ceiling = results["prms"], results.get("ceiling")
    for baseline in results.get("baselines", []):
        trained, before = _auc(prms.get(ceiling, {}), kind), _auc(prms[baseline], kind)
        if trained is None or before is None:
            continue
        apart = trained["low"] > before["high"] or before["low"] > trained["high"]
        return (f"Before any training ({baseline}: the backbone's own likelihood of each step) "
                f"the PRM already ranks at {before['auc']:.2f}; trained on the exact truth it "
                f"ranks at {trained['auc']:.2f}, so the labels add "
                f"{trained['auc'] - before['auc']:+.2f} "
                f"({'beyond' if apart else 'within'} the noise: the intervals "
                f"{'do not overlap' if apart else 'overlap'}). ")
    return ""


def too_weak(results: dict, names: list[str], lesson: str) -> str | None:
    """The sentence a lesson gets instead of a verdict when a PRM it rests on does not rank
    the solutions of one problem better than random pick; None when all of them do."""
    prms = results["prms"]
    weak = [k for k in names if not verifies(prms[k])]
    if not weak:
        return None
    aucs = _join([f"{k} {_auc_text(_auc(prms[k], _verify_kind(prms[k])))}" for k in weak])
    return (f"{lesson} is not tested: the PRMs it compares must rank the solutions of one "
            f"problem better than a random pick, and {'it does' if len(weak) == 1 else 'they do'}"
            f" not for {aucs} (within-problem AUC, chance 0.5). The PRMs are too weak to test "
            f"it.")


def verification(results: dict) -> str:
    """How well the PRMs verify, said plainly before any lesson: within-problem AUC and
    Best-of-N against random pick and majority vote."""
    prms = results["prms"]
    if not prms:
        return ""
    first = next(iter(prms.values()))
    kind = _verify_kind(first)
    n = max(first["bon"]["ns"])
    what = ("sound process against flawed (exact truth)" if kind == "process"
            else "right answer against wrong")
    aucs = _join([f"{k} {_auc_text(_auc(v, kind))}" for k, v in prms.items()])
    bon = _join([f"{k} {_pct(_bon(v, BON_AGGREGATION, n))}" for k, v in prms.items()])
    text = (f"How well the PRMs verify: ranking the solutions of one problem by their "
            f"{BON_AGGREGATION} step score, {what}, the within-problem AUC (95% interval; "
            f"chance 0.5) is {aucs}. Best-of-{n} ({BON_AGGREGATION}) picks a right answer for "
            f"{bon}, against {_pct(_bon(first, 'random', n))} for a random pick and "
            f"{_pct(_bon(first, 'maj', n))} for maj@{n}. ")
    text += _what_labels_add(results, kind)
    weak = [k for k, v in prms.items() if not verifies(v)]
    if not weak:
        return text + ("Every PRM ranks the solutions of one problem better than a random "
                       "pick, by more than its noise.")
    if len(weak) == len(prms):
        return text + ("**No PRM ranks the solutions of one problem better than a random pick "
                       "by more than its noise: these PRMs do not verify steps**, and no lesson "
                       "that rests on them is tested below.")
    return text + (f"**{_join(weak)} {'does' if len(weak) == 1 else 'do'} not rank them better "
                   f"than a random pick by more than the noise**; lessons resting on "
                   f"{'it' if len(weak) == 1 else 'them'} are not tested below.")


def _trained(results: dict) -> list[str]:
    """The PRMs trained on labels: the lessons compare these (a baseline has no labels)."""
    return [k for k in results["prms"] if k not in results.get("baselines", [])]


def _pct(x, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}%"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --- findings ------------------------------------------------------------------------------------

def lesson_labels(results: dict) -> str:
    rows = {r["source"]: r for r in results["label_quality"]["rows"]}
    if not {"consensus", "MC-hard"} <= rows.keys():
        return "Lesson 1 (consensus vs MC labels) was not measured: the run has no consensus " \
               "or no MC labels."
    cons = rows["consensus"]
    mc = {k: rows[k] for k in ("MC-hard", "MC-majority")
          if k in rows and rows[k]["first_error_accuracy"] is not None}
    if cons["first_error_accuracy"] is None or not mc:
        return "Lesson 1 (consensus vs MC labels) was not measured: consensus kept no solution."
    best_mc = max(mc, key=lambda k: mc[k]["first_error_accuracy"] or 0)
    c, m = 100 * cons["first_error_accuracy"], 100 * mc[best_mc]["first_error_accuracy"]
    listed = _join([f"{k} {100 * v['first_error_accuracy']:.1f}%" for k, v in mc.items()])
    text = (f"Consensus labels name the true first error for {c:.1f}% of the "
            f"{100 * cons['kept_share']:.0f}% of solutions they keep; MC labels do for {listed} "
            f"of all solutions. ")
    if c > m:
        text += (f"**Lesson 1 reproduced:** consensus filtering beats the best MC labels "
                 f"({best_mc}) by {c - m:.1f} points, at the price of "
                 f"{100 - 100 * cons['kept_share']:.0f}% of the data.")
    else:
        text += (f"**Lesson 1 did not reproduce:** consensus trails {best_mc} by "
                 f"{m - c:.1f} points.")
    return text + _label_lesson_in_prms(results, results.get("mc_sources", list(mc)))


def _label_lesson_in_prms(results: dict, mc: list[str]) -> str:
    """Whether the better labels also made the better PRM (ProcessBench F1)."""
    prms = results["prms"]
    if "consensus" not in prms or _f1(prms["consensus"]) is None:
        return ""
    mc = [k for k in mc if k in prms]
    if not mc:
        return ""
    cons, best = _f1(prms["consensus"]), max(mc, key=lambda k: _f1(prms[k]))
    weak = too_weak(results, ["consensus", best], "At the PRM level, the lesson")
    if weak:
        return " " + weak
    gap = f1_gap(results, "consensus", best)
    verdict = ("carries over to the PRMs" if gap["low"] > 0 else
               "does not carry over to the PRMs at this scale" if gap["high"] < 0 else
               "is within the benchmark's noise at the PRM level")
    return (f" Trained on them, the consensus PRM reaches ProcessBench F1 {cons:.1f} against "
            f"{_f1(prms[best]):.1f} for the best MC-trained PRM ({best}): the label advantage "
            f"{verdict} (gap {_gap_text(gap)}).")


def f1_gap(results: dict, first: str, second: str) -> dict:
    """F1(first) - F1(second) at their best thresholds, with a paired bootstrap interval over
    the benchmark's problems (``prmkit.evaluate.processbench.f1_gap``)."""
    from prmkit.evaluate.processbench import f1_gap as gap
    prms = results["prms"]
    return gap(results["bench"], prms[first]["processbench"]["at_best"]["predictions"],
               prms[second]["processbench"]["at_best"]["predictions"])


def _gap_text(gap: dict) -> str:
    return f"{gap['gap']:+.1f} F1, 95% interval [{gap['low']:+.1f}, {gap['high']:+.1f}]"


def lesson_bon_vs_processbench(results: dict) -> str:
    prms = results["prms"]
    names = _trained(results)
    first = prms[names[0]]["bon"]
    n = max(first["ns"])
    problems = first["n_scored"]
    bon = {k: _bon(prms[k], BON_AGGREGATION, n) for k in names}
    f1 = {k: _f1(prms[k]) for k in names}
    if None in f1.values():
        return f"Lesson 2 (Best-of-N against ProcessBench) was {NO_BENCH}."
    strong = [k for k in names if verifies(prms[k])]
    if len(strong) < 2:
        return too_weak(results, names, "Lesson 2 (Best-of-N against ProcessBench)")
    names = strong  # a flip between PRMs that do not verify would mean nothing
    # pairs BoN orders one way and ProcessBench the other (an F1 gap beyond the benchmark's
    # noise); the widest Best-of-N gap is the story
    gaps = {(a, b): f1_gap(results, b, a) for a in names for b in names
            if bon[a] is not None and bon[b] is not None and bon[a] > bon[b] and f1[b] > f1[a]}
    flips = [pair for pair, gap in gaps.items() if gap["low"] > 0]
    spread = (f"Best-of-{n} accuracy ({BON_AGGREGATION} aggregation) spans "
              f"{min(bon[k] for k in names):.1f}–{max(bon[k] for k in names):.1f}% across the "
              f"PRMs that verify (maj@{n} "
              f"{_pct(_bon(prms[names[0]], 'maj', n))}, pass@{n} "
              f"{_pct(_bon(prms[names[0]], 'pass', n))}), while ProcessBench F1 spans "
              f"{min(f1[k] for k in names):.1f}–{max(f1[k] for k in names):.1f}. ")
    if not flips:
        return spread + ("**Lesson 2 did not reproduce:** no PRM that Best-of-N ranks higher is "
                         "worse at finding the first error by more than the benchmark's noise "
                         "(a paired bootstrap over its problems).")
    a, b = max(flips, key=lambda p: (bon[p[0]] - bon[p[1]], f1[p[1]] - f1[p[0]]))
    diff = round((bon[a] - bon[b]) * problems / 100)
    mean = (bon[a] + bon[b]) / 200
    noise = 100 * (2 * mean * (1 - mean) / problems) ** 0.5  # std. error of the difference
    return spread + (f"**Lesson 2 reproduced:** Best-of-{n} ranks {a} above {b} "
                     f"({bon[a]:.1f}% vs {bon[b]:.1f}%, {diff} of {problems} problems), yet {b} "
                     f"finds the first error more often (F1 {f1[b]:.1f} vs {f1[a]:.1f}, "
                     f"{_gap_text(gaps[(a, b)])}). "
                     f"Judged by Best-of-N alone, the weaker step verifier would win. With "
                     f"{problems} problems a Best-of-N gap carries about ±{noise:.0f} points of "
                     f"sampling noise, so the ranking itself is "
                     f"{'clear' if bon[a] - bon[b] > 2 * noise else 'not significant'}: "
                     f"Best-of-N cannot tell these PRMs apart, while ProcessBench can.")


def lesson_min_on_final(results: dict) -> str:
    prms = results["prms"]
    mc = [k for k in results["mc_sources"] if k in prms]
    others = [k for k in _trained(results) if k not in mc]
    if not mc or not others:
        return "Lesson 3 (minimum scores on the final step) was not measured: it needs PRMs " \
               "trained on MC labels and on other labels."
    share = {k: _min_final(v) or 0.0 for k, v in prms.items()}
    mc_mean = sum(share[k] for k in mc) / len(mc)
    other_mean = sum(share[k] for k in others) / len(others)
    text = (f"PRMs trained on MC labels put a response's lowest step score on its final step "
            f"for {_join([f'{share[k]:.1f}% ({k})' for k in mc])} of held-out responses; the "
            f"others do for {_join([f'{share[k]:.1f}% ({k})' for k in others])}. ")
    labels = _final_step_labels(results, mc)
    weak = too_weak(results, mc + others, "Lesson 3 (minimum scores on the final step)")
    if weak:
        return text + weak + labels
    margin = max(MIN_SHARE_GAP, _share_noise(prms, mc, others))
    if mc_mean >= other_mean + margin:
        return text + (f"**Lesson 3 reproduced:** {mc_mean - other_mean:.1f} points more on "
                       f"average (noise ±{margin:.1f}) — MC labels judge a step by whether the "
                       f"answer can still be reached, so such PRMs act like outcome models and "
                       f"wait for the end." + labels)
    text += (f"**Lesson 3 did not reproduce:** on average MC-trained PRMs put "
             f"{round(mc_mean - other_mean, 1) + 0.0:+.1f} points of minimum scores on the final "
             f"step against the others (a reproduction needs +{margin:.1f}: the larger of "
             f"{MIN_SHARE_GAP:g} points and twice the sampling noise).")
    return text + labels


def _share_noise(prms: dict, mc: list[str], others: list[str]) -> float:
    """Twice the standard error (points) of the gap between the two groups' mean shares,
    counting every response as a draw (solutions of one problem are alike, so this is a
    lower bound on the noise; MIN_SHARE_GAP guards the rest)."""
    def variance(names: list[str]) -> float:
        total = 0.0
        for k in names:
            diag = prms[k]["bon"]["min_on_final_step"]
            p, n = (diag["share"] or 0.0) / 100, diag.get("n_responses") or 1
            total += p * (1 - p) / n
        return total / len(names) ** 2
    return 200 * (variance(mc) + variance(others)) ** 0.5


def _final_step_labels(results: dict, mc: list[str]) -> str:
    """Whether the MC labels themselves blame the final step more than the truth does."""
    labels = results.get("final_step_errors", {})
    truth = labels.get(results.get("ceiling"), {}).get("share")
    mc_shares = {k: labels[k]["share"] for k in mc if labels.get(k, {}).get("share") is not None}
    if truth is None or not mc_shares:
        return ""
    named = _join([f"{v:.1f}% ({k})" for k, v in mc_shares.items()])
    if max(mc_shares.values()) >= truth + MIN_SHARE_GAP:
        return (f" The test is fair: the toy world's answer step can be wrong on its own (the "
                f"exact truth puts {truth:.1f}% of first errors there), and the MC labels carry "
                f"the bias: of the training solutions they call wrong, they put the first error "
                f"on the final step for {named}.")
    return (f" The labels explain it: MC labels put the first error on the final step for "
            f"{named} of the training solutions they call wrong, no more often than the exact "
            f"truth ({truth:.1f}%), so no PRM could learn the bias from them.")


def ceiling_sentence(results: dict) -> str:
    prms, ceiling = results["prms"], results.get("ceiling")
    if ceiling not in prms:
        return ""
    if _f1(prms[ceiling]) is None:
        return f"ProcessBench F1 was {NO_BENCH}."
    ranked = sorted(prms, key=lambda k: -_f1(prms[k]))
    rest = [k for k in ranked if k != ceiling]
    flawed = {k: prms[k]["processbench"]["at_best"]["flawed_correct_answer"] for k in prms}
    text = (f"On the toy ProcessBench ({results['counts']['bench_items']} items), the PRM "
            f"trained on the exact truth reaches F1 {_f1(prms[ceiling]):.1f} at its best "
            f"threshold; {_join([f'{k} {_f1(prms[k]):.1f}' for k in rest])}. ")
    fitted = (prms[ceiling]["processbench"] or {}).get("cross_fitted") or {}
    if fitted.get("f1") is not None:
        text += (f"With a threshold chosen on other problems, the exact-truth PRM reaches "
                 f"F1 {fitted['f1']:.1f}. ")
    if flawed[ceiling]["n"]:
        found = [f"{k} {_pct(flawed[k]['acc'])}" for k in ranked]
        text += (f"On the {flawed[ceiling]['n']} items with a right answer reached through a "
                 f"flawed process, the first error is found by {_join(found)}.")
    return text


def findings(results: dict) -> list[str]:
    return [s for s in (verification(results), ceiling_sentence(results), lesson_labels(results),
                        lesson_bon_vs_processbench(results), lesson_min_on_final(results)) if s]


# --- tables --------------------------------------------------------------------------------------

def label_table(results: dict) -> tuple[list[str], list[list[str]]]:
    head = ["label source", "first-error accuracy", "kept", "negative precision",
            "negative recall", "rollouts", "judge calls"]
    rows = [[r["source"], _pct(100 * r["first_error_accuracy"] if r["first_error_accuracy"]
                               is not None else None),
             _pct(100 * r["kept_share"], 0),
             _pct(100 * r["negative_precision"] if r["negative_precision"] is not None else None),
             _pct(100 * r["negative_recall"] if r["negative_recall"] is not None else None),
             str(r["rollouts"]), str(r["judge_calls"])]
            for r in results["label_quality"]["rows"]]
    return head, rows


def prm_table(results: dict) -> tuple[list[str], list[list[str]]]:
    prms = results["prms"]
    n = max(next(iter(prms.values()))["bon"]["ns"])
    head = ["PRM", "F1 @0.5", "best F1 (threshold)", "F1, threshold from other problems",
            "flawed-process found", *[f"BoN@{n} {a}" for a in AGGREGATIONS],
            f"BoN@{n} PRM vote (min)", "min on final step"]
    rows = []
    for name, prm in prms.items():
        pb = prm["processbench"]
        if not pb:
            rows.append([name, "–", "–", "–", "–",
                         *[_pct(_bon(prm, a, n)) for a in AGGREGATIONS],
                         _pct(_bon(prm, "vote_min", n)), _pct(_min_final(prm))])
            continue
        rows.append([name, f"{pb['subsets']['toy']['f1'] or 0:.1f}",
                     f"{_f1(prm):.1f} ({_best_threshold(prm):g})", _cross_fitted_f1(prm),
                     _pct(pb["at_best"]["flawed_correct_answer"]["acc"]),
                     *[_pct(_bon(prm, a, n)) for a in AGGREGATIONS],
                     _pct(_bon(prm, "vote_min", n)), _pct(_min_final(prm))])
    first = next(iter(prms.values()))
    for label, method in ((f"random pick@{n} (no PRM)", "random"), (f"maj@{n} (no PRM)", "maj"),
                          (f"pass@{n} (oracle)", "pass")):
        rows.append([label, "", "", "", "",
                     *[_pct(_bon(first, method, n))] * (len(AGGREGATIONS) + 1), ""])
    return head, rows


def _cross_fitted_f1(prm: dict) -> str:
    fitted = (prm["processbench"] or {}).get("cross_fitted")
    if not fitted or fitted.get("f1") is None:
        return "–"
    return f"{fitted['f1']:.1f} ({'/'.join(f'{t:g}' for t in fitted['thresholds'])})"


def ranking_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Within-problem AUC per PRM (process and answer), and whether it beats random pick."""
    prms = results["prms"]
    first = next(iter(prms.values()))
    n = max(first["bon"]["ns"])
    head = ["PRM", "within-problem AUC: sound vs flawed process", "within-problem AUC: right vs "
            "wrong answer", f"BoN@{n} {BON_AGGREGATION}", "better than random pick"]
    rows = [[name, _auc_text(_auc(prm, "process")), _auc_text(_auc(prm, "answer")),
             _pct(_bon(prm, BON_AGGREGATION, n)), "yes" if verifies(prm) else "no"]
            for name, prm in prms.items()]
    rows.append([f"random pick@{n}", "0.50", "0.50", _pct(_bon(first, "random", n)), ""])
    return head, rows


def _markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


# --- plots ---------------------------------------------------------------------------------------

def plots(results: dict) -> dict[str, bytes]:
    """PNG bytes: Best-of-N against N, ProcessBench F1 against threshold, minimum positions."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    prms = results["prms"]
    first = next(iter(prms.values()))["bon"]
    ns = first["ns"]
    out = {}

    def png(fig) -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    fig, axes = plt.subplots(1, len(AGGREGATIONS), figsize=(4.2 * len(AGGREGATIONS), 3.6),
                             sharey=True)
    for ax, agg in zip(axes, AGGREGATIONS):
        for name, prm in prms.items():
            ax.plot(ns, [_bon(prm, agg, n) for n in ns], marker="o", label=name)
        ax.plot(ns, [_bon(prms[next(iter(prms))], "random", n) for n in ns], color="grey",
                linestyle="-.", label="random pick")
        ax.plot(ns, [_bon(prms[next(iter(prms))], "maj", n) for n in ns], "k--", label="maj@N")
        ax.plot(ns, [_bon(prms[next(iter(prms))], "pass", n) for n in ns], "k:", label="pass@N")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_title(f"Best-of-N, {agg} aggregation")
        ax.set_xlabel("N")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(fontsize=8, loc="lower right")
    out["bon"] = png(fig)

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, prm in prms.items():
        if not prm["processbench"]:
            ax.text(0.5, 0.5, "toy ProcessBench empty", ha="center", transform=ax.transAxes)
            break
        sweep = prm["processbench"]["sweep"]
        ax.plot([s["threshold"] for s in sweep], [s["f1"]["toy"] or 0 for s in sweep],
                marker=".", label=name)
    ax.set_xlabel("threshold (a step below it is an error)")
    ax.set_ylabel("ProcessBench F1")
    ax.set_title("Toy ProcessBench F1 against threshold")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    out["f1_threshold"] = png(fig)

    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = list(prms)
    mc = set(results["mc_sources"])
    ax.bar(names, [_min_final(prms[k]) or 0 for k in names],
           color=["tab:red" if k in mc else "tab:blue" for k in names])
    ax.set_ylabel("% of responses")
    ax.set_title("Lowest step score on the final step (red: MC-trained)")
    ax.tick_params(axis="x", rotation=20)
    ax.grid(alpha=0.3, axis="y")
    out["min_on_final"] = png(fig)
    return out


# --- the step viewer's data ----------------------------------------------------------------------

def viewer_data(results: dict, training: list[dict], scores: dict) -> list[dict]:
    """Every training solution: steps, the true first error, each label source's verdict,
    every PRM's step scores."""
    sources = {r["source"]: Source.parse(r["spec"]) for r in results["label_quality"]["rows"]}
    rows = []
    for s in training:
        verdicts = {}
        for name, source in sources.items():
            try:
                verdicts[name] = source.first_error(s)
            except ValueError:
                verdicts[name] = None
        truth = s.get("truth", {}).get("label") if isinstance(s.get("truth"), dict) else None
        if truth is None and Source("label").value(s) is not MISSING:
            truth = s["label"]
        rows.append({"id": s["id"], "problem": s["problem"], "steps": s["steps"],
                     "truth": truth, "answer_correct": s.get("final_answer_correct"),
                     "verdicts": verdicts,
                     "scores": {name: [None if x is None else round(x, 3)
                                       for x in by_id.get(s["id"], [])]
                                for name, by_id in scores.items()}})
    return rows


# --- writing -------------------------------------------------------------------------------------

def markdown(results: dict, recipe: dict, timings: dict) -> str:
    c = results["counts"]
    lines = ["# prmkit run report", "",
             f"Policy `{results['policy']}`; {c['train_solutions']} training solutions "
             f"(annotated, then trained on); {c['heldout_solutions']} held-out solutions "
             f"({c['bench_items']} of them form the toy ProcessBench, {c['bench_erroneous']} "
             f"erroneous); the exact truth of every step is known.", "", "## Findings", ""]
    lines += [f"- {f}" for f in findings(results)]
    lines += [f"- No {name} PRM: {why}." for name, why in results.get("skipped_prms", {}).items()]
    lines += ["", "## How the PRMs rank the solutions of one problem", "",
              _markdown_table(*ranking_table(results)), "",
              f"Solutions are ranked by their {BON_AGGREGATION} step score; the AUC is the "
              "chance that, of two solutions of the same problem, the better one scores higher "
              "(95% bootstrap interval over problems). A PRM that only knows which problems are "
              "hard scores 0.5 here. A lesson is tested only on PRMs whose interval lies above "
              "0.5.", "",
              "## Label quality (against the exact truth)", "",
              _markdown_table(*label_table(results)), "",
              "## PRMs (toy ProcessBench and Best-of-N on held-out problems)", "",
              _markdown_table(*prm_table(results)), "",
              "F1 @0.5 reads every PRM at 0.5; best F1 at the threshold that maximises it on "
              "this benchmark (an upper bound, computed alike for every PRM); F1 with a "
              "threshold from other problems reads each half of the problems at the best "
              "threshold of the other half. "
              "Flawed-process found: right-answer items whose first error the PRM names, at its "
              "best threshold.", "",
              "Plots: `plots/bon.png`, `plots/f1_threshold.png`, `plots/min_on_final.png`; "
              "the step viewer is in `report.html`.", "", "## Time", ""]
    lines += [f"- {name}: {t['seconds']}s" + (" (reused)" if t.get("reused") else "")
              for name, t in timings.items()]
    return "\n".join(lines) + "\n"


def _inline_markdown(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


RANKING_LEGEND = (
    "Solutions are ranked by their minimum step score; the AUC is the chance that, of two "
    "solutions of the same problem, the better one scores higher (95% bootstrap interval over "
    "problems). A PRM that only knows which problems are hard scores 0.5 here. A lesson is "
    "tested only on PRMs whose interval lies above 0.5.")
PRMS_LEGEND = (
    "F1 @0.5 reads every PRM at 0.5; best F1 at the threshold that maximises it on this "
    "benchmark (an upper bound, computed alike for every PRM); F1 with a threshold from other "
    "problems reads each half of the problems at the best threshold of the other half. "
    "Flawed-process found: right-answer items whose first error the PRM names at its best "
    "threshold.")


def fill(template: str, **texts: str) -> str:
    """The page template (``demo_template.html``, shared by every report) with its titles and
    legends: plain text, escaped."""
    for key, text in texts.items():
        template = template.replace(f"%{key}%", html.escape(text))
    return template


def figures_html(images: dict[str, bytes]) -> str:
    return "".join(f'<figure><img alt="{name}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}"></figure>' for name, png in images.items())


def html_page(results: dict, images: dict[str, bytes], data: list[dict]) -> str:
    c = results["counts"]
    figures = figures_html(images)
    payload = json.dumps({"solutions": data, "prms": list(results["prms"]),
                          "sources": [r["source"] for r in results["label_quality"]["rows"]],
                          "thresholds": {k: _best_threshold(v)
                                         for k, v in results["prms"].items()}},
                         ensure_ascii=False).replace("</", "<\\/")
    findings_html = "".join(f"<li>{_inline_markdown(f)}</li>" for f in findings(results))
    template = (Path(__file__).parent / "demo_template.html").read_text()
    return (fill(template, TITLE="prmkit run report", RANKING_LEGEND=RANKING_LEGEND,
                 LABELS_TITLE="Label quality (against the exact truth)",
                 PRMS_TITLE="PRMs: toy ProcessBench and Best-of-N", PRMS_LEGEND=PRMS_LEGEND)
            .replace("%SUMMARY%", html.escape(
                f"Policy {results['policy']}; {c['train_solutions']} training solutions, "
                f"{c['heldout_solutions']} held-out solutions, toy ProcessBench of "
                f"{c['bench_items']} items."))
            .replace("%FINDINGS%", findings_html)
            .replace("%RANKING%", _html_table(*ranking_table(results)))
            .replace("%LABELS%", _html_table(*label_table(results)))
            .replace("%PRMS%", _html_table(*prm_table(results)))
            .replace("%FIGURES%", figures)
            .replace("%VIEWER%", html.escape(
                f"{c['viewer_solutions']} of the {c['train_solutions']} training solutions "
                f"(those whose label sources disagree first, then a seeded draw), scored by "
                f"every PRM. The PRMs were trained on these solutions."))
            .replace("%DATA%", payload))


def write(out: Path, results: dict, recipe: dict, training: list[dict], scores: dict,
          timings: dict) -> None:
    from prmkit.records import atomic_write_bytes, atomic_write_text
    images = plots(results)
    for name, png in images.items():
        atomic_write_bytes(out / "plots" / f"{name}.png", png)
    atomic_write_text(out / "report.md", lambda f: f.write(markdown(results, recipe, timings)))
    page = html_page(results, images, viewer_data(results, training, scores))
    atomic_write_text(out / "report.html", lambda f: f.write(page))

