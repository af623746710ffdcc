"""SIGINT, SIGTERM and SIGHUP during the wipe: before the COMMITTED record is on disk they end
in a finished rollback (tree byte-identical); once deleting began, in a finished or resumable
delete; right after the record, either way but never split. The exit code is 128+N.

Signals are sent by the run to itself at an exact mutation through the launchers; the
steps come from a traced run of the same world.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MmRunner
from tests.support.crash import (
    WHENS,
    Case,
    Point,
    Shape,
    assert_tree,
    fork_kill,
    leftovers_under,
    read_trace,
    reference_shape,
    run_json,
    run_signalled,
    scratch_root,
    stagings_in,
)
from tests.support.names import JOURNAL

SIGNALS = [signal.SIGINT, signal.SIGTERM]
SIGNAL_IDS = ["SIGINT", "SIGTERM"]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with scratch_root(tmp_path) as path:
        yield path


@pytest.fixture
def traced(tmp_path: Path, root: Path, mm_subprocess: MmRunner) -> tuple[Case, Shape]:
    case = Case(root / "w", False, (False, False))
    return case, reference_shape(case, mm_subprocess, tmp_path / "trace")


def before_last_move(shape: Shape) -> list[Point]:
    """Every step up to the last item's move: the run checks for a signal before each move."""
    return [(k, "before") for k in range(1, shape.staged_moves()[-1])]


def staging_tail(shape: Shape) -> list[Point]:
    """The last move and the durability fsyncs after it: no move is left to check before."""
    return [
        (k, when)
        for k in range(shape.staged_moves()[-1], shape.commit_write)
        for when in WHENS
        if (k, when) in shape.points()
    ]


def commit_record(shape: Shape) -> list[Point]:
    """Writing the COMMITTED record, up to (not after) the rename that makes it count."""
    assert shape.own_commit is not None
    points = [(k, w) for k in range(shape.commit_write, shape.own_commit + 1) for w in WHENS]
    return [p for p in points if p in shape.points() and p != (shape.own_commit, "after")]


def right_after_the_record(shape: Shape) -> list[Point]:
    """The record is on disk, nothing deleted yet: undoing or finishing are both sound."""
    assert shape.own_commit is not None
    return [
        (shape.own_commit, "after"),
        (shape.own_commit + 1, "before"),
        (shape.own_commit + 1, "after"),
    ]


def deleting(shape: Shape) -> list[Point]:
    """Deleting began: the first delete, every 8th, and the last ops."""
    assert shape.own_commit is not None
    first = shape.own_commit + 2
    assert shape.phase(first) == "delete"
    picked = {first, shape.n - 1, shape.n} | {k for k in range(first, shape.n) if k % 8 == 0}
    return [(k, w) for k in sorted(picked) for w in WHENS if (k, w) in shape.points()]


def assert_rolled_back(
    case: Case, sig: signal.Signals, point: Point, *more: tuple[Point, str]
) -> None:
    world = case.fresh()
    before = world.tree()
    code, doc = run_signalled(world, case.args(), (point, sig.name), *more)
    assert (code, doc["exit_code"], doc["outcome"]) == (128 + sig, 128 + sig, "interrupted"), (
        point,
        doc["message"],
    )
    put_back = f"interrupted by signal {sig.value}; everything was put back"
    assert doc["message"].startswith(put_back), doc["message"]
    assert leftovers_under(world.root) == []
    assert_tree(world, before, f"{sig.name} at {point} must roll back")


def assert_finished_or_resumable(
    case: Case, sig: signal.Signals, point: Point, *, or_rolled_back: bool = False
) -> None:
    world = case.fresh()
    before = world.tree()
    expected = world.expected(before, *case.flags)
    code, doc = run_signalled(world, case.args(), (point, sig.name))
    assert (code, doc["exit_code"]) == (128 + sig, 128 + sig), (point, doc["message"])
    if or_rolled_back and world.tree() == before:
        assert doc["outcome"] == "interrupted"
        assert leftovers_under(world.root) == []
        return
    if world.tree() == expected:
        assert leftovers_under(world.root) == []
        return
    assert doc["outcome"] == "interrupted"
    assert doc["message"] == (
        f"interrupted by signal {sig.value} while deleting; run mm uninstall again to finish."
    )
    primary = [s for s in stagings_in(world) if s.startswith(f"{world.state}/")]
    assert len(primary) == 1 and (Path(primary[0]) / JOURNAL).is_file(), primary
    code, doc = run_json(world, "-y")
    assert code == 0, doc["message"]
    assert [r["action"] for r in doc["recovery"]["runs"]] == ["finished"]
    assert leftovers_under(world.root) == []
    assert_tree(world, expected, f"{sig.name} at {point}, then one more run")


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_signal_at_each_staging_step_rolls_back(
    traced: tuple[Case, Shape], sig: signal.Signals
) -> None:
    case, shape = traced
    points = before_last_move(shape)
    assert {shape.phase(k) for k, _w in points} == {"prepare", "staging"}
    for point in points:
        assert_rolled_back(case, sig, point)


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_signal_during_the_last_move_and_its_fsyncs_rolls_back(
    traced: tuple[Case, Shape], sig: signal.Signals
) -> None:
    case, shape = traced
    for point in staging_tail(shape):
        assert_rolled_back(case, sig, point)


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_signal_while_writing_the_commit_record_rolls_back(
    traced: tuple[Case, Shape], sig: signal.Signals
) -> None:
    case, shape = traced
    for point in commit_record(shape):
        assert_rolled_back(case, sig, point)


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_signal_after_commit_finishes_or_the_next_run_does(
    traced: tuple[Case, Shape], sig: signal.Signals
) -> None:
    case, shape = traced
    for point in deleting(shape):
        assert_finished_or_resumable(case, sig, point)


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_signal_right_after_the_commit_record_ends_one_way_or_the_other(
    traced: tuple[Case, Shape], sig: signal.Signals
) -> None:
    case, shape = traced
    for point in right_after_the_record(shape):
        assert_finished_or_resumable(case, sig, point, or_rolled_back=True)


