"""The durable record of one run: written before the first move, read by recovery."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from memtomem.uninstall.fsops import FsOps

FORMAT = "memtomem-uninstall-journal"
VERSION = 1
JOURNAL_NAME = ".uninstall-journal.json"
TEMP_NAME = JOURNAL_NAME + ".tmp"


class State(Enum):
    STAGING = "staging"
    COMMITTED = "committed"


@dataclass(frozen=True)
class Staged:
    group: str
    src: Path
    dst: Path


@dataclass(frozen=True)
class Journal:
    """One run. Every staging dir holds a copy; only the primary's copy records COMMITTED."""

    pid: int
    started: float
    state: State
    primary: Path
    stagings: tuple[tuple[Path, Path], ...]
    moves: tuple[Staged, ...]
    keep_config: bool
    keep_data: bool
    state_dir: Path | None

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "pid": self.pid,
            "started": self.started,
            "state": self.state.value,
            "primary": str(self.primary),
            "stagings": [{"anchor": str(a), "staging": str(s)} for a, s in self.stagings],
            "moves": [{"group": m.group, "src": str(m.src), "dst": str(m.dst)} for m in self.moves],
            "flags": {"keep_config": self.keep_config, "keep_data": self.keep_data},
            "remove_state_dir": None if self.state_dir is None else str(self.state_dir),
        }
        return json.dumps(doc, ensure_ascii=True, indent=1).encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Journal:
        doc = json.loads(raw.decode("ascii"))
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError("not a journal of a known format")
        removal = doc["remove_state_dir"]
        return cls(
            pid=int(doc["pid"]),
            started=float(doc["started"]),
            state=State(doc["state"]),
            primary=Path(doc["primary"]),
            stagings=tuple((Path(s["anchor"]), Path(s["staging"])) for s in doc["stagings"]),
            moves=tuple(Staged(m["group"], Path(m["src"]), Path(m["dst"])) for m in doc["moves"]),
            keep_config=bool(doc["flags"]["keep_config"]),
            keep_data=bool(doc["flags"]["keep_data"]),
            state_dir=None if removal is None else Path(removal),
        )

    def committed(self) -> Journal:
        return Journal(**{**self.__dict__, "state": State.COMMITTED})

    @classmethod
    def new(
        cls,
        primary: Path,
        stagings: tuple[tuple[Path, Path], ...],
        moves: tuple[Staged, ...],
        *,
        keep_config: bool,
        keep_data: bool,
        state_dir: Path | None,
    ) -> Journal:
        return cls(
            os.getpid(),
            time.time(),
            State.STAGING,
            primary,
            stagings,
            moves,
            keep_config,
            keep_data,
            state_dir,
        )


def write(fs: FsOps, staging: Path, journal: Journal) -> None:
    """Durably (re)write the journal in `staging`: temp file, fsync, rename, fsync dir."""
    temp = staging / TEMP_NAME
    try:
        fs.unlink(temp)
    except FileNotFoundError:
        pass
    fs.write_file(temp, journal.to_bytes())
    fs.replace(temp, staging / JOURNAL_NAME)
    fs.fsync_dir(staging)


def read(fs: FsOps, staging: Path) -> Journal | None:
    """The journal in `staging`, or None when it is missing or unreadable."""
    try:
        return Journal.from_bytes(fs.read_bytes(staging / JOURNAL_NAME))
    except (OSError, ValueError, KeyError, TypeError):
        return None
