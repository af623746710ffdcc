"""Recovery: finish or undo runs that a crash, a kill or a power cut interrupted.

Runs before anything else. Every directory it may act in comes from the current layout
(the Scope); what it finds there is acted on only when provably this user's run: a real
staging dir owned by the user, mode 0700, in a directory others cannot change (or, in a
sticky shared one, the user's own entry), holding a journal of that run, and only on items
the plan could have staged there. A run whose primary journal says COMMITTED is finished;
any other is put back. Everything else is an orphan: reported, never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from memtomem.uninstall import journal as journal_io
from memtomem.uninstall import system, trust
from memtomem.uninstall.errors import Unrestored
from memtomem.uninstall.fsops import At, FsOps
from memtomem.uninstall.groups import STAGING_PREFIX, classify, is_database_name
from memtomem.uninstall.journal import JOURNAL_NAME, TEMP_NAME, Journal, State
from memtomem.uninstall.layout import DEFAULT_DB_NAME, path_digest
from memtomem.uninstall.transaction import (
    SCAFFOLDS,
    Staging,
    Stop,
    drop,
    finish,
    rollback,
)

_STAGING = re.compile(re.escape(STAGING_PREFIX) + r"([1-9][0-9]{0,9})")
_RECORD = (JOURNAL_NAME, TEMP_NAME)


class Action(Enum):
    ROLLED_BACK = "rolled-back"
    FINISHED = "finished"
    CLEANED = "cleaned"


class Why(Enum):
    """Why a staging-named entry was left untouched."""

    NO_RECORD = "no-record"  # no journal of a run of this user's
    UNSAFE = "unsafe"  # yours, but others could have changed it (its mode, or its dir's)
    FOREIGN = "foreign"  # another user's
    BUSY = "busy"  # a live mm uninstall holds it


@dataclass(frozen=True)
class RecoveredRun:
    primary: Path
    pid: int
    action: Action
    items: int
    unrestored: tuple[Unrestored, ...] = ()
    leftovers: tuple[tuple[str, str], ...] = ()
    stagings: tuple[Path, ...] = ()
    stopped: bool = False


@dataclass(frozen=True)
class Orphan:
    """A staging-named entry recovery does not act on: reported, with what to do."""

    path: Path
    anchor: Path
    kind: str
    why: Why = Why.NO_RECORD
    detail: str = ""  # the owner's uid, the live run's pid, or why it is unsafe


@dataclass(frozen=True)
class Recovery:
    runs: tuple[RecoveredRun, ...] = ()
    orphans: tuple[Orphan, ...] = ()
    dry_run: bool = False

    @property
    def unrestored(self) -> tuple[Unrestored, ...]:
        return tuple(m for r in self.runs for m in r.unrestored)

    @property
    def leftovers(self) -> tuple[tuple[str, str], ...]:
        return tuple(item for r in self.runs for item in r.leftovers)


@dataclass(frozen=True)
class Scope:
    """Where recovery may look and what it may move: derived from the layout and config."""

    state_dir: Path
    db_paths: tuple[Path, ...]
    runtime_dirs: tuple[Path, ...]

    @property
    def anchors(self) -> tuple[Path, ...]:
        dirs = [self.state_dir, *(db.parent for db in self.db_paths), *self.runtime_dirs]
        return tuple(dict.fromkeys(dirs))

    @property
    def db_dirs(self) -> frozenset[Path]:
        """The anchors only a config names (so a committed run keeps its config for them)."""
        return frozenset(db.parent for db in self.db_paths) - {self.state_dir, *self.runtime_dirs}

    def stageable(self, anchor: Path, rel: str) -> bool:
        """Whether a run could have staged `rel` from `anchor`: one of memtomem's names."""
        parts = rel.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return False
        name = parts[-1]
        databases = (*self.db_paths, self.state_dir / DEFAULT_DB_NAME)
        if len(parts) == 1 and anchor == self.state_dir and classify(name, databases):
            return True
        if len(parts) == 1 and any(
            db.parent == anchor and is_database_name(name, db) for db in self.db_paths
        ):
            return True
        if anchor not in self.runtime_dirs:
            return False
        if len(parts) == 2:
            return parts[0] in SCAFFOLDS and name.endswith(".lock")
        pid_files = {f"server-{path_digest(db)}.pid" for db in self.db_paths}
        return name in pid_files or name in ("server.pid", "web.pid")


@dataclass
class _Member:
    staging: Staging
    journal: Journal | None  # None: an empty dir of the run, made before its journal was


