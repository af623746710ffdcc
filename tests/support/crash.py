"""Shared helpers for the crash tests: traced runs, kill points, forked kills, settled trees.

A run's "shape" is the list of filesystem mutations it makes through the seam, with the
indices where its phases begin. Every expectation of a kill or signal sweep is derived
from the shape of a real run, never hard-coded, so the sweeps follow the code's steps.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import REPO
from tests.support.cli import flag_args, invoke
from tests.support.faults import MUTATIONS, ScriptedFs
from tests.support.names import JOURNAL, STAGING
from tests.support.snapshot import Node, diff
from tests.support.world import FLAG_IDS, FLAGS, World, full_world

WHENS = ("before", "after")
Point = tuple[int, str]
Hook = Callable[[int, str, str, str], None]
Kill = Callable[[World, Point], int]
LAYOUTS = [False, True]
LAYOUT_IDS = ["default-db", "custom-db"]
CASES = [(custom, flags) for custom in LAYOUTS for flags in FLAGS]
CASE_IDS = [f"{lid}-{fid}" for lid in LAYOUT_IDS for fid in FLAG_IDS]


@dataclass(frozen=True)
class Op:
    n: int
    op: str
    target: str


@dataclass(frozen=True)
class Case:
    """One layout and flag combination, rebuilt at the same root for every run, so the
    store digest (and with it the order of the runtime moves) is the same each time."""

    root: Path
    custom_db: bool
    flags: tuple[bool, bool]

    def fresh(self) -> World:
        if self.root.exists():
            shutil.rmtree(self.root)
        return full_world(self.root, custom_db=self.custom_db)

    def args(self, *extra: str) -> list[str]:
        return ["-y", *flag_args(*self.flags), *extra]


@contextmanager
def scratch_root(tmp_path: Path) -> Iterator[Path]:
    """A private dir on a tmpfs (/dev/shm) when there is one, else `tmp_path`.

    The sweeps rebuild a world hundreds of times; on a disk every fsync of the run waits
    for a journal commit (about 5x slower). What is tested here is where each item is
    after a kill, which fsync cannot change while the machine stays up.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="mm-crash-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def read_trace(path: Path) -> list[Op]:
    """The launcher's MM_TEST_TRACE file: one `op<TAB>repr(target)` line per mutation."""
    ops = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        op, _tab, target = line.partition("\t")
        ops.append(Op(n, op, ast.literal_eval(target)))
    return ops


def normalized(ops: Iterable[Op], root: Path) -> list[tuple[str, str]]:
    """Ops with the root and staging pids made neutral, to compare runs of two processes."""
    pid = re.compile(re.escape(STAGING) + r"\d+")
    return [(o.op, pid.sub(STAGING + "N", o.target.replace(str(root), "<root>"))) for o in ops]


@dataclass(frozen=True)
class Shape:
    """The mutations of one run and the indices (1-based) that mark its phases.

    `own_commit` is the replace that puts this run's COMMITTED journal in place (None when
    the run stages nothing of its own); `record_gone` is the unlink of the last journal in
    the state dir, after which nothing records that the state dir itself is to go
    (`state_gone`, the final rmdir).
    """

    ops: tuple[Op, ...]
    failed: frozenset[int]
    primary: str | None = None
    started: int | None = None
    journaled: int | None = None
    own_commit: int | None = None
    journal_gone: int | None = None
    primary_gone: int | None = None
    record_gone: int | None = None
    state_gone: int | None = None

    @property
    def n(self) -> int:
        return len(self.ops)

    def points(self) -> list[Point]:
        """Every (k, when) that really happens: an op that raised has no "after"."""
        return [
            (o.n, when)
            for o in self.ops
            for when in WHENS
            if not (when == "after" and o.n in self.failed)
        ]

    def phase(self, k: int) -> str:
        """prepare | staging | commit | delete; commit = the COMMITTED journal write."""
        if self.started is None or k < self.started:
            return "prepare"
        assert self.own_commit is not None
        if k < self.commit_write:
            return "staging"
        if k <= self.own_commit + 1:  # the replace is followed by the staging dir's fsync
            return "commit"
        return "delete"

    @property
    def commit_write(self) -> int:
        """The first op of the COMMITTED journal write: unlink tmp, create, write, fsync."""
        assert self.own_commit is not None
        return self.own_commit - 4

    def staged_moves(self) -> list[int]:
        """Indices of the replaces that move an item into this run's staging dirs."""
        assert self.journaled is not None and self.own_commit is not None
        stagings = [o.target for o in self.ops if o.op == "mkdir" and _is_staging(o.target)]
        return [
            o.n
            for o in self.ops[self.journaled : self.own_commit]
            if o.op == "replace"
            and not o.target.endswith((JOURNAL, JOURNAL + ".tmp"))
            and any(f"-> {s}/" in o.target for s in stagings)
        ]


