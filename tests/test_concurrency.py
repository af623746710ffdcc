"""One run at a time: two real `mm uninstall -y` processes released at the same instant, many
times over: one removes, the other refuses naming it (or, left to the scheduler, may come
second and find nothing); the tree ends fully removed, never split. A lock left by a killed run blocks nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.cli import invoke
from tests.support.crash import (
    SIGNAL_LAUNCHER,
    Case,
    assert_tree,
    launch,
    leftovers_under,
    record,
    run_json,
    shape_of,
    signals_spec,
)
from tests.support.world import full_world

ROUNDS = 20


def busy_message(home: Path, pid: int | None) -> str:
    who = f" (pid {pid})" if pid else ""
    return (
        f"another mm uninstall{who} is running for {home}; wait for it to finish, "
        "then run mm uninstall again."
    )


def release_together(gate: Path, procs: list[subprocess.Popen[str]]) -> None:
    """Open the gate once every launcher has imported everything and waits at it."""
    deadline = time.monotonic() + 60
    while not all(Path(f"{gate}.{p.pid}").exists() for p in procs):
        assert time.monotonic() < deadline, "the launchers never reached the gate"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.001)
    gate.touch()


def wait_first_exit(procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """The first of `procs` to exit (a stopped one does not count)."""
    deadline = time.monotonic() + 60
    while True:
        done = [p for p in procs if p.poll() is not None]
        if done:
            return done[0]
        assert time.monotonic() < deadline, "neither run finished"
        time.sleep(0.002)


def run_pair(world_env: dict[str, str], gate: Path, freeze: bool) -> dict[int, tuple[int, Any]]:
    """Two real runs released at the same instant; {pid: (exit code, JSON document)}.

    With `freeze`, both are armed to SIGSTOP themselves at their first filesystem change,
    which only the one holding the run lock ever reaches: the other must meet the held lock
    whatever the scheduling, and the frozen one is resumed once it has answered."""
    env = {**world_env, "MM_TEST_GATE": str(gate)}
    if freeze:
        env["MM_TEST_SIGNALS"] = signals_spec(((1, "before"), "SIGSTOP"))
    procs = [launch(SIGNAL_LAUNCHER, ["-y", "--json"], env) for _ in range(2)]
    release_together(gate, procs)
    if freeze:
        first = wait_first_exit(procs)
        for proc in procs:
            if proc is not first:
                proc.send_signal(signal.SIGCONT)
    docs = {}
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert out, err
        docs[proc.pid] = (proc.returncode, json.loads(out))
    return docs


def test_two_runs_started_together_one_proceeds_one_refuses(tmp_path: Path) -> None:
    """Every round overlaps (the lock holder is frozen at its first change): the other run
    refuses, names it and touches nothing; resumed, the holder removes everything."""
    for round_ in range(ROUNDS):
        world = full_world(tmp_path / f"round-{round_}")
        before = world.tree()
        docs = run_pair(world.env, tmp_path / f"gate-{round_}", freeze=True)
        outcomes = sorted((code, doc["outcome"]) for code, doc in docs.values())
        assert outcomes == [(0, "removed"), (2, "refused")], docs
        loser = next(pid for pid, (code, _doc) in docs.items() if code == 2)
        winner = next(pid for pid in docs if pid != loser)
        doc = docs[loser][1]
        assert doc["message"] == busy_message(world.home, winner)
        assert doc["error"] == {"path": str(world.home), "hint": None}
        assert doc["recovery"] is None
        assert leftovers_under(world.root) == []
        assert_tree(world, world.expected(before, False, False), f"round {round_}")


def test_two_free_running_runs_never_split_the_tree(tmp_path: Path) -> None:
    """Released together and left to the scheduler: whichever order they take, the tree ends
    fully removed; the second either refuses (it met the lock) or finds nothing left."""
    for round_ in range(ROUNDS):
        world = full_world(tmp_path / f"round-{round_}")
        before = world.tree()
        docs = run_pair(world.env, tmp_path / f"gate-{round_}", freeze=False)
        outcomes = sorted((code, doc["outcome"]) for code, doc in docs.values())
        assert outcomes in (
            [(0, "removed"), (2, "refused")],
            [(0, "nothing-to-remove"), (0, "removed")],
        ), docs
        for code, doc in docs.values():
            if code == 2:
                # The holder is looked up after the failed flock; if it finished in between
                # there is no one left to name.
                assert doc["message"] in (busy_message(world.home, pid) for pid in [*docs, None]), (
                    doc["message"]
                )
        assert leftovers_under(world.root) == []
        assert_tree(world, world.expected(before, False, False), f"round {round_}")


def test_a_run_frozen_mid_staging_blocks_others_until_it_is_killed(tmp_path: Path) -> None:
    """A real run is stopped (SIGSTOP) halfway through staging, holding the run lock: the
    next run refuses and names it, touching nothing. Once it is SIGKILLed, its lock is
    gone with it: the next run recovers its half-staged state and removes everything."""
    case = Case(tmp_path / "w", False, (False, False))
    world = case.fresh()
    code, recorder = record(world, "-y")
    assert code == 0
    moves = shape_of(recorder.ops, recorder.failed, world).staged_moves()
    world = case.fresh()
    before = world.tree()
    stop = signals_spec(((moves[len(moves) // 2], "after"), "SIGSTOP"))
    frozen = launch(SIGNAL_LAUNCHER, ["-y"], {**world.env, "MM_TEST_SIGNALS": stop})
    try:
        _pid, status = os.waitpid(frozen.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), status
        half = world.tree()
        staged = [p for p in half if "/.uninstall-staging-" in p and not p.endswith(".json")]
        assert staged and half != before
        code, doc = run_json(world, "-y")
        assert (code, doc["outcome"]) == (2, "refused")
        assert doc["message"] == busy_message(world.home, frozen.pid)
        assert doc["recovery"] is None
        assert_tree(world, half, "a refused run touches nothing")
    finally:
        frozen.send_signal(signal.SIGKILL)
        frozen.communicate(timeout=60)
    assert frozen.returncode == -9
    code, doc = run_json(world, "-y")
    assert code == 0, doc["message"]
    assert [(r["action"], r["pid"]) for r in doc["recovery"]["runs"]] == [
        ("rolled-back", frozen.pid)
    ]
    assert doc["outcome"] == "removed"
    assert leftovers_under(world.root) == []
    assert_tree(world, world.expected(before, False, False), "after the killed run")


def test_a_killed_runs_lock_is_no_obstacle(tmp_path: Path) -> None:
    """SIGKILL at the very first mutation (the run lock is held, nothing moved yet): the
    next run proceeds at once."""
    world = full_world(tmp_path)
    before = world.tree()
    killed = launch(
        SIGNAL_LAUNCHER,
        ["-y"],
        {**world.env, "MM_TEST_SIGNALS": signals_spec(((1, "before"), "SIGKILL"))},
    )
    killed.communicate(timeout=60)
    assert killed.returncode == -9
    assert_tree(world, before, "killed before any change")
    result = invoke("-y", env=world.env)
    assert result.exit_code == 0, result.output
    assert "another mm uninstall" not in result.output
    assert_tree(world, world.expected(before, False, False), "the next run removed everything")


HOLD_AND_ORPHAN = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
if os.fork() == 0:
    print(os.getpid(), flush=True)
    time.sleep(60)
os._exit(0)
"""


def test_a_lock_held_by_the_child_of_a_dead_locker_names_no_dead_pid(tmp_path: Path) -> None:
    """The run lock taken by a process that died while a child it forked holds it on (the
    child inherited the descriptor): the kernel names the dead locker; the refusal names nobody
    rather than a dead pid, and the run proceeds once the child is gone."""
    world = full_world(tmp_path)
    before = world.tree()
    locker = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_ORPHAN, str(world.home)], stdout=subprocess.PIPE, text=True
    )
    assert locker.stdout is not None
    child = int(locker.stdout.readline())
    assert locker.wait(timeout=30) == 0
    try:
        code, doc = run_json(world, "-y")
        assert (code, doc["outcome"]) == (2, "refused"), doc
        assert doc["message"] == busy_message(world.home, None)
        assert_tree(world, before, "a refused run touches nothing")
    finally:
        os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (code := run_json(world, "-y")[0]) == 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert code == 0
    assert_tree(world, world.expected(before, False, False), "removed once the child is gone")
