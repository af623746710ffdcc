"""The steps before the wipe: recover, scan, probe, plan. Returns values; never prints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from memtomem.uninstall import config, install, integrations, probes, trust
from memtomem.uninstall.errors import Refused
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.inventory import scan
from memtomem.uninstall.layout import DEFAULT_DB_NAME, Layout, spelled_through
from memtomem.uninstall.locks import Held, hold_barrier
from memtomem.uninstall.outcome import Outcome, Prepared, Status
from memtomem.uninstall.plan import build_plan
from memtomem.uninstall.printable import show
from memtomem.uninstall.recipes import restore_commands
from memtomem.uninstall.recovery import Recovery, Scope, own_stagings, recover
from memtomem.uninstall.transaction import Stop, staging_name


@dataclass(frozen=True)
class Options:
    keep_config: bool = False
    keep_data: bool = False
    force: bool = False
    dry_run: bool = False


def recover_interrupted(
    fs: FsOps, layout: Layout, env: Mapping[str, str], *, dry_run: bool, stop: Stop
) -> Recovery:
    """Recover in the state dir, the DB's dir and every trusted runtime dir: the directories
    this layout names, and the DB's dir that a config staged by an interrupted run names."""
    db_paths = [layout.db_path]
    for staging in own_stagings(fs, layout.state_dir):
        path, _source, _warnings = config.resolve_db_path(
            fs, staging, layout.state_dir / DEFAULT_DB_NAME, layout.home, layout.cwd, env
        )
        db_paths.append(spelled_through(path, (layout.state_dir, *layout.runtime_dirs)))
    trusted = []
    for directory in layout.runtime_dirs:
        try:
            if trust.of_runtime_dir(fs.lstat(directory)) is None:
                trusted.append(directory)
        except OSError:
            continue
    scope = Scope(layout.state_dir, tuple(dict.fromkeys(db_paths)), tuple(trusted))
    return recover(fs, scope, dry_run=dry_run, stop=stop)


def recovery_failure(layout: Layout, recovery: Recovery, signal: int | None) -> Outcome | None:
    """An outcome that must stop the run when recovery could not finish its work."""
    unrestored = recovery.unrestored
    if unrestored:
        stagings = [s for run in recovery.runs if run.unrestored for s in run.stagings]
        commands = restore_commands(stagings, unrestored)
        return Outcome(
            Status.ROLLBACK_INCOMPLETE,
            "an interrupted uninstall could not be undone completely; nothing was deleted",
            layout=layout,
            recovery=recovery,
            restore=tuple(commands),
            unrestored=unrestored,
        )
    if recovery.leftovers:
        return Outcome(
            Status.LEFTOVER,
            "an interrupted uninstall was finished, but some files could not be deleted",
            layout=layout,
            recovery=recovery,
            leftovers=recovery.leftovers,
            leftover_count=len(recovery.leftovers),
        )
    if signal is not None:
        message = f"interrupted by signal {signal}; recovery was completed first"
        if any(run.stopped for run in recovery.runs):
            message = (
                f"interrupted by signal {signal} while finishing an interrupted uninstall; "
                "run mm uninstall again to finish."
            )
        return Outcome(
            Status.INTERRUPTED,
            message,
            layout=layout,
            recovery=recovery,
            signal=signal,
        )
    return None


def prepare(
    fs: FsOps, layout: Layout, options: Options, recovery: Recovery, env: Mapping[str, str]
) -> Prepared:
    """Scan, probe and plan. Raises Refused for an unsafe layout; a store in use is
    returned as `blocking` findings, so even a refusal can show the plan."""
    inventory = scan(fs, layout)
    liveness = probes.probe(fs, inventory)
    blocking = liveness.blocking(force=options.force)
    plan = build_plan(
        inventory,
        keep_config=options.keep_config,
        keep_data=options.keep_data,
        held=liveness.held,
    )
    if not options.dry_run and not blocking:
        _check_staging_free(fs, layout, plan.anchors)
    return Prepared(
        blocking=blocking,
        layout=layout,
        recovery=recovery,
        inventory=inventory,
        findings=liveness.findings,
        plan=plan,
        integrations=integrations.find(fs, layout.home, layout.cwd, env),
        binary_hint=install.removal_hint(env),
        warnings=(*layout.warnings, *inventory.notes),
    )


def lock_for_wipe(fs: FsOps, prepared: Prepared, held: Held, options: Options) -> None:
    """After confirmation: take the barrier, then probe once more while holding it."""
    barrier = prepared.layout.primary_runtime_dir / "lifecycle.lock"
    hold_barrier(fs, held, barrier, prepared.layout.home)
    blocking = probes.probe(fs, prepared.inventory, barrier=False).blocking(force=options.force)
    if blocking:
        raise probes.InUse(blocking)


def _check_staging_free(fs: FsOps, layout: Layout, anchors: tuple[object, ...]) -> None:
    for anchor in layout.state_dir, layout.db_dir, *layout.runtime_dirs:
        if anchor not in anchors:
            continue
        target = anchor / staging_name()
        try:
            fs.lstat(target)
        except FileNotFoundError:
            continue
        raise Refused(
            f"{show(target, layout.home)} already exists and is not a run this command can "
            "resume; move it out of the way, then run mm uninstall again.",
            path=str(target),
        )