def _is_staging(path: str) -> bool:
    return os.path.basename(path).startswith(STAGING)


def shape_of(ops: list[Op], failed: Iterable[int], world: World) -> Shape:
    state = str(world.state)
    own = [
        o.target
        for o in ops
        if o.op == "mkdir" and os.path.dirname(o.target) == state and _is_staging(o.target)
    ]
    records = [
        o.n
        for o in ops
        if o.op == "unlink"
        and os.path.basename(o.target) == JOURNAL
        and os.path.dirname(os.path.dirname(o.target)) == state
    ]
    state_rm = [o.n for o in ops if o.op == "rmdir" and o.target == state]
    base = Shape(
        tuple(ops),
        frozenset(failed),
        record_gone=records[-1] if records else None,
        state_gone=state_rm[-1] if state_rm else None,
    )
    if not own:
        return base
    primary = own[0]
    onto = [o.n for o in ops if o.op == "replace" and o.target.endswith(f"-> {primary}/{JOURNAL}")]
    assert len(onto) == 2, f"expected two journal writes into {primary}: {onto}"
    gone = [o.n for o in ops if o.op == "unlink" and o.target == f"{primary}/{JOURNAL}"]
    removed = [o.n for o in ops if o.op == "rmdir" and o.target == primary]
    return Shape(
        base.ops,
        base.failed,
        primary=primary,
        started=min(o.n for o in ops if o.op == "mkdir" and _is_staging(o.target)),
        journaled=onto[0],
        own_commit=onto[1],
        journal_gone=gone[-1] if gone else None,
        primary_gone=removed[-1] if removed else None,
        record_gone=base.record_gone,
        state_gone=base.state_gone,
    )


def done(point: Point, index: int | None) -> bool:
    """Whether op `index` had completed when the process died at `point`."""
    if index is None:
        return False
    k, when = point
    return k > index or (k == index and when == "after")


def state_dir_left(shape: Shape, point: Point) -> bool:
    """Killed after the last journal in the state dir went but before the state dir itself:
    recovery may empty it, but no record says it is to go, so the next -y run removes it."""
    if shape.state_gone is None:
        return False
    return done(point, shape.record_gone) and not done(point, shape.state_gone)


@dataclass
class Recorder:
    """A ScriptedFs hook that records each mutation and whether it completed."""

    ops: list[Op] = field(default_factory=list)
    completed: set[int] = field(default_factory=set)

    def __call__(self, n: int, phase: str, op: str, target: str) -> None:
        if phase == "before":
            self.ops.append(Op(n, op, target))
        else:
            self.completed.add(n)

    @property
    def failed(self) -> set[int]:
        return {o.n for o in self.ops} - self.completed


def record(world: World, *args: str) -> tuple[int, Recorder]:
    """Run `mm uninstall` in-process with a recording seam: (exit code, recorder)."""
    recorder = Recorder()
    result = invoke(*args, env=world.env, fs=ScriptedFs(hook=recorder, only=MUTATIONS))
    return result.exit_code, recorder


def reference_shape(case: Case, mm_subprocess: Callable[..., Any], trace: Path) -> Shape:
    """N and the ops from the launcher's trace of a full run; which ops raise (and so have
    no "after") from the same run in-process. Both must make the very same mutations."""
    world = case.fresh()
    before = world.tree()
    ran = mm_subprocess("uninstall", *case.args(), env={**world.env, "MM_TEST_TRACE": str(trace)})
    assert ran.returncode == 0, ran.stderr
    assert_tree(world, world.expected(before, *case.flags), "reference run")
    ops = read_trace(trace)
    world = case.fresh()
    code, recorder = record(world, *case.args())
    assert code == 0
    assert normalized(recorder.ops, world.root) == normalized(ops, world.root)
    return shape_of(ops, recorder.failed, world)


def kill_hook(point: Point, sig: int = signal.SIGKILL) -> Hook:
    k, when = point

    def hook(n: int, phase: str, _op: str, _target: str) -> None:
        if n == k and phase == when:
            os.kill(os.getpid(), sig)

    return hook


