import threading
import time

import pytest
from conftest import shared

from prmkit import grading
from prmkit.formats import reader
from prmkit.grading import Outcome, extract_answer, grade, grade_answer, grade_many

C, I = Outcome.CORRECT, Outcome.INCORRECT

# (source, gold, extracted model answer, expected). Mined from ProcessBench: real answers of
# real models to GSM8K / MATH / OlympiadBench problems, joined to the gold answer of the same
# problem; `expected` is ProcessBench's human `final_answer_correct`.
MINED = [
    ("math-961", "-13x+3", "-13x + 3", C),
    ("olympiadbench-811", "$-(n-1) / 2$", "-\\frac{n-1}{2}", C),
    ("olympiadbench-983", "$\\frac{\\log 2}{\\log 2-\\log 3}$",
     "\\frac{\\log(2)}{\\log\\left(\\frac{2}{3}\\right)}", C),
    ("olympiadbench-963", "$\\frac{45}{2}$", "\\frac{45}{2}", C),
    ("olympiadbench-936", "$\\frac{n}{2}$", "\\frac{n}{2}", C),
    ("math-508", "y = -2x", "y = -2x", C),
    ("olympiadbench-595", "$1,2,3$", "(1, 2, 3)", C),
    ("math-876", "2", "x = 2", C),
    ("olympiadbench-756", "$44^{\\circ}$", "44", C),
    ("olympiadbench-868", "$\\sqrt{6}$", "\\sqrt{6}", C),
    ("olympiadbench-689", "1,-1,7,-7", "±1, ±7", C),
    ("olympiadbench-957", "$\\frac{2}{9}$", "2/9", C),
    ("olympiadbench-547", "$\\frac{1}{3},1,\\frac{1}{9}$", "\\frac{1}{3}, 1, \\frac{1}{9}", C),
    ("olympiadbench-577", "0", "0", C),
    ("math-131", "76^\\circ", "166^\\circ", I),
    ("olympiadbench-387", "23", "n = 6 \\cdot \\sqrt[3]{6} - 1", I),
    ("gsm8k-91", "56", "\\(52\\) candles and flashlights", I),
    ("olympiadbench-286", "$\\frac{2}{9}$", "\\frac{1}{6}", I),
    ("gsm8k-9", "10", "70\\%", I),
    ("olympiadbench-348", "$\\frac{5 \\sqrt{2}}{2}$", "\\sqrt{3}", I),
    ("olympiadbench-106", "$20 \\sqrt{7}$", "20\\sqrt{2}", I),
    ("olympiadbench-491", "$\\frac{1}{2}$", "\\frac{1}{\\sqrt{2}}", I),
    ("math-168", "\\frac{1997}{2}", "-1996", I),
    ("olympiadbench-203", "1,2,3,4", "\\text{all positive integers}", I),
    ("gsm8k-37", "4", "24", I),
    ("gsm8k-11", "23", "22", I),
    # shapes of GSM8K-style numbers
    ("thousands", "1000", "1,000", C),
    ("dollars", "18", "\\$18", C),
    ("trailing zero", "18", "18.0", C),
    ("decimal", "0.5", "\\frac{1}{2}", C),
]


@pytest.mark.parametrize("source, gold, answer, expected", MINED, ids=[m[0] for m in MINED])
def test_mined_pairs(source, gold, answer, expected):
    assert grade_answer(answer, gold).outcome is expected


