"""SQLite's method as the proof of all-or-nothing: for N = 1, 2, ... until a run completes
without reaching call N, fail seam call N once - then, separately, every call from N on.

Every flag combination x three layouts (default; a custom DB outside the state dir; a
busy runtime dir with other stores' sentinels and markers) x seven errors (EACCES, EPERM,
ENOSPC, EIO, EXDEV, EBUSY, a Windows sharing violation). After each run the tree is the
original or the fully removed one, exactly, as the exit code says (4: every byte still on
disk; 5: only staging left), with no traceback; a run that left staging behind is
followed by a clean run that must end fully removed. See support_matrix.judge.

Default mode runs every N for one error and flag set on the default layout, and a
deterministic stride of N for every other sweep; --exhaustive runs every N everywhere.
The tests at the end aim one fault at one step: the bugs this matrix and the properties
found, kept as regressions.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cli import invoke_json
from tests.support.faults import Fault, ScriptedFs
from tests.support.matrix import (
    ERRORS,
    LAYOUTS,
    Rule,
    Scenario,
    Scripted,
    Verdict,
    judge_world,
    sweep,
)
from tests.support.names import JOURNAL, STAGING
from tests.support.snapshot import diff, without
from tests.support.world import FLAG_IDS, FLAGS, World, digest, full_world, write

MAX_CALLS = 5000  # a run of these layouts makes ~300 calls; more means the sweep never ends
STRIDE = 47  # default mode: every 47th N, from an offset that differs per sweep
SWEEPS = list(itertools.product(LAYOUTS, FLAGS, ERRORS))
SWEEP_IDS = [f"{layout}-{FLAG_IDS[FLAGS.index(f)]}-{error}" for layout, f, error in SWEEPS]
MODES = pytest.mark.parametrize("every_from", [False, True], ids=["once", "from-n-on"])

Record = Callable[[str, object], None]


def run_sweep(
    base: Path,
    record: Record,
    layout: str,
    flags: tuple[bool, bool],
    error: str,
    every_from: bool,
    *,
    start: int = 1,
    stride: int = 1,
) -> None:
    def make(n: int) -> Scenario:
        return Scenario(layout, *flags, error, n, every_from)

    count, broken = 0, []
    last: Verdict | None = None
    for last in sweep(base, make, start, stride):
        count += 1
        if last.problems:
            broken.append(str(last))
        assert last.scenario.n < MAX_CALLS, "the run never completes"
    record("scenarios", count)
    assert last is not None and not last.reached and count > 1
    assert not broken, f"{len(broken)} of {count} scenarios broke an invariant:\n" + "\n".join(
        broken[:15]
    )


@MODES
def test_every_call_fails_eio_on_the_default_layout(
    tmp_path: Path, record_property: Record, every_from: bool
) -> None:
    run_sweep(tmp_path, record_property, "default", (False, False), "EIO", every_from)


@pytest.mark.parametrize(("layout", "flags", "error"), SWEEPS, ids=SWEEP_IDS)
def test_sampled_matrix(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    record_property: Record,
    layout: str,
    flags: tuple[bool, bool],
    error: str,
) -> None:
    if request.config.getoption("--exhaustive"):
        pytest.skip("test_exhaustive_matrix runs every N of this sweep")
    offset = 1 + (SWEEPS.index((layout, flags, error)) * 11) % STRIDE
    for every_from in (False, True):
        run_sweep(
            tmp_path, record_property, layout, flags, error, every_from, start=offset, stride=STRIDE
        )


@pytest.mark.exhaustive
@MODES
@pytest.mark.parametrize(("layout", "flags", "error"), SWEEPS, ids=SWEEP_IDS)
def test_exhaustive_matrix(
    tmp_path: Path,
    record_property: Record,
    layout: str,
    flags: tuple[bool, bool],
    error: str,
    every_from: bool,
) -> None:
    run_sweep(tmp_path, record_property, layout, flags, error, every_from)


# One fault aimed at one step: each a bug the matrix or the properties found, kept as a
# regression. A scripted test asserts its fault fired, so it cannot pass vacuously.

Build = Callable[[Path], World]


def scripted(tmp_path: Path, build: Build, make_rule: Callable[[World], Rule]) -> Verdict:
    world = build(tmp_path)
    return judge_world(
        world, Scenario("one-step", False, False, "scripted", 0, False), Scripted(make_rule(world))
    )


def _in_staging(world: World, target: str) -> bool:
    return STAGING in target and target.startswith(
        (str(world.state), str(world.db.parent), str(world.runtime))
    )


def _since_commit(world: World, calls: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The calls after the primary journal was written the second time (COMMITTED), or
    None before that."""
    journal = f" -> {world.state}/{STAGING}{os.getpid()}/{JOURNAL}"
    writes = [i for i, (op, t) in enumerate(calls) if op == "replace" and t.endswith(journal)]
    return calls[writes[1] + 1 :] if len(writes) >= 2 else None


def _moved(world: World, name: str, calls: list[tuple[str, str]]) -> bool:
    return any(o == "replace" and c.startswith(f"{world.state}/{name} -> ") for o, c in calls)


