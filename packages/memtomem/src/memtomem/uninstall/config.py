"""Where the database is: memtomem's config chain, read without ever stopping on bad input."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from memtomem.uninstall import jsonread
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.printable import show

ENV_DB_PATH = "MEMTOMEM_STORAGE__SQLITE_PATH"
MAX_CONFIG_BYTES = 16 << 20  # far above any real config; a larger file is ignored, with a warning


def resolve_db_path(
    fs: FsOps, state_dir: Path, default: Path, home: Path, cwd: Path, env: Mapping[str, str]
) -> tuple[Path, str, list[str]]:
    """Apply default < config.json < config.d/*.json (sorted) < environment; later wins."""
    path, source = default, "default"
    warnings: list[str] = []
    main = state_dir / "config.json"
    try:
        chain = [(main, _sqlite_path_in(fs, main, home, warnings))]
    except NotADirectoryError:  # HOME or the state dir is a file: there is no config to read
        chain = []
    if chain:
        for file in _fragments(fs, state_dir / "config.d", home, warnings):
            try:
                chain.append((file, _sqlite_path_in(fs, file, home, warnings)))
            except NotADirectoryError as exc:
                warnings.append(_fallback(file, home, exc.strerror or str(exc)))
    for file, value in chain:
        if value is not None:
            path, source = _absolute(value, home, cwd), show(file, home)
    if env.get(ENV_DB_PATH):
        path, source = _absolute(env[ENV_DB_PATH], home, cwd), ENV_DB_PATH
    return path, source, warnings


def _fragments(fs: FsOps, directory: Path, home: Path, warnings: list[str]) -> list[Path]:
    try:
        with fs.scandir(directory) as entries:
            names = sorted(e.name for e in entries if e.name.endswith(".json"))
    except FileNotFoundError:
        return []
    except OSError as exc:
        warnings.append(f"could not read {show(directory, home)}: {exc.strerror}")
        return []
    return [directory / name for name in names]


def _sqlite_path_in(fs: FsOps, file: Path, home: Path, warnings: list[str]) -> str | None:
    """The setting in one file, or None with a warning; raises NotADirectoryError."""
    try:
        raw = fs.read_bytes(file, MAX_CONFIG_BYTES + 1, follow=True)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise
    except OSError as exc:
        warnings.append(_fallback(file, home, exc.strerror or str(exc)))
        return None
    try:
        data = jsonread.loads(raw, limit=MAX_CONFIG_BYTES)
    except jsonread.Unreadable as exc:
        warnings.append(_fallback(file, home, exc.reason))
        return None
    if not isinstance(data, dict):
        warnings.append(_fallback(file, home, "not a JSON object"))
        return None
    storage = data.get("storage")
    value = storage.get("sqlite_path") if isinstance(storage, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or not _is_path(value):
        warnings.append(_fallback(file, home, "storage.sqlite_path is not a path"))
        return None
    return value


def _is_path(value: str) -> bool:
    """Whether the OS can take `value` as a path: no NUL, and every character encodable
    (a lone surrogate from a JSON escape is not, unless it stands for an undecodable byte)."""
    if "\x00" in value:
        return False
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        return False
    return True


def _fallback(file: Path, home: Path, reason: str) -> str:
    return f"ignored {show(file, home)} ({reason}); its database path setting was not used"


def _absolute(value: str, home: Path, cwd: Path) -> Path:
    if value == "~" or value.startswith("~/"):
        expanded = str(home) + value[1:]
    else:
        expanded = os.path.expanduser(value)
    return Path(os.path.normpath(os.path.join(cwd, expanded)))
