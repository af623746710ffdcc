"""Forged, foreign and malformed staging dirs: recovery acts only on what is provably a run
of this user's, and only on memtomem's names, in the directories the layout names.

A corpus of what a confused or hostile process can plant (links at every level, other
owners, loose modes, wrong names, journals that lie), each run with --dry-run and with -y;
every case compares the whole tree of the sandbox, in and outside the store, before and
after. The multi-user cases plant as a real second user (`nobody`) in a sticky shared
directory that holds the database, as /tmp would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memtomem.uninstall.journal import Journal
from memtomem.uninstall.recovery import Scope, recover
from tests.support.cli import invoke, invoke_json
from tests.support.matrix import NoSync
from tests.support.names import JOURNAL, STAGING
from tests.support.snapshot import Node, diff, snapshot
from tests.support.world import DEAD_PID, World, full_world, write

NOBODY = 65534
Tree = dict[str, Node]


def journal(
    pid: int = DEAD_PID,
    state: str = "committed",
    primary: bool = True,
    run: str = "0123456789abcdef",
    **more: Any,
) -> bytes:
    """A journal in the documented format (version 2), written by hand: what anyone can."""
    doc = {
        "format": "memtomem-uninstall-journal",
        "version": 2,
        "run": run,
        "pid": pid,
        "state": state,
        "primary": primary,
        "remove_state_dir": True,
        "items": 3,
        **more,
    }
    return json.dumps(doc).encode()


def staging_dir(path: Path, doc: bytes | None, mode: int = 0o700) -> Path:
    path.mkdir(parents=True)
    if doc is not None:
        write(path / JOURNAL, doc, 0o600)
    os.chmod(path, mode)
    return path


@dataclass
class Case:
    """What a plant did, and what a run must then leave: `keep` paths (with all below them)
    stay as they were; the world's own state is removed as usual; `code` and the orphans'
    reasons are exact."""

    keep: list[Path]
    orphans: list[tuple[Path, str]]
    code: int = 0
    dry: list[tuple[Path, str]] | None = None  # reported by a dry run, if not `orphans`
    actions: list[str] | None = None  # what recovery did with the runs it found


Plant = Callable[[World, Path], Case]


def sandbox_world(root: Path) -> tuple[World, Path]:
    world = full_world(root / "w", custom_db=True)
    outside = root / "targets"
    write(outside / "precious.txt", "outside the store\n")
    write(outside / "dir" / "deep.md", "outside, deeper\n")
    return world, outside


def link_named_memories(world: World, outside: Path) -> Case:
    """A committed run of ours whose staged "memories" is a link out: the link goes, never
    what it points at."""
    staging = staging_dir(world.state / f"{STAGING}{DEAD_PID}", journal())
    os.symlink(outside / "dir", staging / "memories")
    os.symlink(outside / "precious.txt", staging / "config.json")
    return Case([], [])


def not_ours_in_a_committed_run(world: World, outside: Path) -> Case:
    """A committed run's dir also holds a name no run stages: that stays, reported."""
    staging = staging_dir(world.state / f"{STAGING}{DEAD_PID}", journal())
    write(staging / "precious.txt", "written here by someone\n")
    write(staging / "uploads" / "u.txt", "staged\n")
    return Case([staging / "precious.txt"], [(staging, "no-record")], dry=[])


def staging_is_a_link(world: World, outside: Path) -> Case:
    """The staging dir itself is a link to a dir holding a valid committed journal."""
    target = staging_dir(outside / "fake", journal())
    write(target / "memories" / "m.md", "m\n")
    link = world.state / f"{STAGING}{DEAD_PID}"
    os.symlink(target, link)
    return Case([link], [(link, "no-record")])


def loose_mode(world: World, outside: Path) -> Case:
    staging = staging_dir(world.state / f"{STAGING}{DEAD_PID}", journal(), mode=0o777)
    write(staging / "uploads" / "u.txt", "u\n")
    return Case([staging], [(staging, "unsafe")])


def pid_not_its_name(world: World, outside: Path) -> Case:
    staging = staging_dir(world.state / f"{STAGING}{DEAD_PID}", journal(pid=DEAD_PID - 1))
    write(staging / "uploads" / "u.txt", "u\n")
    return Case([staging], [(staging, "no-record")])


def odd_names(world: World, outside: Path) -> Case:
    keep = []
    for name in (f"{STAGING}0{DEAD_PID}", f"{STAGING}abc", f"{STAGING}-1", f"{STAGING}"):
        staging = staging_dir(world.state / name, journal())
        write(staging / "uploads" / "u.txt", "u\n")
        keep.append(staging)
    return Case([*keep], [(k, "no-record") for k in sorted(keep)])


