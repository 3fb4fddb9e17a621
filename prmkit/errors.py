"""The one error type for bad input: it always names the file, the line and the field.

The CLI turns an ``InputError`` into a one-line message and exit code 2, so a user can jump
straight to the offending record.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input data or arguments, located as precisely as we can."""

    def __init__(self, message: str, *, path: str | Path | None = None,
                 line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        what = f"field '{self.field}': " if self.field else ""
        return f"{where}: {what}{self.message}"
