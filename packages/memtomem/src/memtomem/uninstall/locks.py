"""The locks an uninstall takes: one run at a time, and the servers' lifecycle barrier."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from memtomem.uninstall import system
from memtomem.uninstall.errors import Refused
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.printable import quote, show


class AnotherRun(Refused):
    """Another `mm uninstall` holds the run lock."""


@dataclass
class Held:
    """Descriptors holding locks, and the lock files and dirs this run had to create."""

    fds: list[int] = field(default_factory=list)
    created: list[Path] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)

    def release(self, fs: FsOps) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        for path in reversed(self.created):
            reason = _remove_created(fs, path)
            if reason is not None:
                self.problems.append((path, reason))
        self.created.clear()


def _remove_created(fs: FsOps, path: Path) -> str | None:
    """Remove what this run created; try twice, since nothing else needs it. The reason
    when it stays."""
    reason = None
    for _attempt in range(2):
        try:
            if stat.S_ISDIR(fs.lstat(path).st_mode):
                fs.rmdir(path)
            else:
                fs.unlink(path)
            return None
        except FileNotFoundError:
            return None
        except OSError as exc:
            reason = exc.strerror or str(exc)
    return reason


def hold_run_lock(fs: FsOps, home: Path) -> Held:
    """Lock the home directory itself (a flock on its fd): no file is created, and the
    kernel drops the lock when the process dies, so a crashed run is no obstacle. A lock that
    cannot be taken refuses the run: one run at a time never fails open."""
    held = Held()
    if system.IS_WINDOWS:  # pragma: no cover - no flock there; nothing to coordinate with
        return held
    try:
        fd = _open_home(fs, home)
    except OSError as exc:
        raise _unlockable(home, exc) from exc
    try:
        taken = fs.try_flock(fd, home, exclusive=True)
        holder = None if taken else system.flock_holder(os.fstat(fd))
        if holder is not None and not system.process_alive(holder):
            holder = None  # its locker died; a child it forked holds the lock on
        if not taken and holder is None:  # the holder just finished: try once more
            taken = fs.try_flock(fd, home, exclusive=True)
    except OSError as exc:
        if exc.errno not in _NO_FLOCK:
            os.close(fd)
            raise _unlockable(home, exc) from exc
        taken = True  # a filesystem without flock: no other run can lock it either
    if not taken:
        pid = holder
        os.close(fd)
        who = f" (pid {pid})" if pid else ""
        raise AnotherRun(
            f"another mm uninstall{who} is running for {show(home, None)}; wait for it to "
            "finish, then run mm uninstall again.",
            path=str(home),
        )
    held.fds.append(fd)
    return held


_NO_FLOCK = frozenset(
    code for code in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS) if code is not None
)


def _open_home(fs: FsOps, home: Path) -> int:
    """The home directory, for its lock; a HOME that is a link to one is locked there
    (the walks never follow links, but a symlinked home is an ordinary setup)."""
    try:
        return fs.open_dir(home)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP) or not os.path.islink(home):
            raise
    return fs.open_dir(os.path.realpath(home))


def _unlockable(home: Path, exc: OSError) -> Refused:
    problem = {errno.ENOENT: "does not exist", errno.ENOTDIR: "is not a directory"}
    if exc.errno in problem:
        return Refused(
            f"the home directory {show(home, None)} {problem[exc.errno]}; set HOME to the "
            "home directory memtomem ran under, then run mm uninstall again.",
            path=str(home),
        )
    return Refused(
        f"cannot take the one-run-at-a-time lock on {show(home, None)}: "
        f"{exc.strerror or exc}; make it readable (for example `chmod u+r {quote(home)}`), "
        "then run mm uninstall again.",
        path=str(home),
    )


def hold_barrier(fs: FsOps, held: Held, barrier: Path, home: Path) -> None:
    """Take the lifecycle barrier exclusively, creating it as a server would if missing."""
    directory = barrier.parent
    try:
        fs.lstat(directory)
    except FileNotFoundError:
        fs.mkdir(directory, 0o700)
        held.created.append(directory)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | system.O_NOFOLLOW
    try:
        fd = fs.open_fd(barrier, flags, 0o644)
        held.created.append(barrier)
    except FileExistsError:
        fd = fs.open_fd(barrier, os.O_RDONLY)
    try:
        taken = fs.try_flock(fd, barrier, exclusive=True)
    except OSError:
        os.close(fd)
        raise
    if not taken:
        pid = system.flock_holder(os.fstat(fd))
        os.close(fd)
        who = f" (pid {pid})" if pid else ""
        raise Refused(
            f"a memtomem process{who} holds the lifecycle barrier {show(barrier, home)}; stop it"
            f"{f' (for example `kill {pid}`)' if pid else ''}, then run mm uninstall again.",
            path=str(barrier),
        )
    held.fds.append(fd)


def release_quietly(fs: FsOps, held: Held) -> None:
    with contextlib.suppress(OSError):
        held.release(fs)
