"""`mm uninstall`: a thin shell. Options -> layout -> run -> render -> exit code."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import click

from memtomem.uninstall import render, system
from memtomem.uninstall.display import show
from memtomem.uninstall.errors import ExitCode, NotConfirmed, Refused, UninstallError
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.journal import Journal, Staged
from memtomem.uninstall.layout import Layout, build_layout
from memtomem.uninstall.locks import Held, hold_run_lock, release_quietly
from memtomem.uninstall.outcome import Outcome, Prepared, Status
from memtomem.uninstall.probes import InUse
from memtomem.uninstall.recipes import restore_commands
from memtomem.uninstall.recovery import Recovery
from memtomem.uninstall.service import (
    Options,
    lock_for_wipe,
    prepare,
    recover_interrupted,
    recovery_failure,
)
from memtomem.uninstall.signals import Deferred, deferred
from memtomem.uninstall.transaction import StageFailed, Transaction
from memtomem.uninstall.tree import Progress, Removal

# The seam the test launcher swaps: every filesystem call goes through this object.
make_fsops: Callable[[], FsOps] = FsOps
PROGRESS_THRESHOLD_FILES = 20_000


class _UninstallPartialError(UninstallError):
    """The wipe failed after it started and everything was moved back: state as before."""

    exit_code: int = ExitCode.ROLLED_BACK

    def __init__(self, failure: StageFailed, home: Path, message: str | None = None):
        self.failure = failure
        self.signal = failure.signal
        super().__init__(message or _failure_text(failure, home), path=str(failure.path))
        if failure.signal is not None:
            self.exit_code = 128 + failure.signal
        elif failure.cause is not None and failure.cause.errno == errno.EXDEV:
            self.exit_code = ExitCode.REFUSED

    @classmethod
    def rollback_failed(
        cls, failure: StageFailed, home: Path, journal: Journal, unrestored: tuple[Staged, ...]
    ) -> _UninstallPartialError:
        return _RollbackFailed(failure, home, journal, unrestored)


class _RollbackFailed(_UninstallPartialError):
    """Undoing failed too: nothing is deleted; print where each item is and how to move it."""

    def __init__(
        self, failure: StageFailed, home: Path, journal: Journal, unrestored: tuple[Staged, ...]
    ):
        cause = _failure_text(failure, home, restored=False)
        super().__init__(
            failure,
            home,
            f"{cause}; putting everything back failed for {len(unrestored)} item(s). "
            "Nothing was deleted: every byte is still on disk.",
        )
        self.exit_code = ExitCode.ROLLBACK_INCOMPLETE
        self.unrestored = unrestored
        self.commands = restore_commands([s for _a, s in journal.stagings], unrestored)


def _failure_text(failure: StageFailed, home: Path, *, restored: bool = True) -> str:
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
        transaction.stage()
        transaction.mark_committed()
    except StageFailed as failure:
        unrestored = transaction.rollback()
        if unrestored:
            journal = transaction.journal
            raise _UninstallPartialError.rollback_failed(
                failure, home, journal, unrestored
            ) from None
        raise _UninstallPartialError(failure, home) from None
    removal = transaction.commit(stop=signals.stopping, progress=progress)
    if progress is not None:
        progress(removal.files, removal.bytes)  # the bar ends at the true total
    return removal


@click.command("uninstall")
@click.option("--keep-config", is_flag=True, help="Keep config.json, config.d/ and backups.")
@click.option(
    "--keep-data",
    is_flag=True,
    help="Keep the database, memories/, agents/, skills/ and commands/.",
)
@click.option(
    "--force", is_flag=True, help="Proceed past heuristic in-use evidence (never past a held lock)."
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (see README).")
def uninstall(
    keep_config: bool, keep_data: bool, force: bool, yes: bool, dry_run: bool, as_json: bool
) -> None:
    """Remove memtomem's local state: database, memories, config, uploads and runtime files."""
    options = Options(keep_config=keep_config, keep_data=keep_data, force=force, dry_run=dry_run)
    outcome = run(options, yes=yes, as_json=as_json)
    click.echo(
        render.json_text(outcome) if as_json else render.text(outcome),
        nl=False,
        err=not as_json and outcome.exit_code not in (0, 1),
    )
    sys.exit(int(outcome.exit_code))


def run(options: Options, *, yes: bool, as_json: bool) -> Outcome:
    system.raise_fd_limit()
    fs = make_fsops()
    env = dict(os.environ)
    layout = build_layout(fs, env)
    held = Held()
    with ExitStack() as stack:
        stack.callback(release_quietly, fs, held)
        outcome = _run(fs, env, layout, held, options, stack, yes=yes, as_json=as_json)
    final = outcome.layout or layout
    leftover = [
        f"could not remove {show(path, final.home)}, made for this run: {reason}"
        for path, reason in held.problems
    ]
    return replace(outcome, warnings=(*final.warnings, *leftover))


def _run(
    fs: FsOps,
    env: dict[str, str],
    layout: Layout,
    held: Held,
    options: Options,
    stack: ExitStack,
    *,
    yes: bool,
    as_json: bool,
) -> Outcome:
    recovery: Recovery | None = None
    try:
        held.fds += hold_run_lock(fs, layout.home).fds
        with deferred() as signals:
            recovery = recover_interrupted(
                fs, layout, dry_run=options.dry_run, stop=signals.stopping
            )
        stopped = recovery_failure(layout, recovery, signals.pending())
        if stopped is not None:
            return stopped
        if recovery.runs and not options.dry_run:
            layout = build_layout(fs, env)  # recovery may have put config.json back
        prepared = prepare(fs, layout, options, recovery, env)
        if prepared.blocking:
            refusal = _refusal(InUse(prepared.blocking), layout, recovery, prepared)
            return replace(refusal, dry_run=options.dry_run)
        if options.dry_run or not prepared.has_work:
            return _preview_only(prepared, dry_run=options.dry_run)
        _confirm(prepared, yes=yes, as_json=as_json)
    except OSError as exc:
        return _refusal(_unreadable(exc, layout), layout, recovery)
    except UninstallError as error:
        return _refusal(error, layout, recovery)
    except KeyboardInterrupt:
        message = "Interrupted; nothing was changed."
        return Outcome(Status.INTERRUPTED, 130, message, layout=layout, recovery=recovery)
    return _wipe(fs, prepared, held, options, as_json, stack)


