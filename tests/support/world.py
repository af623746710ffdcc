"""Synthetic memtomem states under tmp_path, each path tagged with the group it belongs to.

The tags restate the spec by hand (not by calling the code under test), so a test can
compute the expected tree independently: the original minus every non-kept group.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.snapshot import Node, snapshot, without

KEEP_DATA = {"database", "memories", "agents", "skills", "commands"}
KEEP_CONFIG = {"config"}
DEAD_PID = 4194303  # valid on 64-bit Linux, practically never in use
FLAGS = [(False, False), (True, False), (False, True), (True, True)]
FLAG_IDS = ["plain", "keep-config", "keep-data", "keep-both"]


def digest(db: Path) -> str:
    """0.6.12's path digest of a database; a path that cannot be resolved (a loop) is taken
    as written."""
    try:
        resolved = db.resolve()
    except (OSError, RuntimeError):
        resolved = db
    return hashlib.sha256(os.path.normcase(str(resolved)).encode()).hexdigest()[:16]


@dataclass
class World:
    root: Path
    home: Path
    state: Path
    runtime: Path
    db: Path
    owned: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTOMEM")}
        env.update(
            HOME=str(self.home),
            _MEMTOMEM_TEST_RUNTIME_DIR=str(self.runtime),
            PYTEST_CURRENT_TEST=os.environ.get("PYTEST_CURRENT_TEST", "world"),
        )
        return env

    def tag(self, group: str, path: Path) -> Path:
        self.owned.setdefault(group, []).append(path)
        return path

    def tree(self) -> dict[str, Node]:
        return snapshot(self.root)

    def removed(self, keep_config: bool, keep_data: bool) -> list[Path]:
        kept = (KEEP_CONFIG if keep_config else set()) | (KEEP_DATA if keep_data else set())
        return [p for group, paths in self.owned.items() if group not in kept for p in paths]

    def expected(
        self, before: dict[str, Node], keep_config: bool, keep_data: bool
    ) -> dict[str, Node]:
        """The fully removed tree: `before` minus non-kept groups; an emptied state dir goes."""
        after = without(before, self.root, self.removed(keep_config, keep_data))
        state_rel = os.path.relpath(self.state, self.root)
        if state_rel in after and not any(k.startswith(state_rel + "/") for k in after):
            del after[state_rel]
        return after


def write(path: Path, data: bytes | str = b"", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


def full_world(
    root: Path,
    *,
    custom_db: bool = False,
    runtime_files: bool = True,
    stranger: bool = False,
    runtime_in_home: bool = False,
) -> World:
    """Every group of the spec, plus a runtime dir with stale pid files and sentinels (in
    the home when `runtime_in_home`, so that reports show it the same in every test)."""
    home = root / "home"
    state = home / ".memtomem"
    runtime = (home if runtime_in_home else root) / "run" / "memtomem-test"
    outside = root / "outside" / "data"
    db = (outside / "custom.db") if custom_db else (state / "memtomem.db")
    w = World(root, home, state, runtime, db)
    state.mkdir(parents=True)
    runtime.mkdir(parents=True, mode=0o700)
    os.chmod(runtime, 0o700)
    config: dict[str, object] = {"storage": {"backend": "sqlite"}}
    if custom_db:
        config["storage"] = {"backend": "sqlite", "sqlite_path": str(db)}
        write(outside / "other-file.txt", "not memtomem's")
    w.tag("config", write(state / "config.json", json.dumps(config), 0o600))
    write(w.tag("config", state / "config.d") / "10-admin.json", '{"search": {"top_k": 5}}')
    w.tag("config", write(state / "config.json.bak-1795673805", "{}", 0o600))
    w.tag("config", write(state / "known_projects.json", "[]"))
    w.tag("database", write(db, b"SQLite format 3\x00" + bytes(range(256)) * 16, 0o600))
    for suffix in ("-wal", "-shm", "-journal"):
        w.tag("database", write(Path(f"{db}{suffix}"), os.urandom(300), 0o600))
    w.tag("database", write(db.with_suffix(".provenance_key"), os.urandom(32), 0o600))
    w.tag("database", write(db.parent / f"{db.name}.pre-reset-20260101T101010-123456.bak", "b"))
    memories = w.tag("memories", state / "memories")
    write(memories / "2026-11-26.md", "# today\n")
    write(memories / ".2026-11-26.md.lock", "", 0o600)
    write(memories / "notes" / "deep" / "nested" / "x.md", "deep\n")
    (memories / "empty-dir").mkdir()
    os.symlink("/etc/hostname", memories / "link-out")
    uploads = w.tag("uploads", state / "uploads")
    write(uploads / "faq.txt", "faq", 0o600)
    for name in ("agents", "skills", "commands"):
        write(w.tag(name, state / name) / f"{name}-1.md", name)
    write(w.tag("cache", state / "cache") / "models" / "m.bin", os.urandom(1000))
    write(w.tag("traces", state / "traces") / "t.jsonl", "{}\n")
    write(w.tag("logs", state / "logs") / "web.log", "log\n")
    w.tag("debounce-queue", write(state / "index_debounce_queue.json", "[]"))
    w.tag("debounce-queue", write(state / "index_debounce_queue.json.lock", "", 0o600))
    w.tag("runtime", write(state / ".current_session", "f440b086\n"))
    w.tag("runtime", write(state / ".server.pid", f"{DEAD_PID}\n"))
    w.tag("runtime", write(state / ".config.json.lock", "", 0o600))
    if runtime_files:
        ours = digest(db)
        w.tag("runtime", write(runtime / f"server-{ours}.pid", f"{DEAD_PID}\n\n2026-11-26\n"))
        w.tag("runtime", write(runtime / "server.pid", f"{DEAD_PID}\n"))
        w.tag("runtime", write(runtime / "web.pid", f"{DEAD_PID}\n18765\n"))
        w.tag(
            "runtime",
            write(runtime / "instances" / f"{DEAD_PID}-1-c297a376c157ebb9-4f4c68fe-c872ece7.lock"),
        )
        w.tag(
            "runtime", write(runtime / "presence" / f"{DEAD_PID}-1-{ours}-4f4c68fe-e7348a8c.lock")
        )
        w.tag(
            "runtime",
            write(runtime / "presence" / f"{DEAD_PID}-1-0123456789abcdef-4f4c68fe-00000000.lock"),
        )
        write(runtime / "server-0123456789abcdef.pid", f"{DEAD_PID}\n")  # another store's
        write(runtime / "instances.registry.lock")
        write(runtime / "lifecycle.lock")
    write(home / ".claude.json", json.dumps({"mcpServers": {"memtomem": {"command": "mm"}}}))
    if stranger:
        write(state / "my-own-notes.txt", "not memtomem's")
    return w


def real_db(world: World, mode: str = "wal") -> None:
    """Replace the synthetic DB (not a valid SQLite file) and its siblings with a real DB."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{world.db}{suffix}").unlink()
    db = sqlite3.connect(world.db)
    try:
        db.execute(f"PRAGMA journal_mode={mode}")
        db.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes(body) VALUES ('first')")
        db.commit()
    finally:
        db.close()
    os.chmod(world.db, 0o600)
    assert not Path(f"{world.db}-wal").exists()  # the close checkpointed and removed it
