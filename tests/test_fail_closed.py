"""Liveness checks never fail open: a lock or database that cannot be opened or queried is
a refusal naming it (exit 2, nothing changed), not a pass. Each case has a real process
holding the real lock, which the failed check would otherwise have missed; the failure is
injected through the seam, since root (these tests' user) opens any file.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.children import Children
from tests.support.cli import invoke, invoke_json
from tests.support.faults import Fault, ScriptedFs
from tests.support.snapshot import diff
from tests.support.world import World, digest, full_world, real_db

DENIED = "Permission denied (injected)"
IO = "Input/output error (injected)"


def _flocked(where: Callable[[World], Path], shared: bool = False) -> Callable[..., Path]:
    def start(world: World, kids: Children) -> Path:
        path = where(world)
        kids.flock(path, shared=shared)
        return path

    return start


def _sqlite_writer(world: World, kids: Children) -> Path:
    real_db(world)
    kids.sqlite(world.db)
    return world.db


def _sqlite_shm(world: World, kids: Children) -> Path:
    real_db(world)
    kids.sqlite(world.db, write=False)
    return Path(f"{world.db}-shm")


LOCKS: dict[str, Callable[..., Path]] = {
    "pid-file": _flocked(lambda w: w.runtime / f"server-{digest(w.db)}.pid"),
    "presence-marker": _flocked(
        lambda w: w.runtime / "presence" / f"4242-1-{digest(w.db)}-4f4c68fe-aa.lock"
    ),
    "registry-sentinel": _flocked(
        lambda w: w.runtime / "instances" / "4242-1-c297a376c157ebb9-4f4c68fe-c872ece7.lock"
    ),
    "web-pid": _flocked(lambda w: w.runtime / "web.pid"),
    "barrier": _flocked(lambda w: w.runtime / "lifecycle.lock", shared=True),
}
DATABASE: dict[str, Callable[..., Path]] = {"db": _sqlite_writer, "db-shm": _sqlite_shm}


def unknown(world: World, path: Path, reason: str, *, forceable: bool) -> dict[str, Any]:
    home = str(world.home)
    text = str(path)
    shown = "~" + text[len(home) :] if text.startswith(home + "/") else text
    advice = "; if you are sure no process uses the database, pass --force" if forceable else ""
    return {
        "path": text,
        "pid": None,
        "what": f"cannot tell whether {shown} is in use: it cannot be checked ({reason})",
        "hint": f"Make it readable to you (for example `chmod u+r {shlex.quote(text)}`), "
        f"then run mm uninstall again{advice}.",
        "forceable": forceable,
        "blocks": True,
    }


def refused_unchanged(world: World, fault: Fault, *args: str) -> dict[str, Any]:
    before = world.tree()
    code, doc = invoke_json("-y", *args, env=world.env, fs=ScriptedFs(fault))
    assert fault.fired, "the fault never fired: the check did not look at the file"
    assert (code, doc["outcome"], doc["exit_code"]) == (2, "refused", 2), doc
    after = world.tree()
    assert after == before, "\n".join(diff(before, after))
    return doc  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", list(LOCKS))
@pytest.mark.parametrize(
    ("op", "error", "reason"), [("open", errno.EACCES, DENIED), ("flock", errno.EIO, IO)]
)
def test_a_lock_file_that_cannot_be_checked_refuses_even_with_force(
    tmp_path: Path, children: Children, name: str, op: str, error: int, reason: str
) -> None:
    world = full_world(tmp_path)
    path = LOCKS[name](world, children)
    expected = unknown(world, path, reason, forceable=False)
    for args in ((), ("--force",)):
        doc = refused_unchanged(world, Fault(error, op=op, path=str(path), every_from=True), *args)
        assert doc["processes"] == [expected]
        assert doc["error"] == {"path": expected["path"], "hint": expected["hint"]}
    result = invoke(
        "-y", env=world.env, fs=ScriptedFs(Fault(error, op=op, path=str(path), every_from=True))
    )
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == f"Refused: {expected['what']}. {expected['hint']}"
    assert result.output.splitlines()[-1] == "Nothing was changed."


@pytest.mark.parametrize("name", list(DATABASE))
@pytest.mark.parametrize(
    ("op", "error", "reason"), [("open", errno.EACCES, DENIED), ("getlk", errno.EIO, IO)]
)
def test_a_database_that_cannot_be_checked_refuses_unless_forced(
    tmp_path: Path, children: Children, name: str, op: str, error: int, reason: str
) -> None:
    world = full_world(tmp_path)
    path = DATABASE[name](world, children)
    before = world.tree()
    fault = Fault(error, op=op, path=str(path), every_from=True)
    doc = refused_unchanged(world, fault)
    expected = unknown(world, path, reason, forceable=True)
    assert doc["processes"] == [expected]
    code, doc = invoke_json("-y", "--force", env=world.env, fs=ScriptedFs(fault))
    assert (code, doc["outcome"]) == (0, "removed"), doc
    assert doc["processes"] == [expected]
    after = world.tree()
    expected_tree = world.expected(before, False, False)
    assert after == expected_tree, "\n".join(diff(expected_tree, after))


@pytest.mark.parametrize(
    ("op", "error", "reason"), [("open", errno.EACCES, DENIED), ("flock", errno.EIO, IO)]
)
def test_the_run_lock_that_cannot_be_taken_refuses(
    tmp_path: Path, op: str, error: int, reason: str
) -> None:
    world = full_world(tmp_path)
    for args in ((), ("--force",), ("--dry-run",)):
        fault = Fault(error, op=op, path=str(world.home), every_from=True)
        doc = refused_unchanged(world, fault, *args)
        assert doc["message"] == (
            f"cannot take the one-run-at-a-time lock on {world.home}: {reason}; make it "
            f"readable (for example `chmod u+r {shlex.quote(str(world.home))}`), then run mm "
            "uninstall again."
        )
        assert doc["error"] == {"path": str(world.home), "hint": None}
        assert doc["recovery"] is None


@pytest.mark.parametrize(
    ("kind", "problem"), [("missing", "does not exist"), ("a file", "is not a directory")]
)
def test_a_home_that_is_not_a_directory_refuses_saying_so(
    tmp_path: Path, kind: str, problem: str
) -> None:
    """HOME naming nothing (or a file): no lock can be taken there; the runtime dir's stale
    files are left as they are and the message says what to fix, not to chmod."""
    world = full_world(tmp_path)
    shutil.rmtree(world.home)
    if kind == "a file":
        world.home.write_text("not a directory")
    before = world.tree()
    message = (
        f"the home directory {world.home} {problem}; set HOME to the home directory "
        "memtomem ran under, then run mm uninstall again."
    )
    for args in ((), ("--force",), ("--dry-run",)):
        code, doc = invoke_json("-y", *args, env=world.env)
        assert (code, doc["outcome"], doc["exit_code"]) == (2, "refused", 2), doc
        assert doc["message"] == message
        assert doc["error"] == {"path": str(world.home), "hint": None}
        assert doc["warnings"] == []  # no config under a home that is not there to read
        human = invoke("-y", *args, env=world.env)
        assert (human.exit_code, human.output) == (2, f"Refused: {message}\nNothing was changed.\n")
        after = world.tree()
        assert after == before, "\n".join(diff(before, after))


def test_a_filesystem_without_flock_does_not_block_the_run(tmp_path: Path) -> None:
    """ENOLCK from flock on the home dir: no other run can lock there either; it proceeds."""
    world = full_world(tmp_path)
    before = world.tree()
    fault = Fault(errno.ENOLCK, op="flock", path=str(world.home), every_from=True)
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(fault))
    assert fault.fired
    assert (code, doc["outcome"]) == (0, "removed"), doc
    after = world.tree()
    expected = world.expected(before, False, False)
    assert after == expected, "\n".join(diff(expected, after))


def test_a_home_that_is_a_link_to_a_directory_is_locked_there_and_the_run_proceeds(
    tmp_path: Path,
) -> None:
    """HOME -> a real directory: an ordinary setup. The state below it is removed; the link,
    its target and everything else in it stay."""
    world = full_world(tmp_path)
    real = tmp_path / "real-home"
    old_pid = world.runtime / f"server-{digest(world.db)}.pid"
    world.home.rename(real)
    world.home.symlink_to(real)
    # A server names its pid file by the resolved database path: under real-home/ now.
    new_pid = old_pid.rename(world.runtime / f"server-{digest(world.db)}.pid")
    world.owned["runtime"] = [new_pid if p == old_pid else p for p in world.owned["runtime"]]
    assert new_pid != old_pid
    before = world.tree()  # links not followed: the state is seen under real-home/
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (0, "removed"), doc
    assert os.readlink(world.home) == str(real)
    assert sorted(p.name for p in real.iterdir()) == [".claude.json"]
    assert not (world.runtime / "server.pid").exists()
    seen = {
        group: [real / p.relative_to(world.home) if p.is_relative_to(world.home) else p for p in ps]
        for group, ps in world.owned.items()
    }
    at_target = replace(world, home=real, state=real / world.state.name, owned=seen)
    expected = at_target.expected(before, False, False)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))
