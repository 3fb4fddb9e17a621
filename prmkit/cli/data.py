"""``prmkit convert`` and ``prmkit formats``: other projects' files in and out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prmkit.cli import app
from prmkit.cli import console as _console
from prmkit.errors import InputError
from prmkit.formats import READERS, WRITERS, reader, writer
from prmkit.labels import Source, hard_labelled
from prmkit.records import read_records_with_lines, write_jsonl


@app.command()
def convert(source: str = typer.Argument(..., help="Input file, folder, or hub:NAME."),
            output: Path = typer.Argument(..., help="Output file."),
            fmt: str = typer.Option(..., "--format", help="Format of the input (see `prmkit "
                                                          "formats`)."),
            to: str = typer.Option("prmkit", help="Output format; 'prmkit' writes prmkit JSONL."),
            labels: Optional[str] = typer.Option(None, help=(
                "Label source for the step labels written (mc.hard, mc.values:0.5, "
                "consensus.step_labels, judge.first_error, truth.step_labels, a name of "
                "prmkit.labels.NAMED_SOURCES, ...).")),
            keep_after_error: bool = typer.Option(False, help=(
                "Keep the steps after the first error (labelled by the source) instead of "
                "cutting each solution at its first error."))) -> None:
    """Convert between prmkit records and other formats."""
    if output.exists() and Path(source).exists() and output.resolve() == Path(source).resolve():
        raise InputError("the output is the input file: it would be replaced; write elsewhere",
                         path=output, field="output")
    read, kind = reader(fmt)
    records = read(source)
    dropped = 0
    if labels:
        # prmkit JSONL has one record a line, so an error can name the line
        lines = ([line for line, _ in read_records_with_lines(source, "solution")]
                 if fmt == "prmkit" else None)
        records, dropped = _with_hard_labels(records, labels, keep_after_error, source, lines)
    if to == "prmkit":
        write_jsonl(output, records)
    else:
        write, wanted = writer(to)
        if wanted != kind:
            raise InputError(f"'{fmt}' gives {kind} records but '{to}' writes {wanted} records",
                             field="to")
        write(records, output)
    _console().print(f"{len(records)} {kind} records -> {output}"
                     + (f"; {dropped} without a verdict from {labels} left out" if dropped else ""))


def _with_hard_labels(records: list[dict], spec: str, keep_after_error: bool, path,
                      lines: Optional[list[int]]) -> tuple[list[dict], int]:
    """Records relabelled from a label source (step_labels: one boolean a step)."""
    source, out = Source.parse(spec), []
    for i, record in enumerate(records):
        try:
            labelled = hard_labelled(record, source, keep_after_error)
        except ValueError as e:
            if lines:
                raise InputError(str(e), path=path, line=lines[i], field=source.path) from None
            raise InputError(f"record {i + 1}: {e}", path=path, field=source.path) from None
        if labelled is not None:
            out.append(labelled)
    return out, len(records) - len(out)


@app.command()
def formats() -> None:
    """List the formats `prmkit convert` reads and writes."""
    console = _console()
    for title, table in (("read", READERS), ("write", WRITERS)):
        console.print(f"[bold]{title}[/bold]")
        for name, (_, kind, about) in table.items():
            console.print(f"  {name:14} {kind:11} {about}", markup=False, highlight=False)