def test_sighup_exits_129(traced: tuple[Case, Shape]) -> None:
    case, shape = traced
    moves = shape.staged_moves()
    assert_rolled_back(case, signal.SIGHUP, (moves[len(moves) // 2], "before"))
    assert_finished_or_resumable(case, signal.SIGHUP, deleting(shape)[0])


def rollback_steps(case: Case, first: Point, trace: Path) -> list[int]:
    """The mutations of the rollback that a SIGINT at `first` starts (traced)."""
    world = case.fresh()
    code, _doc = run_signalled(
        world, case.args(), (first, "SIGINT"), env={"MM_TEST_TRACE": str(trace)}
    )
    assert code == 130
    ops = read_trace(trace)
    back = [
        o.n
        for o in ops
        if o.n > first[0]
        and (
            o.op in ("unlink", "rmdir")
            or (o.op == "replace" and "/.uninstall-staging-" in o.target.split(" -> ")[0])
        )
    ]
    assert len([n for n in back if ops[n - 1].op == "replace"]) >= 2
    return back


def test_a_second_sigint_during_rollback_does_not_abandon_it(
    tmp_path: Path, traced: tuple[Case, Shape]
) -> None:
    case, shape = traced
    moves = shape.staged_moves()
    first = (moves[len(moves) // 2], "before")
    steps = rollback_steps(case, first, tmp_path / "rollback-trace")
    for step in steps:
        assert_rolled_back(case, signal.SIGINT, first, ((step, "before"), "SIGINT"))
    middle = steps[len(steps) // 2]
    assert_rolled_back(case, signal.SIGINT, first, ((middle, "after"), "SIGTERM"))


@pytest.mark.parametrize("where", ["mid-staging", "committed"])
def test_a_signal_during_recovery_lets_it_finish(
    tmp_path: Path, traced: tuple[Case, Shape], where: str
) -> None:
    """Ctrl-C while a run recovers an earlier crash: recovery is never abandoned half-way
    (a rollback completes; a roll-forward completes or resumes), and the run stops there."""
    case, shape = traced
    moves = shape.staged_moves()
    assert shape.own_commit is not None
    first = (
        (moves[len(moves) // 2], "after") if where == "mid-staging" else (shape.own_commit, "after")
    )
    world = case.fresh()
    assert fork_kill(case)(world, first) == -9
    trace = tmp_path / "recovery-trace"
    code, _doc = run_signalled(world, case.args(), env={"MM_TEST_TRACE": str(trace)})
    assert code == 0
    ops = read_trace(trace)
    recovering = [
        o.n
        for o in ops
        if o.target.startswith(f"{world.root}/") and "/.uninstall-staging-" in o.target
    ]
    own = [o.n for o in ops if o.op == "mkdir"]
    if own:
        recovering = [n for n in recovering if n < own[0]]
    assert recovering
    for step in sorted({recovering[0], recovering[len(recovering) // 2], recovering[-1]}):
        world = case.fresh()
        before = world.tree()
        expected = world.expected(before, *case.flags)
        assert fork_kill(case)(world, first) == -9
        code, doc = run_signalled(world, case.args(), ((step, "before"), "SIGINT"))
        assert (code, doc["exit_code"], doc["outcome"]) == (130, 130, "interrupted"), doc["message"]
        assert doc["recovery"]["runs"][0]["action"] == (
            "rolled-back" if where == "mid-staging" else "finished"
        )
        if where == "mid-staging":
            assert doc["message"] == "interrupted by signal 2; recovery was completed first"
            assert leftovers_under(world.root) == []
            assert_tree(world, before, f"SIGINT at recovery step {step}: rollback completed")
            continue
        code, doc = run_json(world, "-y")
        assert code == 0, doc["message"]
        assert leftovers_under(world.root) == []
        assert_tree(world, expected, f"SIGINT at recovery step {step}, then one more run")


def test_a_stopped_roll_forward_says_so(traced: tuple[Case, Shape]) -> None:
    """The roll-forward stops at Ctrl-C with its staging dir still there: the message must
    not claim it was completed, and must say how to finish."""
    case, shape = traced
    assert shape.own_commit is not None
    world = case.fresh()
    assert fork_kill(case)(world, (shape.own_commit, "after")) == -9
    code, doc = run_signalled(world, case.args(), ((1, "before"), "SIGINT"))
    assert (code, doc["outcome"]) == (130, "interrupted")
    assert stagings_in(world), "the roll-forward was expected to stop early"
    assert "completed" not in doc["message"], doc["message"]
    assert "run mm uninstall again" in doc["message"], doc["message"]
