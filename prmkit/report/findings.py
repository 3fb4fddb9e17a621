"""The findings of a run: sentences built from its ``results.json``, never fixed text.

First how well the PRMs verify (within-problem AUC and Best-of-N against random pick and
majority vote: a PRM that only knows which problems are hard ranks at chance here); then each
of the paper's three lessons, stated as reproduced, not reproduced or not tested, with its
margin, and tested only on PRMs that rank the solutions of one problem better than a random
pick by more than their noise. Label quality is measured where the solutions carry their step
truth (the toy world); everything else holds on real data too. The Best-of-N numbers are those
of the recipe's first Best-of-N set.
"""

from __future__ import annotations

from prmkit.evaluate.benchmark import percent
from prmkit.evaluate.bon import at
from prmkit.evaluate.processbench import f1_gap as paired_f1_gap
from prmkit.evaluate.processbench import headline_f1

BON_AGGREGATION = "min"   # the aggregation the findings use (the report shows all three)
# A share gap smaller than this is never called a reproduction: PRMs trained with other seeds
# move a share by a point or two. (F1 gaps are judged by a paired bootstrap instead.)
MIN_SHARE_GAP = 2.0


# --- numbers -------------------------------------------------------------------------------------

def _f1(prm: dict) -> float | None:
    """ProcessBench F1 at the PRM's best thresholds (``headline_f1``); None: not measured."""
    return headline_f1(prm.get("processbench"))


NO_BENCH = ("not measured: the run has no ProcessBench, or it is empty (one built from the "
            "step truth needs complete correct and erroneous solutions)")


def _headline(prm: dict) -> dict | None:
    """The PRM on the recipe's first Best-of-N set: {"bon", "ranking"}; None: no set."""
    return next(iter((prm.get("bon") or {}).values()), None)


def _bon(prm: dict, method: str, n: int | None = None) -> float | None:
    measured = _headline(prm)
    return None if measured is None else at(measured["bon"], method, n)


def _n(prm: dict) -> int:
    return max(_headline(prm)["bon"]["ns"])


def _min_final(prm: dict) -> float | None:
    measured = _headline(prm)
    return None if measured is None else measured["bon"]["min_on_final_step"]["share"]


def measured_auc(ranking: dict, kind: str) -> dict | None:
    """Within-problem AUC (``process`` or ``answer``) with its interval, or None."""
    auc = ranking.get(kind)
    return auc if auc and auc.get("auc") is not None else None


def verify_kind(ranking: dict) -> str:
    """What "ranks correctly" means: a sound process when the step truth is known, else a
    right answer."""
    return "process" if measured_auc(ranking, "process") else "answer"


def above_chance(ranking: dict) -> bool:
    """Whether a PRM ranks the solutions of one problem better than a random pick, by more
    than its noise: the 95% interval of its within-problem AUC lies above 0.5."""
    auc = measured_auc(ranking, verify_kind(ranking))
    return auc is not None and auc["low"] > 0.5


def _ranking(prm: dict) -> dict:
    return (_headline(prm) or {}).get("ranking", {})


def _auc(prm: dict, kind: str) -> dict | None:
    return measured_auc(_ranking(prm), kind)


def _verify_kind(prm: dict) -> str:
    return verify_kind(_ranking(prm))


def verifies(prm: dict) -> bool:
    """``above_chance`` on the recipe's first Best-of-N set."""
    return above_chance(_ranking(prm))


def auc_text(auc: dict | None) -> str:
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
                f"the PRM already ranks at {before['auc']:.2f}; trained on its labels "
                f"({ceiling}) it ranks at {trained['auc']:.2f}, so the labels add "
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
    aucs = _join([f"{k} {auc_text(_auc(prms[k], _verify_kind(prms[k])))}" for k in weak])
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
    if _headline(first) is None:
        return ("How well the PRMs verify was not measured: the recipe has no Best-of-N set "
                "(evaluate.bon), and within-problem AUC needs several solutions a problem.")
    kind = _verify_kind(first)
    n = _n(first)
    what = ("sound process against flawed (exact truth)" if kind == "process"
            else "right answer against wrong")
    aucs = _join([f"{k} {auc_text(_auc(v, kind))}" for k, v in prms.items()])
    bon = _join([f"{k} {percent(_bon(v, BON_AGGREGATION, n))}" for k, v in prms.items()])
    text = (f"How well the PRMs verify: ranking the solutions of one problem by their "
            f"{BON_AGGREGATION} step score, {what}, the within-problem AUC (95% interval; "
            f"chance 0.5) is {aucs}. Best-of-{n} ({BON_AGGREGATION}) picks a right answer for "
            f"{bon}, against {percent(_bon(first, 'random', n))} for a random pick and "
            f"{percent(_bon(first, 'maj', n))} for maj@{n}. ")
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


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --- findings ------------------------------------------------------------------------------------