@dataclass
class _Scan:
    members: dict[tuple[int, str], list[_Member]] = field(default_factory=dict)
    empty: list[Staging] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)

    def close(self) -> None:
        for group in self.members.values():
            for member in group:
                member.staging.close()
        for staging in self.empty:
            staging.close()


def recover(fs: FsOps, scope: Scope, *, dry_run: bool, stop: Stop) -> Recovery:
    found = _find(fs, scope)
    _adopt_empty(found)
    try:
        runs = [_settle(fs, scope, group, dry_run, stop, found) for group in found.members.values()]
        for staging in found.empty:
            if dry_run or drop(fs, staging):
                runs.append(RecoveredRun(staging.path, 0, Action.CLEANED, 0))
            else:
                found.orphans.append(Orphan(staging.path, staging.anchor, "dir"))
    finally:
        found.close()
    return Recovery(tuple(runs), tuple(found.orphans), dry_run)


def _settle(
    fs: FsOps,
    scope: Scope,
    group: list[_Member],
    dry_run: bool,
    stop: Stop,
    found: _Scan,
) -> RecoveredRun:
    """Finish the run if its one primary journal says COMMITTED; otherwise put it back."""
    journals = [m.journal for m in group if m.journal is not None]
    primaries = [j for j in journals if j.primary]
    primary = primaries[0] if len(primaries) == 1 else None
    committed = primary is not None and primary.state is State.COMMITTED
    stagings = [m.staging for m in group]
    for staging in stagings:
        staging.items = _items(fs, scope, staging)
    shown = next((m.staging.path for m in group if m.staging.primary), group[0].staging.path)
    action = Action.FINISHED if committed else Action.ROLLED_BACK
    run = RecoveredRun(
        shown,
        journals[0].pid,
        action,
        (primary or journals[0]).items,
        stagings=tuple(s.path for s in stagings),
    )
    if dry_run:
        return run
    if committed:
        assert primary is not None
        state_dir = scope.state_dir if primary.remove_state_dir else None
        removal = finish(fs, stagings, state_dir, stop=stop)
        run = replace(run, leftovers=tuple(removal.errors), stopped=removal.stopped)
    else:
        run = replace(run, unrestored=rollback(fs, stagings))
    for staging in stagings:  # what no run put there keeps its dir: an orphan from now on
        if not run.stopped and not run.leftovers and not run.unrestored and _exists(fs, staging):
            found.orphans.append(Orphan(staging.path, staging.anchor, "dir"))
    return run


def _adopt_empty(found: _Scan) -> None:
    """An empty staging dir named for the pid of a run found with a journal is that run's:
    made before its journal was written. It goes with the run (it holds nothing to act on)."""
    pids = {key[0]: key for key in found.members}
    for staging in list(found.empty):
        key = pids.get(int(staging.name[len(STAGING_PREFIX) :]))
        if key is not None:
            found.members[key].append(_Member(staging, None))
            found.empty.remove(staging)


def _items(fs: FsOps, scope: Scope, staging: Staging) -> list[str]:
    """What the staging dir holds that a run could have staged there (memtomem's names)."""
    items: list[str] = []
    for name in _names(fs, staging.at):
        if name in _RECORD:
            continue
        if scope.stageable(staging.anchor, name):
            items.append(name)
        elif name in SCAFFOLDS and staging.anchor in scope.runtime_dirs:
            items += [f"{name}/{sub}" for sub in _scaffold(fs, staging, name)]
    return items


def _scaffold(fs: FsOps, staging: Staging, name: str) -> list[str]:
    """The sentinel files in a runtime scaffold of a staging dir (never a dir or a link's
    target: lstat only)."""
    try:
        fd = fs.open_dir(name, at=staging.at)
    except OSError:
        return []
    try:
        at = At(fd, staging.at.name(name))
        return [sub for sub in _names(fs, at) if sub.endswith(".lock") and not _is_dir(fs, sub, at)]
    finally:
        os.close(fd)


def _find(fs: FsOps, scope: Scope) -> _Scan:
    found = _Scan()
    seen: set[tuple[int, int]] = set()
    for anchor in scope.anchors:
        try:
            anchor_fd = fs.open_dir(anchor)
        except OSError:
            continue
        try:
            st = os.fstat(anchor_fd)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            by_config = anchor in scope.db_dirs
            _find_in(fs, anchor, anchor_fd, trust.of_anchor(st), found, by_config)
        finally:
            os.close(anchor_fd)
    return found


