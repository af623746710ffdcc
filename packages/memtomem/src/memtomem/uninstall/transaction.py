"""Stage, commit, rollback: the journaled move of a plan into per-anchor staging dirs.

`rollback` and `finish` are the two ways a run ends (back, or forward); recovery calls them
too, for a run it found on disk. Every move and delete is relative to a directory held open
without following links, and both check where each item is, so they are idempotent and safe
to repeat after a crash.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from memtomem.uninstall import journal as journal_io
from memtomem.uninstall import system
from memtomem.uninstall.errors import Unrestored
from memtomem.uninstall.fsops import At, FsOps
from memtomem.uninstall.groups import STAGING_PREFIX
from memtomem.uninstall.journal import JOURNAL_NAME, TEMP_NAME, Journal, State
from memtomem.uninstall.plan import Plan
from memtomem.uninstall.system import Mounts
from memtomem.uninstall.tree import Progress, Removal, remove_tree

Stop = Callable[[], bool]
T = TypeVar("T")
SCAFFOLDS = ("instances", "presence")  # runtime subdirs whose files move one by one
CONFIG_NAMES = ("config.json", "config.d")  # what names the database's dir


class StageFailed(Exception):
    """A move into staging failed; the caller rolls back."""

    def __init__(
        self, path: Path, cause: OSError | None, signal: int | None = None, action: str = "move"
    ):
        super().__init__(str(cause) if cause else f"signal {signal}")
        self.path = path
        self.cause = cause
        self.signal = signal
        self.action = action


def staging_name(pid: int | None = None) -> str:
    return f"{STAGING_PREFIX}{os.getpid() if pid is None else pid}"


@dataclass
class Staging:
    """One staging dir of a run, held open (and flocked, so a live run's dir is told from a
    dead one's) together with its anchor while the run works in it. `items`: the paths
    relative to both that the run staged, or may act on."""

    anchor: Path
    name: str
    anchor_fd: int
    fd: int
    primary: bool
    items: list[str]
    by_config: bool = False  # its anchor is the database's dir, named only by the config

    @property
    def path(self) -> Path:
        return self.anchor / self.name

    @property
    def at(self) -> At:
        return At(self.fd, str(self.path))

    @property
    def anchor_at(self) -> At:
        return At(self.anchor_fd, str(self.anchor))

    def close(self) -> None:
        for fd in (self.fd, self.anchor_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fd = self.anchor_fd = -1


class Transaction:
    """The verbs of one run: stage, commit, then finish or rollback. `close` lets go of its
    dirs."""

    def __init__(self, fs: FsOps, plan: Plan, *, interrupted: Callable[[], int | None]):
        self.fs = fs
        self.interrupted = interrupted
        self.plan = plan
        self.journal = Journal.new(items=len(plan.moves), remove_state_dir=plan.remove_state_dir)
        self.stagings: list[Staging] = []
        self.state_dir = plan.state_dir if plan.remove_state_dir else None

    def stage(self) -> None:
        """Create the staging dirs and journals, then move every item. Raises StageFailed."""
        fs = self.fs
        for index, anchor in enumerate(self.plan.anchors):
            self._make_staging(anchor, primary=index == 0)
        for staging in self.stagings:
            copy = self.journal.copy_for(primary=staging.primary)
            self._guard(
                "write the journal in", staging.path, journal_io.write, fs, staging.at, copy
            )
        where = {s.anchor: s for s in self.stagings}
        synced: dict[str, int | None] = {}
        for move in self.plan.moves:
            self._check_interrupt(move.src)
            staging = where[move.anchor]
            staging.items.append(move.rel)
            self._guard("move", move.src, _move, fs, staging, move.rel, synced)
        for staging in self.stagings:
            synced.setdefault(str(staging.anchor), staging.anchor_fd)
            synced.setdefault(str(staging.path), staging.fd)
        for directory, fd in sorted(synced.items()):
            self._guard("make durable", Path(directory), fs.fsync_dir, directory, fd=fd)
        self._check_interrupt(self._primary().path)

    def _make_staging(self, anchor: Path, *, primary: bool) -> None:
        """mkdir the run's staging dir in `anchor`, open both without following links and lock
        it. Once made, it is the run's: rollback removes it. (Its name needs no fsync of its
        own: nothing inside it can reach the disk before it, and the anchors are synced before
        the commit.)"""
        fs, name = self.fs, staging_name()
        path = anchor / name
        anchor_fd = self._guard("create", path, fs.open_dir, anchor)
        staging = Staging(anchor, name, anchor_fd, -1, primary, [], anchor in self.plan.db_dirs)
        try:
            self._guard("create", path, fs.mkdir, name, 0o700, at=staging.anchor_at)
        except StageFailed:
            staging.close()
            raise
        self.stagings.append(staging)
        staging.fd = self._guard("create", path, fs.open_dir, name, at=staging.anchor_at)
        self._guard("lock", path, _lock, fs, staging)

    def _primary(self) -> Staging:
        return next(s for s in self.stagings if s.primary)

    def _check_interrupt(self, path: Path) -> None:
        signal = self.interrupted()
        if signal is not None:
            raise StageFailed(path, None, signal)

    def commit(self) -> None:
        """Record COMMITTED durably. Nothing is deleted before this succeeds, so a failure
        here is a StageFailed like any other: the caller rolls back."""
        primary = self._primary()
        self._check_interrupt(primary.path)
        committed = self.journal.committed()
        try:
            journal_io.write(self.fs, primary.at, committed)
            self._check_interrupt(primary.path)  # a signal during the write: undo it
        except (OSError, StageFailed) as exc:
            # The rename may have landed: put STAGING back, so a crash during the rollback
            # that follows is undone, never rolled forward.
            with contextlib.suppress(OSError):
                journal_io.write(self.fs, primary.at, self.journal)
            if isinstance(exc, StageFailed):
                raise
            raise StageFailed(primary.path, exc, action="record the commit in") from exc
        self.journal = committed

    def finish(self, *, stop: Stop, progress: Progress | None = None) -> Removal:
        """Delete the staging dirs of a run whose COMMITTED record is durable."""
        if self.journal.state is not State.COMMITTED:
            self.commit()
        return finish(self.fs, self.stagings, self.state_dir, stop=stop, progress=progress)

    def rollback(self) -> tuple[Unrestored, ...]:
        """Move everything back; return what could not be, in plan order."""
        order = {m.src: i for i, m in enumerate(self.plan.moves)}
        return tuple(sorted(rollback(self.fs, self.stagings), key=lambda item: order[item[1]]))

    def left(self) -> list[Path]:
        """The staging dirs of this run still on disk (after a rollback: not all came back,
        or a staging dir could not be removed); one that cannot be examined counts."""
        left = []
        for staging in self.stagings:
            try:
                if _exists(self.fs, staging.name, staging.anchor_at):
                    left.append(staging.path)
            except OSError:
                left.append(staging.path)
        return left

    def close(self) -> None:
        for staging in self.stagings:
            staging.close()

    def _guard(
        self, what: str, path: Path, action: Callable[..., T], *args: object, **kwargs: object
    ) -> T:
        try:
            return action(*args, **kwargs)
        except OSError as exc:
            raise StageFailed(path, exc, action=what) from exc


def _lock(fs: FsOps, staging: Staging) -> None:
    try:
        fs.try_flock(staging.fd, staging.path, exclusive=True)
    except OSError as exc:
        if exc.errno not in system.NO_FLOCK:
            raise


@contextlib.contextmanager
def _opened(fs: FsOps, base: At, parts: list[str], *, make: bool = False) -> Iterator[At]:
    """The directory `base/parts...`, opened level by level without following links; with
    `make`, missing levels are created (mode 0700), as a runtime scaffold."""
    fds: list[int] = []
    at = base
    try:
        for part in parts:
            if make:
                with contextlib.suppress(FileExistsError):
                    fs.mkdir(part, 0o700, at=at)
            fds.append(fs.open_dir(part, at=at))
            at = At(fds[-1], at.name(part))
        yield at
    finally:
        for fd in fds:
            os.close(fd)


def _move(fs: FsOps, staging: Staging, rel: str, synced: dict[str, int | None]) -> None:
    """Move `rel` from the anchor into the staging dir; one that vanished meanwhile is gone."""
    *parents, name = rel.split("/")
    with (
        _opened(fs, staging.anchor_at, parents) as src,
        _opened(fs, staging.at, parents, make=True) as dst,
    ):
        try:
            fs.replace(name, name, src_at=src, dst_at=dst)
        except FileNotFoundError:
            if _exists(fs, name, src):
                raise
        for at in (src, dst):
            synced.setdefault(at.path, None)


def rollback(fs: FsOps, stagings: list[Staging]) -> tuple[Unrestored, ...]:
    """Move every staged item home, newest first; drop the staging dirs only if all came
    home. A slot taken again meanwhile (or any error) leaves that item where it is."""
    unrestored: list[Unrestored] = []
    synced: dict[str, int | None] = {}
    for staging in stagings:
        if staging.fd < 0:
            continue  # made, never opened: nothing went into it
        for rel in reversed(staging.items):
            if not _roll_back_one(fs, staging, rel, synced):
                unrestored.append((staging.path / rel, staging.anchor / rel))
        synced.setdefault(str(staging.anchor), staging.anchor_fd)
        synced.setdefault(str(staging.path), staging.fd)
    if unrestored:
        return tuple(reversed(unrestored))
    for directory, fd in sorted(synced.items()):  # what came back is durable before the
        with contextlib.suppress(OSError):  # record goes, so the record outlives the staging
            fs.fsync_dir(directory, fd=fd)
    for staging in _secondaries_first(stagings):
        drop(fs, staging)
    return ()


def _roll_back_one(fs: FsOps, staging: Staging, rel: str, synced: dict[str, int | None]) -> bool:
    """Move one item home; True when it is home (or was never staged)."""
    *parents, name = rel.split("/")
    try:
        with _opened(fs, staging.at, parents) as src:
            if not _exists(fs, name, src):
                return True
            with _opened(fs, staging.anchor_at, parents, make=True) as dst:
                if _exists(fs, name, dst):
                    return False
                fs.replace(name, name, src_at=src, dst_at=dst)
                synced.setdefault(src.path, None)
                synced.setdefault(dst.path, None)
    except FileNotFoundError:
        return True  # its staged parent is gone: so is the item
    except OSError:
        return False
    return True


def finish(
    fs: FsOps,
    stagings: list[Staging],
    state_dir: Path | None,
    *,
    stop: Stop,
    progress: Progress | None = None,
) -> Removal:
    """Delete the items of every staging dir of a committed run, then the dirs. The primary
    goes last: while another keeps a leftover, the primary keeps its journal (the commit)
    and its staged config (which names the database's dir, where recovery finds the rest).
    `state_dir`: removed at the end if it is then empty."""
    removal = Removal()
    mounts = system.mount_points_below(str(s.path) for s in stagings)
    dropped: list[Staging] = []
    for staging in _secondaries_first(stagings):
        # The primary keeps its config until the other staging dirs are gone, durably: it
        # names the database's dir, where recovery would look for them.
        waiting = staging.primary and (removal.error_count > 0 or not _synced(fs, dropped, removal))
        items = [rel for rel in staging.items if not (waiting and rel in CONFIG_NAMES)]
        before = removal.error_count
        _purge(fs, staging, items, removal, stop, progress, mounts)
        if removal.stopped:
            return removal
        if waiting or removal.error_count > before:
            continue  # the primary keeps its journal, and its config while others stay
        if drop(fs, staging) is None:
            removal.fail(str(staging.path), "could not be removed completely")
        elif staging.by_config:
            dropped.append(staging)
    if removal.error_count == 0 and state_dir is not None:
        try:
            fs.rmdir(state_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                removal.fail(str(state_dir), exc.strerror or str(exc))
    return removal


def _synced(fs: FsOps, dropped: list[Staging], removal: Removal) -> bool:
    """Make the removal of these staging dirs durable (an fsync of each anchor): those only
    the config names, which the primary's config must outlive. A failure is the run's: the
    primary then stays, and the next run finishes."""
    for staging in dropped:
        try:
            fs.fsync_dir(staging.anchor, fd=staging.anchor_fd)
        except OSError as exc:
            removal.fail(str(staging.anchor), exc.strerror or str(exc))
            return False
    return True


def _purge(
    fs: FsOps,
    staging: Staging,
    items: list[str],
    removal: Removal,
    stop: Stop,
    progress: Progress | None,
    mounts: Mounts,
) -> None:
    for rel in items:
        *parents, name = rel.split("/")
        try:
            with _opened(fs, staging.at, parents) as at:
                remove_tree(
                    fs, name, at=at, stop=stop, progress=progress, removal=removal, mounts=mounts
                )
        except FileNotFoundError:
            continue
        except OSError as exc:
            removal.fail(str(staging.path / rel), exc.strerror or str(exc))
        if removal.stopped:
            return
    for scaffold in SCAFFOLDS:  # emptied now, unless something stayed in it
        with contextlib.suppress(OSError):
            fs.rmdir(scaffold, at=staging.at)


def drop(fs: FsOps, staging: Staging) -> bool | None:
    """The run is done with this staging dir: drop its scaffolds and its journal and remove
    it. True when it is gone; False when something no run put there keeps it (the journal
    goes all the same: it is then an orphan, reported and never touched); None on failure."""
    try:
        if staging.fd >= 0 and not _empty_but_its_record(fs, staging):
            return False
        fs.rmdir(staging.name, at=staging.anchor_at)  # one made but never opened is empty
    except FileNotFoundError:
        return True
    except OSError:
        return None
    return True


def _empty_but_its_record(fs: FsOps, staging: Staging) -> bool:
    """Remove its empty scaffolds, then its journal; whether nothing else is in it. Raises
    OSError when a step fails (then the journal stays)."""
    at = staging.at
    for scaffold in SCAFFOLDS:
        try:
            fs.rmdir(scaffold, at=at)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise  # not something else's in it: only this attempt failed
    with fs.scandir(at) as listing:
        names = [entry.name for entry in listing]
    fs.fsync_dir(staging.path, fd=staging.fd)  # its emptying is durable before its record
    for name in (TEMP_NAME, JOURNAL_NAME):
        if name in names:
            fs.unlink(name, at=at)
    return all(name in (TEMP_NAME, JOURNAL_NAME) for name in names)


def _secondaries_first(stagings: list[Staging]) -> list[Staging]:
    return sorted(stagings, key=lambda staging: staging.primary)


def _exists(fs: FsOps, name: str, at: At) -> bool:
    try:
        fs.lstat(name, at=at)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True