def forked(args: list[str], env: dict[str, str], hook: Hook) -> int:
    """Run `mm uninstall` in a forked child whose seam runs `hook`; its exit code (-N when
    a signal ended it). Cheaper than a new interpreter, and still a real process that
    really dies at the kill point."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        code = 70
        try:
            code = invoke(*args, env=env, fs=ScriptedFs(hook=hook, only=MUTATIONS)).exit_code
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def fork_kill(case: Case) -> Kill:
    return lambda world, point: forked(case.args(), world.env, kill_hook(point))


def launcher_kill(case: Case, mm_subprocess: Callable[..., Any]) -> Kill:
    def kill(world: World, point: Point) -> int:
        k, when = point
        env = {**world.env, "MM_TEST_KILL_AT": str(k), "MM_TEST_KILL_WHEN": when}
        ran: subprocess.CompletedProcess[str] = mm_subprocess("uninstall", *case.args(), env=env)
        return ran.returncode

    return kill


def anchors(world: World) -> list[Path]:
    return list(dict.fromkeys([world.state, world.db.parent, world.runtime]))


def stagings_in(world: World) -> list[str]:
    """The staging dirs present in the anchors right now."""
    found = []
    for anchor in anchors(world):
        if anchor.is_dir():
            found += [str(anchor / n) for n in os.listdir(anchor) if n.startswith(STAGING)]
    return sorted(found)


def leftovers_under(root: Path) -> list[str]:
    """Every staging dir or journal anywhere below `root`: none may be left once settled."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if name.startswith((STAGING, JOURNAL)):
                found.append(os.path.join(dirpath, name))
    return found


def assert_tree(world: World, want: dict[str, Node], label: str) -> None:
    after = world.tree()
    assert after == want, f"{label}:\n" + "\n".join(diff(want, after))


def with_state_dir(world: World, tree: dict[str, Node], before: dict[str, Node]) -> dict[str, Node]:
    """`tree` plus the state dir itself, as it was before (then empty)."""
    rel = os.path.relpath(world.state, world.root)
    return {**tree, rel: before[rel]}


