"""Platform differences, in one place: locks, flags and error classes per OS."""

from __future__ import annotations

import errno
import os
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass

IS_WINDOWS = sys.platform == "win32"
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
O_BINARY = getattr(os, "O_BINARY", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
O_READ_PROBE = os.O_RDONLY | O_NOFOLLOW | O_NONBLOCK | getattr(os, "O_NOCTTY", 0)

# Windows: access denied, sharing violation, lock violation. Antivirus and indexers
# hold files for a moment; these clear up when retried.
_TRANSIENT_WINERRORS = frozenset({5, 32, 33})
_TRANSIENT_ERRNOS = frozenset({errno.EBUSY, errno.ETXTBSY}) if IS_WINDOWS else frozenset()


def euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


def raise_fd_limit() -> None:
    """Allow as many descriptors as the hard limit: walks hold one per directory level."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
        except (ValueError, OSError):
            pass


def is_transient(exc: OSError) -> bool:
    """A failure worth retrying for a moment (Windows-style sharing conflicts)."""
    winerror = getattr(exc, "winerror", None)
    return winerror in _TRANSIENT_WINERRORS or exc.errno in _TRANSIENT_ERRNOS


def try_flock(fd: int, *, exclusive: bool) -> bool:
    """Take a flock without waiting; False when another process holds it."""
    if IS_WINDOWS:  # pragma: no cover
        return True
    import fcntl

    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


NO_FLOCK = frozenset(
    code for code in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS) if code is not None
)  # what flock fails with on a filesystem without it


def flock_held(fd: int) -> bool:
    """Whether another open file description holds a flock on `fd`'s file.

    Takes the lock for an instant and gives it back: the kernel answers without waiting.
    """
    if not try_flock(fd, exclusive=True):
        return True
    if not IS_WINDOWS:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
    return False


@dataclass(frozen=True)
class RangeLock:
    exclusive: bool
    pid: int


_FLOCK_STRUCT = "hhqqi4x"  # struct flock on 64-bit Linux: type, whence, start, len, pid


def posix_lock_at(fd: int, start: int, length: int) -> RangeLock | None:
    """Ask the kernel who holds a POSIX record lock on a byte range, taking none."""
    if IS_WINDOWS or not sys.platform.startswith("linux"):  # pragma: no cover
        return None
    import fcntl

    query = struct.pack(_FLOCK_STRUCT, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    kind, _whence, _start, _len, pid = struct.unpack(_FLOCK_STRUCT, answer)
    if kind == fcntl.F_UNLCK:
        return None
    return RangeLock(exclusive=kind == fcntl.F_WRLCK, pid=pid)


def flock_holder(st: os.stat_result) -> int | None:
    """The pid /proc/locks names for a flock on this inode (Linux; best effort)."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.readlines()
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        fields = line.split()
        if "FLOCK" in fields and wanted in fields and "->" not in fields:
            try:
                return int(fields[fields.index(wanted) - 1])
            except ValueError:
                return None
    return None


_MOUNTINFO_ESCAPE = re.compile(rb"\\([0-7]{3})")
Mounts = frozenset[tuple[int, int]]  # (st_dev, st_ino) of mount points


def is_mount(st: os.stat_result, mounts: Mounts) -> bool:
    return (st.st_dev, st.st_ino) in mounts


def mount_points_below(directories: Iterable[str]) -> Mounts:
    """(st_dev, st_ino) of each mount point at or below these directories (Linux; empty
    elsewhere). A walk must not enter one: a bind mount of the same filesystem has its
    parent's st_dev, so comparing devices alone would delete through it."""
    try:
        with open("/proc/self/mountinfo", "rb") as info:
            lines = info.read().splitlines()
    except OSError:
        return frozenset()
    bases = [os.path.realpath(d).rstrip("/") for d in directories]
    found = set()
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        raw = _MOUNTINFO_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4])
        point = os.fsdecode(raw)
        if any(point == base or point.startswith(base + "/") for base in bases):
            try:
                st = os.lstat(point)
            except OSError:
                continue
            found.add((st.st_dev, st.st_ino))
    return frozenset(found)


MAX_PID = 2**31 - 1  # what os.kill takes (a pid_t); Linux's own limit is lower


def process_alive(pid: int) -> bool:
    if not 0 < pid <= MAX_PID:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return False
    return True


def process_command(pid: int) -> str | None:
    """The command line of a process, for messages (Linux; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip() or None
