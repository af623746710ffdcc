"""The filesystem seam: every call of inventory, wipe and recovery goes through FsOps.

Tests subclass it and override `before`/`after` to inject faults or kill the process at
an exact operation; the shipped object does nothing extra.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Protocol, TypeVar

from memtomem.uninstall import system

T = TypeVar("T")
PathArg = str | os.PathLike[str]


class Listing(Protocol):
    """What os.scandir returns: an iterator of entries that is also a context manager."""

    def __iter__(self) -> Iterator[os.DirEntry[str]]: ...
    def __next__(self) -> os.DirEntry[str]: ...
    def __enter__(self) -> Listing: ...
    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def close(self) -> None: ...


class FsOps:
    """Filesystem verbs with transient-failure retry. Never follows links."""

    def __init__(self, *, retry_seconds: float = 2.0) -> None:
        self.retry_seconds = retry_seconds
        # The bulk verbs (entry_lstat, unlink_names) skip the per-call hooks when no subclass
        # installed any: a million calls through them cost about a second.
        cls = type(self)
        self.hooked = cls.before is not FsOps.before or cls.after is not FsOps.after

    # Overridable seam: called around every operation with its name and target.
    def before(self, op: str, target: str) -> None:
        """Called before operation `op` on `target`."""

    def after(self, op: str, target: str) -> None:
        """Called after operation `op` on `target` succeeded."""

    def _named(self, name: str, dir_fd: int | None) -> str:
        """The hook target of a call relative to `dir_fd`: its full path, so a hook can
        match or record it (looked up only when hooks are installed)."""
        if dir_fd is None or not self.hooked or not os.path.isdir("/proc/self/fd"):
            return name
        return os.readlink(f"/proc/self/fd/{dir_fd}") + "/" + name

    def _call(self, op: str, target: str, func: Callable[[], T]) -> T:
        self.before(op, target)
        result = func()
        self.after(op, target)
        return result

    def _retrying(self, op: str, target: str, func: Callable[[], T]) -> T:
        try:
            return self._call(op, target, func)
        except OSError as exc:
            if not system.is_transient(exc):
                raise
        import random  # here, not at the top: only a retry needs it, and `mm` starts faster

        deadline = time.monotonic() + self.retry_seconds
        delay = 0.01
        while True:
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)
            try:
                return self._call(op, target, func)
            except OSError as exc:
                if not system.is_transient(exc) or time.monotonic() >= deadline:
                    raise

    # Reads.
    def lstat(self, path: PathArg, *, dir_fd: int | None = None) -> os.stat_result:
        p = os.fspath(path)
        return self._call("lstat", self._named(p, dir_fd), lambda: os.lstat(p, dir_fd=dir_fd))

    def stat(self, path: PathArg) -> os.stat_result:
        """Follows links: only for locating directories named by the environment."""
        p = os.fspath(path)
        return self._call("stat", p, lambda: os.stat(p))

    def scandir(self, path: PathArg | int) -> Listing:
        target = str(path) if isinstance(path, int) else os.fspath(path)
        arg: str | int = path if isinstance(path, int) else os.fspath(path)
        return self._call("scandir", target, lambda: os.scandir(arg))

    def read_bytes(self, path: PathArg, limit: int = 1 << 20, *, follow: bool = False) -> bytes:
        """Up to `limit` bytes. `follow` reads through a link, as memtomem reads its config."""
        p = os.fspath(path)
        flags = system.O_READ_PROBE | system.O_BINARY
        if follow:
            flags &= ~system.O_NOFOLLOW

        def read() -> bytes:
            fd = os.open(p, flags)
            try:
                return os.read(fd, limit)
            finally:
                os.close(fd)

        return self._call("read", p, read)

    def open_fd(self, path: PathArg, flags: int, mode: int = 0o644) -> int:
        """A raw descriptor, for lock files and probes. Never follows a final link."""
        p = os.fspath(path)
        op = "create" if flags & os.O_CREAT else "open"
        return self._call(op, p, lambda: os.open(p, flags | system.O_NOFOLLOW, mode))

    def open_dir(self, path: PathArg, *, dir_fd: int | None = None) -> int:
        p = os.fspath(path)
        flags = os.O_RDONLY | system.O_DIRECTORY | system.O_NOFOLLOW
        return self._call("open", self._named(p, dir_fd), lambda: os.open(p, flags, dir_fd=dir_fd))

    def entry_lstat(self) -> Callable[[os.DirEntry[str]], os.stat_result]:
        """The function that lstats a directory entry (DirEntry caches the answer)."""
        if not self.hooked:
            return _entry_lstat
        return lambda entry: self._call("lstat", entry.path, lambda: _entry_lstat(entry))

    # Locks, on descriptors the seam opened; `path` names the file for the hooks.
    def try_flock(self, fd: int, path: PathArg, *, exclusive: bool) -> bool:
        """Take a flock without waiting; False when another process holds it."""
        return self._call(
            "flock", os.fspath(path), lambda: system.try_flock(fd, exclusive=exclusive)
        )

    def flock_held(self, fd: int, path: PathArg) -> bool:
        """Whether another process holds a flock on the file (takes it for an instant)."""
        return self._call("flock", os.fspath(path), lambda: system.flock_held(fd))

    def record_lock(
        self, fd: int, path: PathArg, start: int, length: int
    ) -> system.RangeLock | None:
        """Who holds a POSIX record lock on a byte range; takes none."""
        return self._call("getlk", os.fspath(path), lambda: system.posix_lock_at(fd, start, length))

    # Writes.
    def replace(self, src: PathArg, dst: PathArg) -> None:
        s, d = os.fspath(src), os.fspath(dst)
        self._retrying("replace", f"{s} -> {d}", lambda: os.replace(s, d))

    def mkdir(self, path: PathArg, mode: int = 0o700) -> None:
        p = os.fspath(path)
        self._call("mkdir", p, lambda: os.mkdir(p, mode))

    def chmod(self, path: PathArg, mode: int) -> None:
        p = os.fspath(path)
        self._call("chmod", p, lambda: os.chmod(p, mode, follow_symlinks=False))

    def unlink(self, path: PathArg, *, dir_fd: int | None = None) -> None:
        p = os.fspath(path)
        self._retrying("unlink", self._named(p, dir_fd), lambda: os.unlink(p, dir_fd=dir_fd))

    def unlink_names(self, names: list[str], dir_fd: int) -> list[tuple[str, OSError]]:
        """Unlink each name in `dir_fd`; the failures, in order.

        Without hooks, a first attempt calls os.unlink directly; whatever it could not
        remove goes through `unlink` (hooks and transient retries) like every other call."""
        candidates = names
        if not self.hooked:
            unlink = os.unlink
            candidates = []
            for name in names:
                try:
                    unlink(name, dir_fd=dir_fd)
                except OSError:
                    candidates.append(name)
        failed: list[tuple[str, OSError]] = []
        for name in candidates:
            try:
                self.unlink(name, dir_fd=dir_fd)
            except OSError as exc:
                failed.append((name, exc))
        return failed

    def rmdir(self, path: PathArg, *, dir_fd: int | None = None) -> None:
        p = os.fspath(path)
        self._retrying("rmdir", self._named(p, dir_fd), lambda: os.rmdir(p, dir_fd=dir_fd))

    def write_file(self, path: PathArg, data: bytes, mode: int = 0o600) -> None:
        """Create `path` exclusively, write `data` and fsync it."""
        p = os.fspath(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | system.O_NOFOLLOW | system.O_BINARY
        fd = self._call("create", p, lambda: os.open(p, flags, mode))
        try:
            self._call("write", p, lambda: _write_all(fd, data))
            self._call("fsync", p, lambda: os.fsync(fd))
        finally:
            os.close(fd)

    def fsync_dir(self, path: PathArg) -> None:
        """Make a directory's entries durable (a no-op where directories cannot be synced)."""
        if system.IS_WINDOWS:  # pragma: no cover
            return
        p = os.fspath(path)

        def sync() -> None:
            fd = os.open(p, os.O_RDONLY | system.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        self._call("fsync", p, sync)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _entry_lstat(entry: os.DirEntry[str]) -> os.stat_result:
    return entry.stat(follow_symlinks=False)


def stat_entry(fs: FsOps, entry: os.DirEntry[str]) -> os.stat_result:
    """lstat a directory entry through the seam (DirEntry caches the answer)."""
    return fs.entry_lstat()(entry)
