"""SQLite-style fault scenarios: fail the Nth seam call (once, or from N on), then judge.

One scenario = one fresh world, one `mm uninstall -y` run in-process with a FailAt seam,
its outcome checked against the tree before and the fully removed tree; and, when the run
left a staging dir or journal behind (or crashed), a follow-up run without faults that
must end fully removed. Every broken invariant is collected, so a sweep reports all
failing N at once.
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from tests.support.cli import flag_args, invoke
from tests.support.faults import Fault, ScriptedFs, oserror
from tests.support.names import STAGING
from tests.support.snapshot import Node, diff
from tests.support.world import DEAD_PID, World, digest, full_world, write

T = TypeVar("T")
RETRY_SECONDS = 0.001  # keeps the Windows-style retry loop short under every_from

# -32 is faults.oserror's simulated Windows sharing violation (winerror 32).
ERRORS: dict[str, int] = {
    "EACCES": errno.EACCES,
    "EPERM": errno.EPERM,
    "ENOSPC": errno.ENOSPC,
    "EIO": errno.EIO,
    "EXDEV": errno.EXDEV,
    "EBUSY": errno.EBUSY,
    "sharing-violation": -32,
}


def runtime_full_world(root: Path) -> World:
    """full_world plus stale sentinels and presence markers of other stores, and runtime
    entries that are not ours (kept): the runtime dir as a busy machine leaves it."""
    world = full_world(root)
    runtime = world.runtime
    for n, other in enumerate(("fedcba9876543210", "00000000deadbeef", digest(world.db))):
        name = f"{DEAD_PID}-{n + 2}-{other}-4f4c68fe-0000000{n}.lock"
        world.tag("runtime", write(runtime / "instances" / name))
    for n, other in enumerate(("fedcba9876543210", "00000000deadbeef")):
        name = f"{DEAD_PID}-{n + 3}-{other}-4f4c68fe-1111111{n}.lock"
        world.tag("runtime", write(runtime / "presence" / name))
    write(runtime / "server-fedcba9876543210.pid", f"{DEAD_PID}\n")  # another store's
    write(runtime / "instances" / "README.txt", "not a sentinel")  # not *.lock: not ours
    (runtime / "presence" / "odd.lock").mkdir()  # a dir named like a marker: not ours
    return world


LAYOUTS: dict[str, Callable[[Path], World]] = {
    "default": full_world,
    "custom-db": lambda root: full_world(root, custom_db=True),
    "runtime-full": runtime_full_world,
}


class NoSync(ScriptedFs):
    """The seam as the matrix uses it: every call recorded; fsync counted and failable
    like any call, but not executed - no run here loses power, and a real fsync costs
    milliseconds on a virtual disk, times tens of thousands of scenarios."""

    def __init__(self, *faults: Fault) -> None:
        super().__init__(*faults, retry_seconds=RETRY_SECONDS)

    def _call(self, op: str, target: str, func: Callable[[], T]) -> T:
        if op == "fsync":
            func = lambda: cast(T, None)  # noqa: E731
        return super()._call(op, target, func)


class FailAt(NoSync):
    """Counts every seam call (reads included) and fails call `n` - or every call from `n`
    on - with `error`. A retry of a transient error is a call of its own."""

    def __init__(self, error: int, n: int, *, every_from: bool) -> None:
        self.fault = Fault(error=error, nth=n, every_from=every_from)
        self.n = n
        super().__init__(self.fault)

    @property
    def reached(self) -> bool:
        return self.fault.seen >= self.n

    @property
    def failed_call(self) -> tuple[str, str] | None:
        return self.calls[self.n - 1] if self.reached else None


Rule = Callable[[str, str, list[tuple[str, str]]], int | None]


class Scripted(NoSync):
    """Fails the calls `rule(op, target, calls so far)` picks, with the errno it returns."""

    def __init__(self, rule: Rule) -> None:
        super().__init__()
        self.rule = rule
        self.failed: list[tuple[str, str]] = []

    def before(self, op: str, target: str) -> None:
        super().before(op, target)
        code = self.rule(op, target, self.calls)
        if code is not None:
            self.failed.append((op, target))
            raise oserror(code)


@dataclass(frozen=True)
class Scenario:
    layout: str
    keep_config: bool
    keep_data: bool
    error: str
    n: int
    every_from: bool

    @property
    def args(self) -> list[str]:
        return ["-y", *flag_args(self.keep_config, self.keep_data)]

    def __str__(self) -> str:
        flags = " ".join(flag_args(self.keep_config, self.keep_data)) or "(no flags)"
        if self.error == "scripted":
            return f"[{self.layout} {flags}: scripted faults]"
        mode = "every call from" if self.every_from else "call"
        return f"[{self.layout} {flags} {self.error}: fail {mode} {self.n}]"


@dataclass
class Run:
    """What one `mm uninstall` run did wrong: (kind, text) problems, kinds being "tree",
    "exception", "leak", "message" and "exit"."""

    label: str  # "run" or "follow-up"
    exit_code: int | None = None
    output: str = ""
    raised: str | None = None
    raised_in: tuple[str, ...] = ()  # package functions on the traceback, outermost first
    problems: list[tuple[str, str]] = field(default_factory=list)
    deviations: set[str] = field(default_factory=set)  # tree keys of every mismatch

    def fail(self, kind: str, text: str) -> None:
        self.problems.append((kind, text))

    @property
    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.problems}


@dataclass
class Verdict:
    scenario: Scenario
    run: Run
    follow: Run | None = None
    reached: bool = False
    failed_call: tuple[str, str] | None = None

    @property
    def runs(self) -> list[Run]:
        return [self.run] + ([self.follow] if self.follow is not None else [])

    @property
    def problems(self) -> list[str]:
        return [f"{r.label}: {text}" for r in self.runs for _kind, text in r.problems]

    @property
    def exit_code(self) -> int | None:
        return self.run.exit_code

    @property
    def follow_up(self) -> int | None:
        return None if self.follow is None else self.follow.exit_code

    def __str__(self) -> str:
        op = "never reached" if self.failed_call is None else " ".join(self.failed_call)
        head = f"{self.scenario} at {op!r}:"
        for r in self.runs:
            head += f" {r.label} exit {r.exit_code}"
            if r.raised:
                head += f" (raised {r.raised} in {' > '.join(r.raised_in)})"
            head += ";"
        return head + "".join(f"\n    {p}" for p in self.problems)


def is_staged(key: str) -> bool:
    """Whether a tree key is a staging dir or below one."""
    return any(part.startswith(STAGING) for part in key.split("/"))


def _outside_staging(tree: dict[str, Node]) -> dict[str, Node]:
    return {k: v for k, v in tree.items() if not is_staged(k)}


def _short(lines: list[str], limit: int = 8) -> str:
    more = f"\n      ... {len(lines) - limit} more" if len(lines) > limit else ""
    return "".join(f"\n      {line}" for line in lines[:limit]) + more


def _tail(out: str) -> str:
    return repr(out[-300:])


def _package_frames(exc: BaseException) -> tuple[str, ...]:
    frames = traceback.extract_tb(exc.__traceback__)
    return tuple(f.name for f in frames if f"{os.sep}memtomem{os.sep}" in f.filename)


def _fds_into(root: Path) -> set[int]:
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target == str(root) or target.startswith(f"{root}/"):
            found.add(int(name))
    return found


class Judge:
    """The invariants of one scenario, run after run."""

    def __init__(self, world: World, sc: Scenario) -> None:
        self.world, self.sc = world, sc
        self.before = world.tree()
        self.expected = world.expected(self.before, sc.keep_config, sc.keep_data)
        self.optional: set[str] = set()  # may be gone or as before (see ignored_config)
        # What a run may create for its barrier when no server ever did (see reported_locks).
        self.lock_keys = {
            os.path.relpath(p, world.root)
            for p in (world.runtime, world.runtime / "lifecycle.lock")
            if not os.path.lexists(p)
        }

    def invoke(self, label: str, fs: NoSync) -> tuple[Run, dict[str, Node]]:
        run = Run(label)
        try:
            result = invoke(*self.sc.args, env=self.world.env, fs=fs)
        except Exception as exc:  # in-process: what a user would see as a traceback
            run.raised = f"{type(exc).__name__}: {exc}"
            run.raised_in = _package_frames(exc)
            run.fail("exception", f"unexpected exception {run.raised}")
        else:
            run.exit_code, run.output = result.exit_code, result.output
            if "Traceback" in result.output:
                run.fail("exception", "a traceback in the output")
        self.leaks(run)
        return run, self.world.tree()

    def same(
        self, run: Run, what: str, reference: dict[str, Node], actual: dict[str, Node]
    ) -> None:
        either = {k for k in self.optional if actual.get(k) in (None, self.before.get(k))}
        reference = {k: v for k, v in reference.items() if k not in either}
        actual = {k: v for k, v in actual.items() if k not in either}
        if actual != reference:
            run.fail("tree", what + _short(diff(reference, actual)))
            keys = reference.keys() | actual.keys()
            run.deviations |= {k for k in keys if reference.get(k) != actual.get(k)}

    def reported_locks(self, out: str, after: dict[str, Node]) -> None:
        """A barrier (and runtime dir) the run created and says it could not remove is
        tolerated, in this run's tree and in every later one."""
        left = {k: after[k] for k in self.lock_keys if k in after}
        if left and "lifecycle.lock" in out:
            self.before |= left
            self.expected |= left

    def ignored_config(self, out: str) -> None:
        """The spec: a config.json that cannot be read is ignored with a warning and the
        default database path is used, so a custom database it named (and the pid file
        named for that database) may stay."""
        warned = any(
            "config.json" in line and "database path setting was not used" in line
            for line in out.splitlines()
        )
        world = self.world
        if warned and world.db.parent != world.state:
            custom = [p for p in world.owned.get("database", []) if p.parent == world.db.parent]
            pid_file = world.runtime / f"server-{digest(world.db)}.pid"
            self.optional |= {os.path.relpath(p, world.root) for p in [*custom, pid_file]}

    def outcome(self, run: Run, after: dict[str, Node]) -> None:
        """The exit code names the outcome; the tree and the message must be that outcome."""
        code, out = run.exit_code, run.output
        self.reported_locks(out, after)
        self.ignored_config(out)
        if code == 0:
            self.same(run, "exit 0 but not the fully removed tree:", self.expected, after)
            if "Removed " not in out and "nothing to remove" not in out.lower():
                run.fail("message", f"exit 0 without 'Removed ...': {_tail(out)}")
        elif code in (2, 3):
            self.same(run, f"exit {code} but not the original tree:", self.before, after)
            wanted = "nothing was changed" if code == 2 else "everything was put back"
            if wanted not in out.lower():
                run.fail("message", f"exit {code} without {wanted!r}: {_tail(out)}")
        elif code == 4:
            self.bytes_kept(run, after)
            if (
                "nothing was deleted" not in out.lower()
                or "To put everything back, run:" not in out
            ):
                run.fail(
                    "message", f"exit 4 without 'nothing was deleted' and commands: {_tail(out)}"
                )
        elif code == 5:
            rest = _outside_staging(after)
            state = os.path.relpath(self.world.state, self.world.root)
            if state not in self.expected and not any(k.startswith(state + "/") for k in rest):
                rest.pop(state, None)
            self.same(run, "exit 5 but outside staging not removed:", self.expected, rest)
            if "could not delete" not in out:
                run.fail("message", f"exit 5 without naming the leftover: {_tail(out)}")
        else:
            run.fail("exit", f"unexpected exit code {code}: {_tail(out)}")

    def bytes_kept(self, run: Run, after: dict[str, Node]) -> None:
        """Exit 4's promise: every original entry is where it was or, if it was planned
        for removal, under a staging dir of its anchor with identical type, mode, bytes."""
        world, sc = self.world, self.sc
        movable = [
            os.path.relpath(p, world.root) for p in world.removed(sc.keep_config, sc.keep_data)
        ]
        anchors = {
            os.path.relpath(a, world.root) for a in (world.state, world.db.parent, world.runtime)
        }
        stagings = [k for k in after if os.path.basename(k).startswith(STAGING)]
        for rel, node in self.before.items():
            if after.get(rel) == node:
                continue
            may_move = any(rel == m or rel.startswith(m + "/") for m in movable)
            relocated = any(
                after.get(f"{s}/{rel[len(a) + 1 :]}") == node
                for a in anchors
                if rel.startswith(a + "/")
                for s in stagings
                if os.path.dirname(s) == a
            )
            if not (may_move and relocated):
                run.fail("tree", f"exit 4 but not on disk any more: {rel} {node}")
                run.deviations.add(rel)
        for rel, node in _outside_staging(after).items():
            if self.before.get(rel) != node:
                run.fail("tree", f"exit 4 but changed: {rel} {node}")
                run.deviations.add(rel)

    def follow_up(self, staged: bool) -> Run:
        """Faults gone, the next run recovers and finishes: the fully removed tree, exit 0."""
        run, after = self.invoke("follow-up", NoSync())
        if run.exit_code is None:
            return run  # it crashed: that is the problem
        if run.exit_code != 0:
            run.fail("exit", f"exit {run.exit_code}, not 0: {_tail(run.output)}")
        self.same(run, "not the fully removed tree:", self.expected, after)
        if staged and "Recovered:" not in run.output:
            run.fail("message", f"did not say what it recovered: {_tail(run.output)}")
        return run

    def leaks(self, run: Run) -> None:
        """Descriptors the run left open into its world (closed here: later runs start clean)."""
        leaked = _fds_into(self.world.root)
        if leaked:
            gc.collect()  # scandir iterators kept alive by a reference cycle are not leaks
            leaked = _fds_into(self.world.root)
        for fd in leaked:
            os.close(fd)
        if leaked:
            run.fail("leak", f"leaked {len(leaked)} open descriptor(s) into the tree")


