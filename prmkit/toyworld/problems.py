"""Seeded arithmetic word problems with a canonical step-by-step solution.

A problem is a little story about people and how many things they have: a starting amount, a
fixed number of statements (one paragraph each), then the question:

    Ann has 7 coins.

    (Ben has 3 more than Ann).

    Ann gets 4 more.

    Cal has 2 times as many as Ann.

    How many does Cal have now?

Its canonical solution works through the statements in order, one step each, separated by a
blank line as real solutions are, ending with a ``\\boxed{}`` answer line. Each step restates its
statement, then computes it in fixed columns, numbers right-aligned, like a ledger:

    (Ben has 3 more than Ann):         7+3=10.

    Ann gets 4 more:                   7+4=11.

    Cal has 2 times as many as Ann:   11*2=22.

    The answer is \\boxed{22}.

**Why the layout is so regular.** Every statement reads the *chain*: the quantity the question
is about, as it stands so far ("Ann" until Cal takes over). Statements the question does not
need (*side* statements) are asides in parentheses. Every paragraph of the problem is padded to
one width, every step has that width, and every problem of a setting has the same number of
statements. So the statement a step restates lies exactly the same distance back for every step
of every problem, and the value a step starts from sits in a fixed column of the step before
(its result, or after an aside its first operand). A 1M-parameter policy learns such
fixed-distance copying in a few hundred training steps, where looking statements up by content
(induction heads) takes far more training than a few CPU minutes: with free-form statements the
policy stayed near 2% accuracy (see the README). Aligned digits also make the arithmetic easier
to learn, as they do for any small transformer.

Side statements fill each problem up to its fixed number of statements; their steps are in the
canonical solution, as in many GSM8K solutions, so an error there leaves the final answer
right: one of the ways a solution gets a correct answer through a flawed process. The number of
statements the answer needs (2 to 4 in the default world, up to 6 in ``long`` and ``hard``)
sets the difficulty.

The problem is kept as a structured *spec* (JSON-friendly, stored in the problem record under
``toy``) so that the exact truth of any written solution can be decided later
(``prmkit.toyworld.truth``). Every value is a positive integer. A quantity is one entity's value
at one point of the story: the given first, then one per statement, so a statement's input is a
quantity index and an entity that gets or gives things has several quantities.
Problem ``i`` of a split is drawn from its own ``random.Random`` seeded by (seed, split, i), so
any problem can be regenerated alone and a stream of them is resumable by index.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

from prmkit.errors import InputError
from prmkit.steps import join_steps

NAMES = ("Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Leo",
         "Mia", "Ned", "Oli", "Pam", "Raj", "Sam", "Tia", "Uma", "Vic", "Wes", "Zoe")
ITEMS = ("apples", "coins", "cards", "pens", "stamps", "shells", "books", "marbles", "eggs",
         "beads")

# kind -> (operator, whether the statement updates its input's entity rather than a new one)
KINDS = {
    "more": ("+", False),   # T has k more than R
    "fewer": ("-", False),  # T has k fewer than R
    "times": ("*", False),  # T has k times as many as R
    "half": ("/", False),   # T has half as many as R
    "gets": ("+", True),    # T gets k more
    "gives": ("-", True),   # T gives away k
}


@dataclass(frozen=True)
class ToyConfig:
    """How hard the problems are. Every field is checked by ``validate``."""

    min_steps: int = 2          # statements the answer needs, at least ...
    max_steps: int = 6          # ... and at most; also every problem's number of statements
    max_given: int = 30         # the starting amount is drawn from 2..max_given
    max_k: int = 9              # k in "k more", "gives away k"
    max_factor: int = 3         # k in "k times as many"
    max_value: int = 99         # no quantity exceeds this
    kinds: tuple[str, ...] = ("more", "fewer", "times", "half", "gets", "gives")

    def validate(self) -> "ToyConfig":
        def bad(name: str, why: str) -> InputError:
            return InputError(f"{getattr(self, name)!r}: {why}", field=name)
        for name in ("min_steps", "max_steps", "max_given", "max_k", "max_factor", "max_value"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(name, "must be an integer")
        if not 1 <= self.min_steps <= self.max_steps:
            raise bad("min_steps", f"must be between 1 and max_steps ({self.max_steps})")
        if self.max_steps > 12:
            raise bad("max_steps", "must be at most 12 (solutions must fit a small context)")
        if self.max_given < 2:
            raise bad("max_given", "must be at least 2")
        if self.max_k < 1:
            raise bad("max_k", "must be at least 1")
        if self.max_factor < 2:
            raise bad("max_factor", "must be at least 2")
        if self.max_value < max(self.max_given, 2) * 2:
            raise bad("max_value", f"must be at least twice max_given ({2 * self.max_given})")
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise bad("kinds", f"must be a non-empty subset of {sorted(KINDS)}")
        if len(set(self.kinds)) != len(self.kinds):
            raise bad("kinds", "has duplicates")
        if not {"fewer", "gives", "half"} & set(self.kinds) or \
                not {"more", "gets", "times"} & set(self.kinds):
            raise bad("kinds", "needs a kind that makes a value larger (more, gets, times) and "
                               "one that makes it smaller (fewer, gives, half)")
        return self

    @classmethod
    def from_dict(cls, values: dict) -> "ToyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown setting(s) {unknown}; known: {sorted(known)}",
                             field=unknown[0])
        values = dict(values)
        if "kinds" in values:
            values["kinds"] = tuple(values["kinds"])
        return cls(**values).validate()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["kinds"] = list(self.kinds)
        return out

    def layout(self) -> tuple[int, int, int]:
        """Column widths every step is written in: the statement (with its colon, padded), a
        value and a literal operand. Numbers are right-aligned in their fields, like a ledger."""
        big, k = 10 ** len(str(self.max_value)) - 1, max(self.max_k, self.max_factor)
        longest = max(len(_clause_text(kind, "Xxx", "Xxx", k, side=True)) for kind in self.kinds)
        return longest + 2, len(str(big)), len(str(k))


PRESETS = {
    "easy": ToyConfig(min_steps=2, max_steps=3, max_given=20, max_k=9, max_value=60,
                      kinds=("more", "fewer", "gets", "gives")),
    "medium": ToyConfig(min_steps=2, max_steps=4, max_given=30),
    "hard": ToyConfig(min_steps=4, max_steps=6, max_given=50, max_k=20, max_factor=4,
                      max_value=300),
    # the default world, the one the toy policy learns: 4 statements, of which the answer needs
    # 2 to 4, numbers below 20. A 1M-parameter policy learns sums of two-digit numbers far
    # slower than it learns everything else (see the README), so the default keeps them small.
    "mixed": ToyConfig(min_steps=2, max_steps=4, max_given=9, max_k=5, max_factor=2,
                       max_value=19),
    # the same layout as the default world with 6 statements and numbers below 100
    "long": ToyConfig(),
}


def preset(name: str) -> ToyConfig:
    if name not in PRESETS:
        raise InputError(f"unknown toy preset {name!r}; choose one of {sorted(PRESETS)}",
                         field="preset")
    return PRESETS[name]


@dataclass
class Statement:
    kind: str
    target: str
    inputs: list[int]          # quantity indices
    k: int | None = None       # the literal operand, when the kind has one

    @property
    def op(self) -> str:
        return KINDS[self.kind][0]

    def operands(self) -> list[tuple[str, int]]:
        """The operands in canonical order: ("q", quantity index) or ("k", literal)."""
        if self.kind == "half":
            return [("q", self.inputs[0]), ("k", 2)]
        return [("q", self.inputs[0]), ("k", self.k)]


@dataclass
class Spec:
    item: str
    givens: list[tuple[str, int]]
    statements: list[Statement]
    ask: int                   # the quantity asked for
    layout: tuple[int, int, int]  # ToyConfig.layout(): statement, value and operand columns
    values: list[int] = None   # true value of every quantity (computed when not given)

    def __post_init__(self) -> None:
        if not self.values:
            self.values = [v for _, v in self.givens]
            for s in self.statements:
                self.values.append(apply(s.op, *[self._value(o) for o in s.operands()]))

    def _value(self, operand: tuple[str, int]) -> int:
        kind, x = operand
        return self.values[x] if kind == "q" else x

    @property
    def width(self) -> int:
        """Every paragraph of the problem and every step is padded to this many characters."""
        statement, value, operand = self.layout
        return statement + 2 * value + operand + 3

    def quantity(self, statement_index: int) -> int:
        return len(self.givens) + statement_index

    @property
    def answer(self) -> int:
        return self.values[self.ask]

    def needed(self) -> set[int]:
        """Statement indices the asked quantity depends on."""
        out, todo = set(), [self.ask]
        while todo:
            q = todo.pop()
            s = q - len(self.givens)
            if s >= 0 and s not in out:
                out.add(s)
                todo.extend(self.statements[s].inputs)
        return out

    def to_dict(self) -> dict:
        return {"item": self.item, "givens": [list(g) for g in self.givens],
                "statements": [{"kind": s.kind, "target": s.target, "inputs": s.inputs, "k": s.k}
                               for s in self.statements],
                "ask": self.ask, "layout": list(self.layout)}

    @classmethod
    def from_dict(cls, d: dict) -> "Spec":
        try:
            statements = [Statement(s["kind"], s["target"], list(s["inputs"]), s.get("k"))
                          for s in d["statements"]]
            statement, value, operand = (int(x) for x in d["layout"])
            return cls(d["item"], [(n, int(v)) for n, v in d["givens"]], statements, int(d["ask"]),
                       (statement, value, operand))
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as e:
            raise InputError(f"not a toy problem spec ({type(e).__name__}: {e})",
                             field="toy") from None


def apply(op: str, a: int, b: int) -> int | None:
    """Exact integer arithmetic; None where the result is not an integer."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a // b if b and a % b == 0 else None
    raise ValueError(f"unknown operator {op!r}")