def version_one_pointing_out(world: World, outside: Path) -> Case:
    """A journal of the old format that names directories: now it is no record at all."""
    staging = world.state / f"{STAGING}{DEAD_PID}"
    doc = {
        "format": "memtomem-uninstall-journal",
        "version": 1,
        "pid": DEAD_PID,
        "started": 0.0,
        "state": "committed",
        "primary": str(outside),
        "stagings": [{"anchor": str(outside.parent), "staging": str(outside)}],
        "moves": [{"group": "uploads", "src": str(outside / "x"), "dst": str(staging / "x")}],
        "flags": {"keep_config": False, "keep_data": False},
        "remove_state_dir": None,
    }
    staging_dir(staging, json.dumps(doc).encode())
    write(staging / "uploads" / "u.txt", "u\n")
    return Case([staging], [(staging, "no-record")])


def two_primaries(world: World, outside: Path) -> Case:
    """Two copies of one run each claim to be the primary, one committed: the run is put
    back, never finished (only a rollback is safe when the record contradicts itself)."""
    first = staging_dir(world.state / f"{STAGING}{DEAD_PID}", journal(state="committed"))
    second = staging_dir(world.runtime / f"{STAGING}{DEAD_PID}", journal(state="staging"))
    write(first / "config.json.bak-42", "{}")  # free slots: both go back (and then, go)
    write(second / "instances" / "1-1-0123456789abcdef-0-0.lock", "")
    world.tag("config", world.state / "config.json.bak-42")
    world.tag("runtime", world.runtime / "instances" / "1-1-0123456789abcdef-0-0.lock")
    return Case([], [], actions=["rolled-back"])


def scaffold_with_a_dir_and_a_link(world: World, outside: Path) -> Case:
    """A committed run in the runtime dir: a scaffold holding a link named like a sentinel
    (removed, not followed) and a directory named like one (not ours: stays)."""
    staging = staging_dir(world.runtime / f"{STAGING}{DEAD_PID}", journal())
    (staging / "instances").mkdir(mode=0o700)
    os.symlink(outside / "dir", staging / "instances" / "a.lock")
    write(staging / "instances" / "b.lock" / "inside.txt", "a dir named like a sentinel\n")
    return Case([staging / "instances" / "b.lock"], [(staging, "no-record")], dry=[])


CORPUS: dict[str, Plant] = {
    "link-named-memories": link_named_memories,
    "not-ours-in-a-committed-run": not_ours_in_a_committed_run,
    "staging-is-a-link": staging_is_a_link,
    "loose-mode": loose_mode,
    "pid-not-its-name": pid_not_its_name,
    "odd-names": odd_names,
    "version-one-pointing-out": version_one_pointing_out,
    "two-primaries": two_primaries,
    "scaffold-with-a-dir-and-a-link": scaffold_with_a_dir_and_a_link,
}


def expected_after(world: World, before: Tree, root: Path, case: Case) -> Tree:
    """The world removed as usual; each kept path as it was; the staging dirs this user's
    runs made (acted on) gone; everything else under `root` untouched."""
    rels = [os.path.relpath(p, root) for p in case.keep]
    prefix = os.path.relpath(world.root, root)
    inside = {
        k[len(prefix) + 1 :]: v
        for k, v in before.items()
        if k.startswith(prefix + "/") and STAGING not in k
    }
    removed = world.expected(inside, False, False)
    out = {k: v for k, v in before.items() if not k.startswith(prefix + "/")}
    out |= {f"{prefix}/{k}": v for k, v in removed.items()}
    for key, node in before.items():
        if any(key == r or key.startswith(r + "/") for r in rels):
            out[key] = node
            parts = key.split("/")
            for n in range(1, len(parts)):  # what holds a kept path stays too
                parent = "/".join(parts[:n])
                if parent in before:
                    out[parent] = before[parent]
    return out


@pytest.mark.parametrize("name", list(CORPUS), ids=list(CORPUS))
def test_a_planted_staging_dir_is_acted_on_only_as_far_as_it_is_provably_ours(
    tmp_path: Path, name: str
) -> None:
    world, outside = sandbox_world(tmp_path)
    case = CORPUS[name](world, outside)
    before = snapshot(tmp_path)

    code, doc = invoke_json("--dry-run", env=world.env)
    assert snapshot(tmp_path) == before, "a dry run changed something"
    dry = case.orphans if case.dry is None else case.dry
    found = sorted((o["path"], o["reason"]) for o in doc["recovery"]["orphans"])
    assert found == sorted((str(p), r) for p, r in dry)

    code, doc = invoke_json("-y", env=world.env)
    assert code == case.code, doc["message"]
    found = sorted((o["path"], o["reason"]) for o in doc["recovery"]["orphans"])
    assert found == sorted((str(p), r) for p, r in case.orphans)
    if case.actions is not None:
        assert [r["action"] for r in doc["recovery"]["runs"]] == case.actions
    expected = expected_after(world, before, tmp_path, case)
    after = snapshot(tmp_path)
    assert after == expected, "\n".join(diff(expected, after))
    assert "Traceback" not in invoke("-y", env=world.env).output  # and again: no crash


