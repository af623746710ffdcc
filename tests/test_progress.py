"""The delete's progress bar: on a terminal for a large delete; never in JSON or a pipe."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import invoke
from tests.support.snapshot import diff
from tests.support.world import World, full_world

REPO = Path(__file__).resolve().parent.parent
MANY = 20_500  # above the 20,000-file threshold


def big_world(root: Path) -> World:
    world = full_world(root)
    inbox = world.state / "memories" / "inbox"
    inbox.mkdir()
    for i in range(MANY):
        (inbox / f"{i:05d}.md").write_bytes(b"x" * 10)
    return world


def on_terminal(world: World, *args: str) -> tuple[int, str]:
    """Run the real CLI with stdin, stdout and stderr on a pseudo-terminal."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.launcher", "uninstall", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**world.env, "PYTHONPATH": str(REPO), "COLUMNS": "100"},
        cwd=world.home,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        return proc.wait(timeout=30), seen.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_a_large_delete_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    world = big_world(tmp_path)
    before = world.tree()
    code, text = on_terminal(world, "-y")
    assert code == 0, text
    expected = world.expected(before, False, False)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))
    assert "Deleting" in text
    assert f"{MANY + 32}/{MANY + 32}" in text  # the bar ends at the planned file count
    assert text.rstrip().endswith(f"Removed {MANY + 32} files (206.3 KiB).")


def test_json_on_a_terminal_has_no_progress(tmp_path: Path) -> None:
    world = big_world(tmp_path)
    code, text = on_terminal(world, "-y", "--json")
    assert code == 0, text
    assert "Deleting" not in text
    assert text.lstrip().startswith("{")


def test_a_pipe_gets_no_progress(tmp_path: Path) -> None:
    world = big_world(tmp_path)
    result = invoke("-y", env=world.env)
    assert result.exit_code == 0
    assert "Deleting" not in result.output
