"""The frozen Layout: every path the uninstall works on, built once at the edge."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from memtomem.uninstall import config, runtime
from memtomem.uninstall.fsops import FsOps

STATE_DIR_NAME = ".memtomem"
DEFAULT_DB_NAME = "memtomem.db"


@dataclass(frozen=True)
class Layout:
    home: Path
    state_dir: Path
    db_path: Path
    db_source: str
    runtime_dirs: tuple[Path, ...]
    cwd: Path
    warnings: tuple[str, ...] = ()

    @property
    def db_dir(self) -> Path:
        return self.db_path.parent

    @property
    def primary_runtime_dir(self) -> Path:
        return self.runtime_dirs[0]

    @property
    def store_digest(self) -> str:
        return path_digest(self.db_path)


def path_digest(db_path: Path) -> str:
    """The 16-hex digest 0.6.12 names pid files and presence markers by."""
    try:
        resolved = db_path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        resolved = db_path
    text = os.path.normcase(str(resolved))
    if sys.platform == "darwin":  # pragma: no cover
        text = text.lower()
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def build_layout(
    fs: FsOps, env: Mapping[str, str], *, home: Path | None = None, cwd: Path | None = None
) -> Layout:
    """Read HOME, the config chain and the runtime-dir candidates, once."""
    home = home if home is not None else Path(env.get("HOME") or Path.home())
    cwd = cwd if cwd is not None else Path.cwd()
    state_dir = home / STATE_DIR_NAME
    default_db = state_dir / DEFAULT_DB_NAME
    db_path, source, warnings = config.resolve_db_path(fs, state_dir, default_db, home, cwd, env)
    return Layout(
        home=home,
        state_dir=state_dir,
        db_path=db_path,
        db_source=source,
        runtime_dirs=runtime.candidates(fs, env),
        cwd=cwd,
        warnings=tuple(warnings),
    )
