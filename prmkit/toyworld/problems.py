"""Seeded arithmetic word problems with a canonical step-by-step solution.

A problem is a little story about people and how many things they have:

    Ann has 7 coins. (1) Ben has 3 more than Ann. (2) Ben gives away 4. (3) Cal has 2 times as
    many as Ben. How many coins does Cal have?

and its canonical solution works through the statements in order, one step each, steps
separated by a blank line as real solutions are, ending with a ``\\boxed{}`` answer line. Each
step restates its numbered statement, then computes it. The numbers and the restating are what
let a 1M-parameter policy learn the world in minutes: "(2)" points its attention at the
statement to copy (a plain induction pattern), where finding "the next statement" unaided takes
far more training than a CPU budget allows.

    (1) Ben has 3 more than Ann: 7+3=10.

    (2) Ben gives away 4: 10-4=6.

    (3) Cal has 2 times as many as Ben: 6*2=12.

    The answer is \\boxed{12}.

The problem is kept as a structured *spec* (JSON-friendly, stored in the problem record under
``toy``) so that the exact truth of any written solution can be decided later
(``prmkit.toyworld.truth``). Every value is a positive integer. A quantity is one entity's value
at one point of the story: givens first, then one per statement, so a statement's inputs are
quantity indices and an entity that gets or gives things has several quantities.

Some problems hold a *side* statement whose quantity the asked one does not depend on. Its step
is still in the canonical solution (as in many GSM8K solutions), so an error there leaves the
final answer right: one of the ways a solution gets a correct answer through a flawed process.
Problem ``i`` of a split is drawn from its own ``random.Random`` seeded by (seed, split, i), so
any problem can be regenerated alone and a stream of them is resumable by index.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields

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
    "sum": ("+", False),    # T has as many as R1 and R2 together
    "gets": ("+", True),    # T gets k more
    "gives": ("-", True),   # T gives away k
}


@dataclass(frozen=True)
class ToyConfig:
    """How hard the problems are. Every field is checked by ``validate``."""

    min_steps: int = 2          # statements that need a computation (the answer line not counted)
    max_steps: int = 6
    max_given: int = 30         # givens are drawn from 2..max_given
    max_k: int = 9              # k in "k more", "gives away k"
    max_factor: int = 3         # k in "k times as many"
    max_value: int = 120        # no quantity exceeds this
    kinds: tuple[str, ...] = ("more", "fewer", "times", "half", "sum", "gets", "gives")
    side_rate: float = 0.3      # share of problems with one side statement the answer doesn't need

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
        if not ({"more", "times", "sum", "gets"} & set(self.kinds)):
            raise bad("kinds", "needs one kind that can always apply: more, times, sum or gets")
        if not 0.0 <= self.side_rate <= 1.0:
            raise bad("side_rate", "must be in [0, 1]")
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


PRESETS = {
    "easy": ToyConfig(min_steps=2, max_steps=3, max_given=20, max_k=9, max_value=60,
                      kinds=("more", "fewer", "gets", "gives")),
    "medium": ToyConfig(min_steps=2, max_steps=4, max_given=30, max_value=120),
    "hard": ToyConfig(min_steps=4, max_steps=6, max_given=50, max_k=20, max_factor=4,
                      max_value=300),
    # the default world: 2 to 6 steps, every operation, numbers up to 120
    "mixed": ToyConfig(),
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
        if self.kind == "sum":
            return [("q", self.inputs[0]), ("q", self.inputs[1])]
        if self.kind == "half":
            return [("q", self.inputs[0]), ("k", 2)]
        return [("q", self.inputs[0]), ("k", self.k)]


@dataclass
class Spec:
    item: str
    givens: list[tuple[str, int]]
    statements: list[Statement]
    ask: int                   # the quantity asked for
    values: list[int] = field(default_factory=list)  # true value of every quantity

    def __post_init__(self) -> None:
        if not self.values:
            self.values = [v for _, v in self.givens]
            for s in self.statements:
                self.values.append(apply(s.op, *[self._value(o) for o in s.operands()]))

    def _value(self, operand: tuple[str, int]) -> int:
        kind, x = operand
        return self.values[x] if kind == "q" else x

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
                "ask": self.ask}

    @classmethod
    def from_dict(cls, d: dict) -> "Spec":
        try:
            statements = [Statement(s["kind"], s["target"], list(s["inputs"]), s.get("k"))
                          for s in d["statements"]]
            return cls(d["item"], [(n, int(v)) for n, v in d["givens"]], statements, int(d["ask"]))
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
                    others: list[int], values: list[int], update: bool) -> Statement | None:
    """One statement that reads quantity ``source`` (and for a sum, one of ``others``)."""
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
                options.append(Statement(kind, target, [source], rng.randint(1, min(cfg.max_k,
                                                                                  value - 1))))
        elif kind == "times":
            k = rng.randint(2, cfg.max_factor)
            if value * k <= cfg.max_value:
                options.append(Statement(kind, target, [source], k))
        elif kind == "half":
            if value % 2 == 0:
                options.append(Statement(kind, target, [source]))
        elif kind == "sum":
            partners = [q for q in others if value + values[q] <= cfg.max_value]
            if partners:
                options.append(Statement(kind, target, [source, rng.choice(partners)]))
    return rng.choice(options) if options else None


def generate_spec(cfg: ToyConfig, rng: random.Random) -> Spec:
    """A main chain of statements, each reading the chain's latest quantity, plus maybe a side one.

    Settings so tight that no statement fits (say only "more" and values at the cap) make a draw
    fail; we draw again from the same stream, so the result stays a function of the seed."""
    for _ in range(100):
        spec = _try_spec(cfg, rng)
        if spec is not None:
            return spec
    raise InputError("no problem fits these settings in 100 draws; loosen max_value or kinds",
                     field="max_value")


def _try_spec(cfg: ToyConfig, rng: random.Random) -> Spec | None:
    names = rng.sample(NAMES, 10)
    n_steps = rng.randint(cfg.min_steps, cfg.max_steps)
    n_givens = 2 if "sum" in cfg.kinds and rng.random() < 0.5 else 1
    givens = [(names.pop(), rng.randint(2, cfg.max_given)) for _ in range(n_givens)]
    values = [v for _, v in givens]
    latest = {name: q for q, (name, _) in enumerate(givens)}  # entity -> its latest quantity
    statements: list[Statement] = []
    side_at = rng.randrange(1, n_steps) if n_steps > 1 and rng.random() < cfg.side_rate else None
    chain = 0  # the quantity the main chain has reached

    while len(statements) < n_steps:
        is_side = len(statements) == side_at
        source = rng.choice(list(latest.values())) if is_side else chain
        entity = next(n for n, q in latest.items() if q == source)
        others = [q for q in latest.values() if q != source]
        # the chain either updates its entity or moves to a new one; a side statement is new
        shapes = [False] if is_side else ([True, False] if rng.random() < 0.35 else [False, True])
        s = None
        for update in shapes:
            target = entity if update else names[-1]
            s = _pick_statement(rng, cfg, target, source, values[source], others, values, update)
            if s is not None:
                break
        if s is None:
            return None
        if s.target == names[-1]:
            names.pop()
        statements.append(s)
        values.append(apply(s.op, *[values[x] if kind == "q" else x
                                    for kind, x in s.operands()]))
        latest[s.target] = len(values) - 1
        if not is_side:
            chain = len(values) - 1
    return Spec(rng.choice(ITEMS), givens, statements, ask=chain)


# --- text ------------------------------------------------------------------------------------

def _name_of(spec: Spec, q: int) -> str:
    if q < len(spec.givens):
        return spec.givens[q][0]
    return spec.statements[q - len(spec.givens)].target


def clause(spec: Spec, index: int) -> str:
    """Statement ``index`` as the problem words it, with its number, without the full stop."""
    statement = spec.statements[index]
    r = [_name_of(spec, q) for q in statement.inputs]
    t, k = statement.target, statement.k
    return f"({index + 1}) " + {
        "more": lambda: f"{t} has {k} more than {r[0]}",
        "fewer": lambda: f"{t} has {k} fewer than {r[0]}",
        "times": lambda: f"{t} has {k} times as many as {r[0]}",
        "half": lambda: f"{t} has half as many as {r[0]}",
        "sum": lambda: f"{t} has as many as {r[0]} and {r[1]} together",
        "gets": lambda: f"{t} gets {k} more",
        "gives": lambda: f"{t} gives away {k}",
    }[statement.kind]()


def problem_text(spec: Spec) -> str:
    parts = [f"{name} has {value} {spec.item}." for name, value in spec.givens]
    parts += [clause(spec, i) + "." for i in range(len(spec.statements))]
    parts.append(f"How many {spec.item} does {_name_of(spec, spec.ask)} have?")
    return " ".join(parts)


def step_text(spec: Spec, index: int, a: int, b: int, result: int) -> str:
    """A step restates its statement, then computes it: ``(2) Ben gives away 4: 10-4=6.``"""
    return f"{clause(spec, index)}: {a}{spec.statements[index].op}{b}={result}."


def answer_text(value: int) -> str:
    return f"The answer is \\boxed{{{value}}}."


def canonical_steps(spec: Spec) -> list[str]:
    steps = []
    for i, s in enumerate(spec.statements):
        a, b = (spec.values[x] if kind == "q" else x for kind, x in s.operands())
        steps.append(step_text(spec, i, a, b, spec.values[spec.quantity(i)]))
    return steps + [answer_text(spec.answer)]


# --- problem records --------------------------------------------------------------------------

def make_problem(cfg: ToyConfig, seed: int, split: str, index: int) -> dict:
    """Problem ``index`` of a split as a prmkit problem record (with its spec under ``toy``)."""
    spec = generate_spec(cfg, random.Random(f"prmkit-toy:{seed}:{split}:{index}"))
    return {"id": f"toy-{split}-{index}", "problem": problem_text(spec), "answer": str(spec.answer),
            "source": "toy", "toy": spec.to_dict(),
            "solution": join_steps(canonical_steps(spec)),
            "n_steps": len(spec.statements), "side_step": len(spec.needed()) < len(spec.statements)}


def make_problems(cfg: ToyConfig, n: int, *, seed: int = 0, split: str = "test",
                  start: int = 0) -> list[dict]:
    cfg.validate()
    if n < 0:
        raise InputError(f"{n}: must be non-negative", field="n")
    return [make_problem(cfg, seed, split, i) for i in range(start, start + n)]