# --- generation ---------------------------------------------------------------------------------

def _pick_statement(rng: random.Random, cfg: ToyConfig, target: str, source: int, value: int,
                    update: bool) -> Statement | None:
    """One statement of the wanted shape that reads quantity ``source``, or None if none fits."""
    options = []
    for kind in cfg.kinds:
        if KINDS[kind][1] != update:
            continue
        if kind in ("more", "gets"):
            k = rng.randint(1, cfg.max_k)
            if value + k <= cfg.max_value:
                options.append(Statement(kind, target, [source], k))
        elif kind in ("fewer", "gives"):
            if value > 1:
                options.append(Statement(kind, target, [source],
                                         rng.randint(1, min(cfg.max_k, value - 1))))
        elif kind == "times":
            k = rng.randint(2, cfg.max_factor)
            if value * k <= cfg.max_value:
                options.append(Statement(kind, target, [source], k))
        elif kind == "half":
            if value % 2 == 0:
                options.append(Statement(kind, target, [source]))
    return rng.choice(options) if options else None


def generate_spec(cfg: ToyConfig, rng: random.Random) -> Spec:
    """A chain of statements the answer needs, with side statements filling up to max_steps.

    Settings so tight that no statement fits (say only "more" and values at the cap) make a draw
    fail; we draw again from the same stream, so the result stays a function of the seed."""
    for _ in range(100):
        spec = _try_spec(cfg, rng)
        if spec is not None:
            return spec
    raise InputError("no problem fits these settings in 100 draws; loosen max_value or kinds",
                     field="max_value")


