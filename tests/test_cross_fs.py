"""Another filesystem: refused before any move (real tmpfs), or rolled back on a late EXDEV.

Mount tests need root; they skip with the reason when `mount -t tmpfs` fails. Every mount
under the test's tmp_path is unmounted in a finalizer, wherever a rename has carried it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.inventory import scan
from memtomem.uninstall.layout import build_layout
from memtomem.uninstall.plan import Move, build_plan
from tests.support.cli import flag_args, invoke, invoke_json
from tests.support.faults import MUTATIONS, Fault, ScriptedFs
from tests.support.names import STAGING
from tests.support.snapshot import diff, snapshot
from tests.support.world import World, full_world, write

Mount = Callable[[Path], None]


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (mountinfo escapes spaces as octal)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
        points = [
            re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            for line in info
        ]
    base = str(root)
    return sorted(
        (p for p in points if p == base or p.startswith(base + "/")), key=len, reverse=True
    )


@pytest.fixture
def mounter(tmp_path: Path) -> Iterator[Callable[[list[str], Path], None]]:
    """Runs `mount <args> <point>` (root only: skips with the reason otherwise) and
    unmounts everything below tmp_path afterwards, wherever a rename has carried it."""

    def mount(args: list[str], point: Path) -> None:
        point.mkdir(exist_ok=True)
        done = subprocess.run(["mount", *args, str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount here (needs root): {done.stderr.strip()}")

    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    try:
        yield mount
    finally:
        for point in mounts_under(tmp_path):
            subprocess.run(["umount", point], check=False)
            if os.path.ismount(point):
                subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture
def tmpfs(mounter: Callable[[list[str], Path], None]) -> Mount:
    return lambda point: mounter(["-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs"], point)


def planned_moves(world: World) -> list[Move]:
    fs = FsOps()
    inventory = scan(fs, build_layout(fs, world.env))
    return list(build_plan(inventory, keep_config=False, keep_data=False).moves)


@pytest.mark.mount
@pytest.mark.parametrize("name", ["cache", "memories"])
def test_a_mounted_owned_entry_is_refused_before_anything_moves(
    tmp_path: Path, tmpfs: Mount, name: str
) -> None:
    world = full_world(tmp_path)
    point = world.state / name
    tmpfs(point)
    write(point / "on-tmpfs.bin", b"\x00tmpfs data\n")
    before = world.tree()
    recorder = ScriptedFs()
    code, doc = invoke_json("-y", env=world.env, fs=recorder)
    assert code == 2, doc["message"]
    assert (doc["outcome"], doc["status"], doc["error"]["path"]) == ("refused", "error", str(point))
    assert doc["message"].startswith(
        f"~/.memtomem/{name} is on another filesystem than ~/.memtomem"
    )
    assert "nothing was changed" in doc["message"]
    assert [c for c in recorder.calls if c[0] in MUTATIONS] == []
    assert world.tree() == before, "\n".join(diff(before, world.tree()))
    result = invoke("-y", env=world.env)
    assert result.exit_code == 2
    assert f"Refused: ~/.memtomem/{name} is on another filesystem" in result.stderr
    assert result.stderr.endswith("Nothing was changed.\n")
    assert world.tree() == before


@pytest.mark.mount
def test_a_mounted_kept_entry_is_not_an_obstacle(tmp_path: Path, tmpfs: Mount) -> None:
    # --keep-data never moves memories/, so its device does not matter.
    world = full_world(tmp_path)
    tmpfs(world.state / "memories")
    write(world.state / "memories" / "on-tmpfs.md", "mine\n")
    before = world.tree()
    result = invoke("-y", *flag_args(False, True), env=world.env)
    assert result.exit_code == 0, result.output
    expected = world.expected(before, False, True)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


@pytest.mark.parametrize("custom_db", [False, True], ids=["default-db", "custom-db"])
def test_a_late_exdev_on_the_third_move_rolls_back_and_refuses(
    tmp_path: Path, custom_db: bool
) -> None:
    world = full_world(tmp_path, custom_db=custom_db)
    third = planned_moves(world)[2]
    before = world.tree()
    fault = Fault(errno.EXDEV, op="replace", contains=f"{third.src} -> {third.anchor}/{STAGING}")
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(fault))
    assert fault.fired == 1
    assert world.tree() == before, "\n".join(diff(before, world.tree()))
    assert code == 2, doc["message"]
    assert (doc["outcome"], doc["status"], doc["error"]["path"]) == (
        "refused",
        "error",
        str(third.src),
    )
    shown = str(third.src).replace(str(world.home), "~", 1)
    assert doc["message"].startswith(f"{shown} is on another filesystem than its directory")
    assert "everything was put back" in doc["message"]
    fault = Fault(errno.EXDEV, op="replace", contains=f"{third.src} -> {third.anchor}/{STAGING}")
    result = invoke("-y", env=world.env, fs=ScriptedFs(fault))
    assert result.exit_code == 2
    shown = str(third.src).replace(str(world.home), "~", 1)
    assert result.stderr.startswith(f"Refused: {shown} is on another filesystem")
    assert world.tree() == before


@pytest.mark.mount
def test_a_mount_deep_inside_memories_is_not_crossed_by_the_delete(
    tmp_path: Path, tmpfs: Mount
) -> None:
    world = full_world(tmp_path)
    mnt = world.state / "memories" / "mnt"
    tmpfs(mnt)
    write(mnt / "on-tmpfs.md", "never delete me\n", 0o600)
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert code == 5, doc["message"]
    assert (doc["outcome"], doc["status"]) == ("leftover", "partial")

    # memories/ moved with the mount inside it; the delete stopped at the mount point.
    staging = world.state / f"{STAGING}{os.getpid()}"
    moved = staging / "memories" / "mnt"
    assert doc["leftovers"][0] == {
        "path": str(moved),
        "reason": "is a mount point of another filesystem; unmount it first",
    }
    assert {item["path"] for item in doc["leftovers"]} == {
        str(moved),
        str(moved.parent),
    }
    assert os.path.ismount(moved)
    assert (moved / "on-tmpfs.md").read_text() == "never delete me\n"
    rel = os.path.relpath
    expected = world.expected(before, False, False)
    for original, now in [(world.state, world.state), (mnt.parent, moved.parent), (mnt, moved)]:
        expected[rel(now, tmp_path)] = before[rel(original, tmp_path)]
    expected[rel(moved / "on-tmpfs.md", tmp_path)] = before[rel(mnt / "on-tmpfs.md", tmp_path)]
    expected[rel(staging, tmp_path)] = ("dir", 0o700, "")
    after = world.tree()
    journal = rel(staging / ".uninstall-journal.json", tmp_path)
    assert after.pop(journal)[0] == "file"
    assert after == expected, "\n".join(diff(expected, after))

    # After the user unmounts it, the next run finishes the job.
    subprocess.run(["umount", str(moved)], check=True)
    result = invoke("-y", env=world.env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Recovered: finished deleting")
    final = world.expected(before, False, False)
    assert world.tree() == final, "\n".join(diff(final, world.tree()))


@pytest.fixture
def bind(mounter: Callable[[list[str], Path], None]) -> Callable[[Path, Path], None]:
    """Bind-mount a directory onto another: the same filesystem, so the same st_dev."""
    return lambda source, point: mounter(["--bind", str(source)], point)


@pytest.mark.mount
@pytest.mark.parametrize("extra", [0, 6_000], ids=["small", "large"])
def test_a_bind_mount_inside_memories_is_not_deleted_through(
    tmp_path: Path, bind: Callable[[Path, Path], None], extra: int
) -> None:
    """A bind mount of a directory elsewhere on the same filesystem has its parent's st_dev:
    the delete must still stop at it (also past a few chunks of 1,024 files)."""
    world = full_world(tmp_path)
    for i in range(extra):
        (world.state / "memories" / f"n{i:05d}.md").write_bytes(b"n")
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "precious.md", "never delete me\n")
    write(elsewhere / "deep" / "x.md", "nor me\n")
    mnt = world.state / "memories" / "bound"
    bind(elsewhere, mnt)
    assert os.stat(mnt).st_dev == os.stat(world.state).st_dev
    before_elsewhere = snapshot(elsewhere)
    before = world.tree()
    removed = [os.path.relpath(p, tmp_path) for p in world.removed(False, False)]
    bound = os.path.relpath(mnt, tmp_path) + "/"
    removed_files = sum(
        1
        for rel, node in before.items()
        if node[0] != "dir"
        and any(rel == r or rel.startswith(r + "/") for r in removed)
        and not rel.startswith(bound)
    )
    code, dry = invoke_json("--dry-run", env=world.env)
    assert code == 0
    assert dry["total"]["files"] == removed_files + 1  # the mount point: one entry, not entered
    code, doc = invoke_json("-y", env=world.env)
    assert code == 5, doc["message"]
    assert doc["total"] == dry["total"]
    staging = world.state / f"{STAGING}{os.getpid()}"
    moved = staging / "memories" / "bound"
    assert doc["leftovers"][0] == {
        "path": str(moved),
        "reason": "is a mount point; unmount it first",
    }
    assert {item["path"] for item in doc["leftovers"]} == {
        str(moved),
        str(moved.parent),
    }
    assert doc["removed"]["files"] == removed_files
    assert snapshot(elsewhere) == before_elsewhere
    assert snapshot(moved) == before_elsewhere
    assert sorted(p.name for p in moved.parent.iterdir()) == ["bound"]

    subprocess.run(["umount", str(moved)], check=True)
    result = invoke("-y", env=world.env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Recovered: finished deleting")
    assert not world.state.exists()
    assert snapshot(elsewhere) == before_elsewhere
    final = world.expected(before, False, False)  # the mounted files were seen at bound/
    assert world.tree() == final, "\n".join(diff(final, world.tree()))


@pytest.mark.mount
@pytest.mark.parametrize("name", ["cache", "memories"])
def test_an_owned_entry_that_is_a_bind_mount_is_refused_before_anything_moves(
    tmp_path: Path, bind: Callable[[Path, Path], None], name: str
) -> None:
    """A bind mount at a group's own name cannot be moved into staging (EBUSY): refused up
    front, like a tmpfs there, and what is mounted is not counted as ours."""
    world = full_world(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "precious.md", "never delete me\n")
    point = world.state / name
    shutil.rmtree(point)
    bind(elsewhere, point)
    before = world.tree()
    recorder = ScriptedFs()
    code, doc = invoke_json("-y", env=world.env, fs=recorder)
    assert code == 2, doc["message"]
    assert (doc["outcome"], doc["error"]["path"]) == ("refused", str(point))
    assert doc["message"] == (
        f"~/.memtomem/{name} is a mount point; it cannot be moved, so nothing was changed. "
        "Unmount it (or remove it yourself), then run mm uninstall again."
    )
    assert [c for c in recorder.calls if c[0] in MUTATIONS] == []
    assert world.tree() == before, "\n".join(diff(before, world.tree()))
    code, dry = invoke_json("--dry-run", env=world.env)
    assert (code, dry["message"]) == (2, doc["message"])
    if name == "memories":  # kept, it is no obstacle; it counts as one entry, not entered
        code, dry = invoke_json("--dry-run", "--keep-data", env=world.env)
        assert code == 0, dry["message"]
        row = next(r for r in dry["groups"] if r["group"] == name)
        assert (row["files"], row["bytes"], row["kept"]) == (1, 0, True)
    assert world.tree() == before
