"""``prmkit toy stats``: how often the paper's phenomena occur in the toy world, measured exactly.

On held-out problems the policy writes N solutions each; the exact truth labels every step. We
count:

- solutions whose final answer is right although a step is wrong, split by cause: the first
  error is in a side statement the answer does not need; or later steps go on from the right
  value as if the error had not happened; or later errors cancel it;
- where the first error falls (the distribution over step positions), what kind it is, and
  where it came from: a slip, or a misconception the policy was taught (shares of all
  solutions), with how sure the policy was of it (``error_confidence``);
- from rollouts (K completions of a step prefix, as MC estimation does): how often a prefix that
  already holds an error still reaches the right answer (MC would call the error step correct),
  and how often a prefix with no error reaches a wrong answer (MC would call a good step bad).
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter

from prmkit.backends import SamplingParams
from prmkit.models import load_tokenizer
from prmkit.prompting import render
from prmkit.steps import join_steps, split_steps
from prmkit.toyworld.policy import PROMPT
from prmkit.toyworld.problems import Spec, budget_for
from prmkit.toyworld.truth import ERROR_KINDS, ORIGINS, judge


def sample_and_judge(backend, problems: list[dict], *, samples: int, temperature: float,
                     seed: int) -> list[dict]:
    outputs = backend.generate([render(PROMPT, p["problem"]) for p in problems],
                               SamplingParams(n=samples, temperature=temperature,
                                              max_new_tokens=budget_for(problems), seed=seed))
    solutions = []
    for p, completions in zip(problems, outputs):
        spec = Spec.from_dict(p["toy"])
        for j, c in enumerate(completions):
            steps = split_steps(c.text) or [c.text]
            solutions.append({"problem": p, "spec": spec, "steps": steps, "sample_index": j,
                              "finish_reason": c.finish_reason, "truth": judge(spec, steps)})
    return solutions


def _prefixes(solutions: list[dict], rng: random.Random) -> tuple[list, list]:
    """One wrong prefix (through the first error) and one sound prefix per solution, where the
    solution has them; answer steps are never part of a prefix."""
    wrong, sound = [], []
    for s in solutions:
        truth, n_compute = s["truth"], len(s["steps"]) - (1 if s["truth"].complete else 0)
        if 0 <= truth.label < n_compute:
            wrong.append((s, truth.label + 1))
        last_sound = truth.label if truth.label >= 0 else n_compute
        if last_sound >= 1:
            sound.append((s, rng.randint(1, last_sound)))
    return wrong, sound


def rollout_rates(backend, solutions: list[dict], *, rollouts: int, temperature: float,
                  seed: int) -> dict:
    wrong, sound = _prefixes(solutions, random.Random(seed))
    jobs = wrong + sound
    prompts = [render(PROMPT, s["problem"]["problem"]) + join_steps(s["steps"][:k]) + "\n\n"
               for s, k in jobs]
    budget = budget_for([s["problem"] for s, _ in jobs])
    outputs = backend.generate(prompts, SamplingParams(n=rollouts, temperature=temperature,
                                                       max_new_tokens=budget, seed=seed + 1))
    reached = []  # share of rollouts with a right answer, per prefix
    for (s, k), completions in zip(jobs, outputs):
        rights = [judge(s["spec"], s["steps"][:k] + split_steps(c.text)).answer_correct
                  for c in completions]
        reached.append(sum(rights) / len(rights))
    from_wrong, from_sound = reached[:len(wrong)], reached[len(wrong):]

    def mean(xs: list) -> float | None:
        return sum(xs) / len(xs) if xs else None
    return {
        "rollouts_per_prefix": rollouts,
        "wrong_prefixes": len(wrong),
        "right_answer_from_wrong_prefix": mean(from_wrong),
        "wrong_prefixes_with_any_right_rollout": mean([x > 0 for x in from_wrong]),
        "sound_prefixes": len(sound),
        "wrong_answer_from_sound_prefix": mean([1 - x for x in from_sound]),
        "sound_prefixes_with_no_right_rollout": mean([x == 0 for x in from_sound]),
    }


def solution_rates(solutions: list[dict]) -> dict:
    n = len(solutions)
    truths = [s["truth"] for s in solutions]
    erroneous = [s for s in solutions if s["truth"].label >= 0]
    flawed_right = [s for s in erroneous if s["truth"].answer_correct]
    causes = Counter(_why_right(s) for s in flawed_right)
    positions = Counter(s["truth"].label for s in erroneous)
    return {
        "solutions": n,
        "final_answer_correct": sum(t.answer_correct for t in truths) / n,
        "process_correct": sum(t.label == -1 and t.complete for t in truths) / n,
        "no_answer": sum(not t.complete for t in truths) / n,
        "correct_answer_flawed_process": len(flawed_right) / n,
        "flawed_share_of_correct_answers": (len(flawed_right) /
                                            max(1, sum(t.answer_correct for t in truths))),
        "flawed_right_by_cause": {cause: causes[cause] for cause in CAUSES},
        "first_error_position": dict(sorted(positions.items())),
        "first_error_kind": dict(Counter(s["truth"].kinds[s["truth"].label]
                                         for s in erroneous).most_common()),
        "first_error_origin": {origin: sum(s["truth"].first_error_origin == origin
                                           for s in erroneous) / n for origin in ORIGINS},
    }


CAUSES = ("side statement", "later steps use the right value", "cancelled by later errors")


def _why_right(solution: dict) -> str:
    """Why a solution with a wrong step still reaches the right answer."""
    truth = solution["truth"]
    if truth.first_error_off_path(solution["spec"]):
        return CAUSES[0]
    later = truth.kinds[truth.label + 1:]
    return CAUSES[2] if any(k in ERROR_KINDS for k in later) else CAUSES[1]


def error_confidence(model_path, solutions: list[dict], batch_size: int = 32) -> dict:
    """How sure the policy was of its own first error, by the error's origin: the probability
    it gave the least likely token of the first wrong step (the step as it wrote it). A slip
    holds a token the policy itself found unlikely; a misconception is written with confidence,
    so its own likelihood cannot flag it. origin -> {"n", "median", "mean"}."""
    import torch
    from transformers import AutoModelForCausalLM
    tokenizer = load_tokenizer(model_path, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    flawed = [s for s in solutions if 0 <= s["truth"].label < len(s["steps"])]
    lowest: dict[str, list[float]] = {}
    for start in range(0, len(flawed), batch_size):
        batch = flawed[start:start + batch_size]
        texts, spans = [], []
        for s in batch:
            label = s["truth"].label
            head = render(PROMPT, s["problem"]["problem"]) + join_steps(s["steps"][:label])
            head += "\n\n" if label else ""
            texts.append(head + s["steps"][s["truth"].label])
            spans.append((len(head), len(texts[-1])))
        encoded = tokenizer(texts, return_tensors="pt", padding=True,
                            return_offsets_mapping=True, add_special_tokens=False)
        with torch.no_grad():
            logits = model(input_ids=encoded["input_ids"],
                           attention_mask=encoded["attention_mask"]).logits.float()
        logprobs = logits[:, :-1].log_softmax(-1).gather(
            -1, encoded["input_ids"][:, 1:, None])[..., 0]
        for row, (s, (begin, end)) in enumerate(zip(batch, spans)):
            in_step = [t for t, (a, b) in enumerate(encoded["offset_mapping"][row].tolist())
                       if t > 0 and begin <= a and b <= end and b > a]
            if in_step:
                value = min(logprobs[row, t - 1].item() for t in in_step)
                lowest.setdefault(s["truth"].first_error_origin, []).append(math.exp(value))
    return {origin: {"n": len(v), "median": statistics.median(v), "mean": statistics.fmean(v)}
            for origin, v in sorted(lowest.items())}


def toy_stats(backend, problems: list[dict], *, samples: int = 8, rollouts: int = 8,
              temperature: float = 1.0, seed: int = 0, model_path=None) -> dict:
    solutions = sample_and_judge(backend, problems, samples=samples, temperature=temperature,
                                 seed=seed)
    out = {"solutions": solution_rates(solutions),
           "rollouts": rollout_rates(backend, solutions, rollouts=rollouts,
                                     temperature=temperature, seed=seed)}
    if model_path is not None:
        out["error_confidence"] = error_confidence(model_path, solutions)
    return out