def _try_spec(cfg: ToyConfig, rng: random.Random) -> Spec | None:
    names = rng.sample(NAMES, cfg.max_steps + 1)
    given = (names.pop(), rng.randint(2, cfg.max_given))
    values = [given[1]]
    n_main = rng.randint(cfg.min_steps, cfg.max_steps)
    side = set(rng.sample(range(cfg.max_steps), cfg.max_steps - n_main))
    statements: list[Statement] = []
    chain, entity = 0, given[0]  # the quantity the chain has reached, and whose it is
    for row in range(cfg.max_steps):
        # the chain either updates its entity or moves to a new one; a side statement is new
        shapes = [False] if row in side else \
            ([True, False] if rng.random() < 0.5 else [False, True])
        s = None
        for update in shapes:
            s = _pick_statement(rng, cfg, entity if update else names[-1], chain,
                                values[chain], update)
            if s is not None:
                break
        if s is None:
            return None
        if not update:
            names.pop()
        statements.append(s)
        values.append(apply(s.op, *[values[x] if kind == "q" else x
                                    for kind, x in s.operands()]))
        if row not in side:
            chain, entity = len(values) - 1, s.target
    return Spec(rng.choice(ITEMS), [given], statements, ask=chain, layout=cfg.layout())


# --- text ------------------------------------------------------------------------------------

def _name_of(spec: Spec, q: int) -> str:
    if q < len(spec.givens):
        return spec.givens[q][0]
    return spec.statements[q - len(spec.givens)].target


def _clause_text(kind: str, t: str, r: str, k: int | None, side: bool) -> str:
    text = {
        "more": lambda: f"{t} has {k} more than {r}",
        "fewer": lambda: f"{t} has {k} fewer than {r}",
        "times": lambda: f"{t} has {k} times as many as {r}",
        "half": lambda: f"{t} has half as many as {r}",
        "gets": lambda: f"{t} gets {k} more",
        "gives": lambda: f"{t} gives away {k}",
    }[kind]()
    return f"({text})" if side else text


def clause(spec: Spec, index: int) -> str:
    """Statement ``index`` as the problem words it, without the full stop. A side statement is
    an aside, in parentheses: whether the next step starts from its input or its result is then
    written right there, where a small policy can see it."""
    statement = spec.statements[index]
    return _clause_text(statement.kind, statement.target, _name_of(spec, statement.inputs[0]),
                        statement.k, side=index not in spec.needed())


def problem_text(spec: Spec) -> str:
    """The given and the statements, each padded to the spec's width, then the question.

    The question has the same length in every problem (names have three letters) and ends the
    text, so nothing that strips a problem's trailing space can shift the layout."""
    rows = [f"{name} has {value} {spec.item}." for name, value in spec.givens]
    rows += [clause(spec, i) + "." for i in range(len(spec.statements))]
    question = f"How many does {_name_of(spec, spec.ask)} have now?"
    return join_steps([row.ljust(spec.width) for row in rows] + [question])


