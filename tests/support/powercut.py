"""The checker: lay a crash state out, run the real `mm uninstall -y` on it, judge the result.

Each run is the real CLI in a forked child (a new pid, as after a reboot: a staging dir of
the crashed run is never this run's own), recorded through the seam, so that a crash during
the recovering run can be generated from its trace in turn.
"""

from __future__ import annotations

import json
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import memtomem.cli.uninstall_run  # noqa: F401  loaded once here, not in each forked child
from tests.support.cli import invoke
from tests.support.crashes import durable
from tests.support.image import (
    Effect,
    Image,
    State,
    Tree,
    apply,
    compile_trace,
    contents,
    image_of,
    lay_out,
)
from tests.support.scenarios import Scenario
from tests.support.snapshot import diff, snapshot
from tests.support.trace import RecordingFs, Trace, dump, load

STAGING_PREFIX = ".uninstall-staging-"
JOURNAL = ".uninstall-journal.json"
_PID = re.compile(re.escape(STAGING_PREFIX) + r"(\d+)")
_RETRY = 75  # the child's pid names a staging dir already on disk: fork again


@dataclass(frozen=True)
class Run:
    code: int
    doc: dict[str, Any]
    error: str  # a traceback, or whatever went to stderr
    trace: Trace
    pid: int


def run(scenario: Scenario, avoid: frozenset[int] = frozenset()) -> Run:
    """`mm uninstall -y --json` on the tree at scenario.root, in a forked child that records
    every change through the seam; `avoid`: pids that name staging dirs on disk."""
    out = scenario.root.parent / "run.json"
    while True:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child leaves through os._exit
            _child(scenario, avoid, out)
        _pid, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != _RETRY:
            break
    doc = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    body = json.loads(doc["stdout"]) if doc["stdout"].startswith("{") else {}
    return Run(doc["code"], body, doc["error"], load(doc["trace"]), pid)


def _child(scenario: Scenario, avoid: frozenset[int], out: Path) -> None:
    if os.getpid() in avoid:
        os._exit(_RETRY)
    fs = RecordingFs()
    result: dict[str, Any] = {"code": 70, "stdout": "", "error": ""}
    try:
        ran = invoke(*scenario.args, env=scenario.env, fs=fs)
        result.update(code=ran.exit_code, stdout=ran.stdout, error=ran.stderr)
    except BaseException:
        result["error"] = traceback.format_exc()
    result["trace"] = dump(fs.ops)
    out.write_text(json.dumps(result), encoding="utf-8")
    os._exit(0)


@dataclass(frozen=True)
class Verdict:
    """What was wrong with the run after one crash state (nothing: it recovered)."""

    problems: tuple[str, ...]
    shape: tuple[str, ...]  # the same, with paths reduced to what they are
    said: str  # the run's exit code and message, and what it called untouched
    recovered: str  # what its recovery did: the actions it reports, or "nothing"

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Checked:
    verdict: Verdict
    run: Run
    image: Image  # the crash state, as the recovering run's trace starts from it
    effects: tuple[Effect, ...]  # that trace, compiled


