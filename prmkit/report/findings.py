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
from prmkit.evaluate.paired import ratio_gap, significance
from prmkit.evaluate.processbench import headline_f1
from prmkit.report import comparisons

BON_AGGREGATION = "min"   # the aggregation the findings use (the report shows all three)
# A share of final-step errors in the labels this much above the truth's is a bias of the labels
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
    """The ceiling PRM against the same PRM before training: how much the labels added, paired
    by problem, overall and by where the first error came from."""
    prms, ceiling = results["prms"], results.get("ceiling")
    for baseline in results.get("baselines", []):
        trained, before = _auc(prms.get(ceiling, {}), kind), _auc(prms[baseline], kind)
        if trained is None or before is None:
            continue
        gap = comparisons.auc_gap(results, ceiling, baseline)
        text = (f"Before any training ({baseline}: the backbone's own likelihood of each step) "
                f"the PRM already ranks at {before['auc']:.2f}; trained on its labels "
                f"({ceiling}) it ranks at {trained['auc']:.2f}, so the labels add "
                f"{comparisons.gap_text(gap).replace(' ▲', '').replace(' ▼', '')} "
                f"({_beyond(gap)}). ")
        for origin in comparisons.origins(results):
            a, b = (comparisons.auc_of(results, k, origin) for k in (ceiling, baseline))
            if not a or not b or a["auc"] is None or b["auc"] is None:
                continue
            gap = comparisons.auc_gap(results, ceiling, baseline, origin)
            text += (f"Against solutions whose first error is a {origin}, {baseline} ranks at "
                     f"{b['auc']:.2f} and {ceiling} at {a['auc']:.2f} ({_beyond(gap)}). ")
        return text
    return ""


def catches(results: dict) -> str:
    """What the PRMs can and cannot catch, by where the first error came from: for each origin,
    the PRMs that rank sound solutions above those flawed that way beyond the noise, and those
    that do not (a PRM below 0.5 prefers the flawed ones: it believes the error too)."""
    found = comparisons.origins(results)
    if not found:
        return ""
    parts = []
    for origin in found:
        aucs = {k: comparisons.auc_of(results, k, origin) for k in results["prms"]}
        aucs = {k: v for k, v in aucs.items() if v and v.get("auc") is not None}
        able = [k for k, v in aucs.items() if v["low"] > 0.5]
        unable = [f"{k} ({auc_text(v)})" for k, v in aucs.items() if v["low"] <= 0.5]
        pairs = next(iter(aucs.values()))["problems"] if aucs else 0
        parts.append(f"{origin.capitalize()}s ({pairs} problems with both kinds of solution): "
                     f"{'caught by ' + _join(able) if able else 'caught by no PRM'}"
                     f"{'; not by ' + _join(unable) if unable else ''}")
    return ("What the PRMs catch, by where a solution's first error came from (a slip the policy "
            "would doubt, a misconception it believes; within-problem AUC against sound "
            "solutions, above 0.5 beyond the noise): " + ". ".join(parts) + ".")


def _beyond(gap: dict) -> str:
    sign = significance(gap)
    return ("within the noise: the paired interval holds zero" if sign == "0" else
            f"{'a gain' if sign == '+' else 'a loss'} beyond the noise: paired interval "
            f"[{gap['low']:+.2f}, {gap['high']:+.2f}]")


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
    """The PRMs trained on labels: the lessons compare these (a baseline has no labels, a
    compared model was trained elsewhere)."""
    untrained = {*results.get("baselines", []), *results.get("references", [])}
    return [k for k in results["prms"] if k not in untrained]


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --- findings ------------------------------------------------------------------------------------

def verdict_of(signs: list[str]) -> str:
    """A lesson's verdict from the signs (``paired.significance``, "+" when significant in the
    direction the lesson claims) of the comparisons it rests on: reproduced when every one is
    significant that way, contradicted when one is significant the other way, else
    inconclusive."""
    if "-" in signs:
        return "contradicted"
    return "reproduced" if signs and all(s == "+" for s in signs) else "inconclusive"


def _stated(lesson: str, verdict: str, why: str) -> str:
    return f"**{lesson} {verdict}:** {why}"


