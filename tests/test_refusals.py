"""Refusals with real processes: each holds a real flock or a real SQLite lock.

For every holder: exit 2, the whole tree (the DB's -wal/-shm bytes included) unchanged,
a "refused" JSON document naming the holder's pid, and a message saying how to stop it.
`--force` passes the SQLite cases only; a held flock is never overridden.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.children import Child, Children
from tests.support.cli import invoke, invoke_json
from tests.support.faults import ScriptedFs
from tests.support.snapshot import Node, diff
from tests.support.world import World, digest, full_world, real_db

STOP = "Stop it (for example `kill {pid}`), then run mm uninstall again."
NOT_OURS = " If you are sure it is not memtomem's, pass --force."


def shown(child: Child) -> str:
    return child.shown


@dataclass(frozen=True)
class Holder:
    """How to start one kind of holder, and the finding it must produce."""

    start: Callable[[World, Children], Child]
    path: Callable[[World, Child], Path]
    what: Callable[[World, Child], str]
    hint: Callable[[Child], str]
    forceable: bool


def _server_pid(w: World) -> Path:
    return w.runtime / f"server-{digest(w.db)}.pid"


def _said_path(_w: World, c: Child) -> Path:
    return Path(c.said.split(" ", 1)[1])


def _sentinel(w: World, kids: Children) -> Child:
    name = "{pid}-{ppid}-c297a376c157ebb9-4f4c68fe-c872ece7.lock"
    return kids.flock(w.runtime / "instances" / name)


def _presence(w: World, kids: Children) -> Child:
    return kids.flock(w.runtime / "presence" / f"{{pid}}-{{ppid}}-{digest(w.db)}-4f4c68fe-aa.lock")


def _writer(mode: str) -> Callable[[World, Children], Child]:
    def start(w: World, kids: Children) -> Child:
        real_db(w, mode)
        return kids.sqlite(w.db, mode=mode, write=True)

    return start


def _idle_connection(w: World, kids: Children) -> Child:
    real_db(w, "wal")
    return kids.sqlite(w.db, mode="wal", write=False)


def _db_what(verb: str) -> Callable[[World, Child], str]:
    return lambda w, c: (
        f"a process (pid {c.pid}: {shown(c)}) {verb} the database ~/.memtomem/memtomem.db"
    )


HOLDERS = {
    "pid-file": Holder(
        lambda w, kids: kids.flock(_server_pid(w)),
        lambda w, c: _server_pid(w),
        lambda w, c: (
            f"a memtomem server (pid {c.pid}: {shown(c)}) is running for this store "
            f"({_server_pid(w)} is locked)"
        ),
        lambda c: STOP.format(pid=c.pid),
        forceable=False,
    ),
    "registry-sentinel": Holder(
        _sentinel,
        _said_path,
        lambda w, c: (
            f"a memtomem process (pid {c.pid}: {shown(c)}) has a store open "
            f"({_said_path(w, c)} is locked)"
        ),
        lambda c: STOP.format(pid=c.pid),
        forceable=False,
    ),
    "presence-marker": Holder(
        _presence,
        _said_path,
        lambda w, c: (
            f"a memtomem server (pid {c.pid}: {shown(c)}) is starting or running for "
            f"this store ({_said_path(w, c)} is locked)"
        ),
        lambda c: STOP.format(pid=c.pid),
        forceable=False,
    ),
    "barrier-shared": Holder(
        lambda w, kids: kids.flock(w.runtime / "lifecycle.lock", shared=True),
        lambda w, c: w.runtime / "lifecycle.lock",
        lambda w, c: (
            f"a memtomem process (pid {c.pid}: {shown(c)}) holds the lifecycle barrier "
            f"{w.runtime / 'lifecycle.lock'}"
        ),
        lambda c: STOP.format(pid=c.pid),
        forceable=False,
    ),
    "web-pid": Holder(
        lambda w, kids: kids.flock(w.runtime / "web.pid"),
        lambda w, c: w.runtime / "web.pid",
        lambda w, c: (
            f"mm web (pid {c.pid}: {shown(c)}) is running ({w.runtime / 'web.pid'} is locked)"
        ),
        lambda c: f"Stop it with `mm web stop` or `kill {c.pid}`.",
        forceable=False,
    ),
    "sqlite-wal-writer": Holder(
        _writer("wal"),
        lambda w, c: w.db,
        _db_what("is writing to"),
        lambda c: STOP.format(pid=c.pid) + NOT_OURS,
        forceable=True,
    ),
    "sqlite-rollback-writer": Holder(
        _writer("delete"),
        lambda w, c: w.db,
        _db_what("is writing to"),
        lambda c: STOP.format(pid=c.pid) + NOT_OURS,
        forceable=True,
    ),
    "sqlite-idle-wal": Holder(
        _idle_connection,
        lambda w, c: w.db,
        _db_what("has open"),
        lambda c: STOP.format(pid=c.pid) + NOT_OURS,
        forceable=True,
    ),
}


def finding(holder: Holder, world: World, child: Child) -> dict[str, Any]:
    return {
        "path": str(holder.path(world, child)),
        "pid": child.pid,
        "what": holder.what(world, child),
        "hint": holder.hint(child),
        "forceable": holder.forceable,
        "blocks": True,
    }


def assert_tree(world: World, expected: dict[str, Node]) -> None:
    after = world.tree()
    assert after == expected, "\n".join(diff(expected, after))


@pytest.mark.parametrize("name", list(HOLDERS))
def test_a_live_holder_is_refused_and_nothing_changes(
    tmp_path: Path, children: Children, name: str
) -> None:
    holder = HOLDERS[name]
    world = full_world(tmp_path)
    child = holder.start(world, children)
    before = world.tree()
    if name.startswith("sqlite-wal"):
        assert os.path.getsize(f"{world.db}-wal") > 0  # real frames a checkpoint would move
    if name == "sqlite-rollback-writer":
        assert "home/.memtomem/memtomem.db-journal" in before  # the open transaction's journal

    code, doc = invoke_json("-y", env=world.env)
    assert code == 2
    assert_tree(world, before)
    assert doc["outcome"] == "refused"
    assert doc["status"] == "error"
    assert doc["exit_code"] == 2
    assert doc["processes"] == [finding(holder, world, child)]
    assert doc["error"] == {"path": str(holder.path(world, child)), "hint": holder.hint(child)}

    result = invoke("-y", env=world.env)
    assert result.exit_code == 2
    assert_tree(world, before)
    lines = result.output.splitlines()
    assert lines[0] == f"Refused: {holder.what(world, child)}. {holder.hint(child)}"
    assert lines[-1] == "Nothing was changed."

    code, doc = invoke_json("-y", "--force", env=world.env)
    if holder.forceable:
        assert code == 0, doc
        assert doc["outcome"] == "removed"
        assert doc["processes"] == [finding(holder, world, child)]
        assert_tree(world, world.expected(before, False, False))
    else:
        assert code == 2
        assert doc["outcome"] == "refused"
        assert doc["processes"] == [finding(holder, world, child)]
        assert_tree(world, before)


def test_a_refusal_creates_no_runtime_dir(tmp_path: Path, children: Children) -> None:
    world = full_world(tmp_path, runtime_files=False)
    world.runtime.rmdir()
    child = HOLDERS["sqlite-wal-writer"].start(world, children)
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert code == 2
    assert [p["pid"] for p in doc["processes"]] == [child.pid]
    assert_tree(world, before)
    assert not os.path.lexists(world.runtime)


@pytest.mark.parametrize("runtime_dir", [False, True], ids=["no-runtime-dir", "no-barrier"])
def test_a_writer_seen_only_by_the_final_probe_is_refused_and_the_barrier_undone(
    tmp_path: Path, children: Children, runtime_dir: bool
) -> None:
    """A writer that appears while we create the barrier is caught by the re-probe; the
    barrier file (and the runtime dir, if we made it) are removed again."""
    world = full_world(tmp_path, runtime_files=False)
    if not runtime_dir:
        world.runtime.rmdir()
    real_db(world)
    barrier = world.runtime / "lifecycle.lock"
    trigger = ("create", str(barrier)) if runtime_dir else ("mkdir", str(world.runtime))
    seen: dict[str, Any] = {}

    def hook(_n: int, phase: str, op: str, target: str) -> None:
        if phase == "before" and (op, target) == trigger and "child" not in seen:
            seen["child"] = children.sqlite(world.db)
            seen["before"] = world.tree()

    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(hook=hook))
    assert "child" in seen, "the barrier was never created"
    child: Child = seen["child"]
    assert code == 2
    assert doc["outcome"] == "refused"
    assert [p["pid"] for p in doc["processes"]] == [child.pid]
    assert_tree(world, seen["before"])
    assert not os.path.lexists(barrier)
    assert os.path.lexists(world.runtime) == runtime_dir


def test_an_unlocked_pid_file_of_a_live_memtomem_process_needs_force(
    tmp_path: Path, children: Children
) -> None:
    world = full_world(tmp_path)
    child = children.idle("memtomem-serve")
    pid_file = _server_pid(world)
    pid_file.write_text(f"{child.pid}\n18765\n2026-11-26T10:00:00\n")
    before = world.tree()
    expected = {
        "path": str(pid_file),
        "pid": child.pid,
        "what": f"pid file {pid_file} names a running process (pid {child.pid}: "
        f"{shown(child)}) but is not locked",
        "hint": STOP.format(pid=child.pid) + " If that process is not memtomem, pass --force.",
        "forceable": True,
        "blocks": True,
    }

    result = invoke("-y", env=world.env)
    assert result.exit_code == 2
    assert result.output.startswith(f"Refused: {expected['what']}. {expected['hint']}\n")
    assert_tree(world, before)

    code, doc = invoke_json("-y", env=world.env)
    assert code == 2
    assert doc["processes"] == [expected]
    assert_tree(world, before)

    code, doc = invoke_json("-y", "--force", env=world.env)
    assert code == 0
    assert doc["processes"] == [expected]
    assert_tree(world, world.expected(before, False, False))


def test_a_pid_file_naming_an_unrelated_live_process_is_stale(
    tmp_path: Path, children: Children
) -> None:
    """Pids recycle: a live process that is not memtomem does not make the store busy."""
    world = full_world(tmp_path)
    child = children.unrelated()
    _server_pid(world).write_text(f"{child.pid}\n")
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0, doc
    assert doc["processes"] == []
    assert_tree(world, world.expected(before, False, False))


def test_a_held_presence_marker_of_another_store_is_reported_and_left(
    tmp_path: Path, children: Children
) -> None:
    world = full_world(tmp_path)
    other = "fedcba9876543210"
    child = children.flock(
        world.runtime / "presence" / f"{{pid}}-{{ppid}}-{other}-4f4c68fe-bb.lock"
    )
    marker = _said_path(world, child)
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0, doc
    assert doc["outcome"] == "removed"
    assert doc["processes"] == [
        {
            "path": str(marker),
            "pid": child.pid,
            "what": f"a memtomem server (pid {child.pid}: {shown(child)}) for another store "
            f"is running ({marker})",
            "hint": "It is left alone.",
            "forceable": False,
            "blocks": False,
        }
    ]
    expected = world.expected(before, False, False)
    assert os.path.relpath(marker, world.root) in expected
    assert_tree(world, expected)
