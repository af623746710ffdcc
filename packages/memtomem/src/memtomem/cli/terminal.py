"""What the CLI needs of a terminal: output that outlives its reader, the width to lay a
report out in, and the prompt."""

from __future__ import annotations

import os
import sys
from typing import TextIO

import click

from memtomem.uninstall import report

QUESTION = "Remove it? [y/N]: "


def emit(text: str, *, err: bool = False, nl: bool = True) -> None:
    """Echo `text`. A reader that went away (`mm uninstall -y | head`) is no error: this and
    all later output to that stream is dropped, and the run goes on to its own outcome."""
    stream = sys.stderr if err else sys.stdout
    try:
        click.echo(text, nl=nl, err=err)
        stream.flush()
    except OSError:  # EPIPE, or any write error of a stream nobody reads
        _silence(stream)


def _silence(stream: TextIO) -> None:
    """Point the stream's descriptor at /dev/null, so that the interpreter's last flush does
    not fail too (which would make the exit status 120)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


def columns(stream: TextIO) -> int:
    """$COLUMNS, else the width of the terminal `stream` writes to, else 80."""
    value = os.environ.get("COLUMNS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns or report.WIDTH
    except (OSError, ValueError):  # no descriptor behind it, or not a terminal after all
        pass
    return report.WIDTH


def ask() -> bool:
    """True for "y" or "yes" and Enter. Enter alone, "n", "no", or the end of input (Ctrl-D)
    decline; Ctrl-C raises KeyboardInterrupt, after ending the prompt's line. Asked on stderr,
    so that under --json stdout holds only the document (and not with click.confirm, which
    turns Ctrl-C and Ctrl-D into one Abort)."""
    try:
        return _answer()
    except KeyboardInterrupt:  # wherever it lands once the question is out
        click.echo(err=True)
        raise


def _answer() -> bool:
    while True:
        click.echo(QUESTION, nl=False, err=True)
        line = sys.stdin.readline()
        if not line.endswith("\n"):  # end of input, perhaps mid-answer: never a yes
            click.echo(err=True)
            return False
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("", "n", "no"):
            return False
        click.echo("Please answer y or n.", err=True)
