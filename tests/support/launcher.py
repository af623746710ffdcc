"""Test-only launcher: runs `mm` with the guard and, from the environment, a fault seam.

MM_TEST_KILL_AT=N and MM_TEST_KILL_WHEN=before|after: SIGKILL this process at the Nth
filesystem mutation. MM_TEST_SIGNAL=SIGINT sends that signal instead (once).
MM_TEST_SIGNALS="k:when:NAME,..." sends signal NAME at the kth mutation (when = before |
after); several may be listed (a second Ctrl-C during rollback, a SIGSTOP that freezes a run
mid-staging). MM_TEST_TRACE=F appends each mutation as a line to F, so a test can count the
steps of a run. MM_TEST_GATE=<path>: after the imports, create <path>.<pid> and wait until
<path> exists, so that a test can start two runs at the same instant. MM_TEST_PLAIN=1: keep
the shipped FsOps (no hook at all, so its direct bulk paths run), with the guard still on.
MM_TEST_RECORD=F: record every change to the disk (tests/support/trace.py), one JSON line per
op appended to F as it happens; no signals are sent.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping

from tests.support import guard
from tests.support.faults import MUTATIONS, ScriptedFs
from tests.support.trace import Op, RecordingFs

Plan = dict[tuple[int, str], list[int]]


def signal_plan(env: Mapping[str, str]) -> Plan:
    """{(k, when): [signals]} from MM_TEST_KILL_AT/WHEN/SIGNAL and MM_TEST_SIGNALS."""
    plan: Plan = {}
    kill_at = int(env.get("MM_TEST_KILL_AT", "0"))
    if kill_at:
        when = env.get("MM_TEST_KILL_WHEN", "before")
        plan[(kill_at, when)] = [getattr(signal, env.get("MM_TEST_SIGNAL", "SIGKILL"))]
    for item in filter(None, env.get("MM_TEST_SIGNALS", "").split(",")):
        k, when, name = item.split(":")
        plan.setdefault((int(k), when), []).append(getattr(signal, name))
    return plan


def wait_at(gate: str) -> None:
    with open(f"{gate}.{os.getpid()}", "x"):
        pass
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.0005)


def main() -> None:
    guard.install()
    from memtomem.cli import main as mm_main
    from memtomem.cli import uninstall_cmd

    plan = signal_plan(os.environ)
    trace_path = os.environ.get("MM_TEST_TRACE")
    trace = open(trace_path, "a", encoding="utf-8") if trace_path else None

    def hook(n: int, phase: str, op: str, target: str) -> None:
        if trace is not None and phase == "before":
            trace.write(f"{op}\t{target!r}\n")
            trace.flush()
        for sig in plan.pop((n, phase), []):
            os.kill(os.getpid(), sig)

    record = os.environ.get("MM_TEST_RECORD")
    if record:
        sink = open(record, "a", encoding="utf-8")

        def write(op: Op) -> None:
            sink.write(op.to_json() + "\n")
            sink.flush()

        uninstall_cmd.make_fsops = lambda: RecordingFs(sink=write)
    elif not os.environ.get("MM_TEST_PLAIN"):
        uninstall_cmd.make_fsops = lambda: ScriptedFs(hook=hook, only=MUTATIONS)
    gate = os.environ.get("MM_TEST_GATE")
    if gate:
        wait_at(gate)
    sys.argv[0] = "mm"
    mm_main()


if __name__ == "__main__":
    main()
