"""Answer extraction and equivalence: CORRECT, INCORRECT or UNPARSEABLE.

``grade(text, gold)`` extracts the final answer of a solution text and compares it with the gold
answer; ``grade_answer(answer, gold)`` compares an answer already extracted. A prediction we cannot
read is UNPARSEABLE, never INCORRECT, and says why in ``Grade.reason``:

    no-answer          nothing that looks like a final answer was found
    answer-too-long    the extracted answer is longer than MAX_ANSWER_CHARS: no final answer
                       is, and math-verify would spend its whole time limit on it
    parse-failed       math-verify could not read the answer
    timeout            parsing or comparison ran past its time limit
    gold-unparseable   the gold answer itself could not be read (a data problem, not the model's)
    no-choice          the gold is an option letter and the answer names no option

Multiple choice: a gold answer that is one option letter ("C", "(C)", "\\text{(C)}": MMLU STEM,
GaoKao's choice questions, MATH's "\\text{(C)}") is compared as a letter: an answer that names
an option ("C", "(C)", "C. 42", "(C) 42", "\\boxed{\\text{C}}") is CORRECT when it names that one,
INCORRECT when another; an answer that names none ("42") is UNPARSEABLE (no-choice), since
whether 42 is option C's value is unknown here. Qwen2.5-Math's evaluation counts it as wrong.

Equivalence is math-verify's (sympy-based). Plain numbers take a fast exact path first, because
most answers in GSM8K-like data are integers and sympy costs ~1 ms a pair.

Timeouts: math-verify uses ``signal.alarm``, which only works in a process's main thread. In the
main thread we call it directly; from any other thread (a thread pool, a threaded Ray actor) the
pair is sent to a one-process pool whose worker runs it in *its* main thread, so the time limit
always holds. Many pairs at once go through ``grade_many``, which dedupes, caches and fans out
over worker processes.
"""

from __future__ import annotations

import enum
import functools
import multiprocessing
import re
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

TIMEOUT_SECONDS = 5  # per parse and for all comparisons of a pair, as math-verify's default
MAX_ANSWER_CHARS = 1000  # MATH's longest gold answer has under 200 characters


class Outcome(str, enum.Enum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    UNPARSEABLE = "unparseable"


@dataclass(frozen=True)
class Grade:
    outcome: Outcome
    answer: str | None  # the extracted prediction
    reason: str = ""  # why UNPARSEABLE (see the module docstring)

    @property
    def correct(self) -> bool:
        return self.outcome is Outcome.CORRECT


# --- extraction -------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_IS = re.compile(r"answer is[:\s]*", re.IGNORECASE)
_GSM8K = re.compile(r"####\s*(.+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


_BRACE = re.compile(r"[{}]")


def _closing_braces(text: str) -> dict[int, int]:
    """Where each ``{`` of ``text`` is closed (unclosed ones are absent), in one pass: every
    step of extraction is linear in the text's length, so a 1-million-character output is
    read in well under a second (a scan from every ``\\boxed{`` to the end was quadratic:
    a 140k-character output took 75 s)."""
    closing, open_at = {}, []
    for match in _BRACE.finditer(text):
        if match.group() == "{":
            open_at.append(match.start())
        elif open_at:
            closing[open_at.pop()] = match.start()
    return closing


def last_boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    closing = _closing_braces(text)
    for start in reversed(starts):
        if (end := closing.get(start - 1)) is not None:
            return text[start:end].strip()
    return None


_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_DELIMITERS = (("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]"), ("$", "$"))


def _final_math_span(text: str) -> str | None:
    """The inside of a math span (``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``) that ends the
    text (only spaces and ``.!`` after it), found from the end: linear in the text's length."""
    tail = text.rstrip(" \t\n.!")
    for opener, closer in _DELIMITERS:
        if tail.endswith(closer) and len(tail) > len(closer):
            start = tail.rfind(opener, 0, len(tail) - len(closer))
            if start >= 0:
                inner = tail[start + len(opener):len(tail) - len(closer)].strip()
                return inner or None
    return None


def _clean_sentence_answer(rest: str) -> str:
    """The answer at the start of ``rest``: a $...$ span, or the text up to the sentence end
    ("The final answer is 143. I hope it is correct." gives 143)."""
    rest = rest.strip()
    rest = rest.splitlines()[0].strip() if rest else ""
    if rest.startswith("$"):
        end = rest.find("$", 1)
        if end > 1:
            return rest[1:end].strip()
    if (match := _MATH_SPAN.match(rest)) and not rest[match.end():].strip(" .!"):
        return next(g for g in match.groups() if g is not None).strip()
    end = _SENTENCE_END.search(rest)
    return (rest[:end.start()] if end else rest).strip().rstrip(".").strip()


def extract_answer(text: str) -> str | None:
    """The final answer of a solution text, or None.

    In order: the last ``\\boxed{}``; the last "The answer is X"; GSM8K's ``#### X``; a math
    span (``$..$``, ``\\(..\\)``, ``\\[..\\]``) that ends the text; the last number in the text.
    """
    if (boxed := last_boxed(text)) is not None:
        return boxed
    matches = list(_ANSWER_IS.finditer(text))
    if matches:
        answer = _clean_sentence_answer(text[matches[-1].end():])
        if answer:
            return answer
    if (gsm8k := _GSM8K.findall(text)):
        answer = _clean_sentence_answer(gsm8k[-1])
        if answer:
            return answer
    # a final sentence that ends on math ("... is \\(\\frac{11}{36}\\).") states the answer
    if (inner := _final_math_span(text)) is not None:
        inner = inner.rsplit("=", 1)[-1].strip()  # "V = 20 \\times 2 = 40": the result is 40
        if inner:
            return inner
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1].rstrip(",")
    return None


# --- multiple choice ----------------------------------------------------------------------------

_CHOICE_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|boxed)\s*\{([^{}]*)\}")
_CHOICE_ONLY = re.compile(r"\(?([A-E])\)?\.?")
# a letter that leads the option's text: "C. 42", "(C) 42", "C) 42", "C: 42"
_CHOICE_LEADS = re.compile(r"\(([A-E])\)|([A-E])[.):]")


