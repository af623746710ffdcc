"""`mm uninstall`: a thin shell. Options -> layout -> run -> render -> exit code.

Only click and the error types load with this module, so `mm uninstall --help` starts
fast; the machinery (uninstall_run and the uninstall package) loads when the command runs."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from memtomem.uninstall.errors import ExitCode, WipeFailed
from memtomem.uninstall.fsops import FsOps

if TYPE_CHECKING:
    from pathlib import Path

    from memtomem.uninstall.errors import Unrestored
    from memtomem.uninstall.outcome import Outcome, Prepared
    from memtomem.uninstall.signals import Deferred
    from memtomem.uninstall.transaction import StageFailed
    from memtomem.uninstall.tree import Progress, Removal

# The seam the test launcher swaps: every filesystem call goes through this object.
make_fsops: Callable[[], FsOps] = FsOps


class _UninstallPartialError(WipeFailed):
    """The wipe failed after it started and everything was moved back: state as before."""

    def __init__(self, failure: StageFailed, home: Path, message: str | None = None):
        super().__init__(message or _failure_text(failure, home), path=str(failure.path))
        self.failure = failure
        self.signal = failure.signal

    @classmethod
    def of(cls, failure: StageFailed, home: Path) -> _UninstallPartialError:
        """The error for a failure that was fully rolled back."""
        if failure.cause is not None and failure.cause.errno == errno.EXDEV:
            return _AcrossFilesystems(failure, home)
        return cls(failure, home)

    @classmethod
    def rollback_failed(
        cls,
        failure: StageFailed,
        home: Path,
        stagings: list[Path],
        unrestored: tuple[Unrestored, ...],
    ) -> _UninstallPartialError:
        return _RollbackFailed(failure, home, stagings, unrestored)


class _AcrossFilesystems(_UninstallPartialError):
    """A move met another filesystem only once the wipe had begun: put back, and refused."""

    exit_code = ExitCode.REFUSED


class _RollbackFailed(_UninstallPartialError):
    """Undoing failed too: nothing is deleted; print where each item is and how to move it."""

    exit_code = ExitCode.ROLLBACK_INCOMPLETE

    def __init__(
        self,
        failure: StageFailed,
        home: Path,
        stagings: list[Path],
        unrestored: tuple[Unrestored, ...],
    ):
        cause = _failure_text(failure, home, restored=False)
        if unrestored:
            undone = f"putting everything back failed for {len(unrestored)} item(s)"
        else:
            undone = f"everything was put back, but {len(stagings)} staging dir(s) stayed"
        super().__init__(
            failure, home, f"{cause}; {undone}. Nothing was deleted: every byte is still on disk."
        )
        from memtomem.uninstall.recipes import restore_commands

        self.unrestored = unrestored
        self.commands = tuple(restore_commands(stagings, unrestored))


def _failure_text(failure: StageFailed, home: Path, *, restored: bool = True) -> str:
    from memtomem.uninstall.printable import show

    shown = show(failure.path, home)
    after = "; everything was put back, nothing was changed" if restored else ""
    if failure.signal is not None:
        return f"interrupted by signal {failure.signal}{after}"
    cause = failure.cause
    if cause is not None and cause.errno == errno.EXDEV:
        return (
            f"{shown} is on another filesystem than its directory and cannot be moved "
            f"atomically{after}. Move it onto the same filesystem or remove it yourself."
        )
    reason = (cause.strerror or str(cause)) if cause is not None else "unknown error"
    fix = ". Fix the cause and run mm uninstall again." if restored else ""
    return f"could not {failure.action} {shown}: {reason}{after}{fix}"


def _delete_inventory(
    fs: FsOps, prepared: Prepared, signals: Deferred, progress: Progress | None
) -> Removal:
    """Stage every non-kept group into `.uninstall-staging-<pid>` beside it, then delete the
    staging dirs; on any failure move everything back and raise _UninstallPartialError."""
    from memtomem.uninstall.transaction import StageFailed, Transaction
    from memtomem.uninstall.tree import Removal

    plan = prepared.plan
    if not plan.moves:
        removal = Removal()
        if plan.remove_state_dir:
            try:
                fs.rmdir(prepared.layout.state_dir)
            except OSError as exc:
                removal.fail(str(prepared.layout.state_dir), exc.strerror or str(exc))
        return removal
    home = prepared.layout.home
    transaction = Transaction(fs, plan, interrupted=signals.pending)
    try:
        try:
            transaction.stage()
            transaction.commit()
        except StageFailed as failure:
            unrestored = transaction.rollback()
            left = transaction.left()
            if unrestored or left:
                raise _UninstallPartialError.rollback_failed(
                    failure, home, left, unrestored
                ) from None
            raise _UninstallPartialError.of(failure, home) from None
        if progress is not None:
            progress(0, 0)  # the delete starts
        removal = transaction.finish(stop=signals.stopping, progress=progress)
    finally:
        transaction.close()
    if progress is not None:
        progress(removal.files, removal.bytes)  # the bar ends at the true total
    return removal


# README.md's "Usage" and "Exit codes" tables say the same; tests/test_help.py compares them.
_EXIT_CODES = """\
\b
Exit codes:
  0      removed, nothing to remove, or a dry run that would proceed
  1      not confirmed
  2      refused; nothing changed
  3      failed and rolled back; nothing changed
  4      rollback incomplete; nothing deleted, restore commands printed
  5      removed with leftovers; run again to finish
  70     internal error
  128+N  interrupted by signal N (130: Ctrl-C)"""


@click.command("uninstall", epilog=_EXIT_CODES)
@click.option(
    "--keep-config",
    is_flag=True,
    help="Keep config.json, config.d/, config.json.bak-* and known_projects.json.",
)
@click.option(
    "--keep-data",
    is_flag=True,
    help="Keep the database (with its -wal, -shm and -journal files, provenance key and "
    "pre-reset backups), memories/, agents/, skills/ and commands/.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Proceed past heuristic evidence of use: an unlocked pid file naming a live process "
    "that looks like memtomem, a SQLite lock on the database, or a database that cannot be "
    "checked. Never past a held lock.",
)
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Do not ask for confirmation. Without it and without a terminal, nothing is removed.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would happen, recovery included; change nothing, not even a lock file.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout for every outcome (schema memtomem.uninstall, "
    "version 1).",
)
def uninstall(
    keep_config: bool, keep_data: bool, force: bool, yes: bool, dry_run: bool, as_json: bool
) -> None:
    """Remove memtomem's local state: database, memories, config, uploads and runtime files.

    The memtomem program itself stays installed; the report names the command that removes
    it, for the way it was installed.
    """
    from memtomem.cli.terminal import columns, emit
    from memtomem.cli.uninstall_run import run
    from memtomem.uninstall import report
    from memtomem.uninstall.steps import Options

    options = Options(keep_config=keep_config, keep_data=keep_data, force=force, dry_run=dry_run)
    try:
        outcome = run(make_fsops(), options, _delete_inventory, yes=yes, as_json=as_json)
    except Exception as bug:  # a bug, not an expected failure: still one clear answer
        outcome = _internal_error(bug, dry_run=dry_run)
    if as_json:
        emit(report.json_text(outcome), nl=False)
    else:
        err = outcome.exit_code not in (0, 1)
        width = columns(sys.stderr if err else sys.stdout)
        emit(report.text(outcome, width), nl=False, err=err)
    sys.exit(int(outcome.exit_code))


def _internal_error(bug: Exception, *, dry_run: bool) -> Outcome:
    from memtomem.uninstall.outcome import Outcome, Status
    from memtomem.uninstall.printable import escape

    what = escape(f"{type(bug).__name__}: {bug}")[:300]
    after = (
        "nothing was changed"
        if dry_run
        else "if it had begun to remove, run mm uninstall again: it finishes or undoes an "
        "interrupted run first"
    )
    return Outcome(
        Status.INTERNAL_ERROR,
        f"mm uninstall stopped on an internal error ({what}); {after}. Please report it.",
        dry_run=dry_run,
    )
