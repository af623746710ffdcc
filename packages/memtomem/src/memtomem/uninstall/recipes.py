"""Exact shell commands that put things back by hand when even rollback failed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from memtomem.uninstall.display import quote
from memtomem.uninstall.journal import JOURNAL_NAME, TEMP_NAME, Staged


def restore_commands(stagings: Iterable[Path], unrestored: Iterable[Staged]) -> list[str]:
    """`mv` each item home, then drop the journals and the emptied staging dirs.

    `find -empty -delete` only ever removes empty directories, so it cannot lose data.
    """
    lines = [f"mv -- {quote(m.dst)} {quote(m.src)}" for m in unrestored]
    for staging in stagings:
        journals = " ".join(quote(staging / name) for name in (TEMP_NAME, JOURNAL_NAME))
        lines.append(f"rm -f -- {journals}")
        lines.append(f"find {quote(staging)} -depth -type d -empty -delete")
    return lines


def orphan_commands(staging: Path, anchor: Path) -> tuple[str, str]:
    """(restore, discard) for a staging dir nobody recorded: copy back without overwriting."""
    restore = f"cp -a -n -- {quote(staging)}/. {quote(anchor)}/ && rm -rf -- {quote(staging)}"
    return restore, f"rm -rf -- {quote(staging)}"