def unlistable_state_dir(world: World) -> Rule:
    """The state dir cannot be listed (EIO), every time."""
    return lambda op, t, _calls: errno.EIO if op == "scandir" and t == str(world.state) else None


def unstatable_memories(world: World) -> Rule:
    """`memories` cannot be stat'ed while it is measured (EIO), every time."""
    memories = str(world.state / "memories")
    return lambda op, t, _calls: errno.EIO if op == "lstat" and t == memories else None


def unopenable_barrier(world: World) -> Rule:
    """lifecycle.lock cannot be opened to take it (EACCES), every time."""
    barrier = str(world.runtime / "lifecycle.lock")
    denied = ("open", "create")
    return lambda op, t, _calls: errno.EACCES if op in denied and t == barrier else None


def unstatable_after_failed_move(world: World) -> Rule:
    """Moving memories into staging fails (EACCES); from then on nothing inside a staging
    dir can be stat'ed (EIO): rollback must cope without knowing where each item is."""

    def rule(op: str, t: str, calls: list[tuple[str, str]]) -> int | None:
        if op == "replace" and t.startswith(f"{world.state}/memories -> "):
            return errno.EACCES
        stuck = _moved(world, "memories", calls) and op == "lstat" and _in_staging(world, t)
        return errno.EIO if stuck else None

    return rule


def staging_unlistable_after_commit(world: World) -> Rule:
    """Once committed, a staging dir cannot be listed (EIO) when it is to be removed."""
    staging = f"{world.runtime}/{STAGING}{os.getpid()}"

    def rule(op: str, t: str, calls: list[tuple[str, str]]) -> int | None:
        committed = _since_commit(world, calls) is not None
        return errno.EIO if op == "scandir" and t == staging and committed else None

    return rule


def staged_dir_unlistable_after_commit(world: World) -> Rule:
    """Once committed, the first staged directory opened for deletion cannot be listed."""

    def below_staging(target: str) -> bool:
        return STAGING in os.path.dirname(target)

    def rule(op: str, t: str, calls: list[tuple[str, str]]) -> int | None:
        since = _since_commit(world, calls)
        if op != "scandir" or not below_staging(t) or since is None:
            return None
        listed = sum(o == "scandir" and below_staging(c) for o, c in since)
        return errno.EACCES if listed == 1 else None  # only the first: one leftover

    return rule


def stuck_after_config_staged(world: World) -> Rule:
    """Every move from `memories` on fails (EACCES), so the rollback fails too: config.json
    and the custom database stay in staging for the next run to put back."""

    def rule(op: str, t: str, calls: list[tuple[str, str]]) -> int | None:
        return errno.EACCES if op == "replace" and _moved(world, "memories", calls) else None

    return rule


def database_dir_unsyncable_after_commit(world: World) -> Rule:
    """Once committed, the custom database's dir cannot be fsynced (EIO): its staging dir's
    removal is not known to be durable, so the primary must keep its record."""
    db_dir = str(world.db.parent)

    def rule(op: str, t: str, calls: list[tuple[str, str]]) -> int | None:
        committed = _since_commit(world, calls) is not None
        return errno.EIO if op == "fsync" and t == db_dir and committed else None

    return rule


def barrier_unlink_fails(times: int) -> Callable[[World], Rule]:
    """Removing the lifecycle.lock the run created fails, `times` times (EBUSY)."""

    def make(world: World) -> Rule:
        barrier = str(world.runtime / "lifecycle.lock")

        def rule(op: str, t: str, calls: list[tuple[str, str]]) -> int | None:
            tried = sum(o == "unlink" and c == barrier for o, c in calls)
            return errno.EBUSY if op == "unlink" and t == barrier and tried <= times else None

        return rule

    return make


@dataclass
class EnvWorld(World):
    """A world whose runs also get `extra` in their environment."""

    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **self.extra}


def env_db_beside_empty_state(root: Path) -> World:
    """An empty ~/.memtomem, and a database named by MEMTOMEM_STORAGE__SQLITE_PATH, alone in
    a directory of the user's: the only moves are outside the state dir."""
    home = root / "home"
    db = root / "outside" / "data" / "custom.db"
    runtime = root / "run" / "memtomem-test"
    world = EnvWorld(root, home, home / ".memtomem", runtime, db)
    world.extra["MEMTOMEM_STORAGE__SQLITE_PATH"] = str(db)
    world.state.mkdir(parents=True)
    runtime.mkdir(parents=True, mode=0o700)
    os.chmod(runtime, 0o700)
    write(runtime / "lifecycle.lock")
    world.tag("database", write(db, b"SQLite format 3\x00" + bytes(100), 0o600))
    return world


def no_faults(world: World) -> Rule:
    return lambda _op, _t, _calls: None


def without_barrier(root: Path) -> World:
    """The default layout on a machine where no server ever created lifecycle.lock."""
    world = full_world(root)
    (world.runtime / "lifecycle.lock").unlink()
    return world


def undecodable_sentinel(root: Path) -> World:
    """The default layout plus a stale sentinel whose name is not UTF-8 (b"\\xff.lock")."""
    world = full_world(root)
    world.tag("runtime", write(world.runtime / "instances" / os.fsdecode(b"\xff.lock")))
    return world


