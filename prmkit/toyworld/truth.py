"""The exact truth of every step of a toy-world solution.

Definition. A solution is a list of steps. A computation step reads ``<statement>: a<op>b=c.``
(the statement as the problem words it, then its arithmetic; trailing padding is ignored) and an
answer step reads ``The answer is \\boxed{v}.``. A computation step is matched to the problem
statement it quotes, among those no earlier step matched (so a solution may take the statements
in any order and may skip side statements); a step that misquotes the problem is matched to the
earliest unmatched statement about the entity it names. Then the step is judged, first rule that
applies:

    unreadable   the step is neither form (including a truncated step)
    extra        it quotes a statement already computed, names no entity with a statement left,
                 or comes after the answer
    misread      it misquotes the problem ("Ben has 4 more than Ann" where the story says 3)
    wrong-op     the operator is not the statement's (``+`` where the story says "fewer")
    misread      an operand is neither the value a correct derivation uses at that point nor the
                 value this solution itself derived for that quantity: a misread given, a wrong
                 literal, a stale value of an entity that has changed since
    arithmetic   ``a <op> b`` is not ``c`` exactly (division must be exact)
    carried      every operand is either right or this solution's own earlier, wrong value of the
                 quantity: the step is sound but inherits an earlier error. It is that error's
                 consequence, never a new first error.
    ok           right operator, right operands, right arithmetic

The answer step is ``ok`` when ``v`` is the asked quantity's true value, ``carried`` when ``v`` is
the value this solution derived for it (an earlier error's consequence), and ``wrong-answer``
otherwise. Sums and products accept their operands in either order.

Every kind but ``ok`` and ``carried`` is an error; the earliest error is the solution's *label*
(ProcessBench convention: -1 when no step is wrong). A ``carried`` step only ever follows an
error, because a solution's derived value differs from the truth only after a wrong step.
Per-step truth labels follow the usual PRM convention: 1 before the first error, 0 from it on.

Where an error came from. A ``wrong-op`` step whose operator is the one a misconception of the
world computes its statement with (``problems.MISCONCEPTIONS``: "3 fewer than Ann" as ``7+3``),
on operands that are right or carried and with right arithmetic, is a *misconception*: a wrong
rule the policy was taught and applies with confidence. Every other error is a *slip*.
``first_error_origin`` says which made the solution's first error (None when there is none).

So "correct final answer, flawed process" happens in two natural ways: an error in a side
statement the answer does not need, and errors that cancel (``10+3=14`` then ``14-4=9`` where
10+3-4 = 9 is right).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prmkit.labels import first_error, labels_from_first_error
from prmkit.toyworld.problems import (
    MISCONCEPTIONS,
    Spec,
    apply,
    clause,
    misconceived_op,
)

ERROR_KINDS = ("unreadable", "extra", "wrong-op", "misread", "arithmetic", "wrong-answer")
ORIGINS = ("slip", "misconception")

_STEP = re.compile(r"(?P<clause>\(?(?P<name>[A-Z][a-z]+) [^:]+):\s*"
                   r"(?P<a>\d+)\s*(?P<op>[-+*/])\s*(?P<b>\d+)\s*=\s*(?P<c>\d+)\.")
_ANSWER = re.compile(r"The answer is \\boxed\{(?P<v>-?\d+)\}\.")


@dataclass(frozen=True)
class Truth:
    kinds: list[str]            # one verdict a step (see the module docstring)
    statements: list[int | None]  # the statement each step computes (None: answer, unmatched)
    label: int                  # earliest wrong step, -1 when none
    answer: int | None          # the boxed value, None when there is no answer step
    answer_correct: bool        # the boxed value is the true answer
    misconceived: list[bool] = None  # per step: a wrong-op step of a misconception's form

    @property
    def step_labels(self) -> list[int]:
        """1 before the first error, 0 from it on."""
        return labels_from_first_error(self.label, len(self.kinds))

    @property
    def first_error_origin(self) -> str | None:
        """``"misconception"`` or ``"slip"`` (see the module docstring); None when sound."""
        if self.label < 0:
            return None
        return ORIGINS[bool(self.misconceived and self.misconceived[self.label])]

    @property
    def complete(self) -> bool:
        return self.answer is not None

    @property
    def flawed_but_right(self) -> bool:
        return self.answer_correct and self.label >= 0

    def first_error_off_path(self, spec: Spec) -> bool:
        """The first error computes a side statement the answer does not need."""
        return self.label >= 0 and self.statements[self.label] is not None and \
            self.statements[self.label] not in spec.needed()


def judge(spec: Spec, steps: list[str]) -> Truth:
    """Label every step of a solution to a toy problem exactly."""
    pending = list(range(len(spec.statements)))  # statements no step has matched yet
    clauses = [clause(spec, i) for i in range(len(spec.statements))]
    derived: dict[int, int] = {}                  # quantity -> value this solution gave it
    kinds: list[str] = []
    misconceived: list[bool] = []
    statements: list[int | None] = []
    answer: int | None = None
    for raw in steps:
        text = raw.strip()
        matched = None
        if answer is not None:
            kinds.append("extra")
        elif m := _ANSWER.fullmatch(text):
            answer = int(m["v"])
            kinds.append("ok" if answer == spec.answer else
                         "carried" if derived.get(spec.ask) == answer else "wrong-answer")
        elif m := _STEP.fullmatch(text):
            quoted = next((i for i in pending if clauses[i] == m["clause"]), None)
            matched = quoted if quoted is not None else next(
                (i for i in pending if spec.statements[i].target == m["name"]), None)
            if matched is None:
                kinds.append("extra")
            else:
                kind = _judge_step(spec, matched, m, pending, derived)
                kinds.append("misread" if quoted is None else kind)
        else:
            kinds.append("unreadable")
        statements.append(matched)
        misconceived.append(kinds[-1] == "wrong-op" and _misconceived(spec, matched, m, derived))
    label = first_error(k not in ERROR_KINDS for k in kinds)
    return Truth(kinds, statements, label, answer, answer is not None and answer == spec.answer,
                 misconceived)


def _misconceived(spec: Spec, s_index: int, m: re.Match, derived: dict[int, int]) -> bool:
    """A wrong-op step computes its statement by a misconception's operator, on operands that
    are right or this solution's own earlier values, with right arithmetic: exactly what a
    believer writes. (A belief with an arithmetic slip on top holds a token the policy itself
    doubts: a slip.)"""
    statement = spec.statements[s_index]
    if m["op"] != misconceived_op(statement, tuple(MISCONCEPTIONS)):
        return False
    (_, source), a, b = statement.operands()[0], int(m["a"]), int(m["b"])
    believed = {spec.values[source], derived.get(source)}
    operands = (a in believed and b == statement.k) or (b in believed and a == statement.k)
    return operands and apply(m["op"], a, b) == int(m["c"])


def _judge_step(spec: Spec, s_index: int, m: re.Match, pending: list[int],
                derived: dict[int, int]) -> str:
    pending.remove(s_index)
    statement = spec.statements[s_index]
    a, b, c = int(m["a"]), int(m["b"]), int(m["c"])
    derived[spec.quantity(s_index)] = c  # later steps build on what this step claims
    if m["op"] != statement.op:
        return "wrong-op"

    def verdict(value: int, operand: tuple[str, int]) -> str:
        kind, x = operand
        if kind == "k":
            return "ok" if value == x else "misread"
        if value == spec.values[x]:
            return "ok"
        return "carried" if derived.get(x) == value else "misread"

    expected = statement.operands()
    orders = [(a, b)] + ([(b, a)] if statement.op in "+*" else [])
    # the reading of the operands with the fewest misreads, then the fewest carried values
    readings = [[verdict(v, o) for v, o in zip(order, expected)] for order in orders]
    best = min(readings, key=lambda r: (r.count("misread"), r.count("carried")))
    if "misread" in best:
        return "misread"
    if apply(statement.op, a, b) != c:
        return "arithmetic"
    return "carried" if "carried" in best else "ok"


def step_truth(problem: dict, steps: list[str]) -> dict:
    """The sampling stage's truth hook for toy problems (``prmkit sample --truth
    prmkit.toyworld.truth:step_truth``): the ``truth`` field of a solution record."""
    truth = judge(Spec.from_dict(problem["toy"]), steps)
    return {"label": truth.label, "kinds": truth.kinds, "step_labels": truth.step_labels,
            "answer_correct": truth.answer_correct,
            "first_error_origin": truth.first_error_origin}


# the hook as the sampling stage names it
TRUTH_HOOK = f"{__name__}:step_truth"
