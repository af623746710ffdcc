"""uninstall/transaction.py on real trees: stage, commit, finish, rollback.

The plan is built by hand (a frozen value), so each test knows exactly what must move where.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from memtomem.uninstall.groups import Group
from memtomem.uninstall.plan import Move, Plan
from memtomem.uninstall.recovery import Scope, recover
from memtomem.uninstall.transaction import StageFailed, Transaction, rollback
from tests.support.faults import Fault, ScriptedFs
from tests.support.names import JOURNAL
from tests.support.snapshot import Node, diff, snapshot, without
from tests.support.world import write


class Tree:
    """Two anchors: a state dir (primary) and a custom DB dir holding one stranger."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "home" / ".memtomem"
        self.dbdir = root / "outside"
        write(self.state / "memories" / "a.md", "# a\n")
        write(self.state / "memories" / "deep" / "b.md", "b\n", 0o600)
        (self.state / "memories" / "empty").mkdir()
        os.symlink("/etc/hostname", self.state / "memories" / "link-out")
        write(self.state / "config.json", "{}", 0o600)
        write(self.state / "instances" / "dead.lock")  # nested: staged below a scaffold dir
        write(self.dbdir / "custom.db", b"SQLite format 3\x00" + os.urandom(64), 0o600)
        write(self.dbdir / "custom.db-wal", os.urandom(32), 0o600)
        write(self.dbdir / "stranger.txt", "not ours")
        self.moves = (
            Move(Group.DATABASE, self.dbdir / "custom.db", self.dbdir),
            Move(Group.DATABASE, self.dbdir / "custom.db-wal", self.dbdir),
            Move(Group.CONFIG, self.state / "config.json", self.state),
            Move(Group.MEMORIES, self.state / "memories", self.state),
            Move(Group.RUNTIME, self.state / "instances" / "dead.lock", self.state),
        )
        self.removed = [m.src for m in self.moves]

    def plan(self, remove_state_dir: bool = False) -> Plan:
        return Plan(
            self.moves, (), (self.state, self.dbdir), self.state, remove_state_dir, False, False
        )

    def staging(self, anchor: Path) -> Path:
        return anchor / f".uninstall-staging-{os.getpid()}"

    def staged(self, move: Move) -> Path:
        return self.staging(move.anchor) / move.rel

    def tree(self) -> dict[str, Node]:
        return snapshot(self.root)


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "t")


def never() -> int | None:
    return None