def _unreadable(exc: OSError, layout: Layout) -> Refused:
    """An I/O error before anything moved: refuse, naming the path."""
    path = exc.filename if isinstance(exc.filename, str) else None
    where = show(path, layout.home) if path else "the store"
    return Refused(
        f"could not examine {where}: {exc.strerror or exc}; nothing was changed. Fix the cause "
        "and run mm uninstall again.",
        path=path,
    )


def _wipe(
    fs: FsOps, prepared: Prepared, held: Held, options: Options, as_json: bool, stack: ExitStack
) -> Outcome:
    layout = prepared.layout
    with deferred() as signals:
        try:
            lock_for_wipe(fs, prepared, held, options)
            removal = _delete_inventory(fs, prepared, signals, _progress(prepared, as_json, stack))
        except _UninstallPartialError as error:
            return _failed(prepared, error)
        except OSError as exc:
            return _refusal(_unreadable(exc, layout), layout, prepared.recovery, prepared)
        except UninstallError as error:
            return _refusal(error, layout, prepared.recovery, prepared)
    return _removed(prepared, removal, signals.pending(), prepared.recovery)


def _failed(prepared: Prepared, error: _UninstallPartialError) -> Outcome:
    base = Outcome(
        Status.ROLLED_BACK,
        error.exit_code,
        error.message,
        prepared=prepared,
        layout=prepared.layout,
        recovery=prepared.recovery,
        path=error.path,
    )
    if isinstance(error, _RollbackFailed):
        return replace(
            base,
            status=Status.ROLLBACK_INCOMPLETE,
            restore=tuple(error.commands),
            unrestored=tuple((m.dst, m.src) for m in error.unrestored),
        )
    if error.signal:
        return replace(base, status=Status.INTERRUPTED)
    if error.exit_code == ExitCode.REFUSED:
        return replace(base, status=Status.REFUSED)
    return base


def _preview_only(prepared: Prepared, *, dry_run: bool) -> Outcome:
    status, message = (Status.DRY_RUN, "") if dry_run else (Status.NOTHING, "Nothing to remove.")
    return Outcome(
        status,
        ExitCode.REMOVED,
        message,
        prepared=prepared,
        layout=prepared.layout,
        recovery=prepared.recovery,
        dry_run=dry_run,
    )


def _removed(
    prepared: Prepared, removal: Removal, signal: int | None, recovery: Recovery
) -> Outcome:
    base = Outcome(
        Status.REMOVED,
        ExitCode.REMOVED,
        prepared=prepared,
        layout=prepared.layout,
        recovery=recovery,
        removed_files=removal.files,
        removed_bytes=None if removal.error_count else prepared.plan.bytes,
        leftovers=tuple(removal.errors),
        leftover_count=removal.error_count,
    )
    if removal.stopped and signal is not None:
        message = (
            f"interrupted by signal {signal} while deleting; run mm uninstall again to finish."
        )
        return replace(base, status=Status.INTERRUPTED, exit_code=128 + signal, message=message)
    if removal.error_count:
        message = (
            f"Removed memtomem's state, but {removal.error_count} item(s) could not be deleted; "
            "fix the cause below, then run mm uninstall again to finish."
        )
        return replace(base, status=Status.LEFTOVER, exit_code=ExitCode.LEFTOVER, message=message)
    message = f"Removed {removal.files} files ({render.size(prepared.plan.bytes)})."
    code = 128 + signal if signal is not None else ExitCode.REMOVED
    return replace(base, exit_code=code, message=message)


def _refusal(
    error: UninstallError,
    layout: Layout,
    recovery: Recovery | None,
    prepared: Prepared | None = None,
) -> Outcome:
    findings = error.findings if isinstance(error, InUse) else ()
    status = Status.DECLINED if isinstance(error, NotConfirmed) else Status.REFUSED
    return Outcome(
        status,
        error.exit_code,
        error.message,
        prepared=prepared,
        layout=layout,
        findings=findings,
        recovery=recovery,
        path=error.path,
        hint=error.hint,
    )


def _confirm(prepared: Prepared, *, yes: bool, as_json: bool) -> None:
    if not as_json:
        warnings = [f"Warning: {w}" for w in prepared.warnings]
        click.echo("\n".join([*warnings, *render.preview(prepared)]))
    if yes:
        return
    if not sys.stdin.isatty():
        raise NotConfirmed(
            "no terminal to confirm on; run again with -y to remove without "
            "asking. Nothing was changed."
        )
    if not click.confirm("Remove it?", default=False, err=True):
        raise NotConfirmed("Not confirmed. Nothing was changed.")


def _progress(prepared: Prepared, as_json: bool, stack: ExitStack) -> Progress | None:
    if as_json or prepared.plan.files < PROGRESS_THRESHOLD_FILES or not sys.stderr.isatty():
        return None
    bar = stack.enter_context(
        click.progressbar(
            length=prepared.plan.files, label="Deleting", file=sys.stderr, show_pos=True
        )
    )
    done = [0]

    def update(files: int, size: int) -> None:
        bar.label = f"Deleting ({render.size(size)})"
        bar.update(files - done[0])
        done[0] = files

    return update
