"""One exception base for expected failures; the exit code lives on the class."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import ClassVar


class ExitCode(IntEnum):
    REMOVED = 0
    DECLINED = 1
    REFUSED = 2
    ROLLED_BACK = 3
    ROLLBACK_INCOMPLETE = 4
    LEFTOVER = 5
    INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE: a bug, not an expected failure


# An item a rollback could not move home: (where it is now, where it belongs).
Unrestored = tuple[Path, Path]


def signal_exit(signal: int) -> int:
    """The exit status of a run that signal N interrupted, as a shell reports one: 128+N."""
    return 128 + signal


class UninstallError(Exception):
    """An expected failure: rendered as one clear message, never as a traceback."""

    exit_code: ClassVar[int] = ExitCode.REFUSED

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.hint = hint


class Refused(UninstallError):
    """Nothing was changed: the store is in use, a layout is unsafe, or input is bad."""


class CrossDevice(Refused):
    """An entry lives on another filesystem than its anchor, or is a mount point: no atomic
    move exists."""


class NotConfirmed(UninstallError):
    exit_code = ExitCode.DECLINED


class WipeFailed(UninstallError):
    """The wipe failed after it began, and everything was moved back; `signal` when a signal
    stopped it. The command's subclasses say when not everything came back."""

    exit_code = ExitCode.ROLLED_BACK
    signal: int | None = None
    unrestored: tuple[Unrestored, ...] = ()
    commands: tuple[str, ...] = ()  # shell commands that put everything back