@pytest.mark.parametrize(
    "make_rule",
    [unlistable_state_dir, unstatable_memories, unopenable_barrier],
    ids=["unlistable-state-dir", "unstatable-memories", "unopenable-barrier"],
)
def test_an_unreadable_store_is_refused_with_nothing_changed(
    tmp_path: Path, make_rule: Callable[[World], Rule]
) -> None:
    verdict = scripted(tmp_path, full_world, make_rule)
    assert verdict.reached and verdict.problems == [], str(verdict)
    assert verdict.exit_code == 2, str(verdict)


def test_rollback_copes_when_staging_cannot_be_stated(tmp_path: Path) -> None:
    verdict = scripted(tmp_path, full_world, unstatable_after_failed_move)
    assert verdict.reached and verdict.problems == [], str(verdict)
    assert verdict.exit_code in (3, 4), str(verdict)


@pytest.mark.parametrize(
    "make_rule",
    [staging_unlistable_after_commit, staged_dir_unlistable_after_commit],
    ids=["staging-scandir", "staged-dir-scandir"],
)
def test_a_failed_committed_delete_is_a_named_leftover(
    tmp_path: Path, make_rule: Callable[[World], Rule]
) -> None:
    verdict = scripted(tmp_path, full_world, make_rule)
    assert verdict.reached and verdict.problems == [], str(verdict)
    assert (verdict.exit_code, verdict.follow_up) == (5, 0), str(verdict)


def test_the_run_after_a_failed_rollback_removes_the_custom_database(tmp_path: Path) -> None:
    verdict = scripted(tmp_path, LAYOUTS["custom-db"], stuck_after_config_staged)
    assert verdict.reached and verdict.problems == [], str(verdict)
    assert (verdict.exit_code, verdict.follow_up) == (4, 0), str(verdict)


@pytest.mark.parametrize("keep_config", [False, True], ids=["plain", "keep-config"])
def test_an_unsynced_database_dir_keeps_the_primary_and_says_so(
    tmp_path: Path, keep_config: bool
) -> None:
    """Found by the sampled matrix in CI: the run exited 0 with the primary staging dir
    (its journal) left behind. It is a leftover (exit 5), and the next run finishes."""
    world = LAYOUTS["custom-db"](tmp_path)
    verdict = judge_world(
        world,
        Scenario("one-step", keep_config, False, "scripted", 0, False),
        Scripted(database_dir_unsyncable_after_commit(world)),
    )
    assert verdict.reached and verdict.problems == [], str(verdict)
    assert (verdict.exit_code, verdict.follow_up) == (5, 0), str(verdict)
    assert str(world.db.parent) in verdict.run.output, verdict.run.output


@pytest.mark.parametrize("times", [1, 9], ids=["once", "always"])
def test_a_barrier_the_run_created_is_removed_or_reported(tmp_path: Path, times: int) -> None:
    """Once: the second try removes it. Always: it stays, and the output says so (the
    judge then accepts it, in this run's tree and the next's)."""
    verdict = scripted(tmp_path, without_barrier, barrier_unlink_fails(times))
    assert verdict.reached and verdict.problems == [], str(verdict)
    assert verdict.exit_code == 0, str(verdict)
    assert ("lifecycle.lock" in verdict.run.output) == (times > 1), verdict.run.output


def test_a_sentinel_name_that_is_not_utf8_is_removed(tmp_path: Path) -> None:
    verdict = scripted(tmp_path, undecodable_sentinel, no_faults)
    assert verdict.problems == [], str(verdict)
    assert verdict.exit_code == 0, str(verdict)


def test_only_the_state_dir_is_removed_never_the_databases_directory(tmp_path: Path) -> None:
    verdict = scripted(tmp_path, env_db_beside_empty_state, no_faults)
    assert verdict.problems == [], str(verdict)
    assert verdict.exit_code == 0, str(verdict)


def test_an_unreadable_config_falls_back_to_the_default_with_a_warning(tmp_path: Path) -> None:
    """The spec: a config that cannot be read must not stop an uninstall; the default DB
    path is used and the user is told, in every output, that the setting was ignored."""
    world = full_world(tmp_path, custom_db=True)
    config = str(world.state / "config.json")
    fault = Fault(errno.EIO, op="read", contains=config, every_from=True)
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(fault))
    assert code == 0, doc["message"]
    assert doc["warnings"] == [
        "ignored ~/.memtomem/config.json (Input/output error (injected)); its database path "
        "setting was not used"
    ]
    assert doc["database"] == {"path": str(world.state / "memtomem.db"), "source": "default"}
    # Unknown to this run: the custom DB and the pid file named for it.
    custom = [p for p in world.owned["database"] if p.parent != world.state]
    custom.append(world.runtime / f"server-{digest(world.db)}.pid")
    assert all(p.exists() for p in custom)
    after = world.tree()
    removed = [p for p in world.removed(False, False) if p not in custom]
    expected = without(before, world.root, [*removed, world.state])  # emptied, so removed
    assert after == expected, "\n".join(diff(expected, after))