def check(scenario: Scenario, state: State) -> Checked:
    """Lay `state` out, run `mm uninstall -y` on it once, and judge what it did."""
    lay_out(state, scenario.pristine, scenario.root)
    ran = run(scenario, frozenset(int(m) for rel in state.tree for m in _PID.findall(rel)))
    after = snapshot(scenario.root)
    image = image_of(state, scenario.root)
    effects = compile_trace(image, ran.trace)
    replayed = apply(image, effects).tree
    assert replayed == after, "the trace misses a change:\n" + "\n".join(diff(after, replayed))
    found: list[tuple[str, str]] = []
    if ran.code != 0 or ran.error:
        found.append((f"exit {ran.code}", f"exit {ran.code}: {ran.error[-400:]}"))
    if after != scenario.expected:
        found.append(_differs("ends with", scenario, scenario.expected, after))
    # Recovery ends where the run starts its own transaction (its own staging dir).
    own = f"{STAGING_PREFIX}{ran.pid}"
    mine = [e.n for e in effects if own in (*e.op.path.split("/"), *e.op.dest.split("/"))]
    start = min(mine, default=1 << 30)
    recovered = apply(image, [e for e in effects if e.n < start]).tree
    if recovered not in scenario.settled():
        _kind, detail = _differs("recovery leaves", scenario, scenario.before, recovered)
        found.append(("recovery leaves neither the tree before nor the removed one", detail))
    orphans = [
        _rel(o["path"], scenario.root) for o in (ran.doc.get("recovery") or {}).get("orphans", [])
    ]
    for rel in orphans:
        if _below(after, rel) != _below(state.tree, rel):
            what = scenario.place(rel)
            found.append(
                (
                    f"reports {what} untouched, the run changed it",
                    f"reports {rel} untouched, the run changed it",
                )
            )
    for problem in deletes_without_commit(image, effects, scenario.pristine):
        found.append(("deletes user data before COMMITTED is durable", problem))
    said = f"exit {ran.code}, {ran.doc.get('message', '')!r}"
    if orphans:
        said += "; reports untouched: " + ", ".join(orphans)
    shape = tuple(dict.fromkeys(kind for kind, _detail in found))
    actions = sorted(r["action"] for r in (ran.doc.get("recovery") or {}).get("runs", []))
    verdict = Verdict(tuple(d for _k, d in found), shape, said, ",".join(actions) or "nothing")
    return Checked(verdict, ran, image, effects)


def _differs(what: str, scenario: Scenario, want: Tree, got: Tree) -> tuple[str, str]:
    """(kind, detail): the kind names what differs, the detail the topmost paths."""
    marks = {k: "+" for k in got.keys() - want.keys()}
    marks |= {k: "-" for k in want.keys() - got.keys()}
    marks |= {k: "~" for k in want.keys() & got.keys() if want[k] != got[k]}
    kinds = sorted({f"{sign}{scenario.place(k)}" for k, sign in marks.items()})
    top = [k for k in sorted(marks) if not any(k.startswith(p + "/") for p in marks)]
    shown = [f"{marks[k]}{k}" for k in top[:6]] + (["..."] if len(top) > 6 else [])
    return f"{what}: {', '.join(kinds)}", f"{what}: {' '.join(shown)}"


def _below(tree: Tree, rel: str) -> Tree:
    return {k: v for k, v in tree.items() if k == rel or k.startswith(rel + "/")}


def _rel(path: str | Path, root: Path) -> str:
    return os.path.relpath(path, root)


def deletes_without_commit(
    image: Image, effects: tuple[Effect, ...], pristine: Path, drop: int | None = None
) -> list[str]:
    """The trace invariant: a file that was on disk before the run (not a journal) is
    removed only while a durable journal says COMMITTED (the weak model's durable state).
    `drop`: judge the run as if that fsync were not there."""
    found = []
    cache: dict[int, bool] = {}  # the durable state only changes at an fsync
    for e in effects:
        if e.removes < 0 or e.removes in image.births or image.inodes[e.removes].kind == "dir":
            continue
        name = e.op.dest if e.op.kind == "replace" else e.op.path
        if os.path.basename(name).startswith(JOURNAL):
            continue
        syncs = [s.n for s in effects if s.kind == "sync" and s.n < e.n and s.n != drop]
        last = max(syncs, default=0)
        if last not in cache:
            cache[last] = committed(durable(image, effects, e.n - 1, drop), pristine)
        if not cache[last]:
            found.append(f"op {e.n} removes {_rel(name, image.root)}, no durable COMMITTED yet")
    return found


def committed(state: State, pristine: Path) -> bool:
    """Whether a journal in a staging dir records state "committed"."""
    for rel, source in state.sources.items():
        parts = rel.split("/")
        if len(parts) < 2 or parts[-1] != JOURNAL or not parts[-2].startswith(STAGING_PREFIX):
            continue
        try:
            doc = json.loads(contents(source, pristine))
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("state") == "committed":
            return True
    return False