def choice_letter(answer: str | None, *, strict: bool = False) -> str | None:
    """The option letter (A to E) an answer names, or None: "C", "(C)", "C.", "\\text{(C)}",
    "$C$"; unless ``strict``, also a letter that leads the option's text ("C. 42", "(C) 42").
    Only capitals: "a" is an article, "c" a constant."""
    if answer is None:
        return None
    s = answer.strip()
    if len(s) >= 2 and s[0] == s[-1] == "$":
        s = s.strip("$").strip()
    for _ in range(3):  # \\boxed{\\textbf{\\text{(C)}}}
        s = _CHOICE_WRAPPER.sub(r"\1", s).strip()
    if (match := _CHOICE_ONLY.fullmatch(s)) and s.count("(") == s.count(")"):
        return match.group(1)
    if not strict and (match := _CHOICE_LEADS.match(s)):
        return match.group(1) or match.group(2)
    return None


def _grade_choice(answer: str, letter: str) -> Grade:
    named = choice_letter(answer)
    if named is None:
        return Grade(Outcome.UNPARSEABLE, answer, "no-choice")
    return Grade(Outcome.CORRECT if named == letter else Outcome.INCORRECT, answer)


# --- equivalence --------------------------------------------------------------------------------

_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")


def plain_number(answer: str) -> Decimal | None:
    """The value of an answer that is just a number ("1,000", "$18", "18.0"), else None."""
    s = answer.strip().strip("$").replace("\\$", "").replace("\\!", "").replace(" ", "")
    s = s.rstrip(".") if s.count(".") == 1 and s.endswith(".") else s
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if not _PLAIN.match(s):
        return None
    try:
        return Decimal(s)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        return None


_LATEX_COMMENT = re.compile(r"(?<!\\)%")


def _as_latex(answer: str) -> str:
    """An answer as LaTeX math: outer $ signs dropped, a bare % escaped (it starts a comment)."""
    answer = answer.strip()
    if len(answer) >= 2 and answer[0] == answer[-1] == "$":
        answer = answer.strip("$").strip()
    return _LATEX_COMMENT.sub(r"\\%", answer)


def _parse(answer: str):
    """math-verify parse of one answer, wrapped in \\boxed{} so the boxed extractor reads it.

    Returns the parsed list, [] when unreadable, or raises TimeoutException."""
    from math_verify import parse
    from math_verify.errors import TimeoutException
    try:
        return parse("\\boxed{" + _as_latex(answer) + "}", parsing_timeout=TIMEOUT_SECONDS,
                     raise_on_error=True)
    except TimeoutException:
        raise
    except Exception:
        return []


def _compare_in_this_thread(answer: str, gold: str) -> Grade:
    from math_verify import verify
    from math_verify.errors import TimeoutException
    from sympy import Basic, MatrixBase

    fast_gold, fast_pred = plain_number(gold), plain_number(answer)
    if fast_gold is not None and fast_pred is not None:
        if fast_gold == fast_pred:
            return Grade(Outcome.CORRECT, answer)
        if fast_gold == fast_gold.to_integral_value() and fast_pred == fast_pred.to_integral_value():
            return Grade(Outcome.INCORRECT, answer)
        # non-integers: let math-verify apply its rounding rules below
    try:
        parsed_gold = _parse(gold)
    except TimeoutException:
        return Grade(Outcome.UNPARSEABLE, answer, "gold-unparseable")
    if not parsed_gold:
        return Grade(Outcome.UNPARSEABLE, answer, "gold-unparseable")
    try:
        parsed_pred = _parse(answer)
    except TimeoutException:
        return Grade(Outcome.UNPARSEABLE, answer, "timeout")
    if not parsed_pred:
        return Grade(Outcome.UNPARSEABLE, answer, "parse-failed")

    timed_out, deadline = False, time.monotonic() + TIMEOUT_SECONDS
    for g in parsed_gold:
        for p in parsed_pred:
            left = deadline - time.monotonic()
            if left <= 0:  # every reading of the pair together gets one time limit
                return Grade(Outcome.UNPARSEABLE, answer, "timeout")
            try:
                if verify(g, p, timeout_seconds=max(1, int(left)), raise_on_error=True):
                    return Grade(Outcome.CORRECT, answer)
            except TimeoutException:
                timed_out = True
            except Exception:
                # sympy failing on one pair of readings is "these readings differ"; other
                # readings of the same answers may still compare.
                continue
    if timed_out:
        return Grade(Outcome.UNPARSEABLE, answer, "timeout")
    if not any(isinstance(p, (Basic, MatrixBase)) for p in parsed_pred):
        # math-verify fell back to the raw string: it did not read the answer as math
        return Grade(Outcome.UNPARSEABLE, answer, "parse-failed")
    return Grade(Outcome.INCORRECT, answer)


