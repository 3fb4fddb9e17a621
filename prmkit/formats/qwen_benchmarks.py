"""The test sets of Qwen2.5-Math's evaluation (``evaluation/data/<set>/test.jsonl`` of
QwenLM/Qwen2.5-Math), read as problems the way that evaluation reads them: its question text
(``parse_question``) and its gold answer (``parse_ground_truth``). Field names differ per set:

  set            problem text                                   gold answer
  minerva_math   problem                                        last \\boxed{} of solution
  gaokao2023en   question                                       answer, "$" removed
  olympiadbench  question                                       final_answer[0], "$" stripped
  college_math   question                                       answer, "$" removed
  mmlu_stem      question + "\\nAnswer Choices: (A) .. (B) .."  the letter of answer (2 -> "C")

(GSM8K and MATH-500, the paper's other two, have their own readers: ``gsm8k`` and ``math``.)

Ids are ``<set>-<idx>``: the row's ``idx``, else its 0-based position, as the evaluation numbers
rows (so a problem here and its line in the evaluation's output share a number); a repeat is an
error naming file, line and field. A question whose gold is yes/no (true/false) ends with
" (Yes or No)" (" (True or False)"), as the evaluation asks it. A row with an empty gold answer
(two in gaokao2023en keep it in the question) reads with ``answer: null``: unreadable gold,
reported by every stage that grades, never graded as wrong.

The gold answer is the evaluation's field and extraction, not its string normalisation
(``strip_string``): prmkit compares answers by math-verify equivalence (``prmkit.grading``), and
an option letter as an option letter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prmkit.errors import InputError
from prmkit.grading import last_boxed
from prmkit.records import iter_json_items, note_id, validate

LETTERS = "ABCDE"


def _text(value: dict, field: str, path: Path, line: int) -> str:
    if not isinstance(value.get(field), str):
        raise InputError("missing or not a string", path=path, line=line, field=field)
    return value[field]


def _no_dollars(value: dict, path: Path, line: int) -> str:
    return _text(value, "answer", path, line).replace("$", "").strip()


def _final_answer(value: dict, path: Path, line: int) -> str:
    answers = value.get("final_answer")
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], str):
        raise InputError("missing or not a non-empty list of strings", path=path, line=line,
                         field="final_answer")
    return answers[0].strip().strip("$").strip()  # the first accepted form, as Qwen reads it


def _boxed_solution(value: dict, path: Path, line: int) -> str | None:
    return last_boxed(_text(value, "solution", path, line))


def _choices(value: dict, path: Path, line: int) -> list[str]:
    choices = value.get("choices")
    if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS):
        raise InputError(f"expected a list of 2 to {len(LETTERS)} options", path=path,
                         line=line, field="choices")
    return [str(c).strip() for c in choices]


def _mmlu_question(value: dict, path: Path, line: int) -> str:
    options = " ".join(f"({letter}) {option}" for letter, option
                       in zip(LETTERS, _choices(value, path, line)))
    return f"{_text(value, 'question', path, line).strip()}\nAnswer Choices: {options}"


def _mmlu_gold(value: dict, path: Path, line: int) -> str:
    n, answer = len(_choices(value, path, line)), value.get("answer")
    if isinstance(answer, str) and answer.strip() in LETTERS[:n] and answer.strip():
        return answer.strip()
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < n:
        return LETTERS[answer]  # the index of the right option
    raise InputError(f"expected the right option's index (0 to {n - 1}) or letter", path=path,
                     line=line, field="answer")


def _field(name: str) -> Callable[[dict, Path, int], str]:
    return lambda value, path, line: _text(value, name, path, line).strip()


# set -> (problem text, gold answer, the fields kept besides them)
SETS: dict[str, tuple[Callable, Callable, tuple[str, ...]]] = {
    "minerva_math": (_field("problem"), _boxed_solution, ("solution", "type")),
    "gaokao2023en": (_field("question"), _no_dollars, ()),
    "olympiadbench": (_field("question"), _final_answer, ("subfield", "answer_type", "unit")),
    "college_math": (_field("question"), _no_dollars, ("data_source", "data_topic",
                                                       "question_number")),
    "mmlu_stem": (_mmlu_question, _mmlu_gold, ("choices", "type")),
}


def _asked_as(question: str, gold: str | None) -> str:
    """Qwen's evaluation adds the expected form to a yes/no or true/false question."""
    word = (gold or "").strip().rstrip(".").lower()
    if word in ("yes", "no"):
        return question.rstrip() + " (Yes or No)"
    if word in ("true", "false"):
        return question.rstrip() + " (True or False)"
    return question.strip()


def read_set(path: str | Path, name: str) -> list[dict]:
    """The problems of one of ``SETS`` from its file."""
    question, gold, kept = SETS[name]
    path = Path(path)
    problems, seen = [], {}
    for line, value in iter_json_items(path):
        if not isinstance(value, dict):
            raise InputError("expected a JSON object", path=path, line=line)
        has_idx = "idx" in value
        if has_idx and (not isinstance(value["idx"], (int, str)) or isinstance(value["idx"], bool)):
            raise InputError("expected a number or a string", path=path, line=line, field="idx")
        ident = f"{name}-{value['idx'] if has_idx else line - 1}"
        # "3" and 3, or a row without idx where another has that number, give one id: refused
        note_id(seen, ident, path=path, line=line, field="idx")
        answer = gold(value, path, line) or None  # empty: unknown, never graded as wrong
        record = {"id": ident, "problem": _asked_as(question(value, path, line), answer),
                  "answer": answer, "source": name,
                  **{k: value[k] for k in kept if value.get(k) is not None}}
        problems.append(validate(record, "problem", path=path, line=line))
    return problems


def read_minerva_math(path: str | Path) -> list[dict]:
    return read_set(path, "minerva_math")


def read_gaokao2023en(path: str | Path) -> list[dict]:
    return read_set(path, "gaokao2023en")


def read_olympiadbench(path: str | Path) -> list[dict]:
    return read_set(path, "olympiadbench")


def read_college_math(path: str | Path) -> list[dict]:
    return read_set(path, "college_math")


def read_mmlu_stem(path: str | Path) -> list[dict]:
    return read_set(path, "mmlu_stem")
