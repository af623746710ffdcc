"""Recovery: finish or undo runs that a crash, a kill or a power cut interrupted.

Runs before anything else. A run that had not committed is rolled back; a committed
one is rolled forward. A staging dir without a readable journal is never deleted.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from memtomem.uninstall import journal as journal_io
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.groups import STAGING_PREFIX
from memtomem.uninstall.journal import JOURNAL_NAME, TEMP_NAME, Journal, Staged, State
from memtomem.uninstall.transaction import Stop, finish, restore


class Action(Enum):
    ROLLED_BACK = "rolled-back"
    FINISHED = "finished"
    CLEANED = "cleaned"


@dataclass(frozen=True)
class RecoveredRun:
    primary: Path
    pid: int
    action: Action
    items: int
    unrestored: tuple[Staged, ...] = ()
    leftovers: tuple[tuple[str, str], ...] = ()
    stagings: tuple[Path, ...] = ()
    stopped: bool = False


@dataclass(frozen=True)
class Orphan:
    """A staging-named entry whose origin is unknown: reported with what to do."""

    path: Path
    anchor: Path
    kind: str


@dataclass(frozen=True)
class Recovery:
    runs: tuple[RecoveredRun, ...] = ()
    orphans: tuple[Orphan, ...] = ()
    dry_run: bool = False

    @property
    def unrestored(self) -> tuple[Staged, ...]:
        return tuple(m for r in self.runs for m in r.unrestored)

    @property
    def leftovers(self) -> tuple[tuple[str, str], ...]:
        return tuple(item for r in self.runs for item in r.leftovers)


@dataclass
class _Found:
    runs: dict[Path, Journal] = field(default_factory=dict)
    empty: list[Path] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)


def recover(fs: FsOps, anchors: Iterable[Path], *, dry_run: bool, stop: Stop) -> Recovery:
    found = _find(fs, anchors)
    runs: list[RecoveredRun] = []
    for primary, journal in found.runs.items():
        committed = journal.state is State.COMMITTED
        action = Action.FINISHED if committed else Action.ROLLED_BACK
        stagings = tuple(s for _a, s in journal.stagings)
        run = RecoveredRun(primary, journal.pid, action, len(journal.moves), stagings=stagings)
        if dry_run:
            pass
        elif committed:
            removal = finish(fs, journal, stop=stop)
            run = replace(run, leftovers=tuple(removal.errors), stopped=removal.stopped)
        else:
            run = replace(run, unrestored=restore(fs, journal))
        runs.append(run)
    for staging in found.empty:
        if not dry_run:
            for name in (TEMP_NAME,):
                try:
                    fs.unlink(staging / name)
                except FileNotFoundError:
                    pass
            try:
                fs.rmdir(staging)
            except OSError:
                found.orphans.append(Orphan(staging, staging.parent, "dir"))
                continue
        runs.append(RecoveredRun(staging, 0, Action.CLEANED, 0))
    return Recovery(tuple(runs), tuple(found.orphans), dry_run)


def _find(fs: FsOps, anchors: Iterable[Path]) -> _Found:
    found = _Found()
    for anchor in dict.fromkeys(anchors):
        for staging, mode in _staging_entries(fs, anchor):
            if not stat.S_ISDIR(mode):
                kind = "link" if stat.S_ISLNK(mode) else "file"
                found.orphans.append(Orphan(staging, anchor, kind))
                continue
            journal = journal_io.read(fs, staging)
            if journal is not None and not _plausible(journal, staging):
                found.orphans.append(Orphan(staging, anchor, "dir"))
                continue
            if journal is None:
                if _only_journal_temp(fs, staging):
                    found.empty.append(staging)
                else:
                    found.orphans.append(Orphan(staging, anchor, "dir"))
                continue
            authoritative = journal
            if journal.primary != staging:
                primary = journal_io.read(fs, journal.primary)
                authoritative = primary if primary is not None else journal
            found.runs.setdefault(journal.primary, authoritative)
    for journal in found.runs.values():
        listed = {s for _a, s in journal.stagings}
        found.empty = [p for p in found.empty if p not in listed]
    return found


def _plausible(journal: Journal, found_at: Path) -> bool:
    """A journal is obeyed only if it speaks of staging dirs of its own run and moves
    between each anchor and its staging dir, name for name: a forged or foreign record
    could otherwise steer deletes and moves anywhere."""
    stagings = dict(journal.stagings)
    name = f"{STAGING_PREFIX}{journal.pid}"
    if any(staging != anchor / name for anchor, staging in stagings.items()):
        return False
    if found_at not in stagings.values() or journal.primary not in stagings.values():
        return False
    if journal.state_dir is not None and journal.state_dir.name != ".memtomem":
        return False  # the only directory a journal may ask to remove is a state dir
    return all(
        any(
            m.src.is_relative_to(anchor)
            and m.dst.is_relative_to(staging)
            and m.src.relative_to(anchor) == m.dst.relative_to(staging)
            for anchor, staging in stagings.items()
        )
        for m in journal.moves
    )


def _staging_entries(fs: FsOps, anchor: Path) -> list[tuple[Path, int]]:
    try:
        if not stat.S_ISDIR(fs.lstat(anchor).st_mode):
            return []
        with fs.scandir(anchor) as listing:
            names = [e.name for e in listing if e.name.startswith(STAGING_PREFIX)]
    except OSError:
        return []
    out = []
    for name in sorted(names):
        try:
            out.append((anchor / name, fs.lstat(anchor / name).st_mode))
        except OSError:
            continue
    return out


def _only_journal_temp(fs: FsOps, staging: Path) -> bool:
    try:
        with fs.scandir(staging) as listing:
            return all(e.name == TEMP_NAME for e in listing)
    except OSError:
        return False


__all__ = ["JOURNAL_NAME", "Action", "Orphan", "RecoveredRun", "Recovery", "recover"]
