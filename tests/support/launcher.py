"""Test-only launcher: runs `mm` with the guard and, from the environment, a fault seam.

MM_TEST_KILL_AT=N and MM_TEST_KILL_WHEN=before|after: SIGKILL this process at the Nth
filesystem mutation. MM_TEST_SIGNAL=SIGINT sends that signal instead (once). MM_TEST_TRACE=F
appends each mutation as a line to F, so a test can count the steps of a run.
"""

from __future__ import annotations

import os
import signal
import sys

from tests.support import guard
from tests.support.faults import MUTATIONS, ScriptedFs


def main() -> None:
    guard.install()
    from memtomem.cli import main as mm_main
    from memtomem.cli import uninstall_cmd

    kill_at = int(os.environ.get("MM_TEST_KILL_AT", "0"))
    when = os.environ.get("MM_TEST_KILL_WHEN", "before")
    sig = getattr(signal, os.environ.get("MM_TEST_SIGNAL", "SIGKILL"))
    trace_path = os.environ.get("MM_TEST_TRACE")
    trace = open(trace_path, "a", encoding="utf-8") if trace_path else None

    def hook(n: int, phase: str, op: str, target: str) -> None:
        if trace is not None and phase == "before":
            trace.write(f"{op}\t{target!r}\n")
            trace.flush()
        if n == kill_at and phase == when:
            os.kill(os.getpid(), sig)

    uninstall_cmd.make_fsops = lambda: ScriptedFs(hook=hook, only=MUTATIONS)
    sys.argv[0] = "mm"
    mm_main()


if __name__ == "__main__":
    main()