def judge(base: Path, sc: Scenario) -> Verdict:
    """Run one scenario in a fresh world under `base`; the world is deleted afterwards."""
    root = Path(tempfile.mkdtemp(dir=base, prefix="sc-"))
    try:
        return judge_world(LAYOUTS[sc.layout](root), sc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def judge_world(world: World, sc: Scenario, fs: NoSync | None = None) -> Verdict:
    """Run `sc` on a freshly built `world` (its `layout` name is only a label here), with
    FailAt(sc) or the given seam; then, if it left anything staged or crashed, a clean run."""
    judge = Judge(world, sc)
    fs = fs if fs is not None else FailAt(ERRORS[sc.error], sc.n, every_from=sc.every_from)
    run, after = judge.invoke("run", fs)
    verdict = Verdict(sc, run)
    if isinstance(fs, FailAt):
        verdict.reached, verdict.failed_call = fs.reached, fs.failed_call
    elif isinstance(fs, Scripted):
        verdict.reached = bool(fs.failed)
        verdict.failed_call = fs.failed[0] if fs.failed else None
    if run.exit_code is not None:
        judge.outcome(run, after)
    staged = any(is_staged(k) for k in after)
    if staged or run.exit_code in (None, 4, 5):
        verdict.follow = judge.follow_up(staged)
    return verdict


def sweep(
    base: Path, make: Callable[[int], Scenario], start: int = 1, stride: int = 1
) -> Iterator[Verdict]:
    """N = start, start+stride, ... until a run completes without reaching call N."""
    n = start
    while True:
        verdict = judge(base, make(n))
        yield verdict
        if not verdict.reached:
            return
        n += stride
