"""memtomem #757: a failure at any first-time step of the wipe leaves the tree byte-identical.

Faults go through the project's seam (ScriptedFs). Each case asserts the whole tree (home,
state dir, custom DB dir, runtime dir), exit code 3 and the JSON outcome "rolled-back".
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.inventory import scan
from memtomem.uninstall.layout import build_layout
from memtomem.uninstall.plan import Move, Plan, build_plan
from tests.support.cli import flag_args, invoke_json
from tests.support.faults import Fault, ScriptedFs, oserror
from tests.support.names import JOURNAL, STAGING
from tests.support.snapshot import Node, diff
from tests.support.world import FLAG_IDS, FLAGS, World, full_world

LAYOUTS = pytest.mark.parametrize("custom_db", [False, True], ids=["default-db", "custom-db"])
FLAG_MATRIX = pytest.mark.parametrize(("keep_config", "keep_data"), FLAGS, ids=FLAG_IDS)


def planned(world: World, keep_config: bool, keep_data: bool) -> Plan:
    """The wipe as the package plans it (read-only)."""
    fs = FsOps()
    inventory = scan(fs, build_layout(fs, world.env))
    return build_plan(inventory, keep_config=keep_config, keep_data=keep_data)


def planned_moves(world: World, keep_config: bool, keep_data: bool) -> list[Move]:
    return list(planned(world, keep_config, keep_data).moves)


def moved_group_paths(world: World, keep_config: bool, keep_data: bool) -> list[tuple[str, Path]]:
    """(group, main path) of each group that will move, in report order, from --dry-run."""
    code, doc = invoke_json("--dry-run", *flag_args(keep_config, keep_data), env=world.env)
    assert code == 0, doc
    return [(g["group"], Path(g["path"])) for g in doc["groups"] if not g["kept"]]


def into_staging(src: Path, anchor: Path) -> str:
    """A substring of exactly one target: the forward move of `src` into its staging dir."""
    return f"{src} -> {anchor}/{STAGING}"


def staging_leftovers(root: Path) -> list[str]:
    return [
        os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files if STAGING in n
    ]


def names_path(message: str, path: Path, home: Path) -> bool:
    """The message names `path`, absolute or with `~` for home."""
    tilde = "~" + str(path)[len(str(home)) :] if str(path).startswith(f"{home}/") else None
    return str(path) in message or (tilde is not None and tilde in message)


def assert_rolled_back(
    world: World, before: dict[str, Node], code: int, doc: dict[str, Any], context: str
) -> None:
    after = world.tree()
    assert after == before, f"{context}:\n" + "\n".join(diff(before, after))
    assert code == 3, f"{context}: {doc['message']}"
    assert (doc["outcome"], doc["status"], doc["exit_code"]) == ("rolled-back", "error", 3)
    assert doc["unrestored"] == [] and doc["restore_commands"] == []
    assert staging_leftovers(world.root) == []


@LAYOUTS
@FLAG_MATRIX
def test_failure_staging_the_third_group_changes_nothing(
    tmp_path: Path, keep_config: bool, keep_data: bool, custom_db: bool
) -> None:
    world = full_world(tmp_path, custom_db=custom_db)
    group, src = moved_group_paths(world, keep_config, keep_data)[2]
    anchor = next(m.anchor for m in planned_moves(world, keep_config, keep_data) if m.src == src)
    before = world.tree()
    fault = Fault(errno.EIO, op="replace", contains=into_staging(src, anchor))
    code, doc = invoke_json(
        "-y", *flag_args(keep_config, keep_data), env=world.env, fs=ScriptedFs(fault)
    )
    assert fault.fired == 1
    assert_rolled_back(world, before, code, doc, f"3rd group {group}")
    assert names_path(doc["message"], src, world.home), doc["message"]
    assert "Input/output error" in doc["message"]


@LAYOUTS
@FLAG_MATRIX
def test_failure_at_every_move_position_changes_nothing(
    tmp_path: Path, keep_config: bool, keep_data: bool, custom_db: bool
) -> None:
    # Every planned move (so every group position, first entry or not) fails once in turn.
    world = full_world(tmp_path, custom_db=custom_db)
    moves = planned_moves(world, keep_config, keep_data)
    before = world.tree()
    failed_groups: set[str] = set()
    for position, move in enumerate(moves, 1):
        fault = Fault(errno.EIO, op="replace", contains=into_staging(move.src, move.anchor))
        code, doc = invoke_json(
            "-y", *flag_args(keep_config, keep_data), env=world.env, fs=ScriptedFs(fault)
        )
        assert fault.fired == 1, f"move {position} ({move.src}) was never attempted"
        assert_rolled_back(world, before, code, doc, f"move {position}/{len(moves)} {move.src}")
        failed_groups.add(move.group.value)
    moved = {group for group, _path in moved_group_paths(world, keep_config, keep_data)}
    assert failed_groups == moved
    # With the faults gone the same world is removed exactly: the sweep did not mask a no-op.
    code, doc = invoke_json("-y", *flag_args(keep_config, keep_data), env=world.env)
    assert code == 0, doc["message"]
    expected = world.expected(before, keep_config, keep_data)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


def secondary_anchor(world: World) -> Path:
    # Staging dirs are made in anchor order, the state dir (the primary) first.
    anchors = planned(world, False, False).anchors
    assert anchors[0] == world.state and len(anchors) >= 2
    return anchors[1]


@LAYOUTS
def test_failure_creating_the_second_staging_dir_changes_nothing(
    tmp_path: Path, custom_db: bool
) -> None:
    world = full_world(tmp_path, custom_db=custom_db)
    second = secondary_anchor(world)
    before = world.tree()
    fault = Fault(errno.EIO, op="mkdir", contains=f"{second}/{STAGING}")
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(fault))
    assert fault.fired == 1
    assert_rolled_back(world, before, code, doc, f"mkdir of staging in {second}")


@LAYOUTS
@pytest.mark.parametrize("op", ["create", "write", "fsync", "replace"])
@pytest.mark.parametrize("which", ["primary", "secondary"])
def test_failure_writing_the_journal_changes_nothing(
    tmp_path: Path, custom_db: bool, op: str, which: str
) -> None:
    world = full_world(tmp_path, custom_db=custom_db)
    anchor = world.state if which == "primary" else secondary_anchor(world)
    before = world.tree()
    # Matches the temp journal (create/write/fsync) and its rename (replace), first time only.
    fault = Fault(errno.EIO, op=op, contains=f"{anchor}/{STAGING}{os.getpid()}/{JOURNAL}")
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(fault))
    assert fault.fired == 1
    assert_rolled_back(world, before, code, doc, f"journal {op} in {anchor}")


def fail_nth_fsync_after(last: Move, nth: int) -> tuple[ScriptedFs, list[str]]:
    """Fail the nth fsync after the last forward move and before the commit's journal write."""
    fired: list[str] = []
    phase = {"moved": False, "committing": False, "seen": 0}

    def hook(_n: int, when: str, op: str, target: str) -> None:
        if when == "after" and op == "replace" and target.startswith(f"{last.src} -> "):
            phase["moved"] = True
        if when != "before" or not phase["moved"]:
            return
        if op == "create" and target.endswith(f"{JOURNAL}.tmp"):
            phase["committing"] = True
        if op == "fsync" and not phase["committing"]:
            phase["seen"] += 1
            if phase["seen"] == nth:
                fired.append(target)
                raise oserror(errno.EIO)

    return ScriptedFs(hook=hook), fired


