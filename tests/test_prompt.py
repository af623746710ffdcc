"""The confirmation prompt on a real pseudo-terminal: default No, "y" proceeds."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.snapshot import diff
from tests.support.world import full_world

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Remove it? [y/N]: "
TIMEOUT = 30.0


def _read_until(master: int, done: str | None, seen: bytearray) -> str:
    """Read the terminal until `done` appears (or, with None, until the child closes it)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        text = seen.decode("utf-8", "replace").replace("\r\n", "\n")
        if done is not None and done in text:
            return text
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every slave fd is closed
            chunk = b""
        if not chunk:
            if done is None:
                return text
            break
        seen += chunk
    raise AssertionError(f"never saw {done!r}; terminal so far:\n{seen.decode(errors='replace')}")


def run_on_terminal(env: dict[str, str], cwd: Path, answer: str) -> tuple[int, str]:
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.launcher", "uninstall"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        _read_until(master, PROMPT, seen)
        os.write(master, answer.encode() + b"\r")
        text = _read_until(master, None, seen)
        return proc.wait(timeout=TIMEOUT), text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.mark.parametrize(("answer", "code"), [("", 1), ("y", 0)], ids=["enter", "yes"])
def test_prompt_on_a_terminal(tmp_path: Path, answer: str, code: int) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    sizes = {rel: os.lstat(world.root / rel).st_size for rel, node in before.items()}
    exit_code, text = run_on_terminal(world.env, world.home, answer)
    assert exit_code == code, text
    after = world.tree()
    expected = before if code == 1 else world.expected(before, False, False)
    assert after == expected, "\n".join(diff(expected, after))
    report = text.index("memtomem state found:")
    last_row = text.index("To remove the memtomem program too:")
    prompt = text.index(PROMPT)
    assert report < last_row < prompt
    # What follows the prompt: the echoed answer, then the outcome.
    tail = text[prompt + len(PROMPT) :]
    if code == 1:
        assert tail == "\nNot confirmed. Nothing was changed.\n"
    else:
        gone = [rel for rel, node in before.items() if rel not in after and node[0] != "dir"]
        size = sum(sizes[rel] for rel in gone if before[rel][0] == "file")
        assert tail == f"y\nRemoved {len(gone)} files ({size / 1024:.1f} KiB).\n"