# Endings of real ProcessBench solutions (ids in the comments) and what must be extracted.
@pytest.mark.parametrize("text, expected", [
    ("Final Answer: The final answer is 143. I hope it is correct.", "143"),  # math-782
    ("The final answer is: \\[ \\boxed{2} \\]", "2"),  # olympiadbench-534
    ("is \\(\\frac{11}{36}\\).", "\\frac{11}{36}"),  # olympiadbench-523
    ("The length of \\(AB\\) is \\(6\\sqrt{2}\\).", "6\\sqrt{2}"),  # olympiadbench-998
    ("\\[ \\text{V} = 20 \\times 2 = 40 \\text{ cubic inches} \\]", "40 \\text{ cubic inches}"),
    ("Bill is on the \\(\\boxed{21}\\)st floor now.", "21"),  # gsm8k-121
    ("so \\boxed{\\frac{1}{2}} and finally \\boxed{\\sqrt{2}}", "\\sqrt{2}"),
    ("nested \\boxed{\\frac{a}{\\sqrt{b}}}", "\\frac{a}{\\sqrt{b}}"),
    ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", "18"),
    ("The answer is: 13520", "13520"),
    ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
    ("So she has 12 apples left.", "12"),
    ("No numbers at all.", None),
    ("unclosed \\boxed{12", "12"),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_unparseable_is_its_own_outcome():
    assert grade("I could not solve it.", "3") == grading.Grade(Outcome.UNPARSEABLE, None, "no-answer")
    assert grade("\\boxed{}", "3").reason == "no-answer"
    assert grade("\\boxed{4}", "").reason == "gold-unparseable"
    assert grade_answer("\\frac{", "3").outcome is Outcome.UNPARSEABLE


U = Outcome.UNPARSEABLE

# Multiple choice (MMLU STEM, GaoKao's choice questions, MATH's "\\text{(C)}"): a gold that is
# one option letter compares letters. (gold, answer, expected)
CHOICES = [
    ("C", "C", C), ("C", "(C)", C), ("C", "C. 42", C), ("C", "(C) 42", C), ("C", "C)", C),
    ("C", "\\text{(C)}", C), ("C", "\\textbf{C}", C), ("C", "$C$", C), ("C", "\\boxed{C}", C),
    ("(C)", "C", C), ("\\text{(C)}", "C", C), ("$C$", "(C)", C),
    ("C", "B", I), ("C", "(B)", I), ("C", "B. 42", I), ("C", "(D) 17", I), ("A", "E", I),
    # an answer that names no option may be option C's value: unknown, never "wrong"
    ("C", "42", U), ("C", "Cats", U), ("C", "c", U), ("C", "the third one", U),
]


@pytest.mark.parametrize("gold, answer, expected", CHOICES)
def test_multiple_choice_compares_option_letters(gold, answer, expected):
    g = grade_answer(answer, gold)
    assert g.outcome is expected
    assert g.reason == ("no-choice" if expected is U else "")


def test_multiple_choice_from_solution_texts_and_in_votes():
    assert grade("The answer is \\boxed{C}", "C").outcome is C
    assert grade("So the answer is (C) 42.", "C").outcome is C
    assert grade("The answer is: B.", "C").outcome is I
    assert grading.choice_letter("C. 42") == "C" and grading.choice_letter("C. 42", strict=True) is None
    assert grading.choice_letter("E=mc^2") is None and grading.choice_letter("C = 5") is None
    # votes: one option however it is written, in either order; numbers as before
    assert grading.equivalent("C", "(C) 42") and grading.equivalent("(C) 42", "C")
    assert not grading.equivalent("B", "C") and not grading.equivalent("C", "42")
    assert grading.equivalent("\\frac{1}{2}", "0.5")
    assert grading.gold_readable("C") and grading.gold_readable("\\text{(E)}")


def test_self_consistency_on_reference_solutions():
    """Each reference solution's extracted answer grades CORRECT against its gold answer."""
    failures = []
    for name, path in (("gsm8k", "gsm8k/test.jsonl"), ("math", "math500/test.jsonl")):
        problems = reader(name)[0](shared(path))
        grades = grade_many([(extract_answer(p["solution"]), p["answer"]) for p in problems])
        failures += [(p["id"], p["answer"], g) for p, g in zip(problems, grades) if not g.correct]
    assert not failures, f"{len(failures)} reference solutions do not grade correct: {failures[:5]}"


def _slow_for_marked_answers(monkeypatch):
    """Make math-verify's extraction sleep on answers containing SLOW, inside its timeout."""
    import math_verify.parser as parser
    real = parser.extract_target_from_pred

    def slow(pred, *args, **kwargs):
        if "SLOW" in pred:
            time.sleep(3)
        return real(pred, *args, **kwargs)
    monkeypatch.setattr(parser, "extract_target_from_pred", slow)
    monkeypatch.setattr(grading, "TIMEOUT_SECONDS", 1)
    grading._grade_answer_cached.cache_clear()


def test_timeout_is_reported_in_the_main_thread(monkeypatch):
    _slow_for_marked_answers(monkeypatch)
    start = time.time()
    assert grade_answer("x+SLOW", "3") == grading.Grade(Outcome.UNPARSEABLE, "x+SLOW", "timeout")
    assert time.time() - start < 2.5


def test_grading_works_in_worker_threads():
    grading._grade_answer_cached.cache_clear()
    results = []
    threads = [threading.Thread(target=lambda: results.append(grade_answer("\\sqrt{117}", "3\\sqrt{13}")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.outcome for r in results] == [C, C, C]


def test_pool_matches_sequential_and_keeps_order():
    pairs = [(str(i % 13), str(i % 7)) for i in range(200)] + [("\\frac{1}{2}", "0.5"), (None, "1")] * 40
    sequential = grade_many(pairs)
    pooled = grade_many(pairs, processes=2, chunk_size=8)
    assert pooled == sequential
    assert sequential[-2].outcome is C and sequential[-1].reason == "no-answer"
