"""The two-process delete of a large committed run (memtomem.uninstall.shares), on real trees.

The helper and this process each unlink a share of the files and never a directory; the
sequential pass then removes the rest. These tests check that a side takes exactly the
directories it locks first (and its half of a split one), leaves those another process
holds, that together they remove everything with exact counts, that nothing outside the
roots or behind a link is touched, that a stop ends the helper, and that a real `mm`
SIGKILLed while its helper works leaves nothing the next run cannot finish.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from memtomem.uninstall import shares
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.tree import Removal, TreeStats, measure, remove_tree
from tests.support import REPO
from tests.support.children import Children
from tests.support.cli import invoke, invoke_json
from tests.support.snapshot import Node, diff, snapshot
from tests.support.world import World, full_world

splits = pytest.mark.skipif(
    not shares.can_split(FsOps()), reason="a single usable core: nothing is shared with a helper"
)
FLAT = 12_000  # one directory large enough (on ext4) to be split name by name


def build(root: Path, outside: Path) -> list[str]:
    """A tree of FLAT + 2,000 files and odd entries; the roots a staging dir would hold."""
    flat = root / "memories" / "inbox"
    flat.mkdir(parents=True)
    for i in range(FLAT):
        (flat / f"{i:05d}.md").write_bytes(b"n" * (i % 50))
    for p in range(40):
        leaf = root / "memories" / "projects" / f"p{p:02d}" / "2025-01"
        leaf.mkdir(parents=True)
        for i in range(50):
            (leaf / f"{i:02d}.md").write_bytes(b"p" * i)
    odd = root / "memories" / "odd"
    odd.mkdir()
    (odd / "-dash").write_bytes(b"d")
    (odd / "new\nline").write_bytes(b"n")
    with open(os.fsencode(odd) + b"/bad-\xff", "wb") as f:
        f.write(b"b")
    os.symlink(outside / "target.md", odd / "link-to-file")
    os.symlink(outside, odd / "link-to-dir")
    os.symlink("missing", odd / "dangling")
    os.mkfifo(odd / "fifo")
    (root / "uploads").mkdir()
    (root / "uploads" / "u.bin").write_bytes(b"u" * 100)
    (root / "memtomem.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    os.symlink(outside / "target.md", root / "memtomem.db-wal")  # a root that is a link
    outside.mkdir()
    (outside / "target.md").write_bytes(b"outside: must stay")
    return [str(root / n) for n in ("memories", "uploads", "memtomem.db", "memtomem.db-wal")]


_OPENED: list[int] = []


@pytest.fixture(autouse=True)
def _close_staged() -> Iterator[None]:
    yield
    while _OPENED:
        os.close(_OPENED.pop())


def staged(paths: list[str]) -> list[shares.Root]:
    """The roots as the delete gets them: held open in their staging dir, by name."""
    parent = os.open(os.path.dirname(paths[0]), os.O_RDONLY | os.O_DIRECTORY)
    _OPENED.append(parent)
    base = os.path.dirname(paths[0])
    return [(parent, base, os.path.basename(p)) for p in paths]


def non_dirs(tree: dict[str, Node]) -> set[str]:
    return {path for path, node in tree.items() if node[0] != "dir"}


def no_unreaped_children() -> bool:
    try:
        return os.waitpid(-1, os.WNOHANG) == (0, 0) and False
    except ChildProcessError:
        return True


def taken_alone(
    before: dict[str, Node], base: Path, me: int, held: tuple[str, ...] = ()
) -> set[str]:
    """What one side unlinks when it walks alone: every file below the roots, except the
    files of directories another process holds, the other side's half of a split directory,
    and (this process's side) the roots that are files, which are the helper's."""
    inbox = "root/memories/inbox/"
    split = os.lstat(base / inbox).st_size >= shares.LARGE_DIR_BYTES
    root_files = {"root/memtomem.db", "root/memtomem.db-wal"}
    return {
        path
        for path in non_dirs(before)
        if path.startswith("root/")
        and not (split and path.startswith(inbox) and shares._owner(path[len(inbox) :]) != me)
        and not (me == 0 and path in root_files)
        and os.path.dirname(path) not in held
    }


@pytest.mark.parametrize("me", [0, 1])
def test_alone_a_side_takes_every_directory_and_its_half_of_a_split_one(
    tmp_path: Path, me: int
) -> None:
    """The side that locks a directory first unlinks its files: alone, that is every one."""
    roots = build(tmp_path / "root", tmp_path / "outside")
    before = snapshot(tmp_path)
    sizes = {p: os.lstat(tmp_path / p).st_size for p, n in before.items() if n[0] == "file"}
    out = Removal()
    shares._unlink_share(
        staged(roots), me, out, stop=lambda: False, report=lambda f, b: None, sizes=True
    )
    after = snapshot(tmp_path)
    gone = set(before) - set(after)
    assert gone == taken_alone(before, tmp_path, me)
    assert after == {k: v for k, v in before.items() if k not in gone}, "it changed a kept one"
    assert (out.files, out.bytes) == (len(gone), sum(sizes.get(p, 0) for p in gone))
    assert "outside/target.md" in after  # reached only through links, never followed
    if os.lstat(tmp_path / "root/memories/inbox").st_size >= shares.LARGE_DIR_BYTES:
        in_inbox = sum(1 for p in gone if p.startswith("root/memories/inbox/"))
        assert FLAT // 4 < in_inbox < FLAT * 3 // 4, in_inbox


def test_a_directory_the_other_side_holds_is_left_to_it(tmp_path: Path, children: Children) -> None:
    """Real processes hold real flocks on two directories, as the other side does on the
    one it is clearing: this side leaves their files and takes everything else."""
    roots = build(tmp_path / "root", tmp_path / "outside")
    held = ("root/memories/projects/p03/2025-01", "root/uploads")
    for rel in held:
        children.flock_dir(tmp_path / rel)
    before = snapshot(tmp_path)
    out = Removal()
    shares._unlink_share(
        staged(roots), 0, out, stop=lambda: False, report=lambda f, b: None, sizes=False
    )
    after = snapshot(tmp_path)
    gone = set(before) - set(after)
    assert gone == taken_alone(before, tmp_path, 0, held)
    assert {"root/uploads/u.bin", "root/memories/projects/p03/2025-01/00.md"} <= set(after)
    assert out.files == len(gone)
    children.close()  # the holders let go: the next walk takes those directories too
    again = Removal()
    shares._unlink_share(
        staged(roots), 0, again, stop=lambda: False, report=lambda f, b: None, sizes=False
    )
    assert set(after) - set(snapshot(tmp_path)) == taken_alone(before, tmp_path, 0) - gone
    assert again.files == len(taken_alone(before, tmp_path, 0) - gone)


def test_delete_shares_removes_every_file_and_no_directory(tmp_path: Path) -> None:
    roots = build(tmp_path / "root", tmp_path / "outside")
    before = snapshot(tmp_path)
    removal = Removal()
    shares.delete_shares(staged(roots), removal, stop=lambda: False, progress=None)
    after = snapshot(tmp_path)
    expected = {
        path: node
        for path, node in before.items()
        if node[0] == "dir" or not path.startswith("root/")
    }
    assert after == expected, "\n".join(diff(expected, after)[:20])
    assert removal.files == len(before) - len(expected)
    assert not removal.stopped and removal.errors == []
    assert no_unreaped_children()
    rest = Removal()
    for root in roots:
        remove_tree(FsOps(), root, removal=rest)
    assert rest.errors == [] and rest.files == 0  # only directories were left
    assert snapshot(tmp_path) == {
        k: v for k, v in before.items() if k in (".", "root") or k.startswith("outside")
    }


def test_progress_counts_both_processes(tmp_path: Path) -> None:
    roots = build(tmp_path / "root", tmp_path / "outside")
    files = len(non_dirs(snapshot(tmp_path / "root")))  # the roots that are files included
    calls: list[tuple[int, int]] = []
    removal = Removal()
    shares.delete_shares(
        staged(roots), removal, stop=lambda: False, progress=lambda f, b: calls.append((f, b))
    )
    assert removal.files == files
    assert calls and all(a <= b for (a, _x), (b, _y) in itertools.pairwise(calls))
    assert calls[-1][0] == files, calls[-5:]
    db = len(b"SQLite format 3\x00") + 100
    expected_bytes = sum(i % 50 for i in range(FLAT)) + 40 * sum(range(50)) + 3 + 100 + db
    assert removal.bytes == calls[-1][1] == expected_bytes


@pytest.mark.parametrize("after", [1, 3, 6])
def test_a_stop_ends_the_helper_and_counts_exactly_what_both_removed(
    tmp_path: Path, after: int
) -> None:
    """The helper is asked to stop, finishes its chunk and reports its exact count."""
    roots = build(tmp_path / "root", tmp_path / "outside")
    wide = tmp_path / "root" / "memories" / "wide"  # split name by name: ~8 chunks a side,
    wide.mkdir()  # so this side checks for a stop 6 times before its share is done
    for i in range(16_000):
        (wide / f"{i:05d}-{'w' * 40}.md").write_bytes(b"w")
    assert os.lstat(wide).st_size >= shares.LARGE_DIR_BYTES
    before = snapshot(tmp_path)
    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        return calls[0] >= after

    removal = Removal()
    shares.delete_shares(staged(roots), removal, stop=stop, progress=None)
    assert removal.stopped
    assert no_unreaped_children()
    after_stop = snapshot(tmp_path)
    assert {p for p, n in before.items() if n[0] == "dir"} <= set(after_stop)
    assert set(after_stop) <= set(before)
    gone = len(non_dirs(before)) - len(non_dirs(after_stop))
    assert 0 < gone < len(non_dirs(before))
    assert removal.files == gone
    time.sleep(0.2)  # a stopped helper removes nothing more
    assert snapshot(tmp_path) == after_stop


def big_world(root: Path) -> World:
    world = full_world(root)
    inbox = world.state / "memories" / "inbox"
    inbox.mkdir()
    for i in range(30_000):  # well above shares.MIN_FILES
        (inbox / f"{i:05d}.md").write_bytes(b"x" * (i % 7))
    return world


@splits
def test_a_large_run_shares_its_delete_and_reports_exact_counts(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    world = big_world(tmp_path)
    before = world.tree()
    spy = mocker.spy(shares, "delete_shares")
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (0, "removed"), doc
    assert spy.call_count == 1
    after = world.tree()
    expected = world.expected(before, False, False)
    assert after == expected, "\n".join(diff(expected, after)[:20])
    assert doc["total"]["files"] > shares.MIN_FILES
    assert doc["removed"] == doc["total"]
    assert no_unreaped_children()


def test_a_hooked_seam_never_forks(tmp_path: Path, mocker: MockerFixture) -> None:
    """Fault and kill tests see every call in one process."""
    from tests.support.faults import ScriptedFs

    world = big_world(tmp_path)
    spy = mocker.spy(shares, "delete_shares")
    result = invoke("-y", env=world.env, fs=ScriptedFs())
    assert result.exit_code == 0, result.output
    assert spy.call_count == 0


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        pytest.skip("/proc/<pid>/task/<pid>/children is not available here")
    return [int(c) for c in text.split()]


def start_plain(world: World) -> subprocess.Popen[bytes]:
    """The real `mm uninstall -y --json` with the shipped seam (so it may fork a helper)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.launcher", "uninstall", "-y", "--json"],
        env={**world.env, "PYTHONPATH": str(REPO), "MM_TEST_PLAIN": "1"},
        cwd=world.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def frozen_helper(proc: subprocess.Popen[bytes], world: World) -> int | None:
    """Wait for `proc` to fork its delete helper and SIGSTOP the helper at once; None if it
    finished its share first. (A child seen before the staging dir exists is the inventory's
    measuring helper.)"""
    staging = world.state / f".uninstall-staging-{proc.pid}"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        helpers = _children(proc.pid) if staging.exists() else []
        if helpers and _detached(helpers[0]):
            os.kill(helpers[0], signal.SIGSTOP)
            while _state(helpers[0]) not in ("T", "Z", ""):
                time.sleep(0.0005)
            return helpers[0] if _state(helpers[0]) == "T" else None
        time.sleep(0.0005)
    raise AssertionError(f"no helper was forked (exit {proc.poll()}): {proc.communicate()}")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return ""


def frozen_run(base: Path) -> tuple[World, dict[str, Node], subprocess.Popen[bytes], int]:
    """A real run whose delete helper is frozen mid-work: (world, tree before, run, helper).
    Tries again on a fresh world when a helper finished before it could be frozen."""
    for attempt in range(5):
        world = big_world(base / f"try-{attempt}")
        before = world.tree()
        proc = start_plain(world)
        helper = frozen_helper(proc, world)
        if helper is not None:
            return world, before, proc, helper
        proc.communicate(timeout=60)
    raise AssertionError("every helper finished before it could be frozen")


def _detached(pid: int) -> bool:
    """Whether a helper has let go of its parent's stdio (its first act after the fork)."""
    try:
        return os.readlink(f"/proc/{pid}/fd/1") == os.devnull
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def next_run_finishes(world: World, before: dict[str, Node], killed: int) -> None:
    """The next run recovers the interrupted one (it had committed: the delete helper only
    starts then) by finishing it, and the whole tree ends fully removed."""
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (0, "nothing-to-remove"), doc
    assert [(r["pid"], r["action"]) for r in doc["recovery"]["runs"]] == [(killed, "finished")]
    after = world.tree()
    expected = world.expected(before, False, False)
    assert after == expected, "\n".join(diff(expected, after)[:20])


@splits
def test_a_run_killed_while_its_helper_deletes_takes_the_helper_along(tmp_path: Path) -> None:
    """SIGKILL the real `mm` while its helper works: the helper dies with it (Linux), the
    caller's pipes close at once, and the next run finishes the committed delete at once."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    world, before, proc, helper = frozen_run(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)  # EOF at once
    deadline = time.monotonic() + 10
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(helper), "the helper outlived its killed run"
    next_run_finishes(world, before, proc.pid)


@splits
def test_ctrl_c_while_the_helper_deletes_kills_it_and_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    world, before, proc, helper = frozen_run(tmp_path)  # the run waits for it, still stoppable
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert (doc["outcome"], doc["exit_code"]) == ("interrupted", 130), doc
    assert not alive(helper), "the helper outlived its run"
    next_run_finishes(world, before, proc.pid)


@splits
def test_ctrl_c_at_a_terminal_reaches_the_helper_too_and_the_count_stays_exact(
    tmp_path: Path,
) -> None:
    """A terminal sends SIGINT to the whole process group, the helper included: it must
    leave the stop to its run, which asks it to report, so the removed count is exact."""
    for attempt in range(5):
        world = big_world(tmp_path / f"try-{attempt}")
        before = world.tree()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.launcher", "uninstall", "-y", "--json"],
            env={**world.env, "PYTHONPATH": str(REPO), "MM_TEST_PLAIN": "1"},
            cwd=world.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, as a terminal's job
        )
        staging = world.state / f".uninstall-staging-{proc.pid}"
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            helpers = _children(proc.pid) if staging.exists() else []
            if helpers and _detached(helpers[0]):
                time.sleep(0.005)  # let both sides unlink a while
                os.killpg(proc.pid, signal.SIGINT)
                break
            time.sleep(0.0005)
        out, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            continue  # done before the signal: try again
        assert proc.returncode == 130, err
        doc = json.loads(out)
        assert (doc["outcome"], doc["exit_code"]) == ("interrupted", 130), doc
        left = [p for p, n in world.tree().items() if n[0] != "dir"]
        gone = len(non_dirs(before)) - len([p for p in left if ".uninstall-journal" not in p])
        assert 0 < gone < len(non_dirs(before))
        assert doc["removed"] == {"files": gone, "bytes": None}
        assert no_unreaped_children()
        next_run_finishes(world, before, proc.pid)
        return
    raise AssertionError("every run finished before the signal")


# --- measuring in two processes ------------------------------------------------------------


def _roots(paths: list[str]) -> list[tuple[str, os.stat_result]]:
    return [(p, os.lstat(p)) for p in paths]


@splits
@pytest.mark.parametrize("fails", ["pipe", "fork"])
def test_when_no_helper_can_be_made_one_process_does_it_all(
    tmp_path: Path, mocker: MockerFixture, fails: str
) -> None:
    """No pipe or no fork (out of descriptors or processes: simulated, as root ignores
    RLIMIT_NPROC): the measure is exact in one process, the delete leaves everything to the
    sequential pass, and no descriptor is left open."""
    paths = build(tmp_path / "root", tmp_path / "outside")
    roots = _roots(paths)
    held = staged(paths)
    before = snapshot(tmp_path)
    fds = sorted(os.listdir("/proc/self/fd"))
    mocker.patch.object(os, fails, side_effect=OSError(24, "Too many open files"))
    assert shares.measure_roots(FsOps(), roots) == [measure(FsOps(), p, st) for p, st in roots]
    removal = Removal()
    shares.delete_shares(held, removal, stop=lambda: False, progress=None)
    assert (removal.files, removal.bytes, removal.errors) == (0, 0, [])
    assert snapshot(tmp_path) == before
    assert sorted(os.listdir("/proc/self/fd")) == fds


@splits
def test_measuring_in_two_processes_equals_measuring_in_one(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    roots = _roots([*build(tmp_path / "root", tmp_path / "outside"), str(tmp_path / "outside")])
    before = snapshot(tmp_path)
    fork = mocker.spy(os, "fork")
    shared = shares.measure_roots(FsOps(), roots)
    assert fork.call_count == 1
    alone = [measure(FsOps(), p, st) for p, st in roots]
    assert shared == alone
    assert alone[0].files == FLAT + 40 * 50 + 7  # inbox, projects, odd (3 files, 3 links, fifo)
    assert snapshot(tmp_path) == before  # measuring changes nothing
    assert no_unreaped_children()


@splits
def test_a_failing_measuring_helper_is_measured_again_alone(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    roots = _roots(build(tmp_path / "root", tmp_path / "outside"))
    parent = os.getpid()
    real = shares._measure_share

    def crash_in_helper(
        path: str, st: os.stat_result, me: int, mounts: frozenset[tuple[int, int]]
    ) -> TreeStats:
        if os.getpid() != parent:
            raise OSError(5, "helper trouble (injected)")
        return real(path, st, me, mounts)

    mocker.patch.object(shares, "_measure_share", side_effect=crash_in_helper)
    again = mocker.spy(shares, "measure")
    assert shares.measure_roots(FsOps(), roots) == [measure(FsOps(), p, st) for p, st in roots]
    assert again.call_count == len(roots)
    assert no_unreaped_children()


def test_a_hooked_seam_measures_in_one_process(tmp_path: Path, mocker: MockerFixture) -> None:
    from tests.support.faults import ScriptedFs

    roots = _roots(build(tmp_path / "root", tmp_path / "outside"))
    fork = mocker.spy(os, "fork")
    fs = ScriptedFs()
    assert shares.measure_roots(fs, roots) == [measure(FsOps(), p, st) for p, st in roots]
    assert fork.call_count == 0
    assert sum(op == "lstat" for op, _target in fs.calls) >= FLAT  # every entry, through it


@pytest.mark.mount
def test_a_mount_point_inside_is_counted_once_and_not_entered(tmp_path: Path) -> None:
    roots = _roots(build(tmp_path / "root", tmp_path / "outside"))
    point = tmp_path / "root" / "memories" / "projects" / "p07" / "mnt"
    point.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "tmpfs", str(point)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        (point / "inside.md").write_bytes(b"on another filesystem")
        roots = _roots([r for r, _st in roots])
        alone = [measure(FsOps(), p, st) for p, st in roots]
        assert shares.measure_roots(FsOps(), roots) == alone
        assert alone[0].files == FLAT + 40 * 50 + 7 + 1  # the mount point, as one entry
    finally:
        subprocess.run(["umount", "-l", str(point)], check=True)
