"""A final delete that fails is not success: exit 5 names what is left inside the staging
dir, the journal keeps it, and the next run finishes. Transient (Windows-like) failures are
retried, persistent ones roll back. A staging dir nobody recorded is reported and left
byte-identical; --dry-run shows what recovery would do and changes nothing.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MmRunner
from tests.support import commands
from tests.support.cli import invoke, invoke_json
from tests.support.crash import (
    assert_tree,
    leftovers_under,
    read_trace,
    stagings_in,
    with_state_dir,
)
from tests.support.faults import Fault, ScriptedFs
from tests.support.names import JOURNAL, STAGING
from tests.support.snapshot import Node
from tests.support.world import World, full_world, write

IMMUTABLE = "2026-11-26.md"


def rel(world: World, path: str | Path) -> str:
    return os.path.relpath(path, world.root)


def primary_staging(world: World, *, besides: Path | None = None) -> Path:
    """The one staging dir of a run in the state dir (other than a planted `besides`)."""
    found = [Path(s) for s in stagings_in(world) if Path(s).parent == world.state]
    found = [p for p in found if p != besides]
    assert len(found) == 1, stagings_in(world)
    return found[0]


def assert_left_in_staging(world: World, before: dict[str, Node], left: list[Path]) -> Path:
    """Everything is removed but `left` (each inside a staging dir, with its parent dirs)
    and the primary journal, which records the run as committed. Returns the primary."""
    staging = primary_staging(world)
    after = world.tree()
    journal = staging / JOURNAL
    doc = json.loads(journal.read_bytes())
    assert (doc["state"], doc["pid"]) == ("committed", int(staging.name[len(STAGING) :]))
    want = with_state_dir(world, world.expected(before, False, False), before)
    holders = {staging}
    for path in left:
        holder = next(Path(s) for s in stagings_in(world) if path.is_relative_to(s))
        holders.add(holder)
        inner = path.relative_to(holder)
        for part in [inner, *inner.parents][:-1]:
            want[rel(world, holder / part)] = before[rel(world, holder.parent / part)]
    for holder in holders:
        want[rel(world, holder)] = ("dir", 0o700, "")
        if holder == staging or (holder / JOURNAL).exists():
            # The journal's bytes (pid, time) are opaque here; its kind and mode are not.
            assert after[rel(world, holder / JOURNAL)][:2] == ("file", 0o600)
            want[rel(world, holder / JOURNAL)] = after[rel(world, holder / JOURNAL)]
    assert_tree(world, want, "removed but the leftover")
    return staging


def assert_finished_by_next_run(world: World, before: dict[str, Node], staging: Path) -> None:
    moves = json.loads((staging / JOURNAL).read_bytes())["items"]
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0, doc["message"]
    assert doc["recovery"]["runs"] == [
        {
            "staging": str(staging),
            "pid": int(staging.name[len(STAGING) :]),
            "action": "finished",
            "items": moves,
        }
    ]
    assert leftovers_under(world.root) == []
    assert_tree(world, world.expected(before, False, False), "finished by the next run")


def chattr(flag: str, path: Path) -> bool:
    ran = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
    return ran.returncode == 0


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[World]:
    """A full world whose memories/2026-11-26.md is immutable (`chattr +i`), on tmp_path's
    own filesystem; whatever happens, every such file is made mutable again."""
    world = full_world(tmp_path)
    target = world.state / "memories" / IMMUTABLE
    if not chattr("+i", target):
        pytest.skip(
            f"chattr +i is not supported here ({tmp_path}): needs root and ext2/3/4, xfs or btrfs"
        )
    try:
        yield world
    finally:
        for found in tmp_path.rglob(IMMUTABLE):
            chattr("-i", found)


def test_an_immutable_file_is_a_leftover_until_it_can_go(immutable: World) -> None:
    world = immutable
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["exit_code"], doc["status"], doc["outcome"]) == (5, 5, "partial", "leftover")
    staging = primary_staging(world)
    stuck = staging / "memories" / IMMUTABLE
    assert doc["leftovers"][0] == {"path": str(stuck), "reason": "Operation not permitted"}
    assert doc["leftover_count"] == len(doc["leftovers"])
    assert all(Path(item["path"]).is_relative_to(staging) for item in doc["leftovers"])
    assert doc["message"].startswith(
        f"Removed memtomem's state, but {doc['leftover_count']} item(s)"
    )
    assert_left_in_staging(world, before, [stuck])
    # Still immutable: the next run finishes what it can and says what is left, again.
    stuck_tree = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (5, "leftover"), doc["message"]
    assert [r["action"] for r in doc["recovery"]["runs"]] == ["finished"]
    assert {"path": str(stuck), "reason": "Operation not permitted"} in doc["leftovers"]
    assert_tree(world, stuck_tree, "a second run with the file still immutable")
    assert chattr("-i", stuck)
    assert_finished_by_next_run(world, before, staging)


@pytest.mark.parametrize("name", ["x.md", "web.pid"], ids=["primary-nested", "runtime-staging"])
def test_a_permission_error_on_a_delete_is_a_leftover(tmp_path: Path, name: str) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    fault = Fault(errno.EACCES, op="unlink", contains=name)
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(fault))
    assert fault.fired == 1
    assert (code, doc["outcome"], doc["status"]) == (5, "leftover", "partial")
    stuck = [Path(s) for s in stagings_in(world)]
    stuck = [p for s in stuck for p in s.rglob(name)]
    assert len(stuck) == 1
    assert {"path": str(stuck[0]), "reason": "Permission denied (injected)"} in doc["leftovers"]
    primary = primary_staging(world)
    # While another staging dir keeps a leftover, the primary keeps its config: it names the
    # dirs the next run looks in (here the default ones, but the rule does not depend on it).
    waiting = [primary / "config.json", primary / "config.d" / "10-admin.json"]
    staging = assert_left_in_staging(world, before, stuck + (waiting if name == "web.pid" else []))
    assert_finished_by_next_run(world, before, staging)


@pytest.mark.parametrize("op", ["replace", "unlink"])
def test_a_transient_sharing_violation_is_retried(tmp_path: Path, op: str) -> None:
    """Windows' "file in use" (winerror 32) three times, then the call succeeds."""
    world = full_world(tmp_path)
    before = world.tree()
    target = f"{world.state / 'memories'} -> " if op == "replace" else "x.md"
    fault = Fault(-32, op=op, contains=target, times=3)
    fs = ScriptedFs(fault, retry_seconds=2.0)
    code, doc = invoke_json("-y", env=world.env, fs=fs)
    assert code == 0, doc["message"]
    assert fault.fired == 3
    assert len([t for o, t in fs.calls if o == op and target in t]) == 4
    assert_tree(world, world.expected(before, False, False), "after retries")


