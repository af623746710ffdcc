"""Runtime-directory candidates and the trust rule that guards them."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from memtomem.uninstall import system, trust
from memtomem.uninstall.fsops import FsOps

# memtomem's own rule, mirrored: this variable names the one runtime dir, but only while
# PYTEST_CURRENT_TEST is set too, so it can never redirect a user's run (upstream's tests,
# and ours, point memtomem and this command at one private dir with it).
MEMTOMEM_TEST_RUNTIME_DIR = "_MEMTOMEM_TEST_RUNTIME_DIR"


def candidates(fs: FsOps, env: Mapping[str, str]) -> tuple[Path, ...]:
    """Every runtime dir memtomem 0.6.12 or older releases may have used; primary first."""
    override = env.get(MEMTOMEM_TEST_RUNTIME_DIR)
    if override and env.get("PYTEST_CURRENT_TEST"):
        return (Path(override),)
    uid = system.euid()
    if system.IS_WINDOWS:  # pragma: no cover
        local = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return (Path(local) / "Temp" / "memtomem-0",)
    found = [Path(f"/tmp/memtomem-{uid}")]
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and _private_dir(fs, Path(xdg)):
        found.append(Path(xdg) / "memtomem")
    found.append(Path(_tempdir(fs, env)) / f"memtomem-{uid}")
    found.append(Path(f"/run/user/{uid}/memtomem"))
    unique: dict[str, Path] = {}
    for path in found:  # one directory, one candidate, however the environment spelled it
        unique.setdefault(os.path.join(os.path.realpath(path.parent), path.name), path)
    return tuple(unique.values())


def _tempdir(fs: FsOps, env: Mapping[str, str]) -> str:
    """tempfile.gettempdir()'s choice, computed from `env` rather than the process's."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = env.get(name)
        if value and _is_dir(fs, Path(value)):
            return value
    if sys.platform != "win32":
        return "/tmp"
    import tempfile  # here: only Windows asks it, and `mm` starts faster

    return tempfile.gettempdir()


def _is_dir(fs: FsOps, path: Path) -> bool:
    try:
        return stat.S_ISDIR(fs.stat(path).st_mode)
    except OSError:
        return False


def _private_dir(fs: FsOps, path: Path) -> bool:
    """Whether memtomem would use this dir: its rule for a runtime dir (trust.py)."""
    try:
        st = fs.lstat(path)
    except OSError:
        return False
    return trust.of_runtime_dir(st) is None
