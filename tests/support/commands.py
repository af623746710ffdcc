"""The printed recovery commands, written out by hand: what tests expect the command to print.

Each one must fail without deleting anything when a destination is taken (tests/test_recipes.py
runs them); here is only their text, built from the same shell-quoting rules the README states.
"""

from __future__ import annotations

import shlex
from pathlib import Path

_RECORD = ".uninstall-journal.json|.uninstall-journal.json.tmp"
_EACH = 'for f in * .[!.]* ..?*; do [ -e "$f" ] || [ -L "$f" ] || continue; '
CLEAN_UP = (
    'cd "$1" || exit 1; '
    + _EACH
    + f'case "$f" in {_RECORD}) ;; instances|presence) rmdir -- "$f" || exit 1 ;; '
    '*) echo "$1 still holds $f: left in place" >&2; exit 1 ;; esac; done; '
    'rm -f -- .uninstall-journal.json .uninstall-journal.json.tmp && cd / && rmdir -- "$1"'
)
PUT_BACK = (
    'cd "$1" || exit 1; ' + _EACH + f'case "$f" in {_RECORD}) continue ;; esac; '
    'if [ -e "$2/$f" ] || [ -L "$2/$f" ]; then '
    'echo "$2/$f already exists: nothing was moved" >&2; exit 1; fi; done; '
    + _EACH
    + f'case "$f" in {_RECORD}) continue ;; esac; mv -- "$f" "$2/$f" || exit 1; done; '
    'rm -f -- .uninstall-journal.json .uninstall-journal.json.tmp && cd / && rmdir -- "$1"'
)


def move_home(now: Path, belongs: Path) -> str:
    home, there = shlex.quote(str(belongs)), shlex.quote(str(now))
    exists = shlex.quote(f"{belongs} already exists")
    return (
        f"if [ -e {home} ] || [ -L {home} ]; then echo {exists} >&2; false; "
        f"else mv -- {there} {home}; fi"
    )


def clean_up(staging: Path) -> str:
    return f"sh -c {shlex.quote(CLEAN_UP)} sh {shlex.quote(str(staging))}"


def put_back(staging: Path, anchor: Path) -> str:
    return (
        f"sh -c {shlex.quote(PUT_BACK)} sh {shlex.quote(str(staging))} {shlex.quote(str(anchor))}"
    )


def discard(staging: Path) -> str:
    return f"rm -rf -- {shlex.quote(str(staging))}"
