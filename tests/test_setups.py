"""Legitimate set-ups that used to break the promise, end to end, whole tree before and after:
the database inside a group's directory, one state dir reached under two spellings, a run
with a very large runtime dir interrupted and then recovered, a stdout nobody reads, and an
internal error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.cli import flag_args, invoke, invoke_json
from tests.support.crash import forked, kill_hook, record
from tests.support.faults import ScriptedFs
from tests.support.names import STAGING
from tests.support.snapshot import diff, snapshot
from tests.support.world import DEAD_PID, FLAG_IDS, FLAGS, World, digest, full_world, write
from tests.test_fixture import REMAINING, extract


def assert_tree(world: World, expected: dict[str, object], label: str) -> None:
    after = world.tree()
    assert after == expected, label + "\n" + "\n".join(diff(expected, after))  # type: ignore[arg-type]


# --- the database inside a group's directory ----------------------------------------------

GROUP_DIRS = ["memories", "cache", "uploads", "logs", "config.d"]
KEPT_BY = {"memories": "data", "config.d": "config"}  # cache, uploads, logs: never kept


def db_inside(root: Path, group_dir: str) -> World:
    """full_world with storage.sqlite_path naming a database two levels inside a group's
    directory; its pid file is named for that path, as its server would name it."""
    world = full_world(root)
    old_pid = world.runtime / f"server-{digest(world.db)}.pid"
    db = world.state / group_dir / "db" / "custom.db"
    db.parent.mkdir(parents=True)
    for path in list(world.owned["database"]):
        moved = db.parent / path.name.replace("memtomem", "custom")
        if path.name.startswith("memtomem.db"):
            moved = db.parent / ("custom.db" + path.name[len("memtomem.db") :])
        os.replace(path, moved)
        world.owned["database"].remove(path)
        world.tag("database", moved)
    world.db = db
    config = {"storage": {"backend": "sqlite", "sqlite_path": str(db)}}
    write(world.state / "config.json", json.dumps(config), 0o600)
    new_pid = world.runtime / f"server-{digest(db)}.pid"
    os.replace(old_pid, new_pid)
    world.owned["runtime"] = [new_pid if p == old_pid else p for p in world.owned["runtime"]]
    return world


def refuses(group_dir: str, keep_config: bool, keep_data: bool) -> bool:
    """The database is kept while the directory it is in goes: the run must refuse."""
    dir_kept = {"data": keep_data, "config": keep_config}.get(KEPT_BY.get(group_dir, ""), False)
    return keep_data and not dir_kept


@pytest.mark.parametrize("flags", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("group_dir", GROUP_DIRS)
def test_a_database_inside_a_group_ends_as_the_flags_say_or_is_refused(
    tmp_path: Path, group_dir: str, flags: tuple[bool, bool]
) -> None:
    world = db_inside(tmp_path, group_dir)
    args = flag_args(*flags)
    before = world.tree()
    dry_code, dry = invoke_json("--dry-run", *args, env=world.env)
    code, doc = invoke_json("-y", *args, env=world.env)
    if refuses(group_dir, *flags):
        assert (dry_code, code, doc["outcome"]) == (2, 2, "refused"), doc["message"]
        assert doc["message"] == (
            f"the database {world.db} is inside {world.state / group_dir}, which this run "
            "removes, so it cannot be kept there; nothing was changed. Move the database out "
            "of it (and update storage.sqlite_path), or run without --keep-data."
        ).replace(str(world.home), "~")
        assert_tree(world, before, "refused: nothing changed")
        return
    assert (dry_code, code, doc["outcome"]) == (0, 0, "removed"), doc["message"]
    database = next(g for g in doc["groups"] if g["group"] == "database")
    assert (database["files"], database["kept"]) == (6, flags[1])
    assert doc["total"] == dry["total"]
    assert doc["removed"]["files"] == doc["total"]["files"]  # nothing counted twice
    assert_tree(world, world.expected(before, *flags), f"{group_dir} {args}")
    again, doc = invoke_json("-y", *args, env=world.env)
    assert (again, doc["outcome"]) == (0, "nothing-to-remove")


# --- one directory, two spellings ---------------------------------------------------------


def spelled(tmp_path: Path, how: str) -> tuple[World, dict[str, str], Path]:
    world = full_world(tmp_path, custom_db=False)
    env = world.env
    cwd = tmp_path
    if how == "dotdot":
        env["HOME"] = str(world.home / ".." / world.home.name)
    elif how == "relative":
        env["HOME"] = os.path.relpath(world.home, tmp_path)
    elif how == "symlinked-home-resolved-db":
        link = tmp_path / "link-home"
        link.symlink_to(world.home)
        env["HOME"] = str(link)
        config = {"storage": {"sqlite_path": str(world.db)}}  # the resolved spelling
        write(world.state / "config.json", json.dumps(config), 0o600)
    return world, env, cwd


@pytest.mark.parametrize("how", ["dotdot", "relative", "symlinked-home-resolved-db"])
def test_a_state_dir_under_two_spellings_is_one_anchor(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, env, cwd = spelled(tmp_path, how)
    monkeypatch.chdir(cwd)
    before = world.tree()
    code, dry = invoke_json("--dry-run", env=env)
    assert code == 0, dry["message"]
    assert dry["state_dir"] == str(world.state) and dry["database"]["path"] == str(world.db)
    code, doc = invoke_json("-y", env=env)
    assert (code, doc["outcome"]) == (0, "removed"), doc["message"]
    assert doc["removed"]["files"] == dry["total"]["files"]
    expected = world.expected(before, False, False)
    if how == "symlinked-home-resolved-db":
        expected[os.path.relpath(tmp_path / "link-home", world.root)] = before["link-home"]
    assert_tree(world, expected, how)


# --- a very large runtime dir, interrupted --------------------------------------------------


def crowded(root: Path, markers: int) -> World:
    world = full_world(root)
    presence = world.runtime / "presence"
    for n in range(markers):
        path = presence / f"{DEAD_PID}-{n}-fedcba9876543210-4f4c68fe-{n:08x}.lock"
        path.touch()
        world.tag("runtime", path)
    return world


@pytest.mark.parametrize("at", ["staged", "deleting"])
def test_a_run_over_12k_runtime_files_killed_then_the_next_run_settles(
    tmp_path: Path, at: str
) -> None:
    """The journal stays a few hundred bytes however many files a run moves: a run killed
    after staging 12,000 stale presence markers (or once deleting) is undone (or finished)."""
    world = crowded(tmp_path / "ref", 12_000)
    code, recorder = record(world, "-y")
    assert code == 0
    ops = recorder.ops
    commit = max(o.n for o in ops if o.op == "replace" and o.target.endswith("journal.json"))
    if at == "staged":
        point = (commit - 1, "before")  # every item moved, not yet committed
    else:
        first = next(o.n for o in ops if o.n > commit and o.op == "unlink")
        point = (first + 5_000, "before")
    world = crowded(tmp_path / "run", 12_000)
    before = world.tree()
    assert forked(["-y"], world.env, kill_hook(point)) == -signal.SIGKILL
    (staging,) = world.state.glob(f"{STAGING}*")  # named for the killed child's pid
    assert (staging / ".uninstall-journal.json").stat().st_size < 400
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0, doc["message"]
    action = "rolled-back" if at == "staged" else "finished"
    assert [(r["action"], r["items"]) for r in doc["recovery"]["runs"]] == [(action, 12_029)]
    assert_tree(world, world.expected(before, False, False), f"after the kill {at}")


# --- output nobody reads, and a bug ---------------------------------------------------------


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_a_reader_that_goes_away_does_not_change_the_exit_status(
    tmp_path: Path, json_out: bool
) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    args = "-y --json" if json_out else "-y"
    pipeline = f"{sys.executable} -m tests.support.launcher uninstall {args} | head -c 10"
    done = subprocess.run(
        ["bash", "-c", f"{pipeline}; echo; echo ${{PIPESTATUS[0]}}"],
        env={**world.env, "PYTHONPATH": str(REPO), "MM_TEST_PLAIN": "1"},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.stdout.splitlines()[-1] == "0", done
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert_tree(world, world.expected(before, False, False), "removed")


class Bug(ScriptedFs):
    """A seam whose `target` call raises what no code expects: a stand-in for a bug."""

    def __init__(self, op: str, contains: str) -> None:
        super().__init__()
        self.op, self.contains = op, contains

    def before(self, op: str, target: str) -> None:
        super().before(op, target)
        if op == self.op and self.contains in target:
            raise RuntimeError("boom\nsecond line")


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_an_internal_error_is_exit_70_with_one_line_or_one_document(
    tmp_path: Path, json_out: bool
) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    fs = Bug("scandir", str(world.state))
    result = invoke("-y", *(["--json"] if json_out else []), env=world.env, fs=fs)
    assert result.exit_code == 70
    assert "Traceback" not in result.output
    if json_out:
        doc = json.loads(result.stdout)
        assert (doc["outcome"], doc["status"], doc["exit_code"]) == ("internal-error", "error", 70)
        message = doc["message"]
    else:
        assert result.stdout == ""
        message = result.stderr.rstrip("\n")
        assert "\n" not in message
    assert message == (
        "mm uninstall stopped on an internal error (RuntimeError: boom\\nsecond line); if it "
        "had begun to remove, run mm uninstall again: it finishes or undoes an interrupted "
        "run first. Please report it."
    )
    assert_tree(world, before, "stopped before any change")
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0, doc["message"]
    assert_tree(world, world.expected(before, False, False), "the next run")


# --- the same set-ups on the state the real memtomem 0.6.12 wrote -------------------------


@pytest.mark.parametrize("how", ["dotdot", "relative", "symlinked-home-resolved-db"])
def test_the_real_state_under_two_spellings_is_removed_once(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fx = extract(tmp_path)
    env = fx.env
    if how == "dotdot":
        env["HOME"] = str(fx.home / ".." / fx.home.name)
    elif how == "relative":
        monkeypatch.chdir(fx.root)
        env["HOME"] = fx.home.name
    else:
        (fx.root / "link-home").symlink_to(fx.home)
        env["HOME"] = str(fx.root / "link-home")
        doc = json.loads((fx.state / "config.json").read_bytes())
        doc.setdefault("storage", {})["sqlite_path"] = str(fx.db)  # the resolved spelling
        write(fx.state / "config.json", json.dumps(doc), 0o600)
    before = snapshot(fx.root)
    code, doc = invoke_json("-y", env=env)
    assert (code, doc["outcome"]) == (0, "removed"), doc["message"]
    keep = REMAINING["plain"] | ({"link-home"} if how.startswith("symlinked") else set())
    expected = {k: v for k, v in before.items() if k in keep}
    assert snapshot(fx.root) == expected, "\n".join(diff(expected, snapshot(fx.root)))


@pytest.mark.parametrize("flags", [FLAGS[0], FLAGS[2]], ids=["plain", "keep-data"])
def test_the_real_database_moved_into_memories_goes_or_stays_with_it(
    tmp_path: Path, flags: tuple[bool, bool]
) -> None:
    """0.6.12's own database, moved into memories/db/ and named there by its config."""
    fx = extract(tmp_path)
    inside = fx.state / "memories" / "db"
    inside.mkdir()
    for name in ("memtomem.db", "memtomem.db-wal", "memtomem.db-shm"):
        os.replace(fx.state / name, inside / name)
    doc = json.loads((fx.state / "config.json").read_bytes())
    doc.setdefault("storage", {})["sqlite_path"] = str(inside / "memtomem.db")
    write(fx.state / "config.json", json.dumps(doc), 0o600)
    os.replace(fx.pid_file, fx.runtime / f"server-{digest(inside / 'memtomem.db')}.pid")
    before = snapshot(fx.root)
    code, out = invoke_json("-y", *flag_args(*flags), env=fx.env)
    assert (code, out["outcome"]) == (0, "removed"), out["message"]
    database = next(g for g in out["groups"] if g["group"] == "database")
    assert (database["files"], database["kept"]) == (3, flags[1])
    keep = set(REMAINING["plain"])
    if flags[1]:  # memories stays, the database inside it too; config and the rest go
        memories = [k for k in before if k.startswith("home/.memtomem/memories")]
        keep |= {"home/.memtomem", *memories}
    expected = {k: v for k, v in before.items() if k in keep}
    assert snapshot(fx.root) == expected, "\n".join(diff(expected, snapshot(fx.root)))