def test_a_persistent_sharing_violation_on_a_move_rolls_back(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    target = f"{world.state / 'memories'} -> "
    fault = Fault(-32, op="replace", contains=target, every_from=True)
    fs = ScriptedFs(fault, retry_seconds=0.3)
    started = time.monotonic()
    code, doc = invoke_json("-y", env=world.env, fs=fs)
    assert time.monotonic() - started >= 0.3
    assert fault.fired >= 2
    assert (code, doc["outcome"], doc["status"]) == (3, "rolled-back", "error")
    assert doc["message"].startswith(
        "could not move ~/.memtomem/memories: The process cannot access the file (simulated)"
    ), doc["message"]
    assert leftovers_under(world.root) == []
    assert_tree(world, before, "rolled back after the retry budget")


def test_a_persistent_sharing_violation_on_a_delete_is_a_leftover(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    fault = Fault(-32, op="unlink", contains="x.md", every_from=True)
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(fault, retry_seconds=0.3))
    assert fault.fired >= 2
    assert (code, doc["outcome"]) == (5, "leftover")
    stuck = [p for s in stagings_in(world) for p in Path(s).rglob("x.md")]
    assert len(stuck) == 1
    reason = "The process cannot access the file (simulated)"
    assert {"path": str(stuck[0]), "reason": reason} in doc["leftovers"]
    staging = assert_left_in_staging(world, before, stuck)
    assert_finished_by_next_run(world, before, staging)


def plant_orphan(anchor: Path) -> Path:
    """What memtomem 0.6.12's own uninstall leaves when it dies: a staging dir, no journal."""
    orphan = anchor / f"{STAGING}12345"
    write(orphan / "memories" / "2026-01-01.md", "# kept by nobody\n")
    write(orphan / "memories" / "notes" / "n.md", "deep\n", 0o600)
    write(orphan / "config.json", '{"storage": {}}', 0o600)
    os.symlink("/etc/hostname", orphan / "memories" / "link")
    return orphan


def orphan_commands(orphan: Path) -> tuple[str, str]:
    return commands.put_back(orphan, orphan.parent), commands.discard(orphan)


@pytest.mark.parametrize("where", ["state-dir", "runtime-dir"])
def test_a_staging_dir_without_a_journal_is_reported_and_left_intact(
    tmp_path: Path, where: str
) -> None:
    world = full_world(tmp_path)
    orphan = plant_orphan(world.state if where == "state-dir" else world.runtime)
    before = world.tree()
    result = invoke("-y", env=world.env)
    assert result.exit_code == 0, result.output
    restore, discard = orphan_commands(orphan)
    shown = f"~/{orphan.relative_to(world.home)}" if where == "state-dir" else str(orphan)
    lines = result.output.splitlines()
    at = lines.index(
        f"Found {shown} (dir) with no record of the run that made it; it was left untouched."
    )
    assert lines[at + 1 : at + 3] == [
        f"  to put its contents back: {restore}",
        f"  to discard it: {discard}",
    ]
    kept = {
        k: v
        for k, v in before.items()
        if k == rel(world, orphan) or k.startswith(rel(world, orphan) + "/")
    }
    want = {**world.expected(before, False, False), **kept}
    if where == "state-dir":
        want = with_state_dir(world, want, before)
    assert_tree(world, want, "everything removed but the orphan, which is byte-identical")
    # A later run reports it the same way in JSON, still touching nothing.
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (0, "nothing-to-remove")
    assert doc["recovery"] == {
        "dry_run": False,
        "runs": [],
        "orphans": [
            {
                "path": str(orphan),
                "anchor": str(orphan.parent),
                "kind": "dir",
                "reason": "no-record",
                "detail": None,
                "restore": restore,
                "discard": discard,
            }
        ],
    }
    assert_tree(world, want, "a second run")
    # The printed restore command really puts the contents back.
    subprocess.run(["bash", "-c", restore], check=True)
    after = world.tree()
    for key, node in kept.items():
        if key != rel(world, orphan):
            moved = rel(world, orphan.parent / Path(key).relative_to(rel(world, orphan)))
            assert after[moved] == node, moved
    assert not orphan.exists()


@pytest.mark.parametrize("where", ["mid-staging", "committed"])
def test_dry_run_shows_what_recovery_would_do_and_changes_nothing(
    tmp_path: Path, mm_subprocess: MmRunner, where: str
) -> None:
    world = full_world(tmp_path / "trace")
    traced = mm_subprocess(
        "uninstall", "-y", env={**world.env, "MM_TEST_TRACE": str(tmp_path / "t")}
    )
    assert traced.returncode == 0, traced.stderr
    ops = read_trace(tmp_path / "t")
    moves = [
        o.n
        for o in ops
        if o.op == "replace"
        and "/.uninstall-staging-" in o.target.split(" -> ")[1]
        and JOURNAL not in o.target
    ]
    commit = [
        o.n
        for o in ops
        if o.op == "replace" and o.target.endswith(JOURNAL) and str(world.state) in o.target
    ][1]
    point = moves[len(moves) // 2] if where == "mid-staging" else commit
    world = full_world(tmp_path / "w")
    orphan = plant_orphan(world.state)
    env = {**world.env, "MM_TEST_KILL_AT": str(point), "MM_TEST_KILL_WHEN": "after"}
    assert mm_subprocess("uninstall", "-y", env=env).returncode == -9
    crashed = world.tree()
    staging = primary_staging(world, besides=orphan)
    pid = int(staging.name[len(STAGING) :])
    code, doc = invoke_json("--dry-run", env=world.env)
    assert (code, doc["outcome"]) == (0, "dry-run")
    action = "rolled-back" if where == "mid-staging" else "finished"
    assert doc["recovery"]["dry_run"] is True
    assert doc["recovery"]["runs"] == [
        {"staging": str(staging), "pid": pid, "action": action, "items": len(moves)}
    ]
    assert [o["path"] for o in doc["recovery"]["orphans"]] == [str(orphan)]
    assert_tree(world, crashed, "a dry run changes nothing")
    result = invoke("--dry-run", env=world.env)
    assert result.exit_code == 0
    verb = {"rolled-back": "Would put back", "finished": "Would finish deleting"}[action]
    shown = f"~/{staging.relative_to(world.home)}"
    lines = result.output.splitlines()
    assert lines[0] == f"{verb} {len(moves)} item(s) of an interrupted uninstall ({shown})."
    assert lines[1] == (
        f"Found ~/{orphan.relative_to(world.home)} (dir) with no record of the run that made "
        "it; it would be left untouched."
    )
    assert lines.count("Dry run: nothing was changed.") == 1
    assert_tree(world, crashed, "a dry run changes nothing")