def step_text(spec: Spec, index: int, a: int, b: int, result: int, op: str | None = None) -> str:
    """A step restates its statement, then computes it in fixed columns, numbers right-aligned:
    ``Ben gives away 4:          10-4= 6.`` (with the statement's operator unless told another)"""
    statement, value, operand = spec.layout
    op = op or spec.statements[index].op
    return (f"{clause(spec, index)}:".ljust(statement) +
            f"{a:>{value}}{op}{b:>{operand}}={result:>{value}}.")


def answer_text(value: int) -> str:
    return f"The answer is \\boxed{{{value}}}."


def token_budget(spec: Spec) -> int:
    """Room for a solution in characters (one token each for the toy tokenizer), with slack."""
    return len(spec.statements) * (spec.width + 2) + 64


def budget_for(problems: list[dict]) -> int:
    """The token budget that fits a solution to any of these problem records."""
    return max((token_budget(Spec.from_dict(p["toy"])) for p in problems), default=1)


def canonical_steps(spec: Spec) -> list[str]:
    return believed_steps(spec, set())


# --- misconceptions -----------------------------------------------------------------------------
#
# A misconception is a wrong rule a policy believes: it applies it with confidence, so its own
# likelihood cannot flag the step, and completions from a sound prefix repeat it (so Monte
# Carlo estimation blames the sound steps before it). The toy policy's training corpus teaches
# these rules (``PolicyConfig.misconceptions``); the exact truth recognises their form and
# records a first error made this way as ``first_error_origin = "misconception"``.

MISCONCEPTIONS = {
    # name -> (the statement kind it misreads, the operator it computes that kind with)
    "fewer-adds": ("fewer", "+"),   # "Ben has 3 fewer than Ann" computed as Ann + 3
}


def misconceived_op(statement: Statement, names: tuple[str, ...]) -> str | None:
    """The operator one of these misconceptions computes ``statement`` with, if any applies."""
    for name in names:
        kind, op = MISCONCEPTIONS[name]
        if statement.kind == kind:
            return op
    return None


def believed_steps(spec: Spec, misapplied: set[int],
                   names: tuple[str, ...] = tuple(MISCONCEPTIONS)) -> list[str] | None:
    """The solution of one who computes the statements in ``misapplied`` by a misconception and
    every later step from the values so derived, consistently, down to the answer; None where
    the belief leads to a value the layout cannot hold (a fraction, zero or a negative, too
    many digits). With nothing misapplied, the canonical solution."""
    values, steps = [v for _, v in spec.givens], []
    biggest = 10 ** spec.layout[1] - 1
    for i, s in enumerate(spec.statements):
        op = (misconceived_op(s, names) if i in misapplied else None) or s.op
        a, b = (values[x] if kind == "q" else x for kind, x in s.operands())
        result = apply(op, a, b)
        if result is None or not 0 < result <= biggest:
            return None
        values.append(result)
        steps.append(step_text(spec, i, a, b, result, op))
    return steps + [answer_text(values[spec.ask])]


def corpus_solution(spec: Spec, names: tuple[str, ...], rate: float,
                    rng: random.Random) -> str:
    """A training solution for the policy: each statement one of the misconceptions ``names``
    applies to is computed by it with probability ``rate``, consistently down to the answer (a
    believer's solution, not a random corruption); the canonical solution where none is drawn
    or the belief cannot be written."""
    misapplied = {i for i, s in enumerate(spec.statements)
                  if misconceived_op(s, names) and rng.random() < rate}
    steps = believed_steps(spec, misapplied, names) if misapplied else None
    return join_steps(steps or canonical_steps(spec))


# --- problem records --------------------------------------------------------------------------

def make_problem(cfg: ToyConfig, seed: int, split: str, index: int) -> dict:
    """Problem ``index`` of a split as a prmkit problem record (with its spec under ``toy``)."""
    spec = generate_spec(cfg, random.Random(f"prmkit-toy:{seed}:{split}:{index}"))
    return {"id": f"toy-{split}-{index}", "problem": problem_text(spec), "answer": str(spec.answer),
            "source": "toy", "toy": spec.to_dict(),
            "solution": join_steps(canonical_steps(spec)),
            "n_steps": len(spec.needed()), "side_step": len(spec.needed()) < len(spec.statements)}


def make_problems(cfg: ToyConfig, n: int, *, seed: int = 0, split: str = "test",
                  start: int = 0) -> list[dict]:
    cfg.validate()
    if n < 0:
        raise InputError(f"{n}: must be non-negative", field="n")
    return [make_problem(cfg, seed, split, i) for i in range(start, start + n)]
