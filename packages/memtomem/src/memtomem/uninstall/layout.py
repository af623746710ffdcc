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
    """Read HOME, the config chain and the runtime-dir candidates, once. Every directory gets
    one spelling: HOME is made absolute with its links and `..` resolved (as the kernel
    reads them), and a database path that reaches the state dir or a runtime dir another way
    is spelled through it, so one directory is never two anchors."""
    cwd = cwd if cwd is not None else Path.cwd()
    if home is None:
        home = Path(os.path.realpath(os.path.join(cwd, env.get("HOME") or Path.home())))
    state_dir = home / STATE_DIR_NAME
    default_db = state_dir / DEFAULT_DB_NAME
    db_path, source, warnings = config.resolve_db_path(fs, state_dir, default_db, home, cwd, env)
    runtime_dirs = runtime.candidates(fs, env)
    return Layout(
        home=home,
        state_dir=state_dir,
        db_path=spelled_through(db_path, (state_dir, *runtime_dirs)),
        db_source=source,
        runtime_dirs=runtime_dirs,
        cwd=cwd,
        warnings=tuple(warnings),
    )


def physical(directory: Path) -> str:
    """Where `directory` is, its parents' links resolved but not a link at its own name (the
    state dir and runtime dirs are checked not to be links, never followed)."""
    return os.path.join(os.path.realpath(directory.parent), directory.name)


def spelled_through(db_path: Path, anchors: tuple[Path, ...]) -> Path:
    """`db_path` spelled below the first of `anchors` whose directory it is in, however the
    config spelled it (a symlinked home, `..`); elsewhere, in its directory's real place (as
    memtomem opens it: through any links on the way)."""
    real = os.path.realpath(db_path.parent)
    for anchor in anchors:
        base = physical(anchor)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return anchor / os.path.relpath(real, base) / db_path.name
    return Path(real) / db_path.name
