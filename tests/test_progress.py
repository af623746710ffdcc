"""The delete's progress line on a real terminal: shown when the plan's counts say the
delete should take more than about a second (10,000 files a second, 4,000 MiB a second, see
memtomem.uninstall.pace), never under --json or when stderr is not a terminal."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.support.cli import invoke
from tests.support.snapshot import diff
from tests.support.terminal import Terminal
from tests.support.world import World, full_world, write

MANY = 10_500  # with full_world's 32 files: 10,532, about 1.05 s by the estimate
MIB = 2**20
LINE = re.compile(
    r"Deleting +(\d+)%: (\d+)/(\d+) files, [\d.]+ (?:B|KiB|MiB|GiB) of [\d.]+ (?:B|KiB|MiB|GiB)"
    r"(?:, about \d+ (?:s|min \d\d s|h \d\d min) left)? *"
)


def big_world(root: Path, files: int = MANY) -> World:
    world = full_world(root)
    inbox = world.state / "memories" / "inbox"
    inbox.mkdir()
    for i in range(files):
        (inbox / f"{i:05d}.md").write_bytes(b"x" * 10)
    return world


def sparse_world(root: Path, size: int) -> World:
    """full_world and one sparse upload of `size` bytes: big by its size, cheap to make."""
    world = full_world(root)
    with open(write(world.state / "uploads" / "video.mp4"), "r+b") as upload:
        upload.truncate(size)
    return world


def on_terminal(world: World, *args: str) -> tuple[int, str]:
    with Terminal(list(args), world.env, world.home) as terminal:
        code, text, _ = terminal.finish()
    return code, text


def progress_lines(text: str) -> list[str]:
    """Each state the progress line was drawn in, in order (it is redrawn after a CR)."""
    return [part for line in text.split("\n") for part in line.split("\r") if LINE.fullmatch(part)]


def test_a_delete_of_many_files_shows_its_progress(tmp_path: Path) -> None:
    world = big_world(tmp_path)
    before = world.tree()
    code, text = on_terminal(world, "-y")
    assert code == 0, text
    expected = world.expected(before, False, False)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))
    total = MANY + 32
    drawn = progress_lines(text)
    assert drawn[0] == f"Deleting   0%: 0/{total} files, 0 B of 108.6 KiB"
    assert drawn[-1] == f"Deleting 100%: {total}/{total} files, 108.6 KiB of 108.6 KiB"
    counts = [int(line.split("/")[0].split()[-1]) for line in drawn]
    assert counts == sorted(counts)
    assert all(len(line.rstrip()) < 80 for line in drawn)  # the terminal is 80 wide
    assert text.endswith(
        f"\r{drawn[-1]}\nRemoved {total} files (108.6 KiB).\n"
        "Editor configs name memtomem (not modified; remove these entries yourself):\n"
        "  ~/.claude.json: mcpServers.memtomem\n" + text.splitlines()[-1] + "\n"
    )


def test_a_few_large_files_show_their_progress_by_size(tmp_path: Path) -> None:
    """33 files, but 4,100 MiB: over a second by their size alone."""
    world = sparse_world(tmp_path, 4_100 * MIB)
    before = world.tree()
    code, text = on_terminal(world, "-y")
    assert code == 0, text
    assert world.tree() == world.expected(before, False, False)
    assert progress_lines(text)[-1] == "Deleting 100%: 33/33 files, 4.0 GiB of 4.0 GiB"


def test_a_quick_delete_shows_no_progress(tmp_path: Path) -> None:
    """3,900 MiB and 33 files: just under a second by the estimate."""
    world = sparse_world(tmp_path, 3_900 * MIB)
    before = world.tree()
    code, text = on_terminal(world, "-y")
    assert code == 0, text
    assert world.tree() == world.expected(before, False, False)
    assert "Deleting" not in text
    assert "Removed 33 files (3.8 GiB).\n" in text


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
    assert not os.path.exists(world.state)
