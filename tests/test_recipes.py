"""The printed restore and discard commands, run for real in sh and in bash.

Each must do its job, and when a destination is taken it must fail (non-zero, a message on
stderr) without deleting anything: the whole tree is compared before and after."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from memtomem.uninstall import recipes
from memtomem.uninstall.transaction import Unrestored
from tests.support import commands
from tests.support.snapshot import diff, snapshot
from tests.support.world import write

SHELLS = ["sh", "bash"]
ODD = ["plain", "we ird 'name'", "new\nline $HOME `x`", "-dash"]


def run(shell: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shell, "-c", command], capture_output=True, text=True, timeout=30)


def orphan(root: Path, odd: str) -> tuple[Path, Path]:
    """A staging dir nobody recorded, beside the dir its contents came from."""
    anchor = root / odd / ".memtomem"
    staging = anchor / ".uninstall-staging-4242"
    write(staging / "memories" / "a.md", "# a\n")
    write(staging / "memories" / ".hidden.md", "hidden\n", 0o600)
    write(staging / "config.json", "{}", 0o600)
    write(staging / ".current_session", "s\n")
    write(staging / "..odd", "dots\n")
    write(staging / odd.replace("/", "_"), "named oddly\n")
    os.symlink("/etc/hostname", staging / "link")
    write(staging / ".uninstall-journal.json", "{ torn")
    write(anchor / "stays.txt", "already here\n")
    return staging, anchor


def test_the_commands_read_as_documented() -> None:
    staging = Path("/h/.memtomem/.uninstall-staging-7")
    item = (staging / "memories", Path("/h/.memtomem/memories"))
    assert recipes.restore_commands([staging], [item]) == [
        commands.move_home(*item),
        commands.clean_up(staging),
    ]
    assert recipes.orphan_commands(staging, staging.parent) == (
        commands.put_back(staging, staging.parent),
        commands.discard(staging),
    )


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("odd", ODD)
def test_put_back_moves_every_entry_home_and_removes_the_empty_dir(
    tmp_path: Path, shell: str, odd: str
) -> None:
    if shell == "sh" and "\n" in odd:
        pytest.skip("a control character is quoted as $'...', which bash and zsh read, not dash")
    staging, anchor = orphan(tmp_path, odd)
    before = snapshot(tmp_path)
    done = run(shell, recipes.orphan_commands(staging, anchor)[0])
    assert done.returncode == 0, done.stderr
    moved = {}
    for rel, node in before.items():
        parts = rel.split("/")
        if ".uninstall-staging-4242" in parts:
            at = parts.index(".uninstall-staging-4242")
            if at + 1 < len(parts) and parts[at + 1] != ".uninstall-journal.json":
                moved["/".join(parts[:at] + parts[at + 1 :])] = node
        else:
            moved[rel] = node
    assert snapshot(tmp_path) == moved, "\n".join(diff(moved, snapshot(tmp_path)))


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("taken", ["file", "dir", "link", "dangling-link"])
def test_put_back_moves_nothing_when_a_name_is_taken(
    tmp_path: Path, shell: str, taken: str
) -> None:
    staging, anchor = orphan(tmp_path, "plain")
    if taken == "file":
        write(anchor / "config.json", '{"newer": true}')
    elif taken == "dir":
        write(anchor / "memories" / "newer.md", "newer\n")
    else:
        os.symlink("/nonexistent" if taken == "dangling-link" else "/etc", anchor / "link")
    before = snapshot(tmp_path)
    done = run(shell, recipes.orphan_commands(staging, anchor)[0])
    assert done.returncode != 0
    assert "already exists: nothing was moved" in done.stderr
    assert snapshot(tmp_path) == before, "\n".join(diff(before, snapshot(tmp_path)))


def staged_run(root: Path) -> tuple[Path, Path, list[Unrestored]]:
    """What a rollback that failed leaves: two items still staged, journals, a scaffold."""
    anchor = root / "home" / ".memtomem"
    staging = anchor / ".uninstall-staging-9"
    write(staging / "memories" / "m.md", "m\n")
    write(staging / "config.json", "{}", 0o600)
    write(staging / ".uninstall-journal.json", "{}", 0o600)
    write(staging / ".uninstall-journal.json.tmp", "{", 0o600)
    (staging / "instances").mkdir()
    items = [(staging / n, anchor / n) for n in ("config.json", "memories")]
    return anchor, staging, items


@pytest.mark.parametrize("shell", SHELLS)
def test_restore_commands_put_everything_back(tmp_path: Path, shell: str) -> None:
    _anchor, staging, items = staged_run(tmp_path)
    before = snapshot(tmp_path)
    for command in recipes.restore_commands([staging], items):
        done = run(shell, command)
        assert done.returncode == 0, (command, done.stderr)
    expected = {
        k.replace(".uninstall-staging-9/", ""): v
        for k, v in before.items()
        if "/.uninstall-journal" not in k and not k.endswith(("staging-9", "instances"))
    }
    assert snapshot(tmp_path) == expected, "\n".join(diff(expected, snapshot(tmp_path)))


@pytest.mark.parametrize("shell", SHELLS)
def test_restore_commands_overwrite_nothing_and_keep_the_record(tmp_path: Path, shell: str) -> None:
    anchor, staging, items = staged_run(tmp_path)
    write(anchor / "config.json", '{"written": "since"}')  # the slot was taken meanwhile
    (anchor / "memories").mkdir()  # an empty directory: plain mv would move into it
    before = snapshot(tmp_path)
    lines = recipes.restore_commands([staging], items)
    results = [run(shell, command) for command in lines]
    assert [r.returncode != 0 for r in results] == [True, True, True]
    assert f"{anchor / 'config.json'} already exists" in results[0].stderr
    assert f"{staging} still holds config.json: left in place" in results[2].stderr
    assert snapshot(tmp_path) == before, "\n".join(diff(before, snapshot(tmp_path)))


@pytest.mark.parametrize("shell", SHELLS)
def test_clean_up_removes_nothing_but_records_and_empty_scaffolds(
    tmp_path: Path, shell: str
) -> None:
    staging = tmp_path / ".uninstall-staging-3"
    write(staging / ".uninstall-journal.json", "{}")
    (staging / "presence").mkdir(parents=True)
    (staging / "agents").mkdir()  # a user's empty directory is theirs: never removed
    before = snapshot(tmp_path)
    done = run(shell, commands.clean_up(staging))
    assert done.returncode != 0 and "still holds agents" in done.stderr
    assert snapshot(tmp_path) == before
    (staging / "agents").rmdir()
    done = run(shell, commands.clean_up(staging))
    assert done.returncode == 0, done.stderr
    assert not os.path.lexists(staging)