def lesson_labels(results: dict) -> tuple[str | None, str]:
    """Lesson 1: consensus filtering gives better labels than MC estimation alone, and better
    PRMs. (verdict, text); verdict None: not measured."""
    lesson = "Lesson 1 (consensus vs MC labels)"
    quality = results["labels"]["quality"]
    if quality is None:  # real data: no truth to check labels against, but PRMs to compare
        verdict, in_prms = _label_lesson_in_prms(results, results["mc_sources"])
        if verdict is None:
            return None, ""
        return verdict, (f"{lesson} is judged by the PRMs alone: the solutions carry no step "
                         f"truth to check the labels against. " + in_prms)
    rows = {r["source"]: r for r in quality["rows"]}
    if not {"consensus", "MC-hard"} <= rows.keys():
        return None, f"{lesson} was not measured: the run has no consensus or no MC labels."
    cons, mc = rows["consensus"], rows["MC-hard"]
    if cons["first_error_accuracy"] is None or mc["first_error_accuracy"] is None:
        return None, f"{lesson} was not measured: consensus kept no solution."
    gap = ratio_gap(cons.get("per_problem", {}), mc.get("per_problem", {}))
    gap = {k: (100 * v if k != "problems" and v is not None else v) for k, v in gap.items()}
    text = (f"Consensus labels name the true first error for "
            f"{100 * cons['first_error_accuracy']:.1f}% of the {100 * cons['kept_share']:.0f}% "
            f"of solutions they keep; MC-hard labels do for {100 * mc['first_error_accuracy']:.1f}"
            f"% of all solutions (gap {_points(gap)}). ")
    signs = [significance(gap)]
    prm_verdict, in_prms = _label_lesson_in_prms(results, results.get("mc_sources", []))
    if prm_verdict is None:
        text += "The PRM level was not measured (no consensus PRM or no ProcessBench). "
        signs.append("0")
    else:
        text += in_prms + " "
        signs.append({"reproduced": "+", "contradicted": "-"}.get(prm_verdict, "0"))
    verdict = verdict_of(signs)
    return verdict, text + _stated(lesson, verdict, {
        "reproduced": "consensus filtering gives more accurate labels and a better PRM, both "
                      "beyond the noise.",
        "contradicted": "consensus is worse than MC-hard beyond the noise, in its labels or "
                        "in its PRM.",
        "inconclusive": "it needs both the label and the PRM advantage beyond the noise; "
                        "at least one interval holds zero (or was not measured)."}[verdict])


def _label_lesson_in_prms(results: dict, mc: list[str]) -> tuple[str | None, str]:
    """Whether the better labels also made the better PRM (ProcessBench F1, paired)."""
    prms = results["prms"]
    if "consensus" not in prms or _f1(prms["consensus"]) is None:
        return None, ""
    mc = [k for k in mc if k in prms]
    if not mc:
        return None, ""
    best = max(mc, key=lambda k: _f1(prms[k]))
    weak = too_weak(results, ["consensus", best], "At the PRM level, the lesson")
    if weak:
        return "inconclusive", weak
    gap = comparisons.f1_gap_of(results, "consensus", best)
    verdict = {"+": "reproduced", "-": "contradicted", "0": "inconclusive"}[significance(gap)]
    return verdict, (f"Trained on them, the consensus PRM reaches ProcessBench F1 "
                     f"{_f1(prms['consensus']):.1f} against {_f1(prms[best]):.1f} for the best "
                     f"MC-trained PRM ({best}): gap {_gap_text(gap)}.")


def _gap_text(gap: dict) -> str:
    return f"{gap['gap']:+.1f} F1, 95% interval [{gap['low']:+.1f}, {gap['high']:+.1f}]"


def _points(gap: dict) -> str:
    if gap.get("gap") is None:
        return "not measured"
    return f"{gap['gap']:+.1f} points, 95% interval [{gap['low']:+.1f}, {gap['high']:+.1f}]"


def lesson_bon_vs_processbench(results: dict) -> tuple[str | None, str]:
    """Lesson 2: Best-of-N can rank PRMs one way while ProcessBench ranks them the other.
    Reproduced when one pair of PRMs that verify is ordered one way by Best-of-N and the other
    way by ProcessBench F1, both beyond the noise (paired bootstraps over problems);
    contradicted when every pair is ordered alike by both, one pair beyond the noise in both."""
    lesson = "Lesson 2 (Best-of-N against ProcessBench)"
    prms = results["prms"]
    names = _trained(results)
    if not names or _headline(prms[names[0]]) is None:
        return None, f"{lesson} was not measured: it needs trained PRMs and a Best-of-N set."
    n = _n(prms[names[0]])
    bon = {k: _bon(prms[k], BON_AGGREGATION, n) for k in names}
    f1 = {k: _f1(prms[k]) for k in names}
    if None in f1.values():
        return None, f"{lesson} was {NO_BENCH}."
    strong = [k for k in names if verifies(prms[k])]
    if len(strong) < 2:
        return "inconclusive", too_weak(results, names, lesson)
    names = strong  # a flip between PRMs that do not verify would mean nothing
    gaps = {(a, b): (comparisons.bon_gap(results, a, b), comparisons.f1_gap_of(results, a, b))
            for i, a in enumerate(names) for b in names[i + 1:]}
    flips = {pair: g for pair, g in gaps.items()
             if {significance(g[0]), significance(g[1])} == {"+", "-"}}
    agree = {pair: g for pair, g in gaps.items()
             if significance(g[0]) == significance(g[1]) != "0"}
    same_order = all((g[0]["gap"] or 0) * (g[1]["gap"] or 0) >= 0 for g in gaps.values())
    spread = (f"Best-of-{n} accuracy ({BON_AGGREGATION} aggregation) spans "
              f"{min(bon[k] for k in names):.1f}–{max(bon[k] for k in names):.1f}% across the "
              f"PRMs that verify (maj@{n} {percent(_bon(prms[names[0]], 'maj', n))}, pass@{n} "
              f"{percent(_bon(prms[names[0]], 'pass', n))}), while ProcessBench F1 spans "
              f"{min(f1[k] for k in names):.1f}–{max(f1[k] for k in names):.1f}. ")
    if flips:
        (a, b), (bg, fg) = max(flips.items(), key=lambda kv: abs(kv[1][0]["gap"]))
        if bg["gap"] < 0:  # state it as: Best-of-N prefers a
            (a, b), bg, fg = (b, a), _negated(bg), _negated(fg)
        return "reproduced", spread + _stated(lesson, "reproduced", (
            f"Best-of-{n} prefers {a} to {b} ({bon[a]:.1f}% vs {bon[b]:.1f}%, gap "
            f"{_points(bg)}), yet {b} finds the first error more often (F1 {f1[b]:.1f} vs "
            f"{f1[a]:.1f}, {_gap_text(_negated(fg))}). Judged by Best-of-N alone, the weaker "
            f"step verifier would win."))
    if agree and same_order:
        (a, b), (bg, fg) = next(iter(agree.items()))
        return "contradicted", spread + _stated(lesson, "contradicted", (
            f"Best-of-N and ProcessBench order every pair of PRMs alike, {a} against {b} "
            f"beyond the noise in both (Best-of-{n} {_points(bg)}; {_gap_text(fg)})."))
    return "inconclusive", spread + _stated(lesson, "inconclusive", (
        "no pair of PRMs is ordered one way by Best-of-N and the other way by ProcessBench "
        "with both gaps beyond the noise (paired bootstraps over problems); with this many "
        "problems Best-of-N cannot tell these PRMs apart."))


