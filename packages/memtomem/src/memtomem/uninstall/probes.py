"""Liveness: who is using the store. Probing takes no lock it keeps and writes no byte."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtomem.uninstall import system
from memtomem.uninstall.errors import Refused
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.inventory import Inventory, Role
from memtomem.uninstall.printable import ELLIPSIS, escape, quote, show

_SQLITE_HEADER = b"SQLite format 3\x00"
_LOCK_BYTES = 0x40000000  # SQLite's PENDING, RESERVED and SHARED bytes start here
_WAL_WRITE, _WAL_DMS = 120, 128  # write lock and per-connection lock in the -shm file
# Opening a probed file fails harmlessly only when there is nothing to probe: it is gone, it
# is a link (never followed; what it points at is not ours), or a parent is not a directory.
_NOTHING_THERE = frozenset({errno.ENOENT, errno.ELOOP, errno.ENOTDIR})


@dataclass(frozen=True)
class Finding:
    path: Path
    what: str
    hint: str
    pid: int | None
    forceable: bool
    blocks: bool = True


@dataclass(frozen=True)
class Liveness:
    findings: tuple[Finding, ...]

    @property
    def held(self) -> frozenset[Path]:
        return frozenset(f.path for f in self.findings if not f.forceable)

    def blocking(self, *, force: bool) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.blocks and not (force and f.forceable))


class InUse(Refused):
    """The store is in use; each finding names the process or path and how to stop it."""

    def __init__(self, findings: tuple[Finding, ...]):
        first = findings[0]
        super().__init__(first.what, path=str(first.path), hint=first.hint)
        self.findings = findings


class _Unreadable(Exception):
    """A probed file exists but cannot be opened: whether it is in use cannot be told."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(str(path))
        self.path = path
        self.reason = error.strerror or str(error)


def probe(fs: FsOps, inventory: Inventory, *, barrier: bool = True) -> Liveness:
    """Check every lock and marker of the store. `barrier=False` when we hold it ourselves.
    A file that cannot be checked is a finding of its own: probing never fails open."""
    home = inventory.layout.home
    findings: list[Finding] = []
    if barrier and inventory.barrier is not None:
        findings.extend(_guarded(_probe_barrier, fs, inventory.barrier, home))
    for entry in inventory.entries:
        role = Role.PID_FILE if entry.path.name == ".server.pid" else entry.role
        if role is not Role.PLAIN and entry.kind == "file":
            findings.extend(_guarded(_probe_runtime_file, fs, entry.path, home, role))
    findings.extend(_guarded(_probe_database, fs, inventory.layout.db_path, home))
    return Liveness(tuple(findings))


def _guarded(
    check: Callable[..., Finding | None], fs: FsOps, path: Path, home: Path, *more: Any
) -> list[Finding]:
    """Run one check; a file it cannot open or query is a finding, never a pass. For a lock
    file that may hide a held flock, which --force never overrides; for the database, the
    same heuristic standing as a writer's lock."""
    try:
        found = check(fs, path, home, *more)
    except (_Unreadable, OSError) as exc:
        problem = exc if isinstance(exc, _Unreadable) else _Unreadable(path, exc)
        return [_unknown(problem, home, forceable=check is _probe_database)]
    return [] if found is None else [found]


def _unknown(problem: _Unreadable, home: Path, *, forceable: bool) -> Finding:
    shown = show(problem.path, home)
    advice = "; if you are sure no process uses the database, pass --force" if forceable else ""
    return Finding(
        problem.path,
        f"cannot tell whether {shown} is in use: it cannot be checked ({problem.reason})",
        f"Make it readable to you (for example `chmod u+r {quote(problem.path)}`), then run mm "
        f"uninstall again{advice}.",
        None,
        forceable=forceable,
    )


def _open(fs: FsOps, path: Path) -> int | None:
    """A read-only descriptor for probing `path`; None when there is nothing to probe."""
    try:
        return fs.open_fd(path, system.O_READ_PROBE)
    except OSError as exc:
        if exc.errno in _NOTHING_THERE:
            return None
        raise _Unreadable(path, exc) from exc


def _probe_barrier(fs: FsOps, path: Path, home: Path) -> Finding | None:
    fd = _open(fs, path)
    if fd is None:
        return None
    try:
        if not fs.flock_held(fd, path):
            return None
        pid = system.flock_holder(os.fstat(fd))
    finally:
        os.close(fd)
    return Finding(
        path,
        f"a memtomem process {_process(pid)}holds the lifecycle barrier {show(path, home)}",
        _stop_hint(pid),
        pid,
        forceable=False,
    )


