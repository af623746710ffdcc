"""Fail loudly when anything touches the real home's memtomem files or the real runtime dir.

Installed as a Python audit hook, so it sees every open, rename, remove, mkdir and scandir
made by the code under test, in this process and in launched `mm` subprocesses.
"""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

_HOME_NAMES = (
    ".memtomem",
    ".claude.json",
    ".codex",
    ".cursor",
    ".codeium",
    ".gemini",
    ".kimi",
    ".kimi-code",
    ".config/Claude",
)
_EVENTS = {
    "open",
    "os.rename",
    "os.replace",
    "os.remove",
    "os.rmdir",
    "os.mkdir",
    "os.scandir",
    "os.listdir",
    "os.chmod",
    "os.chown",
    "os.symlink",
    "os.link",
    "os.truncate",
    "os.utime",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copyfile",
}


class RealStateTouched(RuntimeError):
    pass


def forbidden_roots() -> tuple[str, ...]:
    uid = os.getuid()
    home = Path(pwd.getpwuid(uid).pw_dir)
    roots = [str(home / name) for name in _HOME_NAMES]
    roots += [f"/tmp/memtomem-{uid}", f"/run/user/{uid}/memtomem"]
    return tuple(roots)


def _hits(value: object, roots: tuple[str, ...]) -> str | None:
    if isinstance(value, int) or value is None:
        return None
    try:
        text = os.fsdecode(os.fspath(value))  # type: ignore[arg-type]
    except TypeError:
        return None
    full = os.path.normpath(os.path.join(os.getcwd(), text)) if text else text
    for root in roots:
        if full == root or full.startswith(root + "/"):
            return full
    return None


def install() -> None:
    roots = forbidden_roots()

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event not in _EVENTS:
            return
        for value in args[:2]:
            hit = _hits(value, roots)
            if hit is not None:
                raise RealStateTouched(f"a test touched real memtomem state: {event} {hit}")

    sys.addaudithook(hook)
