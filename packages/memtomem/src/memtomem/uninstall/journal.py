"""The durable record of one run, one copy in each of its staging dirs.

It holds no paths: recovery takes every directory from the current layout, so a journal
can confirm a run and say how far it got, never point anywhere."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from memtomem.uninstall import jsonread
from memtomem.uninstall.fsops import At, FsOps

FORMAT = "memtomem-uninstall-journal"
VERSION = 2
JOURNAL_NAME = ".uninstall-journal.json"
TEMP_NAME = JOURNAL_NAME + ".tmp"
MAX_BYTES = 4096  # a journal is a few hundred bytes whatever the run moves
_RUN_ID = re.compile(r"[0-9a-f]{16}")


class State(Enum):
    STAGING = "staging"
    COMMITTED = "committed"


@dataclass(frozen=True)
class Journal:
    """One copy. `run` ties the copies of one run together; only the primary copy ever
    records COMMITTED, so it alone decides whether recovery finishes or undoes the run."""

    run: str
    pid: int
    state: State
    primary: bool
    remove_state_dir: bool
    items: int  # how many items the run stages, in all its staging dirs: for the report

    @classmethod
    def new(cls, *, items: int, remove_state_dir: bool) -> Journal:
        run = secrets.token_hex(8)
        return cls(run, os.getpid(), State.STAGING, True, remove_state_dir, items)

    def copy_for(self, *, primary: bool) -> Journal:
        return replace(self, primary=primary)

    def committed(self) -> Journal:
        return replace(self, state=State.COMMITTED)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "run": self.run,
            "pid": self.pid,
            "state": self.state.value,
            "primary": self.primary,
            "remove_state_dir": self.remove_state_dir,
            "items": self.items,
        }
        return json.dumps(doc, indent=1).encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Journal | None:
        """The journal in `raw`, or None for anything else (any bytes, any JSON)."""
        try:
            doc = jsonread.loads(raw, limit=MAX_BYTES)
        except jsonread.Unreadable:
            return None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return None
        run, pid, state = doc.get("run"), doc.get("pid"), doc.get("state")
        primary, remove, items = doc.get("primary"), doc.get("remove_state_dir"), doc.get("items")
        if (
            not _is_int(doc.get("version"), VERSION, VERSION)
            or not (isinstance(run, str) and _RUN_ID.fullmatch(run))
            or not _is_int(pid, 1, 2**31 - 1)
            or state not in ("staging", "committed")
            or not isinstance(primary, bool)
            or not isinstance(remove, bool)
            or not _is_int(items, 0, 2**31 - 1)
        ):
            return None
        assert isinstance(pid, int) and isinstance(run, str) and isinstance(state, str)
        assert isinstance(items, int)
        return cls(run, pid, State(state), primary, remove, items)


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def write(fs: FsOps, staging: At, journal: Journal) -> None:
    """Durably (re)write the journal in `staging`: temp file, fsync, rename, fsync dir."""
    try:
        fs.unlink(TEMP_NAME, at=staging)
    except FileNotFoundError:
        pass
    fs.write_file(TEMP_NAME, journal.to_bytes(), at=staging)
    fs.replace(TEMP_NAME, JOURNAL_NAME, src_at=staging, dst_at=staging)
    fs.fsync_dir(staging.path, fd=staging.fd)


def read(fs: FsOps, staging: At) -> Journal | None:
    """The journal in `staging`, or None when it is missing, not a regular file or not one."""
    try:
        raw = fs.read_bytes(JOURNAL_NAME, MAX_BYTES + 1, at=staging)
    except OSError:
        return None
    return Journal.from_bytes(raw)
