"""Hostile layouts: builders, link targets outside the state dir, runs and output checks.

Everything lives under the test's tmp_path. Link targets sit in `outside/targets` and are
snapshotted by value, so a test can prove they were never followed nor changed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import invoke
from tests.support.faults import Fault, ScriptedFs
from tests.support.snapshot import Node, snapshot
from tests.support.world import DEAD_PID, World, digest, write

FOREIGN_UID = 12345
# Any C0/C1 control or undecodable byte (surrogate-escaped) must never reach a terminal raw.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udcff]")
JSON_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff]")

# Every name 0.6.12 writes in ~/.memtomem (the spec's table), each to become a link.
OWNED_NAMES = (
    "memtomem.db",
    "memtomem.db-wal",
    "memtomem.db-shm",
    "memtomem.db-journal",
    "memtomem.provenance_key",
    "memtomem.db.pre-reset-20260101T101010-123456.bak",
    "config.json",
    "config.d",
    "config.json.bak-1795673805",
    "known_projects.json",
    "memories",
    "uploads",
    "agents",
    "skills",
    "commands",
    "cache",
    "traces",
    "logs",
    "index_debounce_queue.json",
    "index_debounce_queue.json.lock",
    ".current_session",
    ".server.pid",
    ".config.json.lock",
)


@dataclass(frozen=True)
class Targets:
    """What hostile links point at: a dir with files, a file, nothing, and a loop."""

    base: Path
    before: dict[str, Node]

    @property
    def dir(self) -> Path:
        return self.base / "dir"

    @property
    def file(self) -> Path:
        return self.base / "file.txt"

    def by_kind(self, kind: str) -> Path:
        names = {"dir": "dir", "file": "file.txt", "dangling": "missing", "loop": "loop-a"}
        return self.base / names[kind]

    def unchanged(self) -> bool:
        return snapshot(self.base) == self.before

    def rebaselined(self) -> Targets:
        """The same targets, with what they hold now as the contents that must not change."""
        return Targets(self.base, snapshot(self.base))


def plant_targets(root: Path) -> Targets:
    base = root / "outside" / "targets"
    write(base / "dir" / "a.txt", "sentinel a\n")
    write(base / "dir" / "sub" / "b.bin", bytes(range(256)))
    write(base / "file.txt", "sentinel file\n")
    os.symlink(base / "loop-b", base / "loop-a")
    os.symlink(base / "loop-a", base / "loop-b")
    return Targets(base, snapshot(base))


def link_world(root: Path, target: Path) -> World:
    """A state dir where every owned name, and every runtime file of ours, is a link."""
    state = root / "home" / ".memtomem"
    world = World(root, root / "home", state, root / "run" / "memtomem-test", state / "memtomem.db")
    state.mkdir(parents=True)
    (world.runtime / "instances").mkdir(parents=True, mode=0o700)
    os.chmod(world.runtime, 0o700)
    for name in OWNED_NAMES:
        os.symlink(target, world.tag("state", state / name))
    lock = f"instances/{DEAD_PID}-1-c297a376c157ebb9-4f4c68fe-c872ece7.lock"
    for name in (f"server-{digest(world.db)}.pid", "server.pid", "web.pid", lock):
        os.symlink(target, world.tag("runtime", world.runtime / name))
    return world


def make_untrusted(world: World, how: str) -> str:
    """Spoil the runtime dir one way; return the reason the refusal must give."""
    if how == "link":
        real = world.root / "outside" / "real-runtime"
        real.parent.mkdir(exist_ok=True)
        os.rename(world.runtime, real)
        os.symlink(real, world.runtime)
        return "is a symbolic link"
    if how == "foreign-owner":
        os.chown(world.runtime, FOREIGN_UID, FOREIGN_UID)
        return f"is owned by uid {FOREIGN_UID}, not by you"
    if how == "mode-0755":
        os.chmod(world.runtime, 0o755)
        return "has mode 0755, not 0700"
    shutil.rmtree(world.runtime)
    write(world.runtime, "squatter\n")
    return "is not a directory"


def forge_journal(
    staging: Path, state: str, stagings: list[tuple[Path, Path]], moves: list[tuple[Path, Path]]
) -> None:
    """A journal in the documented format, written by hand: what anyone could plant."""
    doc = {
        "format": "memtomem-uninstall-journal",
        "version": 1,
        "pid": DEAD_PID,
        "started": 0.0,
        "state": state,
        "primary": str(staging),
        "stagings": [{"anchor": str(a), "staging": str(s)} for a, s in stagings],
        "moves": [{"group": "uploads", "src": str(s), "dst": str(d)} for s, d in moves],
        "flags": {"keep_config": False, "keep_data": False},
        "remove_state_dir": None,
    }
    write(staging / ".uninstall-journal.json", json.dumps(doc))


def plant_staging(path: Path, kind: str, targets: Targets) -> str:
    """A staging-named entry no run of ours made; returns the kind recovery must report."""
    if kind == "file":
        write(path, "a file with a staging name\n")
        return "file"
    if kind == "link":
        os.symlink(targets.dir, path)
        return "link"
    if kind == "dir-bad-journal":
        write(path / ".uninstall-journal.json", "{ torn")
    write(path / "memories" / "x.md", "whose?\n")
    write(path / "loose.txt", "loose\n")
    return "dir"


def ignored(name: str, reason: str) -> str:
    return f"ignored ~/.memtomem/{name} ({reason}); its database path setting was not used"


Seam = Callable[[], ScriptedFs | None]


def spoil_config(world: World, how: str) -> tuple[Seam, str]:
    """Spoil the config chain one way; return a seam factory (fresh per run) and the warning."""
    config = world.state / "config.json"
    fragment = world.state / "config.d" / "20-broken.json"
    if how == "not-json":
        write(config, '{"storage": {"sqlite_path": ', 0o600)
        return lambda: None, ignored("config.json", "not valid JSON")
    if how == "not-utf8":
        write(config, b'{"storage": {"sqlite_path": "/x/\xff\xfe.db"}}', 0o600)
        return lambda: None, ignored("config.json", "not UTF-8")
    if how == "fragment-dir":
        write(fragment / "inside.json", '{"storage": {"sqlite_path": "/x.db"}}')
        return lambda: None, ignored("config.d/20-broken.json", "Is a directory")
    # Root reads a mode-000 file anyway, so the EACCES a user would get is simulated.
    write(fragment, '{"storage": {"sqlite_path": "/elsewhere/x.db"}}', 0o000)

    def seam() -> ScriptedFs:
        return ScriptedFs(Fault(errno.EACCES, op="read", contains=fragment.name, every_from=True))

    return seam, ignored("config.d/20-broken.json", "Permission denied (injected)")


ENV_DB_NEIGHBOURS = ("notes.txt", "custom.db.txt", "custom.db-wal.old", "other.db", "other.db-wal")


def env_db(world: World) -> tuple[Path, list[Path]]:
    """A custom DB with every sibling, plus neighbours that are not ours."""
    folder = world.root / "outside" / "env-db"
    db = write(folder / "custom.db", b"SQLite format 3\x00" + bytes(512), 0o600)
    ours = [db]
    for name in ("custom.db-wal", "custom.db-shm", "custom.db-journal", "custom.provenance_key"):
        ours.append(write(folder / name, os.urandom(40), 0o600))
    ours.append(write(folder / "custom.db.pre-reset-20260101T101010-123456.bak", "b"))
    for name in ENV_DB_NEIGHBOURS:
        write(folder / name, f"not ours: {name}\n")
    return db, ours


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    def refusals(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.startswith("Refused: ")]


def mm(*args: str, env: dict[str, str], fs: ScriptedFs | None = None) -> Run:
    """One in-process run; a traceback would raise here (catch_exceptions=False)."""
    result = invoke(*args, env=env, fs=fs)
    run = Run(result.exit_code, result.stdout, result.stderr)
    assert_printable(run.text)
    return run


def mm_json(*args: str, env: dict[str, str], fs: ScriptedFs | None = None) -> tuple[int, Any]:
    run = mm("--json", *args, env=env, fs=fs)
    assert run.stderr == ""
    doc = json.loads(run.stdout)
    assert doc["exit_code"] == run.code
    assert_json_clean(doc)
    return run.code, doc


def assert_printable(text: str) -> None:
    assert "Traceback" not in text, text
    bad = RAW_CONTROL.search(text)
    assert bad is None, f"raw control character {bad.group()!r} in output:\n{text!r}"


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def assert_json_clean(doc: Any) -> None:
    """No decoded JSON string may carry a control byte: paths arrive escaped, not raw."""
    for text in strings(doc):
        assert JSON_CONTROL.search(text) is None, f"raw control character in JSON: {text!r}"


def lost(before: dict[str, Node], after: dict[str, Node], ours: list[str]) -> list[str]:
    """Files whose contents existed before, were not ours to delete, and exist nowhere now."""
    present = {node[2] for node in after.values() if node[0] == "file"}
    return sorted(
        rel
        for rel, node in before.items()
        if node[0] == "file"
        and node[2] not in present
        and not any(rel == o or rel.startswith(o + "/") for o in ours)
    )


def bash_word(word: str) -> bytes:
    """What bash makes of one (quoted) shell word: proves a printed path round-trips."""
    done = subprocess.run(
        ["bash", "-c", f"printf %s {word}"], capture_output=True, check=True, timeout=10
    )
    return done.stdout


def mount_tmpfs(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (from /proc/self/mountinfo)."""
    prefix = str(root)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
        for line in info:
            point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def umount_all(root: Path) -> None:
    for point in mounts_under(root):
        if subprocess.run(["umount", point], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


def chattr(flag: str, path: Path) -> bool:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, timeout=30)
    return done.returncode == 0


def unset_immutable(root: Path) -> None:
    """Clear +i below `root`, wherever a run moved things, so tmp_path can be cleaned up."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                chattr("-i", path)
