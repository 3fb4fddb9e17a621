"""The critique prompt: a solution's steps as tagged paragraphs, filled into a template the way
ProcessBench's own script fills its template.

A template is a Python format string holding the problem (``{problem}``, or ``{tagged_problem}``:
the problem between ``<math_problem>`` tags) and the steps (``{tagged_paragraphs}``, or
``{tagged_response}``, the name ProcessBench's official template uses). A literal brace is
written twice, so a template's ``\\boxed{{}}`` reaches the model as ``\\boxed{}``.

It sits below both of its users: the model judge (``prmkit.annotate.judge``) and ProcessBench's
critics (``prmkit.evaluate.critic``), and imports neither.
"""

from __future__ import annotations

from pathlib import Path

from prmkit.errors import InputError
from prmkit.prompting import read_template

# the problem, as is or tagged, and the steps, under prmkit's name or ProcessBench's
PLACEHOLDERS = ("problem", "tagged_problem", "tagged_paragraphs", "tagged_response")


def tagged_paragraphs(steps: list[str], first: int = 0) -> str:
    """The steps as ``<paragraph_i>`` blocks separated by a blank line, numbered from ``first``
    (ProcessBench: 0; the paper's judge: 1)."""
    return "\n\n".join(f"<paragraph_{i}>\n{step}\n</paragraph_{i}>"
                       for i, step in enumerate(steps, start=first))


def fill(template: str, problem: str, steps: list[str], first_paragraph: int = 0) -> str:
    """``template`` (its text) filled with one solution."""
    tagged = tagged_paragraphs(steps, first_paragraph)
    return template.format(problem=problem,
                           tagged_problem=f"<math_problem>\n{problem}\n</math_problem>",
                           tagged_paragraphs=tagged, tagged_response=tagged)


def critique_prompt(problem: str, steps: list[str], template: str | Path,
                    first_paragraph: int = 0, *, strip: bool = False) -> str:
    """The template file ``template`` filled with one solution; ``strip``: its surrounding
    whitespace (a final newline) dropped first, as ProcessBench's script reads its template."""
    text = read_template(str(template))
    return fill(text.strip() if strip else text, problem, steps, first_paragraph)


def check_template(path: str | Path, field: str = "judge_prompt") -> None:
    """A critique template is a format string with the problem and the steps and no other
    placeholder: checked before any work, the error naming ``field``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("critique prompt file not found", path=path, field=field)
    text = path.read_text(encoding="utf-8")
    try:
        text.format(**dict.fromkeys(PLACEHOLDERS, ""))
    except (KeyError, IndexError, ValueError) as e:
        raise InputError(f"not a template prmkit can fill ({type(e).__name__}: {e}): its "
                         f"placeholders are {{{'}, {'.join(PLACEHOLDERS)}}}, and a literal brace "
                         "is written twice ({{ or }})", path=path, field=field) from None
    if "{problem}" not in text and "{tagged_problem}" not in text or \
            "{tagged_paragraphs}" not in text and "{tagged_response}" not in text:
        raise InputError("the critique prompt needs the problem ({problem} or "
                         "{tagged_problem}) and the steps ({tagged_paragraphs} or "
                         "{tagged_response})", path=path, field=field)