def _probe_runtime_file(fs: FsOps, path: Path, home: Path, role: Role) -> Finding | None:
    fd = _open(fs, path)
    if fd is None:
        return None
    try:
        held = fs.flock_held(fd, path)
        holder = system.flock_holder(os.fstat(fd)) if held else None
        body = _read(path, fd, 256) if role in (Role.PID_FILE, Role.WEB_PID) else b""
    finally:
        os.close(fd)
    pid = holder or _pid_in(path, body)
    shown = show(path, home)
    if held:
        return _held_finding(path, role, pid, shown)
    if role in (Role.PID_FILE, Role.WEB_PID) and pid and _looks_like_memtomem(pid):
        return Finding(
            path,
            f"pid file {shown} names a running process {_process(pid)}but is not locked",
            f"{_stop_hint(pid)} If that process is not memtomem, pass --force.",
            pid,
            forceable=True,
        )
    return None


def _held_finding(path: Path, role: Role, pid: int | None, shown: str) -> Finding:
    who = _process(pid)
    if role is Role.WEB_PID:
        return Finding(
            path,
            f"mm web {who}is running ({shown} is locked)",
            f"Stop it with `mm web stop`{_kill(pid)}.",
            pid,
            forceable=False,
        )
    if role is Role.FOREIGN_PRESENCE:
        return Finding(
            path,
            f"a memtomem server {who}for another store is running ({shown})",
            "It is left alone.",
            pid,
            forceable=False,
            blocks=False,
        )
    what = {
        Role.PID_FILE: f"server {who}is running for this store",
        Role.SENTINEL: f"process {who}has a store open",
        Role.PRESENCE: f"server {who}is starting or running for this store",
    }[role]
    return Finding(
        path,
        f"a memtomem {what} ({shown} is locked)",
        _stop_hint(pid),
        pid,
        forceable=False,
    )


def _probe_database(fs: FsOps, db: Path, home: Path) -> Finding | None:
    fd = _open(fs, db)
    if fd is None:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or _read(db, fd, 16) != _SQLITE_HEADER:
            return None
        main = fs.record_lock(fd, db, _LOCK_BYTES, 512)
    finally:
        os.close(fd)
    wal = None
    shm = Path(f"{db}-shm")
    shm_fd = _open(fs, shm)
    if shm_fd is not None:
        try:
            wal = fs.record_lock(shm_fd, shm, _WAL_WRITE, 1) or fs.record_lock(
                shm_fd, shm, _WAL_DMS, 1
            )
        except OSError as exc:
            raise _Unreadable(shm, exc) from exc
        finally:
            os.close(shm_fd)
    lock = main if main is not None and (main.exclusive or wal is None) else wal
    if lock is None:
        return None
    writing = lock.exclusive
    what = "is writing to" if writing else "has open"
    return Finding(
        db,
        f"a process {_process(lock.pid)}{what} the database {show(db, home)}",
        f"{_stop_hint(lock.pid)} If you are sure it is not memtomem's, pass --force.",
        lock.pid,
        forceable=True,
    )


def _read(path: Path, fd: int, size: int) -> bytes:
    try:
        return os.read(fd, size)
    except OSError as exc:
        raise _Unreadable(path, exc) from exc


def _pid_in(path: Path, body: bytes) -> int | None:
    """The pid on a pid file's first line, or at the start of a sentinel's name: decimal
    digits naming a possible process, else None (any bytes may be there)."""
    text = body.split(b"\n", 1)[0].decode("ascii", "replace") if body else path.name
    digits = text.split("-", 1)[0].strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 10:
        return None
    pid = int(digits)
    return pid if 0 < pid <= system.MAX_PID else None


def _looks_like_memtomem(pid: int) -> bool:
    if pid == os.getpid() or not system.process_alive(pid):
        return False
    command = system.process_command(pid)
    return command is None or "memtomem" in command or "mm " in f"{command} "


COMMAND_WIDTH = 60  # a process's command line is shown up to this many characters


def _process(pid: int | None) -> str:
    if not pid:
        return ""
    command = system.process_command(pid)
    if command:
        if len(command) > COMMAND_WIDTH:
            command = command[: COMMAND_WIDTH - 1] + ELLIPSIS
        return f"(pid {pid}: {escape(command)}) "
    return f"(pid {pid}) "


def _stop_hint(pid: int | None) -> str:
    target = f"`kill {pid}`" if pid else "closing the editor or terminal that started it"
    return f"Stop it (for example {target}), then run mm uninstall again."


def _kill(pid: int | None) -> str:
    return f" or `kill {pid}`" if pid else ""