def lesson_labels(results: dict) -> str:
    quality = results["labels"]["quality"]
    if quality is None:  # real data: no truth to check labels against, but PRMs to compare
        in_prms = _label_lesson_in_prms(results, results["mc_sources"])
        return ("Lesson 1 (consensus vs MC labels) is judged by the PRMs alone: the solutions "
                "carry no step truth to check the labels against." + in_prms) if in_prms else ""
    rows = {r["source"]: r for r in quality["rows"]}
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
    prms = results["prms"]
    return paired_f1_gap(results["benchmarks"]["processbench"]["items"],
                         prms[first]["processbench"]["at_best"]["predictions"],
                         prms[second]["processbench"]["at_best"]["predictions"])


def _gap_text(gap: dict) -> str:
    return f"{gap['gap']:+.1f} F1, 95% interval [{gap['low']:+.1f}, {gap['high']:+.1f}]"


def lesson_bon_vs_processbench(results: dict) -> str:
    prms = results["prms"]
    names = _trained(results)
    if not names or _headline(prms[names[0]]) is None:
        return "Lesson 2 (Best-of-N against ProcessBench) was not measured: it needs trained " \
               "PRMs and a Best-of-N set."
    n, problems = _n(prms[names[0]]), _headline(prms[names[0]])["bon"]["n_scored"]
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
              f"{percent(_bon(prms[names[0]], 'maj', n))}, pass@{n} "
              f"{percent(_bon(prms[names[0]], 'pass', n))}), while ProcessBench F1 spans "
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
    if not mc or not others or _headline(prms[mc[0]]) is None:
        return "Lesson 3 (minimum scores on the final step) was not measured: it needs PRMs " \
               "trained on MC labels and on other labels, and a Best-of-N set."
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
            diag = _headline(prms[k])["bon"]["min_on_final_step"]
            p, n = (diag["share"] or 0.0) / 100, diag.get("n_responses") or 1
            total += p * (1 - p) / n
        return total / len(names) ** 2
    return 200 * (variance(mc) + variance(others)) ** 0.5


def _final_step_labels(results: dict, mc: list[str]) -> str:
    """Whether the MC labels themselves blame the final step more than the truth does."""
    labels = results["labels"]["final_step_errors"] or {}
    truth = labels.get("truth", {}).get("share")
    mc_shares = {k: labels[k]["share"] for k in mc if labels.get(k, {}).get("share") is not None}
    if truth is None or not mc_shares:
        return ""
    named = _join([f"{v:.1f}% ({k})" for k, v in mc_shares.items()])
    if max(mc_shares.values()) >= truth + MIN_SHARE_GAP:
        return (f" The test is fair: the answer step can be wrong on its own (the step truth "
                f"puts {truth:.1f}% of first errors there), and the MC labels carry "
                f"the bias: of the training solutions they call wrong, they put the first error "
                f"on the final step for {named}.")
    return (f" The labels explain it: MC labels put the first error on the final step for "
            f"{named} of the training solutions they call wrong, no more often than the step "
            f"truth ({truth:.1f}%), so no PRM could learn the bias from them.")


def ceiling_sentence(results: dict) -> str:
    prms, ceiling = results["prms"], results.get("ceiling")
    if ceiling not in prms:
        return ""
    if _f1(prms[ceiling]) is None:
        return f"ProcessBench F1 was {NO_BENCH}."
    ranked = sorted(prms, key=lambda k: -_f1(prms[k]))
    rest = [k for k in ranked if k != ceiling]
    flawed = {k: _flawed_found(prms[k]["processbench"]) for k in prms}
    text = (f"On ProcessBench ({results['benchmarks']['processbench']['n_items']} items), the "
            f"PRM trained on the best labels ({ceiling}) reaches F1 {_f1(prms[ceiling]):.1f} "
            f"at its best threshold; {_join([f'{k} {_f1(prms[k]):.1f}' for k in rest])}. ")
    fitted = [f["f1"] for f in prms[ceiling]["processbench"]["cross_fitted"].values()
              if f.get("f1") is not None]
    if fitted:
        text += (f"With a threshold chosen on other problems, the {ceiling} PRM reaches "
                 f"F1 {sum(fitted) / len(fitted):.1f}. ")
    if flawed[ceiling]["n"]:
        found = [f"{k} {percent(flawed[k]['acc'])}" for k in ranked]
        text += (f"On the {flawed[ceiling]['n']} items with a right answer reached through a "
                 f"flawed process, the first error is found by {_join(found)}.")
    return text


def _flawed_found(measured: dict) -> dict:
    """Right-answer items with a flawed process whose first error the PRM names at its best
    thresholds, over every subset."""
    subsets = measured["at_best"]["subsets"].values()
    n = sum(m["flawed_correct_answer"]["n"] for m in subsets)
    hits = sum(m["flawed_correct_answer"]["n"] * (m["flawed_correct_answer"]["acc"] or 0) / 100
               for m in subsets)
    return {"n": n, "acc": 100.0 * hits / n if n else None}


def findings(results: dict) -> list[str]:
    return [s for s in (verification(results), ceiling_sentence(results), lesson_labels(results),
                        lesson_bon_vs_processbench(results), lesson_min_on_final(results)) if s]


