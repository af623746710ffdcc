"""What `mm uninstall` does once its options are parsed: recover, prepare, confirm, wipe,
and the Outcome of each way that can end. Loaded only when the command runs; the command
hands it the delete step (the design card keeps that in the command's module)."""

from __future__ import annotations

import os
import signal as signals_
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace

from memtomem.cli.progress import ProgressLine
from memtomem.cli.terminal import ask, columns, emit
from memtomem.uninstall import pace, report, system
from memtomem.uninstall.errors import NotConfirmed, Refused, UninstallError, WipeFailed
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.layout import Layout, build_layout
from memtomem.uninstall.locks import Held, hold_run_lock, release_quietly
from memtomem.uninstall.outcome import Outcome, Prepared, Status, status_of
from memtomem.uninstall.printable import show
from memtomem.uninstall.probes import InUse
from memtomem.uninstall.recovery import Recovery
from memtomem.uninstall.signals import Deferred, deferred
from memtomem.uninstall.steps import (
    Options,
    lock_for_wipe,
    prepare,
    recover_interrupted,
    recovery_failure,
)
from memtomem.uninstall.tree import Progress, Removal

Delete = Callable[[FsOps, Prepared, Deferred, Progress | None], Removal]


def run(fs: FsOps, options: Options, delete: Delete, *, yes: bool, as_json: bool) -> Outcome:
    system.raise_fd_limit()
    env = dict(os.environ)
    layout = build_layout(fs, env)
    held = Held()
    with ExitStack() as stack:
        stack.callback(release_quietly, fs, held)
        outcome = _run(fs, env, layout, held, options, delete, stack, yes=yes, as_json=as_json)
    final = outcome.layout or layout
    leftover = [
        f"could not remove {show(path, final.home)}, made for this run: {reason}"
        for path, reason in held.problems
    ]
    found = outcome.prepared.warnings if outcome.prepared else final.warnings
    return replace(outcome, warnings=(*found, *leftover))


def _run(
    fs: FsOps,
    env: dict[str, str],
    layout: Layout,
    held: Held,
    options: Options,
    delete: Delete,
    stack: ExitStack,
    *,
    yes: bool,
    as_json: bool,
) -> Outcome:
    recovery: Recovery | None = None
    prepared: Prepared | None = None
    previewed = False
    try:
        held.fds += hold_run_lock(fs, layout.home).fds
        with deferred() as signals:
            recovery = recover_interrupted(
                fs, layout, env, dry_run=options.dry_run, stop=signals.stopping
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
        previewed = not as_json
        _confirm(prepared, yes=yes, as_json=as_json)
    except OSError as exc:
        return _refusal(_unreadable(exc, layout), layout, recovery)
    except UninstallError as error:
        return replace(_refusal(error, layout, recovery, prepared), previewed=previewed)
    except KeyboardInterrupt:
        return Outcome(
            Status.INTERRUPTED,
            "Interrupted; nothing was changed.",
            prepared=prepared,
            layout=layout,
            recovery=recovery,
            previewed=previewed,
            signal=signals_.SIGINT,
        )
    wiped = _wipe(fs, prepared, held, options, delete, as_json, stack)
    return replace(wiped, previewed=previewed)


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
    fs: FsOps,
    prepared: Prepared,
    held: Held,
    options: Options,
    delete: Delete,
    as_json: bool,
    stack: ExitStack,
) -> Outcome:
    layout = prepared.layout
    with deferred() as signals:
        try:
            lock_for_wipe(fs, prepared, held, options)
            removal = delete(fs, prepared, signals, _progress(prepared, as_json, stack))
        except WipeFailed as error:
            return _failed(prepared, error)
        except OSError as exc:
            return _refusal(_unreadable(exc, layout), layout, prepared.recovery, prepared)
        except UninstallError as error:
            return _refusal(error, layout, prepared.recovery, prepared)
    return _removed(prepared, removal, signals.pending(), prepared.recovery)


def _failed(prepared: Prepared, error: WipeFailed) -> Outcome:
    status = status_of(error)
    return Outcome(
        status,
        error.message,
        prepared=prepared,
        layout=prepared.layout,
        recovery=prepared.recovery,
        path=error.path,
        restore=error.commands,
        unrestored=error.unrestored,
        signal=error.signal if status is Status.INTERRUPTED else None,
    )


def _preview_only(prepared: Prepared, *, dry_run: bool) -> Outcome:
    if dry_run:
        status, message = Status.DRY_RUN, "Dry run: nothing was changed."
    elif prepared.plan.rows:
        status, message = Status.NOTHING, "Nothing to remove: everything found is kept."
    else:
        status, message = Status.NOTHING, "No memtomem state found; nothing to remove."
    return Outcome(
        status,
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
        prepared=prepared,
        layout=prepared.layout,
        recovery=recovery,
        removed_files=removal.files,
        removed_bytes=None if removal.error_count or removal.stopped else prepared.plan.bytes,
        leftovers=tuple(removal.errors),
        leftover_count=removal.error_count,
        signal=signal,  # a signal after the last delete still ends the run as 128+N
    )
    if removal.stopped and signal is not None:
        message = (
            f"interrupted by signal {signal} while deleting; run mm uninstall again to finish."
        )
        return replace(base, status=Status.INTERRUPTED, message=message)
    if removal.error_count:
        message = (
            f"Removed memtomem's state, but {removal.error_count} item(s) could not be deleted; "
            "fix the cause below, then run mm uninstall again to finish."
        )
        return replace(base, status=Status.LEFTOVER, message=message, signal=None)
    message = f"Removed {removal.files} files ({report.size(prepared.plan.bytes)})."
    return replace(base, message=message)


def _refusal(
    error: UninstallError,
    layout: Layout,
    recovery: Recovery | None,
    prepared: Prepared | None = None,
) -> Outcome:
    findings = error.findings if isinstance(error, InUse) else ()
    return Outcome(
        status_of(error),
        error.message,
        prepared=prepared,
        layout=layout,
        findings=findings,
        recovery=recovery,
        path=error.path,
        hint=error.hint,
    )


def _confirm(prepared: Prepared, *, yes: bool, as_json: bool) -> None:
    """Show the report and ask. Under --json the report goes to stderr, and only when
    someone is asked: stdout then holds nothing but the document."""
    warnings = [f"Warning: {w}" for w in prepared.warnings]
    if not as_json:
        emit("\n".join([*warnings, *report.preview(prepared, columns(sys.stdout))]))
    if yes:
        return
    if not sys.stdin.isatty():
        raise NotConfirmed(
            "no terminal to confirm on; run again with -y to remove without "
            "asking. Nothing was changed."
        )
    if as_json:
        emit("\n".join([*warnings, *report.preview(prepared, columns(sys.stderr))]), err=True)
    if not ask():
        raise NotConfirmed("Not confirmed. Nothing was changed.")


def _progress(prepared: Prepared, as_json: bool, stack: ExitStack) -> Progress | None:
    """A progress line on the terminal, for a delete expected to take over a second."""
    plan = prepared.plan
    if as_json or not sys.stderr.isatty() or not pace.worth_showing(plan.files, plan.bytes):
        return None
    line = ProgressLine((plan.files, plan.bytes), columns(sys.stderr), sys.stderr)
    stack.callback(line.close)
    return line.update