def _negated(gap: dict) -> dict:
    return {**gap, "gap": -gap["gap"], "low": -gap["high"], "high": -gap["low"]}


def lesson_min_on_final(results: dict) -> tuple[str | None, str]:
    """Lesson 3: PRMs trained on MC labels put a response's lowest step score on its final step
    more often than PRMs trained on other labels (the share pooled over each group, paired by
    problem)."""
    lesson = "Lesson 3 (minimum scores on the final step)"
    prms = results["prms"]
    mc = [k for k in results["mc_sources"] if k in prms]
    others = [k for k in _trained(results) if k not in mc]
    if not mc or not others or _headline(prms[mc[0]]) is None:
        return None, (f"{lesson} was not measured: it needs PRMs trained on MC labels and on "
                      f"other labels, and a Best-of-N set.")
    share = {k: _min_final(v) or 0.0 for k, v in prms.items()}
    text = (f"PRMs trained on MC labels put a response's lowest step score on its final step "
            f"for {_join([f'{share[k]:.1f}% ({k})' for k in mc])} of held-out responses; the "
            f"others do for {_join([f'{share[k]:.1f}% ({k})' for k in others])}. ")
    labels = _final_step_labels(results, mc)
    # as for lesson 2, only PRMs that verify count: a PRM that ranks at chance puts its
    # minimum anywhere, and would make either group look like it waits for the end
    strong_mc = [k for k in mc if verifies(prms[k])]
    strong_others = [k for k in others if verifies(prms[k])]
    if not strong_mc or not strong_others:
        return "inconclusive", text + too_weak(results, mc + others, lesson) + labels
    left_out = [k for k in mc + others if k not in strong_mc + strong_others]
    if left_out:
        text += (f"Compared among the PRMs that rank the solutions of one problem better than a "
                 f"random pick ({_join(left_out)} {'does' if len(left_out) == 1 else 'do'} "
                 f"not): ")
    mc, others = strong_mc, strong_others
    gap = comparisons.final_share_gap(results, mc, others)
    verdict = {"+": "reproduced", "-": "contradicted", "0": "inconclusive"}[significance(gap)]
    why = {"reproduced": "MC labels judge a step by whether the answer can still be reached, so "
                         "such PRMs act like outcome models and wait for the end.",
           "contradicted": "the MC-trained PRMs put their minimum on the final step less often.",
           "inconclusive": "the interval holds zero."}[verdict]
    return verdict, text + _stated(lesson, verdict, f"MC-trained minus the others "
                                   f"{_points(gap)} (paired by problem); {why}") + labels


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


LESSONS = {"lesson 1": lesson_labels, "lesson 2": lesson_bon_vs_processbench,
           "lesson 3": lesson_min_on_final}


def verdicts(results: dict) -> dict[str, str | None]:
    """Each lesson's verdict: reproduced, contradicted, inconclusive, or None (not measured)."""
    return {name: lesson(results)[0] for name, lesson in LESSONS.items()}


def findings(results: dict) -> list[str]:
    lessons = [lesson(results)[1] for lesson in LESSONS.values()]
    return [s for s in (verification(results), catches(results), ceiling_sentence(results),
                        *lessons) if s]