@functools.lru_cache(maxsize=1 << 16)
def _grade_answer_cached(answer: str, gold: str) -> Grade:
    return _compare_in_this_thread(answer, gold)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


_thread_fallback_pool: ProcessPoolExecutor | None = None
_thread_fallback_lock = threading.Lock()


def _pool_for_threads() -> ProcessPoolExecutor:
    global _thread_fallback_pool
    with _thread_fallback_lock:
        if _thread_fallback_pool is None:
            _thread_fallback_pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _thread_fallback_pool


def grade_answer(answer: str | None, gold: str | None) -> Grade:
    """Grade an extracted answer against the gold answer."""
    if gold is None or not str(gold).strip():
        return Grade(Outcome.UNPARSEABLE, answer, "gold-unparseable")
    if answer is None or not answer.strip():
        return Grade(Outcome.UNPARSEABLE, answer, "no-answer")
    if len(answer) > MAX_ANSWER_CHARS:
        return Grade(Outcome.UNPARSEABLE, answer[:MAX_ANSWER_CHARS], "answer-too-long")
    if (letter := choice_letter(str(gold), strict=True)) is not None:
        return _grade_choice(answer, letter)
    if _in_main_thread():
        return _grade_answer_cached(answer, str(gold))
    return _pool_for_threads().submit(_grade_answer_cached, answer, str(gold)).result()


def _gold_readable_here(gold: str) -> bool:
    from math_verify.errors import TimeoutException
    from sympy import Basic, MatrixBase
    if plain_number(gold) is not None:
        return True
    try:
        return any(isinstance(p, (Basic, MatrixBase)) for p in _parse(gold))
    except TimeoutException:
        return False


def gold_readable(gold: str | None) -> bool:
    """Whether a gold answer reads as math: a number, or something math-verify parses into an
    expression (not its raw-string fallback). A stage that grades against gold skips the rest."""
    if gold is None or not str(gold).strip():
        return False
    if choice_letter(str(gold), strict=True) is not None:
        return True
    if _in_main_thread():
        return _gold_readable_here(str(gold))
    return _pool_for_threads().submit(_gold_readable_here, str(gold)).result()


def grade(text: str, gold: str | None) -> Grade:
    """Extract the final answer of ``text`` and grade it against ``gold``."""
    return grade_answer(extract_answer(text), gold)


def equivalent(a: str | None, b: str | None) -> bool:
    """Whether two answers are the same (used to group votes); unreadable ones equal nothing."""
    if a is None or b is None:
        return False
    if a.strip() == b.strip():
        return True
    if (letter := choice_letter(a)) is not None and choice_letter(b) is not None:
        return letter == choice_letter(b)  # "C" and "(C) 42" name one option, in either order
    return grade_answer(a, b).outcome is Outcome.CORRECT


# --- many pairs ---------------------------------------------------------------------------------

def _grade_chunk(pairs: Sequence[tuple[str | None, str | None]]) -> list[Grade]:
    return [grade_answer(answer, gold) for answer, gold in pairs]


def grade_many(pairs: Iterable[tuple[str | None, str | None]], *, processes: int = 1,
               chunk_size: int = 64) -> list[Grade]:
    """Grade (answer, gold) pairs, in input order.

    Identical pairs are graded once. With ``processes > 1`` the unique pairs are spread over a
    pool of worker processes (each grades in its main thread, so timeouts hold).
    """
    pairs = list(pairs)
    unique = list(dict.fromkeys(pairs))
    if processes <= 1 or len(unique) < 2 * chunk_size:
        grades = _grade_chunk(unique)
    else:
        chunks = [unique[i:i + chunk_size] for i in range(0, len(unique), chunk_size)]
        with ProcessPoolExecutor(max_workers=processes,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            grades = [g for chunk in pool.map(_grade_chunk, chunks) for g in chunk]
    by_pair = dict(zip(unique, grades))
    return [by_pair[pair] for pair in pairs]