# --- another user, in a shared directory --------------------------------------------------


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A sandbox another user can reach (tmp_path's parents are private to root): a
    directory under /tmp, removed afterwards. Never /tmp/memtomem-<uid>."""
    if os.geteuid() != 0:
        pytest.skip("planting as another user needs root (to run a process as nobody)")
    root = Path(tempfile.mkdtemp(prefix="mm-shared-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def as_nobody(script: str, *args: str) -> None:
    """Run a shell script as the real user `nobody`: what it creates is nobody's."""
    done = subprocess.run(
        ["/bin/sh", "-c", script, "sh", *args],
        user=NOBODY,
        group=NOBODY,
        capture_output=True,
        text=True,
        cwd="/",
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def shared_world(root: Path) -> tuple[World, Path]:
    """The database in a sticky directory everyone can write to, like /tmp/memtomem.db."""
    world, outside = sandbox_world(root)
    os.chmod(world.root, 0o755)
    os.chmod(world.db.parent.parent, 0o755)
    os.chmod(world.db.parent, 0o1777)
    return world, outside


PLANT_RUN = (
    'mkdir "$1" && chmod "$3" "$1" && printf %s "$2" > "$1/.uninstall-journal.json" '
    '&& ln -s "$4" "$1/custom.db" && printf planted > "$1/custom.db-wal"'
)


@pytest.mark.parametrize("state", ["committed", "staging"])
@pytest.mark.parametrize("mode", ["700", "777"])
def test_a_run_planted_by_another_user_is_never_acted_on(
    shared_root: Path, state: str, mode: str
) -> None:
    """nobody plants, beside the victim's database, a staging dir with a journal of a
    committed (or uncommitted) run whose "database" is a link into the victim's home."""
    world, _outside = shared_world(shared_root)
    planted = world.db.parent / f"{STAGING}{DEAD_PID}"
    victim = world.home / "notes.md"
    write(victim, "the victim's\n")
    as_nobody(PLANT_RUN, str(planted), journal(state=state).decode(), mode, str(victim))
    assert os.lstat(planted).st_uid == NOBODY
    before = snapshot(shared_root)

    _code, doc = invoke_json("--dry-run", env=world.env)
    assert snapshot(shared_root) == before
    orphans = doc["recovery"]["orphans"]
    assert [(o["path"], o["reason"], o["detail"]) for o in orphans] == [
        (str(planted), "foreign", str(NOBODY))
    ]
    assert (orphans[0]["restore"], orphans[0]["discard"]) == (None, None)

    result = invoke("-y", env=world.env)
    assert result.exit_code == 0, result.output
    assert (
        f"Found {planted} (dir), owned by uid {NOBODY}, not by you; it was left untouched."
        in result.output
    )
    case = Case([planted, victim], [])
    expected = expected_after(world, before, shared_root, case)
    assert snapshot(shared_root) == expected, "\n".join(diff(expected, snapshot(shared_root)))


def test_a_file_planted_beside_the_database_is_left_with_a_note(shared_root: Path) -> None:
    world, _outside = shared_world(shared_root)
    planted = Path(f"{world.db}-shm")
    os.unlink(planted)
    as_nobody('printf planted > "$1"', str(planted))
    before = snapshot(shared_root)
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0, doc["message"]
    assert f"left {planted}: it is owned by uid {NOBODY}, not by you" in doc["warnings"]
    case = Case([planted], [])
    expected = expected_after(world, before, shared_root, case)
    assert snapshot(shared_root) == expected, "\n".join(diff(expected, snapshot(shared_root)))


def test_a_staging_name_taken_by_another_user_refuses_before_anything_moves(
    shared_root: Path,
) -> None:
    """The run's own staging name is predictable (its pid): nobody can take it first. The
    run refuses with nothing changed, and the next run (another pid) goes ahead."""
    world, _outside = shared_world(shared_root)
    taken = world.db.parent / f"{STAGING}{os.getpid()}"
    as_nobody('mkdir "$1"', str(taken))
    before = snapshot(shared_root)
    code, doc = invoke_json("-y", env=world.env)
    assert (code, doc["outcome"]) == (2, "refused")
    assert doc["error"]["path"] == str(taken)
    assert snapshot(shared_root) == before


def test_a_database_dir_others_can_change_is_refused(tmp_path: Path) -> None:
    """Group- or world-writable without the sticky bit: anyone could swap what is staged."""
    world, _outside = sandbox_world(tmp_path)
    os.chmod(world.db.parent, 0o777)
    before = snapshot(tmp_path)
    for args in (["-y"], ["--dry-run"]):
        code, doc = invoke_json(*args, env=world.env)
        assert (code, doc["outcome"]) == (2, "refused"), doc["message"]
        assert doc["message"].startswith(
            f"{world.db.parent} can be changed by other users, so what this command stages "
            "there could be tampered with; nothing was changed."
        )
        assert snapshot(tmp_path) == before


# --- property: whatever a staging dir holds, recovery changes nothing outside it but
# --- moving memtomem's own names back beside it, and deletes only for a committed run.

ENTRIES = {
    "memories": lambda d, out: write(d / "memories" / "m.md", "m\n"),
    "config.json": lambda d, out: write(d / "config.json", "{}"),
    "precious.txt": lambda d, out: write(d / "precious.txt", "not memtomem's\n"),
    "uploads": lambda d, out: os.symlink(out / "dir", d / "uploads"),
    "known_projects.json": lambda d, out: os.symlink(out / "precious.txt", d / d.name),
    "server.pid": lambda d, out: write(d / "server.pid", "1\n"),
    "instances": lambda d, out: write(d / "instances" / "a.lock", ""),
}
journal_docs = st.one_of(
    st.builds(
        journal,
        pid=st.sampled_from([DEAD_PID, DEAD_PID + 1]),
        state=st.sampled_from(["committed", "staging"]),
        primary=st.booleans(),
    ),
    st.binary(max_size=64),
    st.none(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=journal_docs,
    names=st.sets(st.sampled_from(sorted(ENTRIES)), max_size=4),
    where=st.sampled_from(["state", "runtime"]),
    mode=st.sampled_from([0o700, 0o755, 0o777]),
    taken=st.booleans(),
)
def test_recovery_from_any_staging_dir_stays_inside_the_store(
    doc: bytes | None, names: set[str], where: str, mode: int, taken: bool
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        outside = root / "targets"
        write(outside / "precious.txt", "outside\n")
        write(outside / "dir" / "d.md", "outside, in a dir\n")
        state, run = root / "home" / ".memtomem", root / "run"
        state.mkdir(parents=True)
        run.mkdir(mode=0o700)
        if taken:
            write(state / "config.json", '{"mine": 1}')
            write(run / "server.pid", "2\n")
        anchor = state if where == "state" else run
        staging = anchor / f"{STAGING}{DEAD_PID}"
        staging.mkdir()
        for name in names:
            ENTRIES[name](staging, outside)
        if doc is not None:
            write(staging / JOURNAL, doc, 0o600)
        os.chmod(staging, mode)
        before = snapshot(root)
        scope = Scope(state, (state / "memtomem.db",), (run,))
        recover(NoSync(), scope, dry_run=False, stop=lambda: False)  # fsync: not the point
        after = snapshot(root)

    rel = os.path.relpath(staging, root)
    anchor_rel = os.path.relpath(anchor, root)
    parsed = None if doc is None else Journal.from_bytes(doc)
    ours = parsed is not None and parsed.pid == DEAD_PID and not mode & 0o022
    committed = ours and parsed is not None and parsed.primary and parsed.state.value == "committed"
    emptied = committed and not taken  # a committed run may drop an empty state dir
    for key, node in before.items():  # nothing outside the staging dir is lost or changed
        if key == rel or key.startswith(rel + "/") or (emptied and key == "home/.memtomem"):
            continue
        assert after.get(key) == node, (key, node, after.get(key))
    for key, node in after.items():  # what is new is an item put back beside the dir, as it was
        if key in before:
            continue
        assert ours and not committed and key.startswith(anchor_rel + "/"), key
        assert node[0] == "dir" or before.get(f"{rel}/{key[len(anchor_rel) + 1 :]}") == node
    left = [k for k in before if k.startswith(rel + "/") and k not in after]
    if not committed:  # a rollback deletes nothing: what left the staging dir is home now
        for key in left:
            home = f"{anchor_rel}/{key[len(rel) + 1 :]}"
            assert os.path.basename(key).startswith(".uninstall-journal") or home in after, key
