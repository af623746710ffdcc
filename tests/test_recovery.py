"""Recovery survives being killed itself: a first run is SIGKILLed (mid-staging, or after it
committed), the next `mm uninstall -y` is SIGKILLed at each of its own mutations, and
recovery after that still ends in the original tree or the fully removed one.

The first kill uses a forked child (set-up); in default mode the second, the run under
test, is the real launcher subprocess: every mutation of a rollback recovery, every op kind
and every 3rd step of a roll-forward one, and where the phases of the rest of its run turn
(the custom-DB layout: the lean sample of the kill-point sweep). --exhaustive forks both, at every point, for every layout and
flag combination.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MmRunner
from tests.support.crash import (
    CASE_IDS,
    CASES,
    Case,
    Kill,
    Point,
    Settled,
    Shape,
    assert_tree,
    done,
    fork_kill,
    launcher_kill,
    normalized,
    read_trace,
    record,
    reference_shape,
    run_json,
    sample,
    scratch_root,
    shape_of,
    state_dir_left,
    verify_recovery,
)

FIRST_KILLS = ["mid-staging", "committed", "mid-delete"]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with scratch_root(tmp_path) as path:
        yield path


def first_point(shape: Shape, where: str) -> Point:
    """Where the first run dies: half its items staged; just after COMMITTED; or halfway
    through deleting (the secondary staging dirs gone, the primary half empty)."""
    assert shape.own_commit is not None
    moves = shape.staged_moves()
    if where == "mid-staging":
        return (moves[len(moves) // 2], "after")
    if where == "committed":
        return (shape.own_commit, "after")
    return ((shape.own_commit + shape.n) // 2, "after")


def second_shape(case: Case, first: Point, mm_subprocess: MmRunner, trace: Path) -> Shape:
    """The mutations of the run after the first one died at `first`: its recovery, then its
    own wipe. Traced through the launcher, and again in-process for the ops that raise."""
    world = case.fresh()
    assert fork_kill(case)(world, first) == -9
    before_second = world.tree()
    ran = mm_subprocess("uninstall", *case.args(), env={**world.env, "MM_TEST_TRACE": str(trace)})
    assert ran.returncode == 0, ran.stderr
    assert world.tree() != before_second
    ops = read_trace(trace)
    world = case.fresh()
    assert fork_kill(case)(world, first) == -9
    code, recorder = record(world, *case.args())
    assert code == 0
    assert normalized(recorder.ops, world.root) == normalized(ops, world.root)
    return shape_of(ops, recorder.failed, world)


def recovery_part(shape: Shape) -> list[Point]:
    """Every point of the run's recovery: its mutations before it stages anything itself."""
    end = shape.started if shape.started is not None else shape.n + 1
    return [p for p in shape.points() if p[0] < end]


def sweep_second(
    case: Case, first: Point, first_committed: bool, shape: Shape, point: Point, kill: Kill
) -> None:
    world = case.fresh()
    before = world.tree()
    assert fork_kill(case)(world, first) == -9
    code = kill(world, point)
    assert code == -9, f"the second run's kill at {point} did not happen (exit {code})"
    committed = first_committed or done(point, shape.own_commit)
    verify_recovery(world, before, case.flags, Settled(committed, state_dir_left(shape, point)))


@pytest.mark.parametrize("where", FIRST_KILLS)
@pytest.mark.parametrize("custom_db", [False, True], ids=["default-db", "custom-db"])
def test_recovery_killed_at_its_steps_still_settles(
    tmp_path: Path, root: Path, mm_subprocess: MmRunner, custom_db: bool, where: str
) -> None:
    case = Case(root / "w", custom_db, (False, False))
    first_shape = reference_shape(case, mm_subprocess, tmp_path / "trace-1")
    first = first_point(first_shape, where)
    first_committed = done(first, first_shape.own_commit)
    assert first_committed == (where != "mid-staging")
    shape = second_shape(case, first, mm_subprocess, tmp_path / "trace-2")
    recovering = recovery_part(shape)
    assert recovering, "the second run must have recovery work to be killed in"
    if where != "mid-staging":
        # A roll-forward is a long delete: every op kind, its first and last step, every 3rd.
        kinds = {shape.ops[k - 1].op: (k, w) for k, w in reversed(recovering)}
        ends = {recovering[0], recovering[-1], *kinds.values()}
        recovering = [p for p in recovering if p in ends or p[0] % 3 == 0]
    points = recovering if not custom_db else sample(shape, every_front=False)
    if shape.own_commit is not None and not custom_db:
        # Its own wipe after recovering: where its phases turn (the full sweep is elsewhere).
        marks = [shape.started, shape.journaled, shape.own_commit, shape.record_gone]
        marks += [shape.state_gone, shape.n]
        points += [(k, w) for k in marks if k is not None for w in ("before", "after")]
        points = [p for p in dict.fromkeys(points) if p in shape.points()]
    kill = launcher_kill(case, mm_subprocess)
    for point in points:
        sweep_second(case, first, first_committed, shape, point, kill)


@pytest.mark.exhaustive
@pytest.mark.parametrize("where", FIRST_KILLS)
@pytest.mark.parametrize(("custom_db", "flags"), CASES, ids=CASE_IDS)
def test_recovery_killed_at_every_point_still_settles(
    tmp_path: Path,
    root: Path,
    mm_subprocess: MmRunner,
    custom_db: bool,
    flags: tuple[bool, bool],
    where: str,
) -> None:
    case = Case(root / "w", custom_db, flags)
    first_shape = reference_shape(case, mm_subprocess, tmp_path / "trace-1")
    first = first_point(first_shape, where)
    first_committed = done(first, first_shape.own_commit)
    shape = second_shape(case, first, mm_subprocess, tmp_path / "trace-2")
    kill = fork_kill(case)
    for point in shape.points():
        sweep_second(case, first, first_committed, shape, point, kill)


def test_the_run_that_recovers_also_removes_a_custom_db(
    tmp_path: Path, mm_subprocess: MmRunner
) -> None:
    """The plain user story: killed right after config.json (which names the custom DB) was
    staged, then `-y` once: recovery puts the config back and the run must use it."""
    case = Case(tmp_path / "w", True, (False, False))
    world = case.fresh()
    env = {**world.env, "MM_TEST_TRACE": str(tmp_path / "trace")}
    assert mm_subprocess("uninstall", "-y", env=env).returncode == 0
    config = f"{world.state / 'config.json'} -> "
    staged = [o.n for o in read_trace(tmp_path / "trace") if o.target.startswith(config)]
    assert len(staged) == 1
    world = case.fresh()
    before = world.tree()
    env = {**world.env, "MM_TEST_KILL_AT": str(staged[0]), "MM_TEST_KILL_WHEN": "after"}
    assert mm_subprocess("uninstall", "-y", env=env).returncode == -9
    code, doc = run_json(world, "-y")
    assert code == 0, doc["message"]
    assert [r["action"] for r in doc["recovery"]["runs"]] == ["rolled-back"]
    assert_tree(world, world.expected(before, False, False), "custom DB removed too")
