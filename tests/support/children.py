"""Real child processes that hold real locks: flocks, SQLite writers, idle connections.

Each child prints "ready" once it holds what it holds, then blocks on stdin. `Children`
kills every child it started (SIGKILL, then waits), so a lock never outlives its test.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

READY_TIMEOUT = 15.0

# argv[1]: path template ({pid}, {ppid} filled in by the child); argv[2]: "ex" or "sh".
# The path is created if missing, as a server creates its sentinels and markers.
FLOCK = (
    "import fcntl, os, sys; "
    "path = sys.argv[1].format(pid=os.getpid(), ppid=os.getppid()); "
    "fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644); "
    "fcntl.flock(fd, fcntl.LOCK_EX if sys.argv[2] == 'ex' else fcntl.LOCK_SH); "
    "print('ready', path, flush=True); "
    "sys.stdin.read()"
)

# argv[1]: a directory, locked (flock) through a read-only descriptor of its own.
DIR_FLOCK = (
    "import fcntl, os, sys; "
    "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); "
    "fcntl.flock(fd, fcntl.LOCK_EX); "
    "print('ready', flush=True); "
    "sys.stdin.read()"
)

# argv[1]: database; argv[2]: "wal" or "delete" journal mode; argv[3]: "write" or "idle".
# One committed insert first, so a WAL holds real frames; then, for "write", an open
# BEGIN IMMEDIATE with an uncommitted insert (the write lock stays held).
SQLITE = (
    "import sqlite3, sys; "
    "db = sqlite3.connect(sys.argv[1], isolation_level=None); "
    "db.execute('PRAGMA journal_mode=' + sys.argv[2]); "
    "db.execute('INSERT INTO notes(body) VALUES (?)', ('committed',)); "
    "sys.argv[3] == 'write' and db.execute('BEGIN IMMEDIATE'); "
    "sys.argv[3] == 'write' and db.execute('INSERT INTO notes(body) VALUES (?)', ('open',)); "
    "db.execute('SELECT count(*) FROM notes').fetchone(); "
    "print('ready', flush=True); "
    "sys.stdin.read()"
)

# Holds nothing; argv carries a tag so its command line can look like memtomem's (or not).
IDLE = "import sys; print('ready', flush=True); sys.stdin.read()"


@dataclass
class Child:
    proc: subprocess.Popen[str]
    argv: list[str]
    said: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def command(self) -> str:
        """The command line as /proc shows it (NULs as spaces)."""
        return " ".join(self.argv)

    @property
    def shown(self) -> str:
        """Its command line as our messages show it: up to 60 characters, a longer one cut
        to 59 and "…"."""
        return shown_command(self.command)


def shown_command(command: str) -> str:
    return command if len(command) <= 60 else command[:59] + "\u2026"


class Children:
    """Start children and always kill them: use as a context manager (or call close)."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    def start(self, script: str, *args: str) -> Child:
        return self.spawn([sys.executable, "-c", script, *args])

    def spawn(self, argv: list[str]) -> Child:
        """Any program that prints a line starting with "ready" once it is set."""
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        child = Child(proc, argv, "")
        self.started.append(child)
        child.said = _wait_ready(proc)
        return child

    def flock(self, path: Path | str, *, shared: bool = False) -> Child:
        return self.start(FLOCK, str(path), "sh" if shared else "ex")

    def flock_dir(self, path: Path) -> Child:
        return self.start(DIR_FLOCK, str(path))

    def sqlite(self, db: Path, *, mode: str = "wal", write: bool = True) -> Child:
        return self.start(SQLITE, str(db), mode, "write" if write else "idle")

    def idle(self, *tags: str) -> Child:
        return self.start(IDLE, *tags)

    def unrelated(self) -> Child:
        """A live process whose command line says nothing of memtomem, wherever the repo is."""
        return self.spawn(["/bin/sh", "-c", "echo ready; exec cat"])

    def close(self) -> None:
        for child in self.started:
            if child.proc.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
        for child in self.started:
            child.proc.wait(timeout=30)
            for stream in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
                if stream is not None:
                    stream.close()
        self.started.clear()

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("ready"):
                return line.strip()
            break
        if proc.poll() is not None:
            break
    proc.kill()
    _out, err = proc.communicate(timeout=10)
    raise RuntimeError(f"child never became ready (exit {proc.returncode}): {err}")
