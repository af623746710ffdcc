"""A large state, deleted for real by one process: exact counts, and a real `mm` stopped
mid-delete (Ctrl-C at a terminal, or SIGKILL) whose next run finishes the committed delete.

The run is the real CLI with the shipped seam (no hooks, so its direct bulk paths run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import REPO
from tests.support.cli import invoke_json
from tests.support.names import JOURNAL, STAGING
from tests.support.snapshot import Node, diff
from tests.support.world import World, full_world

INBOX = 30_000  # a flat directory several times one batch of unlinks between two checks


def big_world(root: Path) -> World:
    world = full_world(root)
    inbox = world.state / "memories" / "inbox"
    inbox.mkdir()
    for i in range(INBOX):
        (inbox / f"{i:05d}.md").write_bytes(b"x" * (i % 7))
    return world


def non_dirs(tree: dict[str, Node]) -> set[str]:
    return {path for path, node in tree.items() if node[0] != "dir"}


def start(world: World) -> subprocess.Popen[bytes]:
    """The real `mm uninstall -y --json`, in its own process group as a terminal's job."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.launcher", "uninstall", "-y", "--json"],
        env={**world.env, "PYTHONPATH": str(REPO), "MM_TEST_PLAIN": "1"},
        cwd=world.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def staged_inbox(world: World, pid: int) -> Path:
    return world.state / f"{STAGING}{pid}" / "memories" / "inbox"


def deleting(proc: subprocess.Popen[bytes], world: World) -> bool:
    """Wait until the run has committed and unlinked some of the staged inbox; False if it
    ended first."""
    inbox = staged_inbox(world, proc.pid)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if len(os.listdir(inbox)) < INBOX:
                return True
        except OSError:
            pass
        time.sleep(0.001)
    return False


def stopped_mid_delete(
    base: Path, signum: int
) -> tuple[World, dict[str, Node], subprocess.Popen[bytes], bytes, bytes]:
    """A real run sent `signum` (its whole process group) while it deletes the staged inbox:
    (world, tree before, the run, its stdout, its stderr). Tries again on a fresh world when
    the signal came too late (the inbox was gone by then, or the run had ended)."""
    for attempt in range(5):
        world = big_world(base / f"try-{attempt}")
        before = world.tree()
        proc = start(world)
        try:
            if deleting(proc, world):
                os.killpg(proc.pid, signum)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        inbox = staged_inbox(world, proc.pid)
        if proc.returncode != 0 and inbox.is_dir() and any(inbox.iterdir()):
            return world, before, proc, out, err
    raise AssertionError(f"every run finished its inbox before signal {signum}")


def next_run_finishes(world: World, before: dict[str, Node], stopped: int) -> None:
    """The next run finishes the committed delete, and the tree ends fully removed."""
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (0, "nothing-to-remove"), doc
    assert [(r["pid"], r["action"]) for r in doc["recovery"]["runs"]] == [(stopped, "finished")]
    after = world.tree()
    expected = world.expected(before, False, False)
    assert after == expected, "\n".join(diff(expected, after)[:20])


def test_a_large_run_removes_everything_and_reports_exact_counts(tmp_path: Path) -> None:
    world = big_world(tmp_path)
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (0, "removed"), doc
    after = world.tree()
    expected = world.expected(before, False, False)
    assert after == expected, "\n".join(diff(expected, after)[:20])
    assert doc["total"]["files"] == len(non_dirs(before) - non_dirs(expected)) > INBOX
    assert doc["removed"] == doc["total"]


def test_ctrl_c_at_a_terminal_mid_delete_counts_exactly_and_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    """SIGINT to the whole process group: exit 130, and "removed" is exactly what is gone."""
    world, before, proc, out, err = stopped_mid_delete(tmp_path, signal.SIGINT)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert (doc["outcome"], doc["exit_code"]) == ("interrupted", 130), doc
    left = [p for p in non_dirs(world.tree()) if not p.endswith(JOURNAL)]
    gone = len(non_dirs(before)) - len(left)  # staged paths differ: count them
    assert 0 < gone < len(non_dirs(before))
    assert doc["removed"] == {"files": gone, "bytes": None}
    next_run_finishes(world, before, proc.pid)


def test_a_run_killed_mid_delete_is_finished_by_the_next_run(tmp_path: Path) -> None:
    world, before, proc, _out, err = stopped_mid_delete(tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, err
    next_run_finishes(world, before, proc.pid)
