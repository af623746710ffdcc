"""Stage, commit, rollback: the journaled move of a plan into per-anchor staging dirs.

`restore` and `finish` are the two ways a run ends (back, or forward); recovery calls
them too, with a journal read from disk. Both check where each item is, so they are
idempotent and safe to repeat after a crash.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path

from memtomem.uninstall import journal as journal_io
from memtomem.uninstall import shares, system
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.groups import STAGING_PREFIX
from memtomem.uninstall.journal import JOURNAL_NAME, TEMP_NAME, Journal, Staged, State
from memtomem.uninstall.plan import Plan
from memtomem.uninstall.system import Mounts
from memtomem.uninstall.tree import Progress, Removal, remove_tree

Stop = Callable[[], bool]


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


def staging_name() -> str:
    return f"{STAGING_PREFIX}{os.getpid()}"


class Transaction:
    """The three verbs of one run: stage, commit, rollback."""

    def __init__(self, fs: FsOps, plan: Plan, *, interrupted: Callable[[], int | None]):
        self.fs = fs
        self.interrupted = interrupted
        self.files = plan.files
        stagings = tuple((anchor, anchor / staging_name()) for anchor in plan.anchors)
        where = dict(stagings)
        moves = tuple(Staged(m.group.value, m.src, where[m.anchor] / m.rel) for m in plan.moves)
        state_dir = plan.state_dir if plan.remove_state_dir else None
        self.journal = Journal.new(
            stagings[0][1] if stagings else Path(),
            stagings,
            moves,
            keep_config=plan.keep_config,
            keep_data=plan.keep_data,
            state_dir=state_dir,
        )

    def stage(self) -> None:
        """Create the staging dirs and journals, then move every item. Raises StageFailed."""
        fs, journal = self.fs, self.journal
        for anchor, staging in journal.stagings:
            self._guard("create", staging, fs.mkdir, staging, 0o700)
            self._guard("make durable", anchor, fs.fsync_dir, anchor)
        for _anchor, staging in journal.stagings:
            self._guard("write the journal in", staging, journal_io.write, fs, staging, journal)
        scaffolds: list[Path] = []
        for move in journal.moves:
            self._check_interrupt(move.src)
            self._guard("move", move.src, self._move, move, scaffolds)
        sources = {m.src.parent for m in journal.moves}
        for directory in [*sorted(sources), *(s for _a, s in journal.stagings), *scaffolds]:
            self._guard("make durable", directory, fs.fsync_dir, directory)
        self._check_interrupt(journal.primary)

    def _check_interrupt(self, path: Path) -> None:
        signal = self.interrupted()
        if signal is not None:
            raise StageFailed(path, None, signal)

    def mark_committed(self) -> None:
        """Record COMMITTED durably. Nothing is deleted before this succeeds, so a failure
        here is a StageFailed like any other: the caller rolls back."""
        self._check_interrupt(self.journal.primary)
        committed = self.journal.committed()
        try:
            journal_io.write(self.fs, committed.primary, committed)
            self._check_interrupt(committed.primary)  # a signal during the write: undo it
        except (OSError, StageFailed) as exc:
            # The rename may have landed: put STAGING back, so a crash during the rollback
            # that follows is undone, never rolled forward.
            with contextlib.suppress(OSError):
                journal_io.write(self.fs, self.journal.primary, self.journal)
            if isinstance(exc, StageFailed):
                raise
            raise StageFailed(committed.primary, exc, action="record the commit in") from exc
        self.journal = committed

    def commit(self, *, stop: Stop, progress: Progress | None = None) -> Removal:
        """Delete the staging dirs of a run whose COMMITTED record is durable."""
        if self.journal.state is not State.COMMITTED:
            self.mark_committed()
        return finish(self.fs, self.journal, stop=stop, progress=progress, files=self.files)

    def rollback(self) -> tuple[Staged, ...]:
        """Move everything back; return what could not be restored."""
        return restore(self.fs, self.journal)

    def _move(self, move: Staged, scaffolds: list[Path]) -> None:
        staging = self._staging_of(move.dst)
        parent = move.dst.parent
        missing: list[Path] = []
        while parent != staging and not _exists(self.fs, parent):
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            self.fs.mkdir(directory, 0o700)
            scaffolds.append(directory)
        try:
            self.fs.replace(move.src, move.dst)
        except FileNotFoundError:
            if _exists(self.fs, move.src):
                raise

    def _staging_of(self, dst: Path) -> Path:
        return next(s for _a, s in self.journal.stagings if dst.is_relative_to(s))

    def _guard(self, what: str, path: Path, action: Callable[..., object], *args: object) -> None:
        try:
            action(*args)
        except OSError as exc:
            raise StageFailed(path, exc, action=what) from exc


def restore(fs: FsOps, journal: Journal) -> tuple[Staged, ...]:
    """Put every staged item back, newest first; discard the run only if all came back."""
    unrestored: list[Staged] = []
    touched: set[Path] = set()
    for move in reversed(journal.moves):
        try:
            if not _exists(fs, move.dst):
                continue
            if _exists(fs, move.src):
                unrestored.append(move)
                continue
            fs.replace(move.dst, move.src)
            touched.add(move.src.parent)
        except OSError:
            unrestored.append(move)
    for directory in sorted(touched):
        try:
            fs.fsync_dir(directory)
        except OSError:
            pass
    if not unrestored:
        for _anchor, staging in _secondaries_first(journal):
            _discard_staging(fs, staging)
    return tuple(reversed(unrestored))


def finish(
    fs: FsOps,
    journal: Journal,
    *,
    stop: Stop,
    progress: Progress | None = None,
    files: int = 0,
) -> Removal:
    """Delete every staging dir of a committed run; keep the primary journal until done.
    `files`: how many the plan counted; a large delete is first shared by two processes."""
    removal = Removal()
    mounts = system.mount_points_below(str(s) for _a, s in journal.stagings)
    if shares.worth_it(fs, files):
        roots = _staged_roots(fs, journal)
        shares.delete_shares(roots, removal, stop=stop, progress=progress, mounts=mounts)
        if removal.stopped:
            return removal
    others_gone = True
    for _anchor, staging in _secondaries_first(journal):
        is_primary = staging == journal.primary
        try:
            if not _exists(fs, staging):
                continue
        except OSError as exc:
            removal.fail(str(staging), exc.strerror or str(exc))
            others_gone = False
            continue
        _purge(fs, staging, removal, stop, progress, mounts)
        if removal.stopped:
            return removal
        if is_primary and not others_gone:
            break
        if not _discard_staging(fs, staging):
            others_gone = False
            removal.fail(str(staging), "could not be removed completely")
    if removal.error_count == 0 and journal.state_dir is not None:
        try:
            fs.rmdir(journal.state_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                removal.fail(str(journal.state_dir), exc.strerror or str(exc))
    return removal


def _staged_roots(fs: FsOps, journal: Journal) -> list[str]:
    """Every item in the run's staging dirs; one that cannot be listed is left to _purge."""
    roots = []
    for _anchor, staging in _secondaries_first(journal):
        with contextlib.suppress(OSError):
            roots += [str(staging / name) for name in _staged(fs, staging)]
    return roots


