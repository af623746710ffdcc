"""Exact shell commands that put things back by hand when even rollback failed.

Each one fails without deleting anything when a destination is already taken: `mv` alone
would replace a file there (or move into a directory), so every move checks first, and a
staging dir is only ever emptied of its journal and removed by `rmdir`, never `rm -r`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from memtomem.uninstall.journal import JOURNAL_NAME, TEMP_NAME
from memtomem.uninstall.printable import quote

if TYPE_CHECKING:
    from memtomem.uninstall.errors import Unrestored

_RECORD = f"{JOURNAL_NAME}|{TEMP_NAME}"
_EACH = 'for f in * .[!.]* ..?*; do [ -e "$f" ] || [ -L "$f" ] || continue; '

# $1: a staging dir. It holds nothing but its journal and empty runtime scaffolds: remove them.
_CLEAN_UP = (
    'cd "$1" || exit 1; '
    f"{_EACH}"
    f'case "$f" in {_RECORD}) ;; instances|presence) rmdir -- "$f" || exit 1 ;; '
    '*) echo "$1 still holds $f: left in place" >&2; exit 1 ;; esac; done; '
    f'rm -f -- {JOURNAL_NAME} {TEMP_NAME} && cd / && rmdir -- "$1"'
)

# $1: a staging dir nobody recorded, $2: the directory beside it. Move everything in it
# there, none of it if any name is taken; then drop its journal (if any) and the empty dir.
_PUT_BACK = (
    'cd "$1" || exit 1; '
    f"{_EACH}"
    f'case "$f" in {_RECORD}) continue ;; esac; '
    'if [ -e "$2/$f" ] || [ -L "$2/$f" ]; then '
    'echo "$2/$f already exists: nothing was moved" >&2; exit 1; fi; done; '
    f"{_EACH}"
    f'case "$f" in {_RECORD}) continue ;; esac; mv -- "$f" "$2/$f" || exit 1; done; '
    f'rm -f -- {JOURNAL_NAME} {TEMP_NAME} && cd / && rmdir -- "$1"'
)


def restore_commands(stagings: Iterable[Path], unrestored: Iterable[Unrestored]) -> list[str]:
    """A guarded `mv` per item that is not home, then one command per staging dir that
    removes it once it holds only its journal."""
    lines = [_move_home(now, belongs) for now, belongs in unrestored]
    lines += [f"sh -c {quote(_CLEAN_UP)} sh {quote(staging)}" for staging in stagings]
    return lines


def _move_home(now: Path, belongs: Path) -> str:
    home, there = quote(belongs), quote(now)
    return (
        f"if [ -e {home} ] || [ -L {home} ]; then echo {quote(f'{belongs} already exists')}"
        f" >&2; false; else mv -- {there} {home}; fi"
    )


def orphan_commands(staging: Path, anchor: Path) -> tuple[str, str]:
    """(restore, discard) for a staging dir nobody recorded: move its contents back beside
    it unless a name is taken, or delete it."""
    restore = f"sh -c {quote(_PUT_BACK)} sh {quote(staging)} {quote(anchor)}"
    return restore, f"rm -rf -- {quote(staging)}"
