"""Hostile layouts: links, squatters, untrusted dirs, mounts, immutable files, planted
staging dirs, bad config and control characters. Each test asserts the whole tree of
tmp_path before and after, the exact exit code, and a message that names the path."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MmRunner
from tests.support import commands
from tests.support.faults import Fault, ScriptedFs
from tests.support.hostile import (
    ENV_DB_NEIGHBOURS,
    FOREIGN_UID,
    Targets,
    assert_json_clean,
    assert_printable,
    bash_word,
    chattr,
    env_db,
    forge_journal,
    ignored,
    link_world,
    lost,
    make_untrusted,
    mm,
    mm_json,
    mount_tmpfs,
    mounts_under,
    plant_staging,
    plant_targets,
    spoil_config,
    umount_all,
    unset_immutable,
)
from tests.support.names import STAGING
from tests.support.snapshot import Node, diff
from tests.support.world import DEAD_PID, World, digest, full_world, write

Tree = dict[str, Node]


def _rel(world: World, path: Path) -> str:
    return os.path.relpath(path, world.root)


def _unchanged(world: World, before: Tree) -> None:
    after = world.tree()
    assert after == before, "\n".join(diff(before, after))


def _removed_fully(world: World, before: Tree) -> None:
    expected = world.expected(before, False, False)
    after = world.tree()
    assert after == expected, "\n".join(diff(expected, after))


def _ours(world: World) -> list[str]:
    return [_rel(world, p) for p in world.removed(False, False)]


@pytest.fixture
def targets(tmp_path: Path) -> Targets:
    return plant_targets(tmp_path)


@pytest.fixture
def unmount_after(tmp_path: Path) -> Iterator[None]:
    yield
    umount_all(tmp_path)


@pytest.fixture
def clear_immutable(tmp_path: Path) -> Iterator[None]:
    yield
    unset_immutable(tmp_path)


@pytest.mark.parametrize("kind", ["dir", "file", "dangling", "loop"])
def test_links_at_every_owned_name_are_removed_never_followed(
    tmp_path: Path, targets: Targets, kind: str
) -> None:
    world = link_world(tmp_path, targets.by_kind(kind))
    before = world.tree()

    code, doc = mm_json("-y", env=world.env)

    assert code == 0
    assert (doc["outcome"], doc["not_ours"]) == ("removed", [])
    assert doc["removed"]["files"] == len(world.removed(False, False))
    _removed_fully(world, before)
    assert not world.state.exists()
    assert targets.unchanged()


def test_link_loop_through_the_state_dir_is_removed(tmp_path: Path) -> None:
    """memories -> outside/hop -> memories: resolving it would loop; lstat never does."""
    world = full_world(tmp_path)
    shutil.rmtree(world.state / "memories")
    hop = tmp_path / "outside" / "hop"
    hop.parent.mkdir()
    os.symlink(world.state / "memories", hop)
    os.symlink(hop, world.state / "memories")
    before = world.tree()

    run = mm("-y", env=world.env)

    assert run.code == 0, run.text
    _removed_fully(world, before)
    assert os.readlink(hop) == str(world.state / "memories")


def test_custom_database_that_is_a_link_is_removed_not_followed(
    tmp_path: Path, targets: Targets
) -> None:
    # No runtime pid files: their names derive from the resolved DB path, which links change.
    world = full_world(tmp_path, custom_db=True, runtime_files=False)
    for path in world.owned["database"]:
        path.unlink()
        os.symlink(targets.file if path == world.db else targets.dir, path)
    before = world.tree()

    run = mm("-y", env=world.env)

    assert run.code == 0, run.text
    _removed_fully(world, before)
    assert (world.db.parent / "other-file.txt").read_text() == "not memtomem's"
    assert targets.unchanged()


def test_symlinked_state_dir_is_refused(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    real = tmp_path / "outside" / "real-state"
    real.parent.mkdir()
    os.rename(world.state, real)
    os.symlink(real, world.state)
    before = world.tree()

    run = mm("-y", env=world.env)
    code, doc = mm_json("-y", env=world.env)

    assert run.code == code == 2
    assert run.stderr == (
        "Refused: ~/.memtomem is a symbolic link; mm uninstall never follows links. "
        "Remove or move it yourself.\nNothing was changed.\n"
    )
    assert (doc["outcome"], doc["error"]) == ("refused", {"path": str(world.state), "hint": None})
    _unchanged(world, before)


def test_symlinked_state_dir_is_refused_by_a_real_process(
    tmp_path: Path, mm_subprocess: MmRunner
) -> None:
    world = full_world(tmp_path)
    real = tmp_path / "outside" / "real-state"
    real.parent.mkdir()
    os.rename(world.state, real)
    os.symlink(real, world.state)
    before = world.tree()

    done = mm_subprocess("uninstall", "-y", env=world.env)

    assert done.returncode == 2
    assert done.stderr == (
        "Refused: ~/.memtomem is a symbolic link; mm uninstall never follows links. "
        "Remove or move it yourself.\nNothing was changed.\n"
    )
    _unchanged(world, before)


def test_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    shutil.rmtree(world.state)
    write(world.state, "I am not a directory\n")
    before = world.tree()

    run = mm("-y", env=world.env)

    assert run.code == 2
    assert run.refusals() == [
        "Refused: ~/.memtomem is not a directory; mm uninstall never follows links. "
        "Remove or move it yourself."
    ]
    _unchanged(world, before)


@pytest.mark.parametrize("how", ["link", "foreign-owner", "mode-0755", "file"])
def test_untrusted_runtime_dir_is_refused(tmp_path: Path, how: str) -> None:
    world = full_world(tmp_path)
    reason = make_untrusted(world, how)
    before = world.tree()

    run = mm("-y", env=world.env)
    code, doc = mm_json("-y", env=world.env)

    assert run.code == code == 2
    assert run.stderr == (
        f"Refused: runtime directory {world.runtime} {reason}; memtomem only trusts a private "
        "directory you own. Inspect it and remove it yourself.\nNothing was changed.\n"
    )
    assert doc["error"]["path"] == str(world.runtime)
    _unchanged(world, before)


@pytest.mark.parametrize("how", ["foreign-owner", "mode-0755"])
@pytest.mark.parametrize("state", ["committed", "staging"])
def test_journal_in_untrusted_runtime_dir_is_never_acted_on(
    tmp_path: Path, how: str, state: str
) -> None:
    """/tmp/memtomem-<uid> can be pre-created by anyone: what it holds must not be obeyed."""
    world = full_world(tmp_path)
    victim = write(tmp_path / "outside" / "victim" / "precious.txt", "precious\n").parent
    staging = world.runtime / f"{STAGING}{DEAD_PID}"
    payload = write(staging / "payload", "planted\n")
    if state == "committed":  # rolling forward empties every staging dir the journal lists
        forge_journal(staging, state, [(victim.parent, victim), (world.runtime, staging)], [])
    else:  # rolling back moves the payload wherever the journal says it came from
        forge_journal(staging, state, [(world.runtime, staging)], [(victim / "x.txt", payload)])
    make_untrusted(world, how)
    before = world.tree()

    run = mm("-y", env=world.env)

    assert run.code == 2, run.text
    _unchanged(world, before)


def test_journal_naming_a_staging_dir_outside_its_anchors_is_not_followed(
    tmp_path: Path,
) -> None:
    """A journal (say, from a restored backup) whose staging list names a foreign dir."""
    world = full_world(tmp_path)
    victim = write(tmp_path / "outside" / "victim" / "precious.txt", "precious\n").parent
    staging = world.state / f"{STAGING}{DEAD_PID}"
    forge_journal(staging, "committed", [(victim.parent, victim), (world.state, staging)], [])
    before = world.tree()

    code, doc = mm_json("-y", env=world.env)

    _removed_fully(world, before)  # the victim, and the unexplained staging dir, stay
    assert code == 0
    assert [o["path"] for o in doc["recovery"]["orphans"]] == [str(staging)]


@pytest.mark.parametrize("name", ["memories", "uploads", "cache", "agents"])
def test_file_squatting_an_owned_dir_is_removed(tmp_path: Path, name: str) -> None:
    world = full_world(tmp_path)
    shutil.rmtree(world.state / name)
    write(world.state / name, "a file where a directory belongs\n")
    before = world.tree()

    code, doc = mm_json("-y", env=world.env)

    assert code == 0
    row = next(g for g in doc["groups"] if g["group"] == name)
    assert (row["path"], row["files"]) == (str(world.state / name), 1)
    _removed_fully(world, before)


def test_file_squatting_config_d_warns_and_is_removed(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    shutil.rmtree(world.state / "config.d")
    write(world.state / "config.d", '{"storage": {"sqlite_path": "/elsewhere.db"}}')
    before = world.tree()

    code, preview = mm_json("--dry-run", env=world.env)
    assert code == 0
    assert preview["warnings"] == ["could not read ~/.memtomem/config.d: Not a directory"]
    assert preview["database"] == {"path": str(world.db), "source": "default"}
    _unchanged(world, before)

    run = mm("-y", env=world.env)
    assert run.code == 0, run.text
    _removed_fully(world, before)


@pytest.mark.parametrize("kind", ["file", "link"])
def test_squatted_runtime_subdir_is_left_alone(tmp_path: Path, targets: Targets, kind: str) -> None:
    """`instances` as a file, `presence` as a link to a dir of lock-named files: not ours."""
    world = full_world(tmp_path)
    name = "instances" if kind == "file" else "presence"
    shutil.rmtree(world.runtime / name)
    if kind == "file":
        write(world.runtime / name, "not a directory\n")
    else:
        write(targets.dir / f"{DEAD_PID}-1-{digest(world.db)}-4f4c68fe-e7348a8c.lock")
        targets = targets.rebaselined()
        os.symlink(targets.dir, world.runtime / name)
    before = world.tree()

    run = mm("-y", env=world.env)

    assert run.code == 0, run.text
    _removed_fully(world, before)
    assert targets.unchanged()


def test_dir_squatting_the_database_is_refused(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    for path in world.owned["database"]:
        path.unlink()
    write(world.db / "inside.txt", "a directory where the database belongs\n")
    before = world.tree()

    run = mm("-y", env=world.env)

    assert run.code == 2
    assert run.refusals() == [
        "Refused: ~/.memtomem/memtomem.db (the default database path) is not a database "
        "file; move it out of the way and run mm uninstall again."
    ]
    _unchanged(world, before)


@pytest.mark.skipif(os.geteuid() != 0, reason="as root, mode 000 does not stop traversal")
def test_unreadable_and_unsearchable_dirs_are_removed_as_root(tmp_path: Path) -> None:
    """Root traverses mode-000 (unreadable) and 0600 (unsearchable) dirs: all removed, exit 0."""
    world = full_world(tmp_path)
    write(world.state / "memories" / "locked" / "inner" / "secret.md", "secret\n")
    write(world.state / "memories" / "blind" / "seen.md", "seen\n")
    os.chmod(world.state / "memories" / "locked" / "inner", 0o000)
    os.chmod(world.state / "memories" / "locked", 0o000)
    os.chmod(world.state / "memories" / "blind", 0o600)
    before = world.tree()

    code, doc = mm_json("-y", env=world.env)

    assert code == 0
    assert next(g for g in doc["groups"] if g["group"] == "memories")["files"] == 6
    _removed_fully(world, before)


def test_unsearchable_dir_for_a_non_root_user_is_a_named_leftover(tmp_path: Path) -> None:
    """What a non-root user meets (simulated: root is never denied): exit 5, then finished."""
    world = full_world(tmp_path)
    write(world.state / "memories" / "no-entry-7f3" / "kept.md", "kept\n")
    before = world.tree()
    staging = world.state / f"{STAGING}{os.getpid()}"
    denied = ScriptedFs(Fault(errno.EACCES, op="open", contains="no-entry-7f3", every_from=True))

    code, doc = mm_json("-y", env=world.env, fs=denied)

    assert (code, doc["outcome"]) == (5, "leftover")
    assert doc["leftovers"][0] == {
        "path": str(staging / "memories" / "no-entry-7f3"),
        "reason": "Permission denied (injected)",
    }
    assert lost(before, world.tree(), _ours(world)) == []
    assert (staging / "memories" / "no-entry-7f3" / "kept.md").read_text() == "kept\n"

    run = mm("-y", env=world.env)
    assert run.code == 0, run.text
    _removed_fully(world, before)


def _below(tree: Tree, prefix: str) -> Tree:
    return {k.removeprefix(prefix): v for k, v in tree.items() if k.startswith(prefix + "/")}


@pytest.mark.mount
@pytest.mark.usefixtures("unmount_after")
def test_mount_point_inside_memories_is_a_leftover_until_unmounted(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    mnt = world.state / "memories" / "mnt"
    if os.geteuid() != 0 or not mount_tmpfs(mnt):
        pytest.skip("needs root and a tmpfs mount")
    write(mnt / "on-tmpfs.md", "lives on another filesystem\n")
    write(mnt / "sub" / "deeper.bin", os.urandom(64))
    before = world.tree()
    staging = world.state / f"{STAGING}{os.getpid()}"
    moved = staging / "memories" / "mnt"
    shown = f"~/.memtomem/{staging.name}"

    run = mm("-y", env=world.env)

    assert run.code == 5, run.text
    assert run.stderr == (
        "Removed memtomem's state, but 2 item(s) could not be deleted; fix the cause below, "
        "then run mm uninstall again to finish.\n"
        f"  could not delete {shown}/memories/mnt: is a mount point of another filesystem; "
        "unmount it first\n"
        f"  could not delete {shown}/memories: Directory not empty\n"
    )
    assert mounts_under(tmp_path) == [str(moved)]
    after = world.tree()
    assert _below(after, _rel(world, moved)) == _below(before, _rel(world, mnt))
    left = {_rel(world, p) for p in (staging, staging / ".uninstall-journal.json")}
    left |= {_rel(world, staging / "memories"), _rel(world, moved)}
    left |= {_rel(world, moved) + k for k in _below(before, _rel(world, mnt))}
    assert {k for k in after if k.startswith(_rel(world, world.state) + "/")} == left
    assert lost(before, after, _ours(world)) == []

    again = mm("-y", env=world.env)
    assert again.code == 5, again.text
    assert world.tree() == after

    umount_all(tmp_path)
    final = mm("-y", env=world.env)
    assert final.code == 0, final.text
    assert final.stdout.startswith(
        f"Recovered: finished deleting {len(world.removed(False, False))} item(s) of an "
        f"interrupted uninstall ({shown}).\n"
    )
    _removed_fully(world, before)


@pytest.mark.usefixtures("clear_immutable")
def test_immutable_file_inside_uploads_is_a_leftover_then_finished(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    faq = world.state / "uploads" / "faq.txt"
    if not chattr("+i", faq):
        pytest.skip("chattr +i is not supported here")
    before = world.tree()
    st = os.lstat(faq)
    staging = world.state / f"{STAGING}{os.getpid()}"
    moved = staging / "uploads" / "faq.txt"

    code, doc = mm_json("-y", env=world.env)

    assert code == 5
    assert doc["leftovers"] == [
        {"path": str(moved), "reason": "Operation not permitted"},
        {"path": str(staging / "uploads"), "reason": "Directory not empty"},
    ]
    now = os.lstat(moved)
    fields = ("st_ino", "st_dev", "st_mode", "st_size", "st_mtime_ns", "st_ctime_ns")
    assert [getattr(now, f) for f in fields] == [getattr(st, f) for f in fields]
    assert moved.read_text() == "faq"
    assert lost(before, world.tree(), _ours(world)) == []

    assert chattr("-i", moved)
    run = mm("-y", env=world.env)
    assert run.code == 0, run.text
    _removed_fully(world, before)


@pytest.mark.usefixtures("clear_immutable")
def test_immutable_top_level_entry_rolls_everything_back(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    if not chattr("+i", world.state / "config.json"):
        pytest.skip("chattr +i is not supported here")
    before = world.tree()

    run = mm("-y", env=world.env)

    assert run.code == 3
    assert run.stderr == (
        "could not move ~/.memtomem/config.json: Operation not permitted; everything was put back, "
        "nothing was changed. Fix the cause and run mm uninstall again.\n"
    )
    _unchanged(world, before)


@pytest.mark.parametrize("kind", ["file", "dir", "dir-bad-journal", "link"])
def test_planted_staging_entry_is_reported_never_touched(
    tmp_path: Path, targets: Targets, kind: str
) -> None:
    world = full_world(tmp_path)
    planted = world.state / f"{STAGING}{DEAD_PID}"
    reported = plant_staging(planted, kind, targets)
    before = world.tree()
    restore = commands.put_back(planted, world.state)

    code, doc = mm_json("-y", env=world.env)

    assert (code, doc["outcome"], doc["not_ours"]) == (0, "removed", [])
    assert doc["recovery"]["orphans"] == [
        {
            "path": str(planted),
            "anchor": str(world.state),
            "kind": reported,
            "reason": "no-record",
            "detail": None,
            "restore": restore if reported == "dir" else None,
            "discard": f"rm -rf -- {planted}",
        }
    ]
    _removed_fully(world, before)  # the planted entry, so the state dir too, stays
    assert targets.unchanged()
    after = world.tree()

    again = mm("-y", env=world.env)
    assert again.code == 0
    found = (
        f"Found ~/.memtomem/{planted.name} ({reported}) with no record of the run that made "
        "it; it was left untouched."
    )
    lines = again.stdout.splitlines()
    hints = [f"  to discard it: rm -rf -- {planted}"]
    if reported == "dir":
        hints.insert(0, f"  to put its contents back: {restore}")
    assert lines[lines.index(found) + 1 :][: len(hints)] == hints
    assert world.tree() == after


@pytest.mark.parametrize("where", ["state", "runtime"])
@pytest.mark.parametrize("kind", ["file", "dir", "link"])
def test_planted_staging_with_our_own_pid_is_refused(
    tmp_path: Path, targets: Targets, kind: str, where: str
) -> None:
    """In-process, the run's pid is the pytest worker's: plant exactly that name."""
    world = full_world(tmp_path)
    anchor = world.state if where == "state" else world.runtime
    planted = anchor / f"{STAGING}{os.getpid()}"
    plant_staging(planted, kind, targets)
    before = world.tree()
    shown = f"~/.memtomem/{planted.name}" if where == "state" else str(planted)

    run = mm("-y", env=world.env)
    code, doc = mm_json("-y", env=world.env)

    assert run.code == code == 2
    assert run.refusals() == [
        f"Refused: {shown} already exists and is not a run this command can resume; "
        "move it out of the way, then run mm uninstall again."
    ]
    assert doc["error"] == {"path": str(planted), "hint": None}
    assert [(o["path"], o["kind"]) for o in doc["recovery"]["orphans"]] == [(str(planted), kind)]
    _unchanged(world, before)
    assert targets.unchanged()


def _bad_sqlite_path(world: World, where: str) -> tuple[str, Path]:
    """(setting value, the path it names) for a storage.sqlite_path that must be refused."""
    if where == "dir":
        write(world.root / "outside" / "dbdir" / "kept.txt", "kept\n")
        return str(world.root / "outside" / "dbdir"), world.root / "outside" / "dbdir"
    if where == "root":
        return "/", Path("/")
    if where == "home":
        return "~", world.home
    theirs = write(world.root / "outside" / "theirs.db", b"SQLite format 3\x00" + bytes(100))
    os.chown(theirs, FOREIGN_UID, FOREIGN_UID)
    return str(theirs), theirs


@pytest.mark.parametrize("where", ["dir", "root", "home", "foreign"])
def test_bad_sqlite_path_is_refused(tmp_path: Path, where: str) -> None:
    world = full_world(tmp_path)
    value, path = _bad_sqlite_path(world, where)
    write(world.state / "config.json", json.dumps({"storage": {"sqlite_path": value}}), 0o600)
    before = world.tree()
    setting = "storage.sqlite_path (from ~/.memtomem/config.json)"
    shown = "~" if where == "home" else str(path)

    run = mm("-y", env=world.env)
    code, doc = mm_json("-y", env=world.env)

    assert run.code == code == 2
    if where == "foreign":
        line = (
            f"Refused: {setting} points at {shown}, which is owned by uid {FOREIGN_UID}, not by "
            "you; correct the setting and run mm uninstall again."
        )
    else:
        line = (
            f"Refused: {setting} points at {shown}, which is not a database file; correct the "
            "setting and run mm uninstall again."
        )
    assert run.stderr == f"{line}\nNothing was changed.\n"
    assert doc["error"]["path"] == str(path)
    _unchanged(world, before)


@pytest.mark.parametrize("how", ["loop", "too-long"])
def test_unexaminable_sqlite_path_is_refused(tmp_path: Path, how: str) -> None:
    """ELOOP or ENAMETOOLONG from lstat: a DB may hide there, so refuse, naming the setting."""
    world = full_world(tmp_path)
    value = "/" + "a" * 300 + "/memtomem.db"
    if how == "loop":
        loop = tmp_path / "outside" / "loop-a"
        loop.parent.mkdir()
        os.symlink(tmp_path / "outside" / "loop-b", loop)
        os.symlink(loop, tmp_path / "outside" / "loop-b")
        value = str(loop / "memtomem.db")
    write(world.state / "config.json", json.dumps({"storage": {"sqlite_path": value}}), 0o600)
    before = world.tree()

    run = mm("-y", env=world.env)

    assert run.code == 2
    (line,) = run.refusals()
    assert line.startswith("Refused: storage.sqlite_path (from ~/.memtomem/config.json) ")
    assert value in line
    _unchanged(world, before)


def test_sqlite_path_with_a_nul_byte_is_ignored_with_a_warning(tmp_path: Path) -> None:
    """No file can have that name, as with any other non-path value: warn, use the default."""
    world = full_world(tmp_path)
    config = {"storage": {"sqlite_path": str(tmp_path / "a\x00b.db")}}
    write(world.state / "config.json", json.dumps(config), 0o600)
    before = world.tree()

    code, preview = mm_json("--dry-run", env=world.env)
    assert code == 0
    assert preview["warnings"] == [ignored("config.json", "storage.sqlite_path is not a path")]
    run = mm("-y", env=world.env)
    assert run.code == 0
    _removed_fully(world, before)


@pytest.mark.parametrize("how", ["not-json", "not-utf8", "fragment-dir", "fragment-unreadable"])
def test_unreadable_config_falls_back_to_the_default_database(tmp_path: Path, how: str) -> None:
    world = full_world(tmp_path)
    seam, warning = spoil_config(world, how)
    before = world.tree()

    code, preview = mm_json("--dry-run", env=world.env, fs=seam())
    assert code == 0
    assert preview["warnings"] == [warning]
    assert preview["database"] == {"path": str(world.db), "source": "default"}
    _unchanged(world, before)

    run = mm("-y", env=world.env, fs=seam())
    assert run.code == 0, run.text
    _removed_fully(world, before)


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_config_warning_is_shown_by_the_run_that_removes(tmp_path: Path, as_json: bool) -> None:
    world = full_world(tmp_path)
    _seam, warning = spoil_config(world, "not-json")
    if as_json:
        code, doc = mm_json("-y", env=world.env)
        assert (code, doc["warnings"]) == (0, [warning])
    else:
        run = mm("-y", env=world.env)
        assert run.code == 0
        assert f"Warning: {warning}\n" in run.stdout


STRANGE = "a\x1b[2Jb\nc"
STRANGE_SHOWN = "a\\x1b[2Jb\\nc"
UNDECODABLE = os.fsdecode(b"bad\xff")
WEIRD_ROOT = "we\nird\x1b[31m"
WEIRD_SHOWN = "we\\nird\\x1b[31m"


def test_control_characters_in_a_stranger_name_are_escaped(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    write(world.state / STRANGE, "stranger\n")
    write(world.state / UNDECODABLE, "undecodable\n")
    before = world.tree()

    dry = mm("--dry-run", env=world.env)
    code, preview = mm_json("--dry-run", env=world.env)
    assert dry.code == code == 0
    assert f"Not memtomem's, left in place: ~/.memtomem/{STRANGE_SHOWN} (file)\n" in dry.stdout
    assert "Not memtomem's, left in place: ~/.memtomem/bad\\xff (file)\n" in dry.stdout
    assert sorted(s["path"] for s in preview["not_ours"]) == [
        f"{world.state}/{STRANGE_SHOWN}",
        f"{world.state}/bad\\xff",
    ]
    _unchanged(world, before)

    run = mm("-y", env=world.env)
    assert run.code == 0
    assert f"~/.memtomem/{STRANGE_SHOWN}" in run.stdout
    expected = world.expected(before, False, False)
    for name in (".memtomem", f".memtomem/{STRANGE}", f".memtomem/{UNDECODABLE}"):
        expected[f"home/{name}"] = before[f"home/{name}"]
    after = world.tree()
    assert after == expected, "\n".join(diff(expected, after))

    code, doc = mm_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (0, "nothing-to-remove")
    assert world.tree() == after


def test_control_characters_in_home_are_escaped_everywhere(tmp_path: Path) -> None:
    world = full_world(tmp_path / WEIRD_ROOT)
    planted = world.state / f"{STAGING}{DEAD_PID}"
    write(planted / "x.md", "orphan\n")
    before = world.tree()
    escaped = f"{tmp_path}/{WEIRD_SHOWN}"

    dry = mm("--dry-run", env=world.env)
    assert dry.code == 0
    code, doc = mm_json("-y", env=world.env)
    assert code == 0
    assert doc["state_dir"] == f"{escaped}/home/.memtomem"
    assert doc["database"]["path"] == f"{escaped}/home/.memtomem/memtomem.db"
    (orphan,) = doc["recovery"]["orphans"]
    assert orphan["path"] == f"{escaped}/home/.memtomem/{planted.name}"
    # The suggested command must name the real path when pasted into a shell.
    word = orphan["discard"].removeprefix("rm -rf -- ")
    assert bash_word(word) == os.fsencode(planted)

    _removed_fully(world, before)

    again = mm("-y", env=world.env)
    assert again.code == 0
    assert f"  to discard it: rm -rf -- {word}\n" in again.stdout


def test_control_characters_are_escaped_by_a_real_process(
    tmp_path: Path, mm_subprocess: MmRunner
) -> None:
    """The real CLI on real pipes: no raw control byte on stdout or stderr, JSON parses."""
    world = full_world(tmp_path / WEIRD_ROOT)
    write(world.state / STRANGE, "stranger\n")
    write(world.state / UNDECODABLE, "undecodable\n")
    before = world.tree()

    dry = mm_subprocess("uninstall", "--dry-run", env=world.env)
    assert dry.returncode == 0, dry.stderr
    assert_printable(dry.stdout + dry.stderr)
    assert f"Not memtomem's, left in place: ~/.memtomem/{STRANGE_SHOWN} (file)\n" in dry.stdout
    _unchanged(world, before)

    done = mm_subprocess("uninstall", "--json", "-y", env=world.env)
    assert (done.returncode, done.stderr) == (0, "")
    doc = json.loads(done.stdout)
    assert_json_clean(doc)
    assert doc["state_dir"] == f"{tmp_path}/{WEIRD_SHOWN}/home/.memtomem"
    assert world.state.joinpath(STRANGE).read_text() == "stranger\n"


def test_control_characters_in_a_refusal_are_escaped(tmp_path: Path) -> None:
    world = full_world(tmp_path / WEIRD_ROOT)
    os.chmod(world.runtime, 0o755)
    before = world.tree()
    runtime = f"{tmp_path}/{WEIRD_SHOWN}/run/memtomem-test"

    run = mm("-y", env=world.env)
    code, doc = mm_json("-y", env=world.env)

    assert run.code == code == 2
    assert run.refusals() == [
        f"Refused: runtime directory {runtime} has mode 0755, not 0700; memtomem only trusts "
        "a private directory you own. Inspect it and remove it yourself."
    ]
    assert doc["error"]["path"] == runtime
    _unchanged(world, before)


@pytest.mark.parametrize("with_config", [False, True], ids=["env-only", "env-beats-config"])
def test_env_sqlite_path_is_honoured(tmp_path: Path, with_config: bool) -> None:
    world = full_world(tmp_path, runtime_files=False)
    db, ours = env_db(world)
    for path in ours:
        world.tag("database", path)
    world.tag("runtime", write(world.runtime / f"server-{digest(db)}.pid", f"{DEAD_PID}\n"))
    write(world.runtime / f"server-{digest(world.db)}.pid", f"{DEAD_PID}\n")  # other store
    if with_config:
        cfg_db = write(tmp_path / "outside" / "cfg-db" / "cfg.db", b"SQLite format 3\x00")
        write(cfg_db.parent / "cfg.db-wal", "wal")
        config = {"storage": {"sqlite_path": str(cfg_db)}}
        write(world.state / "config.json", json.dumps(config), 0o600)
    before = world.tree()
    env = {**world.env, "MEMTOMEM_STORAGE__SQLITE_PATH": str(db)}

    code, doc = mm_json("-y", env=env)

    assert code == 0
    assert doc["database"] == {"path": str(db), "source": "MEMTOMEM_STORAGE__SQLITE_PATH"}
    _removed_fully(world, before)
    assert sorted(p.name for p in db.parent.iterdir()) == sorted(ENV_DB_NEIGHBOURS)
