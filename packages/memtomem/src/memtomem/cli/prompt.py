"""The confirmation prompt. Written to stderr, so that under --json stdout holds only the
document; click.confirm is not used because it turns Ctrl-C and Ctrl-D into one Abort."""

from __future__ import annotations

import sys

import click

QUESTION = "Remove it? [y/N]: "


def ask() -> bool:
    """True for "y" or "yes" and Enter. Enter alone, "n", "no", or the end of input
    (Ctrl-D) decline; Ctrl-C raises KeyboardInterrupt, after ending the prompt's line."""
    while True:
        click.echo(QUESTION, nl=False, err=True)
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            click.echo(err=True)
            raise
        if not line.endswith("\n"):  # end of input, perhaps mid-answer: never a yes
            click.echo(err=True)
            return False
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("", "n", "no"):
            return False
        click.echo("Please answer y or n.", err=True)
