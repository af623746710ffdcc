"""Fault injection through the project's own seam: an FsOps subclass with scripted rules."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from memtomem.uninstall.fsops import FsOps

MUTATIONS = frozenset({"replace", "mkdir", "unlink", "rmdir", "create", "write", "fsync", "chmod"})


class SharingViolation(PermissionError):
    """What Windows raises when another process holds a file open (winerror 32)."""

    winerror = 32


def oserror(code: int) -> OSError:
    if code == -32:
        return SharingViolation(errno.EACCES, "The process cannot access the file (simulated)")
    return OSError(code, os.strerror(code) + " (injected)")


@dataclass
class Fault:
    """Fail matching calls: `op` and a substring of the target (or the exact target, `path`);
    the nth match, or from it on."""

    error: int
    op: str | None = None
    contains: str | None = None
    path: str | None = None
    nth: int = 1
    every_from: bool = False
    times: int = 1
    seen: int = 0
    fired: int = 0

    def check(self, op: str, target: str) -> None:
        if self.op is not None and op != self.op:
            return
        if self.contains is not None and self.contains not in target:
            return
        if self.path is not None and target != self.path:
            return
        self.seen += 1
        if self.seen < self.nth:
            return
        if not self.every_from and self.fired >= self.times:
            return
        self.fired += 1
        raise oserror(self.error)


class ScriptedFs(FsOps):
    """Records every call; applies faults; optionally runs a hook at the Nth call."""

    def __init__(
        self,
        *faults: Fault,
        retry_seconds: float = 0.05,
        hook: Callable[[int, str, str, str], None] | None = None,
        only: frozenset[str] | None = None,
    ) -> None:
        super().__init__(retry_seconds=retry_seconds)
        self.faults = list(faults)
        self.calls: list[tuple[str, str]] = []
        self.hook = hook
        self.only = only

    def counted(self, op: str) -> bool:
        return self.only is None or op in self.only

    def before(self, op: str, target: str) -> None:
        if not self.counted(op):
            return
        self.calls.append((op, target))
        if self.hook is not None:
            self.hook(len(self.calls), "before", op, target)
        for fault in self.faults:
            fault.check(op, target)

    def after(self, op: str, target: str) -> None:
        if self.hook is not None and self.counted(op):
            self.hook(len(self.calls), "after", op, target)