@LAYOUTS
def test_failure_of_each_fsync_after_the_moves_changes_nothing(
    tmp_path: Path, custom_db: bool
) -> None:
    # SQLite-style: fail the 1st, 2nd, ... fsync after the moves until a run gets past them all.
    world = full_world(tmp_path, custom_db=custom_db)
    last = planned_moves(world, False, False)[-1]
    before = world.tree()
    failed: list[str] = []
    for nth in range(1, 100):
        fs, fired = fail_nth_fsync_after(last, nth)
        code, doc = invoke_json("-y", env=world.env, fs=fs)
        if not fired:
            break
        failed += fired
        assert_rolled_back(world, before, code, doc, f"fsync {nth} after the moves: {fired[0]}")
    else:
        pytest.fail("the sweep never got past the fsyncs")
    # Both the source dirs and the staging dirs are made durable before COMMITTED.
    assert str(world.state) in failed
    assert any(f"/{STAGING}" in target for target in failed), failed
    assert code == 0, doc["message"]
    expected = world.expected(before, False, False)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


@pytest.mark.parametrize("op", ["create", "write", "fsync", "replace"])
def test_failure_writing_the_committed_journal_rolls_back(tmp_path: Path, op: str) -> None:
    # Nothing has been deleted yet, so this is still a first-time step: roll back, exit 3.
    world = full_world(tmp_path)
    before = world.tree()
    journal = f"{world.state}/{STAGING}{os.getpid()}/{JOURNAL}"
    fault = Fault(errno.EIO, op=op, contains=journal, nth=2)  # 1st: the STAGING journal
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(fault))
    assert fault.fired == 1
    assert_rolled_back(world, before, code, doc, f"committed journal {op}")


def test_the_fault_helpers_target_exactly_one_call(tmp_path: Path) -> None:
    # Guards the sweep itself: each forward-move pattern matches one replace and no other call.
    world = full_world(tmp_path, custom_db=True)
    moves = planned_moves(world, False, False)
    recorder = ScriptedFs()
    code, _doc = invoke_json("-y", env=world.env, fs=recorder)
    assert code == 0
    for move in moves:
        hits = [c for c in recorder.calls if into_staging(move.src, move.anchor) in c[1]]
        assert [op for op, _t in hits] == ["replace"], (move.src, hits)


def test_a_failed_fsync_is_not_reported_as_a_failed_move(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    fs, fired = fail_nth_fsync_after(planned_moves(world, False, False)[-1], 1)
    code, doc = invoke_json("-y", env=world.env, fs=fs)
    assert (code, fired) == (3, [str(world.state)])
    # ~/.memtomem itself was never moved; the message must not send the user after it.
    assert f"could not move {world.state}:" not in doc["message"]
    assert doc["message"].startswith("could not make durable ~/.memtomem: Input/output error")
