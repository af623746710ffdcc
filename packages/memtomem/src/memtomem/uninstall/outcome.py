"""The result of a run, as a value. Only the renderer turns it into text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from memtomem.uninstall.errors import (
    ExitCode,
    NotConfirmed,
    UninstallError,
    Unrestored,
    WipeFailed,
    signal_exit,
)
from memtomem.uninstall.integrations import Integration
from memtomem.uninstall.inventory import Inventory
from memtomem.uninstall.layout import Layout
from memtomem.uninstall.plan import Plan
from memtomem.uninstall.probes import Finding
from memtomem.uninstall.recovery import Recovery


class Status(Enum):
    REMOVED = "removed"
    NOTHING = "nothing-to-remove"
    DRY_RUN = "dry-run"
    DECLINED = "declined"
    REFUSED = "refused"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_INCOMPLETE = "rollback-incomplete"
    LEFTOVER = "leftover"
    INTERRUPTED = "interrupted"
    INTERNAL_ERROR = "internal-error"

    @property
    def exit_code(self) -> ExitCode:
        """What a run that ends this way exits with (one that a signal ended: see Outcome)."""
        return _EXIT_CODES[self]


_EXIT_CODES = {
    Status.REMOVED: ExitCode.REMOVED,
    Status.NOTHING: ExitCode.REMOVED,
    Status.DRY_RUN: ExitCode.REMOVED,
    Status.DECLINED: ExitCode.DECLINED,
    Status.REFUSED: ExitCode.REFUSED,
    Status.ROLLED_BACK: ExitCode.ROLLED_BACK,
    Status.ROLLBACK_INCOMPLETE: ExitCode.ROLLBACK_INCOMPLETE,
    Status.LEFTOVER: ExitCode.LEFTOVER,
    Status.INTERRUPTED: ExitCode.ROLLED_BACK,  # always with the signal, which decides
    Status.INTERNAL_ERROR: ExitCode.INTERNAL_ERROR,
}
_ERROR_STATUS = {
    ExitCode.DECLINED: Status.DECLINED,
    ExitCode.REFUSED: Status.REFUSED,
    ExitCode.ROLLED_BACK: Status.ROLLED_BACK,
    ExitCode.ROLLBACK_INCOMPLETE: Status.ROLLBACK_INCOMPLETE,
}


def status_of(error: UninstallError) -> Status:
    """How a run that raised `error` ends: its class's exit code names the status, except
    that a wipe a signal stopped was interrupted."""
    if isinstance(error, WipeFailed) and error.signal is not None:
        return Status.INTERRUPTED
    if isinstance(error, NotConfirmed):
        return Status.DECLINED
    return _ERROR_STATUS[ExitCode(error.exit_code)]


@dataclass(frozen=True)
class Prepared:
    """Everything known before the confirmation prompt."""

    layout: Layout
    recovery: Recovery
    inventory: Inventory
    findings: tuple[Finding, ...]
    plan: Plan
    integrations: tuple[Integration, ...]
    binary_hint: str
    warnings: tuple[str, ...]
    blocking: tuple[Finding, ...] = ()

    @property
    def has_work(self) -> bool:
        return bool(self.plan.moves) or self.plan.remove_state_dir


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str = ""
    prepared: Prepared | None = None
    layout: Layout | None = None
    findings: tuple[Finding, ...] = ()
    recovery: Recovery | None = None
    path: str | None = None
    hint: str | None = None
    removed_files: int = 0
    removed_bytes: int | None = 0  # None: some files stayed, so the bytes are not known
    leftovers: tuple[tuple[str, str], ...] = ()
    leftover_count: int = 0
    restore: tuple[str, ...] = ()
    unrestored: tuple[Unrestored, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    dry_run: bool = False
    previewed: bool = False  # the report and the warnings were shown before the prompt
    signal: int | None = None  # the signal that ended the run, if one did

    @property
    def exit_code(self) -> int:
        """The one rule: 128+N when signal N ended the run, else the status's code."""
        return signal_exit(self.signal) if self.signal is not None else self.status.exit_code

    @property
    def envelope_status(self) -> str:
        if self.exit_code == ExitCode.REMOVED:
            return "success"
        if self.exit_code in (ExitCode.ROLLBACK_INCOMPLETE, ExitCode.LEFTOVER):
            return "partial"
        return "error"
