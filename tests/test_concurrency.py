"""One run at a time: two real `mm uninstall -y` processes released at the same instant, many
times over: one removes, the other refuses naming it (or, if it came second, finds nothing);
the tree ends fully removed, never split. A lock left by a killed run blocks nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.cli import invoke
from tests.support.world import full_world
from tests.support_crash import (
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


def test_two_runs_started_together_one_proceeds_one_refuses(tmp_path: Path) -> None:
    refusals = named = 0
    for round_ in range(ROUNDS):
        world = full_world(tmp_path / f"round-{round_}")
        before = world.tree()
        gate = tmp_path / f"gate-{round_}"
        env = {**world.env, "MM_TEST_GATE": str(gate)}
        procs = [launch(SIGNAL_LAUNCHER, ["-y", "--json"], env) for _ in range(2)]
        release_together(gate, procs)
        docs = {}
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert out, err
            docs[proc.pid] = (proc.returncode, json.loads(out))
        outcomes = sorted((code, doc["outcome"]) for code, doc in docs.values())
        if outcomes == [(0, "removed"), (2, "refused")]:
            refusals += 1
            loser = next(pid for pid, (code, _doc) in docs.items() if code == 2)
            winner = next(pid for pid in docs if pid != loser)
            doc = docs[loser][1]
            # The holder is looked up after the failed flock; if it finished in between,
            # there is no one left to name (the frozen-run test below pins the name).
            assert doc["message"] in (
                busy_message(world.home, winner),
                busy_message(world.home, None),
            )
            named += doc["message"] == busy_message(world.home, winner)
            assert doc["error"] == {"path": str(world.home), "hint": None}
        else:
            assert outcomes == [(0, "nothing-to-remove"), (0, "removed")], docs
        assert leftovers_under(world.root) == []
        assert_tree(world, world.expected(before, False, False), f"round {round_}")
    # Released together, some rounds must overlap, or the refusal path went untested; how
    # many depends on the machine's load (a run that finds the lock free again proceeds).
    print(f"{refusals} of {ROUNDS} rounds overlapped; {named} refusals named the holder")
    assert refusals >= 3


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