def run_json(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("--json", *args, env=world.env)
    return result.exit_code, json.loads(result.stdout)


@dataclass(frozen=True)
class Settled:
    """What must hold once a crashed run is recovered."""

    committed: bool
    state_dir_left: bool = False
    runs: list[dict[str, Any]] | None = None  # the recovery report; None: not checked


def expected_runs(
    shape: Shape, point: Point, crashed: list[str], moves: int
) -> list[dict[str, Any]]:
    """The recovery report for a first run killed at `point`, from where its phases begin."""
    if not done(point, shape.started):
        return []
    assert shape.primary is not None
    pid = int(os.path.basename(crashed[0])[len(STAGING) :]) if crashed else 0
    state = os.path.dirname(shape.primary)
    primary = next((s for s in crashed if os.path.dirname(s) == state), None)
    if not done(point, shape.journaled):
        return [{"staging": s, "pid": 0, "action": "cleaned", "items": 0} for s in crashed]
    if not done(point, shape.own_commit):
        return [{"staging": primary, "pid": pid, "action": "rolled-back", "items": moves}]
    if not done(point, shape.journal_gone):
        return [{"staging": primary, "pid": pid, "action": "finished", "items": moves}]
    if not done(point, shape.primary_gone):
        return [{"staging": primary, "pid": 0, "action": "cleaned", "items": 0}]
    return []


def verify_recovery(
    world: World, before: dict[str, Node], flags: tuple[bool, bool], want: Settled
) -> None:
    """Recovery alone (a run that then declines: no -y, no terminal) leaves the original
    tree or the fully removed one, per `want`; a following -y run then removes the rest."""
    expected = world.expected(before, *flags)
    code, doc = run_json(world, *flag_args(*flags))
    if want.runs is not None:
        runs = sorted(doc["recovery"]["runs"], key=lambda r: r["staging"])
        assert runs == sorted(want.runs, key=lambda r: str(r["staging"])), doc["recovery"]
    assert doc["recovery"]["orphans"] == []
    assert leftovers_under(world.root) == []
    if not want.committed:
        assert (code, doc["outcome"]) == (1, "declined"), doc["message"]
        assert_tree(world, before, "not committed: recovery must restore the original")
    elif want.state_dir_left:
        assert (code, doc["outcome"]) == (1, "declined"), doc["message"]
        assert_tree(world, with_state_dir(world, expected, before), "committed, state dir left")
    else:
        assert (code, doc["outcome"]) == (0, "nothing-to-remove"), doc["message"]
        assert_tree(world, expected, "committed: recovery must finish the removal")
    code, doc = run_json(world, "-y", *flag_args(*flags))
    assert code == 0, doc["message"]
    assert doc["recovery"] == {"dry_run": False, "runs": [], "orphans": []}
    more = not want.committed or want.state_dir_left
    assert doc["outcome"] == ("removed" if more else "nothing-to-remove")
    assert_tree(world, expected, "after the follow-up run")


def verify_next_run(
    world: World, before: dict[str, Node], flags: tuple[bool, bool], want: Settled
) -> None:
    """What a user does after a crash: `mm uninstall -y` once. It recovers (the report says
    which way, per the commit point), then removes everything, and nothing is left."""
    code, doc = run_json(world, "-y", *flag_args(*flags))
    assert code == 0, doc["message"]
    if want.runs is not None:
        runs = sorted(doc["recovery"]["runs"], key=lambda r: r["staging"])
        assert runs == sorted(want.runs, key=lambda r: str(r["staging"])), doc["recovery"]
    more = not want.committed or want.state_dir_left
    assert doc["outcome"] == ("removed" if more else "nothing-to-remove"), doc["message"]
    assert leftovers_under(world.root) == []
    assert_tree(world, world.expected(before, *flags), "after the one run that follows a kill")


def sweep_point(
    case: Case, shape: Shape, point: Point, kill: Kill, *, next_run_only: bool = False
) -> None:
    """Kill a full run at `point`; then either recovery alone and a follow-up run, or (with
    `next_run_only`) the single `mm uninstall -y` a user would run next."""
    world = case.fresh()
    before = world.tree()
    code = kill(world, point)
    assert code == -signal.SIGKILL, f"the kill at {point} did not happen (exit {code})"
    runs = expected_runs(shape, point, stagings_in(world), len(shape.staged_moves()))
    want = Settled(done(point, shape.own_commit), state_dir_left(shape, point), runs)
    verify = verify_next_run if next_run_only else verify_recovery
    verify(world, before, case.flags, want)


def sample(shape: Shape, *, every_front: bool) -> list[Point]:
    """A subset that still hits every op kind of every phase and every phase boundary.

    Always: the first and last op, the first op of each kind in each phase, the first op of
    each phase and the one before it, and each marker of the shape (first and last staged
    move, first journal, COMMITTED, the journal's removal, the state dir's). With
    `every_front`: every prepare, staging and commit op, each marker's neighbours, and
    every 6th delete op.
    """
    picked: set[int] = {1, shape.n}
    markers = [shape.record_gone, shape.state_gone]
    if shape.own_commit is not None:
        moves = shape.staged_moves()
        markers += [
            shape.started,
            shape.journaled,
            moves[0],
            moves[-1],
            shape.commit_write,
            shape.own_commit - 1,
            shape.own_commit,
            shape.own_commit + 1,
            shape.journal_gone,
            shape.primary_gone,
        ]
    for m in markers:
        if m is not None:
            picked |= {m - 1, m, m + 1} if every_front else {m}
    seen: set[tuple[str, str]] = set()
    last_phase = None
    for o in shape.ops:
        phase = shape.phase(o.n)
        if phase != last_phase:
            picked |= {o.n - 1, o.n}
            last_phase = phase
        if (phase, o.op) not in seen:
            seen.add((phase, o.op))
            picked.add(o.n)
        if every_front and (phase != "delete" or o.n % 6 == 0):
            picked.add(o.n)
    valid = set(shape.points())
    return [(k, w) for k in sorted(picked) for w in WHENS if (k, w) in valid]


def launch(
    module: str, args: list[str], env: dict[str, str], **kwargs: Any
) -> subprocess.Popen[str]:
    """Start the CLI through a test launcher module, as the mm_subprocess fixture does."""
    return subprocess.Popen(
        [sys.executable, "-m", module, "uninstall", *args],
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=env["HOME"],
        **kwargs,
    )


SIGNAL_LAUNCHER = "tests.support.launcher"


def signals_spec(*sends: tuple[Point, str]) -> str:
    """MM_TEST_SIGNALS for tests/support/launcher.py: ((k, when), "SIGINT"), ..."""
    return ",".join(f"{k}:{when}:{name}" for (k, when), name in sends)


def run_signalled(
    world: World, args: list[str], *sends: tuple[Point, str], env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """Run `mm uninstall --json` through tests/support/launcher.py, sending each signal to
    itself at its point; (exit code, the JSON document)."""
    full = {**world.env, "MM_TEST_SIGNALS": signals_spec(*sends), **(env or {})}
    proc = launch(SIGNAL_LAUNCHER, ["--json", *args], full)
    out, err = proc.communicate(timeout=60)
    assert out, f"no JSON document (exit {proc.returncode}): {err}"
    return proc.returncode, json.loads(out)