def read_journal(staging: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((staging / JOURNAL).read_bytes())
    return data


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_stage_moves_everything_and_writes_the_journal(tree: Tree) -> None:
    before = tree.tree()
    txn = Transaction(ScriptedFs(), tree.plan(), interrupted=never)
    txn.stage()
    for move in tree.moves:
        assert not os.path.lexists(move.src)
        rel = os.path.relpath(move.src, tree.root)
        assert tree.tree()[os.path.relpath(tree.staged(move), tree.root)] == before[rel]
    # Staging dirs and the scaffold below them are private; journals too.
    for anchor in (tree.state, tree.dbdir):
        assert mode(tree.staging(anchor)) == 0o700
        assert mode(tree.staging(anchor) / JOURNAL) == 0o600
    assert mode(tree.staging(tree.state) / "instances") == 0o700
    primary = read_journal(tree.staging(tree.state))
    assert re.fullmatch("[0-9a-f]{16}", primary["run"])
    expected = {
        "format": "memtomem-uninstall-journal",
        "version": 2,
        "run": primary["run"],
        "pid": os.getpid(),
        "state": "staging",
        "primary": True,
        "remove_state_dir": False,
        "items": len(tree.moves),
    }
    # No paths: recovery takes every directory from the layout, never from a journal.
    assert primary == expected
    assert read_journal(tree.staging(tree.dbdir)) == {**expected, "primary": False}
    txn.close()


def test_stage_then_rollback_restores_exactly(tree: Tree) -> None:
    before = tree.tree()
    txn = Transaction(ScriptedFs(), tree.plan(), interrupted=never)
    txn.stage()
    assert tree.tree() != before
    assert txn.rollback() == ()
    assert tree.tree() == before, "\n".join(diff(before, tree.tree()))


@pytest.mark.parametrize("position", range(5))
def test_a_failed_move_raises_stage_failed_and_rollback_restores(tree: Tree, position: int) -> None:
    move = tree.moves[position]
    before = tree.tree()
    fault = Fault(errno.EIO, op="replace", contains=f"{move.src} -> ")
    txn = Transaction(ScriptedFs(fault), tree.plan(), interrupted=never)
    with pytest.raises(StageFailed) as failed:
        txn.stage()
    assert failed.value.path == move.src
    assert failed.value.cause is not None and failed.value.cause.errno == errno.EIO
    assert txn.rollback() == ()
    assert tree.tree() == before, "\n".join(diff(before, tree.tree()))


def test_a_signal_between_moves_stops_staging_and_rollback_restores(tree: Tree) -> None:
    before = tree.tree()
    calls = iter([None, None, 2])
    txn = Transaction(ScriptedFs(), tree.plan(), interrupted=lambda: next(calls, 2))
    with pytest.raises(StageFailed) as failed:
        txn.stage()
    assert (failed.value.signal, failed.value.path) == (2, tree.moves[2].src)
    assert os.path.lexists(tree.staged(tree.moves[1]))  # two moves happened
    assert txn.rollback() == ()
    assert tree.tree() == before


@pytest.mark.parametrize("remove_state_dir", [False, True])
def test_stage_then_commit_removes_exactly_the_plan(tree: Tree, remove_state_dir: bool) -> None:
    before = tree.tree()
    seen: list[dict[str, Any]] = []

    def hook(_n: int, when: str, op: str, target: str) -> None:
        # The first delete of a staged item happens only after COMMITTED is on disk.
        if when == "before" and op == "unlink" and JOURNAL not in target and not seen:
            seen.append(read_journal(tree.staging(tree.state)))

    fs = ScriptedFs()
    txn = Transaction(fs, tree.plan(remove_state_dir), interrupted=never)
    txn.stage()
    fs.hook = hook
    removal = txn.finish(stop=lambda: False)
    assert seen and seen[0]["state"] == "committed"
    assert (removal.error_count, removal.errors) == (0, [])
    expected = without(before, tree.root, tree.removed)
    gone = [node for rel, node in before.items() if rel not in expected and node[0] != "dir"]
    assert removal.files == len(gone)
    if remove_state_dir:
        # instances/ is left (only its lock was planned), so the state dir cannot go.
        assert os.path.isdir(tree.state)
    assert tree.tree() == expected, "\n".join(diff(expected, tree.tree()))


def test_commit_removes_an_emptied_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "home" / ".memtomem"
    write(state / "memories" / "x.md", "x")
    write(state / "config.json", "{}")
    moves = (
        Move(Group.CONFIG, state / "config.json", state),
        Move(Group.MEMORIES, state / "memories", state),
    )
    before = snapshot(tmp_path)
    txn = Transaction(
        ScriptedFs(), Plan(moves, (), (state,), state, True, False, False), interrupted=never
    )
    txn.stage()
    assert read_journal(state / f".uninstall-staging-{os.getpid()}")["remove_state_dir"] is True
    removal = txn.finish(stop=lambda: False)
    assert (removal.files, removal.error_count) == (2, 0)
    expected = without(before, tmp_path, [state])
    assert snapshot(tmp_path) == expected


def test_rollback_is_idempotent(tree: Tree) -> None:
    before = tree.tree()
    fs = ScriptedFs()
    txn = Transaction(fs, tree.plan(), interrupted=never)
    txn.stage()
    assert rollback(fs, txn.stagings) == ()
    assert tree.tree() == before
    assert rollback(fs, txn.stagings) == ()
    assert tree.tree() == before


def test_rollback_after_a_half_done_rollback(tree: Tree) -> None:
    # A crash mid-rollback: some items are already home. rollback checks where each one is.
    before = tree.tree()
    fs = ScriptedFs()
    txn = Transaction(fs, tree.plan(), interrupted=never)
    txn.stage()
    for move in tree.moves[3:]:
        os.replace(tree.staged(move), move.src)
    assert rollback(fs, txn.stagings) == ()
    assert tree.tree() == before, "\n".join(diff(before, tree.tree()))


def test_rollback_reports_what_it_could_not_move_and_a_retry_finishes(tree: Tree) -> None:
    before = tree.tree()
    stuck = tree.moves[1]
    fs = ScriptedFs()
    txn = Transaction(fs, tree.plan(), interrupted=never)
    txn.stage()
    fs.faults.append(Fault(errno.EIO, op="replace", contains=f"{tree.staged(stuck)} -> "))
    unrestored = txn.rollback()
    assert list(unrestored) == [(tree.staged(stuck), stuck.src)]
    # Nothing is discarded while an item is still staged: both journals stay.
    assert (tree.staging(tree.state) / JOURNAL).is_file()
    assert (tree.staging(tree.dbdir) / JOURNAL).is_file()
    assert os.path.lexists(tree.staged(stuck))
    assert rollback(fs, txn.stagings) == ()
    assert tree.tree() == before, "\n".join(diff(before, tree.tree()))


def test_finish_keeps_the_primary_journal_while_a_secondary_resists(tree: Tree) -> None:
    before = tree.tree()
    fs = ScriptedFs()
    txn = Transaction(fs, tree.plan(True), interrupted=never)
    txn.stage()
    secondary = tree.staging(tree.dbdir)
    fs.faults.append(Fault(errno.EIO, op="unlink", contains=f"{secondary}/", every_from=True))
    removal = txn.finish(stop=lambda: False)
    txn.close()
    reason = "Input/output error (injected)"
    assert sorted(removal.errors) == [  # the order of a directory listing is the fs's
        (str(secondary / "custom.db"), reason),
        (str(secondary / "custom.db-wal"), reason),
    ]

    # The primary's items are deleted but its config, which names the database's dir, and
    # its COMMITTED journal stay: the run is resumable, and the next run finds the rest.
    primary = tree.staging(tree.state)
    assert sorted(os.listdir(primary)) == [JOURNAL, "config.json"]
    assert read_journal(primary)["state"] == "committed"
    # The secondary still holds its items byte for byte, with its STAGING copy of the journal.
    assert sorted(os.listdir(secondary)) == sorted([JOURNAL, "custom.db", "custom.db-wal"])
    assert read_journal(secondary)["state"] == "staging"
    after = tree.tree()
    for move in [*tree.moves[:3]]:
        rel = os.path.relpath
        assert after[rel(tree.staged(move), tree.root)] == before[rel(move.src, tree.root)]
    assert os.path.isdir(tree.state)

    # Once the cause is gone, recovery reads the run from disk and completes it.
    fs.faults.clear()
    scope = Scope(tree.state, (tree.dbdir / "custom.db",), ())
    recovered = recover(fs, scope, dry_run=False, stop=lambda: False)
    assert [(r.action.value, r.items, r.leftovers) for r in recovered.runs] == [
        ("finished", len(tree.moves), ())
    ]
    assert recovered.orphans == ()
    expected = without(before, tree.root, tree.removed)
    assert tree.tree() == expected, "\n".join(diff(expected, tree.tree()))