def _find_in(
    fs: FsOps, anchor: Path, anchor_fd: int, where: trust.Trust, found: _Scan, by_config: bool
) -> None:
    at = At(anchor_fd, str(anchor))
    for name in sorted(n for n in _names(fs, at) if n.startswith(STAGING_PREFIX)):
        path = anchor / name
        try:
            st = fs.lstat(name, at=at)
        except OSError:
            continue
        kind = _kind(st.st_mode)
        if not system.IS_WINDOWS and st.st_uid != system.euid():
            found.orphans.append(Orphan(path, anchor, kind, Why.FOREIGN, str(st.st_uid)))
            continue
        number = _STAGING.fullmatch(name)
        unsafe = trust.of_staging(st) if stat.S_ISDIR(st.st_mode) else None
        if where.problem or unsafe:
            reason = unsafe or f"is in a directory that {where.problem}"
            found.orphans.append(Orphan(path, anchor, kind, Why.UNSAFE, reason))
            continue
        if number is None or not stat.S_ISDIR(st.st_mode):
            found.orphans.append(Orphan(path, anchor, kind))
            continue
        staging = _open(fs, anchor, anchor_fd, name, st)
        if staging is None:
            found.orphans.append(Orphan(path, anchor, kind))
            continue
        staging.by_config = by_config
        holder = _live_holder(fs, staging)
        if holder is not None:
            staging.close()
            found.orphans.append(Orphan(path, anchor, kind, Why.BUSY, holder))
            continue
        journal = journal_io.read(fs, staging.at)
        if journal is not None and journal.pid == int(number.group(1)):
            staging.primary = journal.primary
            key = (journal.pid, journal.run)
            found.members.setdefault(key, []).append(_Member(staging, journal))
        elif all(n == TEMP_NAME for n in _names(fs, staging.at)):
            found.empty.append(staging)
        else:
            staging.close()
            found.orphans.append(Orphan(path, anchor, kind))


def _open(fs: FsOps, anchor: Path, anchor_fd: int, name: str, st: os.stat_result) -> Staging | None:
    """Open a staging dir and its anchor for a run's work, and check that what was opened is
    what was examined (no swap in between)."""
    try:
        fd = fs.open_dir(name, at=At(anchor_fd, str(anchor)))
    except OSError:
        return None
    try:
        opened = os.fstat(fd)
        own = os.dup(anchor_fd)
    except OSError:
        os.close(fd)
        return None
    staging = Staging(anchor, name, own, fd, False, [])
    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) or trust.of_staging(opened):
        staging.close()
        return None
    return staging


def _live_holder(fs: FsOps, staging: Staging) -> str | None:
    """A running mm uninstall keeps its staging dirs flocked: the pid (or "") when one holds
    this one; None when it is free, and now locked by this run until closed."""
    try:
        if fs.try_flock(staging.fd, staging.path, exclusive=True):
            return None
    except OSError as exc:
        if exc.errno in system.NO_FLOCK:
            return None  # no flock here: nothing to tell a live run by
        return ""  # cannot tell: left alone
    with contextlib.suppress(OSError):
        pid = system.flock_holder(os.fstat(staging.fd))
        return "" if pid is None else str(pid)
    return ""


def _names(fs: FsOps, at: At) -> list[str]:
    try:
        with fs.scandir(at) as listing:
            return [entry.name for entry in listing]
    except OSError:
        return []


def _is_dir(fs: FsOps, name: str, at: At) -> bool:
    try:
        return stat.S_ISDIR(fs.lstat(name, at=at).st_mode)
    except OSError:
        return True  # not examinable: not acted on


def _exists(fs: FsOps, staging: Staging) -> bool:
    try:
        fs.lstat(staging.name, at=staging.anchor_at)
    except OSError:
        return False
    return True


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    return "link" if stat.S_ISLNK(mode) else "file"


def own_stagings(fs: FsOps, directory: Path) -> list[Path]:
    """The staging dirs in `directory` that pass the checks a run's must (before any is
    opened): what recovery reads a staged config from."""
    try:
        if trust.of_anchor(fs.lstat(directory)).problem is not None:
            return []
        with fs.scandir(directory) as listing:
            names = sorted(e.name for e in listing if _STAGING.fullmatch(e.name))
    except OSError:
        return []
    out = []
    for name in names:
        try:
            st = fs.lstat(directory / name)
        except OSError:
            continue
        if trust.of_staging(st) is None:
            out.append(directory / name)
    return out


__all__ = ["JOURNAL_NAME", "Action", "Orphan", "RecoveredRun", "Recovery", "Scope", "recover"]
