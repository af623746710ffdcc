"""The result of a run, as a value. Only the renderer turns it into text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from memtomem.uninstall.errors import ExitCode
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
    exit_code: int
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
    unrestored: tuple[tuple[Path, Path], ...] = ()
    warnings: tuple[str, ...] = field(default=())
    dry_run: bool = False
    previewed: bool = False  # the report and the warnings were shown before the prompt

    @property
    def envelope_status(self) -> str:
        if self.exit_code == ExitCode.REMOVED:
            return "success"
        if self.exit_code in (ExitCode.ROLLBACK_INCOMPLETE, ExitCode.LEFTOVER):
            return "partial"
        return "error"
