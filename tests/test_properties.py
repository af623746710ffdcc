"""Property: over generated state trees, keep flags and fault points, `mm uninstall -y` ends
in the original tree or the fully removed one (minus what the flags keep) - never anything
else - and a follow-up run without faults always ends fully removed.

Trees have nested memories, empty dirs, links pointing out of the tree (to a file, a dir,
nowhere, themselves), names with spaces, leading dashes, newlines, escape sequences and
non-UTF-8 bytes, and files from 0 bytes to 1 MiB. The fault point is drawn from the calls
a clean run of the same tree makes, so most examples fail somewhere in the middle.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.matrix import ERRORS, Scenario, Scripted, judge_world
from tests.support.world import DEAD_PID, World, write

# Name pieces: shell and terminal hazards, a leading dash, and bytes that are not UTF-8.
_PIECES = [b"a", b"Z9", b" ", b"-", b"--x", b"\n", b"\t", b"\x1b[31m", b"\xff", b"\xc3\xa9"]
_PIECES += [b"\xed\xa0\x80", b"'", b'"', b"$(id)", b"*", b"\\", b".", b"~", b"\x7f"]


def _name(raw: bytes) -> str:
    return os.fsdecode(raw)


names = (
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=4)
    .map(b"".join)
    .filter(lambda b: b not in (b".", b".."))
)


@dataclass(frozen=True)
class FileSpec:
    size: int
    seed: int
    mode: int


@dataclass(frozen=True)
class LinkSpec:
    to: str  # "file" | "dir" | "dangling" | "self"


Node = Union[FileSpec, LinkSpec, "DirSpec"]


@dataclass(frozen=True)
class DirSpec:
    children: tuple[tuple[bytes, Node], ...]
    mode: int = 0o755


# Mostly small, sometimes empty, now and then 64 KiB or 1 MiB (a tenth of the files).
sizes = st.integers(0, 9).flatmap(
    lambda k: (
        st.just(0)
        if k == 0
        else st.sampled_from([65536, 1 << 20])
        if k == 9
        else st.integers(1, 3000)
    )
)
files = st.builds(FileSpec, sizes, st.integers(0, 2**32), st.sampled_from([0o600, 0o644, 0o400]))
links = st.builds(LinkSpec, st.sampled_from(["file", "dir", "dangling", "self"]))


def _dirs(children: st.SearchStrategy[Node]) -> st.SearchStrategy[DirSpec]:
    entries = st.dictionaries(names, children, max_size=4).map(lambda d: tuple(d.items()))
    return st.builds(DirSpec, entries, st.sampled_from([0o700, 0o755]))


nodes: st.SearchStrategy[Node] = st.recursive(
    st.one_of(files, links), lambda kids: _dirs(kids), max_leaves=12
)
trees = _dirs(nodes)  # the contents of one group directory (maybe empty)
DIR_GROUPS = ("memories", "uploads", "agents", "skills", "commands", "cache", "traces", "logs")
SINGLE_FILES = {
    "known_projects.json": "config",
    "config.json.bak-1795673805": "config",
    "index_debounce_queue.json": "debounce-queue",
    "index_debounce_queue.json.lock": "debounce-queue",
    ".current_session": "runtime",
    ".server.pid": "runtime",
    ".config.json.lock": "runtime",
}
DB_SIBLINGS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class StateSpec:
    config: bytes | None  # config.json contents (maybe not JSON, maybe not UTF-8)
    fragments: tuple[bytes, ...]  # config.d/*.json
    db: tuple[str, ...]  # "main", sibling suffixes, "key", "backup"
    dirs: tuple[tuple[str, DirSpec], ...]
    singles: tuple[str, ...]
    stranger: bytes | None  # a top-level entry that is not memtomem's
    sentinels: tuple[tuple[str, bytes], ...]  # ("instances" | "presence", odd name)
    barrier: bool  # lifecycle.lock exists (a server ran here once)
    custom_db: bool  # config.json names a database outside the state dir


config_bodies = st.sampled_from(
    [
        json.dumps({"storage": {"backend": "sqlite"}}).encode(),
        b"{not json",
        b"\xff\xfe{}",
        b"[]",
        json.dumps({"storage": {"sqlite_path": ""}}).encode(),
    ]
)
states = st.builds(
    StateSpec,
    st.none() | config_bodies,
    st.lists(config_bodies, max_size=2).map(tuple),
    st.lists(st.sampled_from(["main", *DB_SIBLINGS, "key", "backup"]), unique=True).map(tuple),
    st.dictionaries(st.sampled_from(DIR_GROUPS), trees, max_size=len(DIR_GROUPS)).map(
        lambda d: tuple(d.items())
    ),
    st.lists(st.sampled_from(sorted(SINGLE_FILES)), unique=True).map(tuple),
    st.none() | names,  # the pieces cannot spell a name of ours
    st.lists(st.tuples(st.sampled_from(["instances", "presence"]), names), max_size=3).map(tuple),
    st.booleans(),
    st.booleans(),
)


def _build_dir(world: World, path: Path, spec: DirSpec) -> None:
    path.mkdir()
    for raw, child in spec.children:
        target = path / _name(raw)
        if os.path.lexists(target):  # two spellings of the same bytes
            continue
        if isinstance(child, DirSpec):
            _build_dir(world, target, child)
        elif isinstance(child, FileSpec):
            write(target, random.Random(child.seed).randbytes(child.size), child.mode)
        else:
            outside = world.root / "outside"
            to = {
                "file": outside / "target.txt",
                "dir": outside,
                "dangling": outside / "missing",
                "self": target,
            }[child.to]
            os.symlink(to, target)
    os.chmod(path, spec.mode)


def materialize(root: Path, spec: StateSpec) -> World:
    """The state of `spec` under `root`, every path tagged by hand with its group."""
    home = root / "home"
    state = home / ".memtomem"
    runtime = root / "run" / "memtomem-test"
    db = root / "outside" / "data" / "custom.db" if spec.custom_db else state / "memtomem.db"
    world = World(root, home, state, runtime, db)
    state.mkdir(parents=True)
    runtime.mkdir(parents=True)
    os.chmod(runtime, 0o700)
    write(root / "outside" / "target.txt", "outside the plan")
    write(home / ".claude.json", json.dumps({"mcpServers": {"memtomem": {}}}))
    config = spec.config
    if spec.custom_db:
        config = json.dumps({"storage": {"sqlite_path": str(db)}}).encode()
        write(db.parent / "other-file.txt", "not memtomem's")
    if config is not None:
        world.tag("config", write(state / "config.json", config, 0o600))
    for i, body in enumerate(spec.fragments):
        write(world.state / "config.d" / f"{i}-x.json", body)
    if spec.fragments:
        world.tag("config", state / "config.d")
    for part in spec.db:
        name = {"main": db.name, "key": db.with_suffix(".provenance_key").name}.get(
            part, db.name + part
        )
        if part == "backup":
            name = f"{db.name}.pre-reset-20260101T101010-123456.bak"
        body = b"SQLite format 3\x00" + bytes(100)
        world.tag("database", write(db.parent / name, body, 0o600))
    for group, tree in spec.dirs:
        _build_dir(world, state / group, tree)
        world.tag(group, state / group)
    for single in spec.singles:
        text = f"{DEAD_PID}\n" if single.endswith(".pid") else "[]"
        world.tag(SINGLE_FILES[single], write(state / single, text))
    if spec.stranger is not None:
        write(state / _name(spec.stranger), "not memtomem's")
    if spec.barrier:
        write(runtime / "lifecycle.lock")
    for folder, raw in spec.sentinels:
        path = runtime / folder / (_name(raw) + ".lock")
        if not os.path.lexists(path):
            world.tag("runtime", write(path))
    return world


def check(base: Path, spec: StateSpec, keep: tuple[bool, bool], data: st.DataObject) -> None:
    """A clean run of `spec` (which must remove exactly) counts the seam calls; a second
    copy of `spec` then fails one of them, or every one from it on."""
    work = Path(tempfile.mkdtemp(dir=base, prefix="ex-"))
    clean = Scenario("generated", *keep, "none", 0, False)
    counter = Scripted(lambda _op, _target, _calls: None)
    verdict = judge_world(materialize(work / "clean", spec), clean, counter)
    if verdict.problems:
        pytest.fail(f"{verdict}\n  spec: {spec}")
    error = data.draw(st.sampled_from(sorted(ERRORS)), label="error")
    n = data.draw(st.integers(1, len(counter.calls) + 1), label="fail call")
    every = data.draw(st.booleans(), label="every call from N on")
    faulty = Scenario("generated", *keep, error, n, every)
    verdict = judge_world(materialize(work / "faulty", spec), faulty)
    if verdict.problems:
        pytest.fail(f"{verdict}\n  spec: {spec}")
    shutil.rmtree(work)  # thousands of examples; a failing one stays for a look


COMMON = {
    "deadline": None,
    # No shrinking: one example is several full runs on disk, and shrinking a failure
    # takes minutes. The failure message carries the whole generated spec instead.
    "phases": (Phase.explicit, Phase.reuse, Phase.generate),
    "database": None,  # nothing written into the checkout
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=120, **COMMON)  # type: ignore[arg-type]
@given(spec=states, keep=st.tuples(st.booleans(), st.booleans()), data=st.data())
def test_all_or_nothing_over_generated_trees(
    tmp_path_factory: pytest.TempPathFactory,
    spec: StateSpec,
    keep: tuple[bool, bool],
    data: st.DataObject,
) -> None:
    check(tmp_path_factory.mktemp("prop"), spec, keep, data)


@pytest.mark.exhaustive
@settings(max_examples=3000, **COMMON)  # type: ignore[arg-type]
@given(spec=states, keep=st.tuples(st.booleans(), st.booleans()), data=st.data())
def test_all_or_nothing_over_generated_trees_exhaustive(
    tmp_path_factory: pytest.TempPathFactory,
    spec: StateSpec,
    keep: tuple[bool, bool],
    data: st.DataObject,
) -> None:
    check(tmp_path_factory.mktemp("prop"), spec, keep, data)
