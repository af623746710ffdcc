"""Kill-point sweep: SIGKILL a real `mm uninstall` just before and just after each filesystem
mutation, then recover: the tree is the original (killed before COMMITTED was on disk) or
the fully removed one (killed after), byte for byte, with no staging dir or journal left.

Default mode runs the real launcher subprocess on a subset that hits every op kind and
every phase boundary (every prepare, staging and commit op of the custom-DB layout);
--exhaustive kills a forked child at every point of every layout and flag combination.
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
    fork_kill,
    launcher_kill,
    reference_shape,
    sample,
    scratch_root,
    sweep_point,
)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with scratch_root(tmp_path) as path:
        yield path


@pytest.mark.parametrize(("custom_db", "flags"), CASES, ids=CASE_IDS)
def test_killed_at_sampled_points_recovers_to_original_or_removed(
    tmp_path: Path, root: Path, mm_subprocess: MmRunner, custom_db: bool, flags: tuple[bool, bool]
) -> None:
    case = Case(root / "w", custom_db, flags)
    shape = reference_shape(case, mm_subprocess, tmp_path / "trace")
    # Every prepare, staging and commit op for the layout with the most anchors (state dir,
    # custom DB dir, runtime dir); the others get the lean subset.
    points = sample(shape, every_front=custom_db and flags == (False, False))
    assert {shape.phase(k) for k, _w in points} == {"prepare", "staging", "commit", "delete"}
    assert {shape.ops[k - 1].op for k, _w in points} == {o.op for o in shape.ops}
    kill = launcher_kill(case, mm_subprocess)
    for point in points:
        sweep_point(case, shape, point, kill)


@pytest.mark.parametrize(("custom_db", "flags"), CASES, ids=CASE_IDS)
def test_the_one_run_after_a_kill_removes_everything(
    tmp_path: Path, root: Path, mm_subprocess: MmRunner, custom_db: bool, flags: tuple[bool, bool]
) -> None:
    """What a user does: `mm uninstall -y` once after the crash. With a custom DB path, this
    run must plan from the config.json that its own recovery put back."""
    case = Case(root / "w", custom_db, flags)
    shape = reference_shape(case, mm_subprocess, tmp_path / "trace")
    kill = fork_kill(case)
    for point in sample(shape, every_front=False):
        sweep_point(case, shape, point, kill, next_run_only=True)


@pytest.mark.exhaustive
@pytest.mark.parametrize(("custom_db", "flags"), CASES, ids=CASE_IDS)
def test_killed_at_every_point_recovers_to_original_or_removed(
    tmp_path: Path, root: Path, mm_subprocess: MmRunner, custom_db: bool, flags: tuple[bool, bool]
) -> None:
    case = Case(root / "w", custom_db, flags)
    shape = reference_shape(case, mm_subprocess, tmp_path / "trace")
    kill = fork_kill(case)
    for point in shape.points():
        sweep_point(case, shape, point, kill)


@pytest.mark.exhaustive
@pytest.mark.parametrize(("custom_db", "flags"), CASES, ids=CASE_IDS)
def test_the_one_run_after_a_kill_at_every_point_removes_everything(
    tmp_path: Path, root: Path, mm_subprocess: MmRunner, custom_db: bool, flags: tuple[bool, bool]
) -> None:
    case = Case(root / "w", custom_db, flags)
    shape = reference_shape(case, mm_subprocess, tmp_path / "trace")
    kill = fork_kill(case)
    for point in shape.points():
        sweep_point(case, shape, point, kill, next_run_only=True)