def _staged(fs: FsOps, staging: Path) -> list[str]:
    """The names a staging dir received (not its journal files)."""
    with fs.scandir(staging) as listing:
        return [e.name for e in listing if e.name not in (JOURNAL_NAME, TEMP_NAME)]


def _purge(
    fs: FsOps,
    staging: Path,
    removal: Removal,
    stop: Stop,
    progress: Progress | None,
    mounts: Mounts,
) -> None:
    try:
        names = _staged(fs, staging)
    except OSError as exc:
        removal.fail(str(staging), exc.strerror or str(exc))
        return
    for name in names:
        remove_tree(
            fs, str(staging / name), stop=stop, progress=progress, removal=removal, mounts=mounts
        )
        if removal.stopped:
            return


def _discard_staging(fs: FsOps, staging: Path) -> bool:
    """Remove a staging dir that holds nothing but scaffolds and journals; True when gone."""
    _prune_empty_dirs(fs, staging)
    try:
        with fs.scandir(staging) as listing:
            names = [e.name for e in listing]
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if any(name not in (JOURNAL_NAME, TEMP_NAME) for name in names):
        return False
    for name in (TEMP_NAME, JOURNAL_NAME):
        if name in names:
            try:
                fs.unlink(staging / name)
            except OSError:
                return False
    try:
        fs.rmdir(staging)
    except OSError:
        return False
    return True


def _prune_empty_dirs(fs: FsOps, directory: Path) -> None:
    try:
        with fs.scandir(directory) as listing:
            subdirs = [Path(e.path) for e in listing if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for sub in subdirs:
        _prune_empty_dirs(fs, sub)
        try:
            fs.rmdir(sub)
        except OSError:
            pass


def _secondaries_first(journal: Journal) -> list[tuple[Path, Path]]:
    return sorted(journal.stagings, key=lambda pair: pair[1] == journal.primary)


def _exists(fs: FsOps, path: Path) -> bool:
    try:
        fs.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True
