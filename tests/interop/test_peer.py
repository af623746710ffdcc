"""The real memtomem 0.6.12 as a peer: our uninstall refuses while its server or Web UI runs
and removes everything it wrote once they stop. Needs --interop; see NOTES.md beside this."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.interop.peer import Peer, WebHandle
from tests.support.children import shown_command
from tests.support.snapshot import Node, diff, snapshot

pytestmark = pytest.mark.interop

Ours = Callable[..., subprocess.CompletedProcess[str]]
Proc = tuple[str, int, str, bool, bool]  # path, pid, hint, forceable, blocks

# What the runtime dir holds once everything is gone: the locks other servers rely on and
# the (empty) registry dirs.
KEPT_RUNTIME = (".", "instances", "instances.registry.lock", "lifecycle.lock", "presence")
DB = "home/.memtomem/memtomem.db"


def tree(peer: Peer) -> dict[str, Node]:
    """Both roots the peer and we share, as one snapshot keyed `home/...` and `run/...`."""
    out = {f"home/{k}": v for k, v in snapshot(peer.home).items()}
    out.update({f"run/{k}": v for k, v in snapshot(peer.runtime_dir).items()})
    return out


def sizes(peer: Peer) -> dict[str, int]:
    """Regular-file sizes, keyed like tree()."""
    out: dict[str, int] = {}
    for prefix, root in (("home", peer.home), ("run", peer.runtime_dir)):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                out[f"{prefix}/{path.relative_to(root)}"] = path.lstat().st_size
    return out


def pick(tree: dict[str, Node], keys: Iterable[str]) -> dict[str, Node]:
    return {k: tree[k] for k in keys}


def subtree(tree: dict[str, Node], top: str) -> list[str]:
    return [k for k in tree if k == top or k.startswith(top + "/")]


def cleaned(before: dict[str, Node]) -> dict[str, Node]:
    """The fully removed tree: HOME empty again, the runtime dir down to KEPT_RUNTIME."""
    return pick(before, ["home/.", *(f"run/{k}" for k in KEPT_RUNTIME)])


def removed_totals(
    before: dict[str, Node], after: dict[str, Node], size: dict[str, int]
) -> dict[str, int]:
    gone = [k for k, node in before.items() if node[0] == "file" and k not in after]
    return {"files": len(gone), "bytes": sum(size[k] for k in gone)}


def one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def who(pid: int) -> str:
    """How our messages name a process: its pid and its command, cut to 60 characters."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return f"(pid {pid}: {shown_command(command)})"


def stop_hint(pid: int) -> str:
    return f"Stop it (for example `kill {pid}`), then run mm uninstall again."


def processes(doc: dict[str, Any]) -> list[Proc]:
    return sorted(
        (p["path"], p["pid"], p["hint"], p["forceable"], p["blocks"]) for p in doc["processes"]
    )


def run_json(ours: Ours, *args: str) -> tuple[int, dict[str, Any]]:
    result = ours(*args, "--json")
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["exit_code"] == result.returncode, doc
    return result.returncode, doc


def build_state(peer: Peer) -> WebHandle:
    """State made by the peer's own commands; returns its Web UI, still running."""
    peer.init()
    peer.add("plain note from the peer")
    peer.add("note in a named file", file="notes/tools.md")
    web = peer.start_web()
    peer.upload(web.port, "upload.md", b"# uploaded through the Web UI\n")
    for rel in ("config.json", "memtomem.db", "memories/notes/tools.md", "uploads/upload.md"):
        assert (peer.state_dir / rel).is_file(), rel
    assert (peer.state_dir / "logs" / "web.log").is_file()
    return web


def refuses_while_the_web_ui_runs(peer: Peer, ours: Ours, web: WebHandle) -> None:
    """Refused, naming mm web and `mm web stop`; --force too; not a byte changed."""
    run, pid = peer.runtime_dir, web.pid
    sentinel = one(run / "instances", f"{pid}-*.lock")
    web_hint = f"Stop it with `mm web stop` or `kill {pid}`."
    before = tree(peer)

    refused = ours("-y")
    assert (refused.returncode, refused.stdout) == (2, "")
    lines = refused.stderr.splitlines()
    assert sorted(lines) == sorted(
        [
            f"Refused: a memtomem process {who(pid)} holds the lifecycle barrier "
            f"{run}/lifecycle.lock. {stop_hint(pid)}",
            f"Refused: mm web {who(pid)} is running ({run}/web.pid is locked). {web_hint}",
            f"Refused: a memtomem process {who(pid)} has a store open ({sentinel} is locked). "
            f"{stop_hint(pid)}",
            f"Refused: a process {who(pid)} has open the database ~/.memtomem/memtomem.db. "
            f"{stop_hint(pid)} If you are sure it is not memtomem's, pass --force.",
            "Nothing was changed.",
        ]
    ), refused.stderr
    assert lines[-1] == "Nothing was changed."

    # --force passes the SQLite lock (heuristic), never a held flock.
    code, doc = run_json(ours, "-y", "--force")
    assert (code, doc["outcome"]) == (2, "refused")
    assert processes(doc) == sorted(
        [
            (f"{run}/lifecycle.lock", pid, stop_hint(pid), False, True),
            (f"{run}/web.pid", pid, web_hint, False, True),
            (str(sentinel), pid, stop_hint(pid), False, True),
        ]
    )
    after = tree(peer)
    assert after == before, "\n".join(diff(before, after))


def refuses_while_the_server_runs(peer: Peer, ours: Ours, server: subprocess.Popen[bytes]) -> None:
    """Refused, naming the server's pid; --force too; a dry run says the same; no byte
    changed. The caller waits until the server is idle, so any change would be ours."""
    pid, run = server.pid, peer.runtime_dir
    pid_file = peer.server_pid_file()
    presence = one(run / "presence", f"{pid}-*.lock")
    sentinel = one(run / "instances", f"{pid}-*.lock")
    db = peer.state_dir / "memtomem.db"
    held: list[Proc] = [
        (f"{run}/lifecycle.lock", pid, stop_hint(pid), False, True),
        (str(pid_file), pid, stop_hint(pid), False, True),
        (str(presence), pid, stop_hint(pid), False, True),
        (str(sentinel), pid, stop_hint(pid), False, True),
    ]
    db_hint = f"{stop_hint(pid)} If you are sure it is not memtomem's, pass --force."
    before = tree(peer)

    refused = ours("-y")
    assert (refused.returncode, refused.stdout) == (2, "")
    lines = refused.stderr.splitlines()
    assert sorted(lines) == sorted(
        [
            f"Refused: a memtomem process {who(pid)} holds the lifecycle barrier "
            f"{run}/lifecycle.lock. {stop_hint(pid)}",
            f"Refused: a memtomem server {who(pid)} is running for this store "
            f"({pid_file} is locked). {stop_hint(pid)}",
            f"Refused: a memtomem server {who(pid)} is starting or running for this store "
            f"({presence} is locked). {stop_hint(pid)}",
            f"Refused: a memtomem process {who(pid)} has a store open ({sentinel} is locked). "
            f"{stop_hint(pid)}",
            f"Refused: a process {who(pid)} has open the database ~/.memtomem/memtomem.db. "
            f"{db_hint}",
            "Nothing was changed.",
        ]
    ), refused.stderr
    assert lines[-1] == "Nothing was changed."

    code, doc = run_json(ours, "-y", "--force")
    assert (code, doc["outcome"], processes(doc)) == (2, "refused", sorted(held))

    # A dry run shows what a real run would do: the plan, then the same refusal, same code.
    dry_text = ours("--dry-run")
    assert (dry_text.returncode, dry_text.stdout) == (2, "")
    assert dry_text.stderr.startswith("memtomem state found:\n  database")
    assert dry_text.stderr.endswith(refused.stderr)
    code, doc = run_json(ours, "--dry-run")
    assert (code, doc["outcome"], doc["dry_run"]) == (2, "refused", True)
    assert {g["group"] for g in doc["groups"]} >= {"database", "config", "memories", "logs"}
    assert processes(doc) == sorted([*held, (str(db), pid, db_hint, True, True)])

    after = tree(peer)
    assert after == before, "\n".join(diff(before, after))
    assert server.poll() is None


def test_refuses_while_the_peer_runs_then_removes_all_it_wrote(peer: Peer, ours: Ours) -> None:
    """Web UI up, then the server up: refused each time. Both stopped cleanly: all gone."""
    web = build_state(peer)
    refuses_while_the_web_ui_runs(peer, ours, web)
    web.stop()
    server = peer.start_server()
    # The server re-indexes the file mem_add wrote ~5 s later: its only write when idle.
    peer.wait_server_settled()
    refuses_while_the_server_runs(peer, ours, server)

    assert peer.stop_server(server) == 0
    before, size = tree(peer), sizes(peer)
    # A clean stop takes the server's own runtime files with it.
    assert sorted(subtree(before, "run")) == sorted(f"run/{k}" for k in KEPT_RUNTIME)
    code, doc = run_json(ours, "-y")
    after = tree(peer)
    assert (code, doc["outcome"], doc["processes"]) == (0, "removed", [])
    assert after == cleaned(before), "\n".join(diff(cleaned(before), after))
    assert doc["removed"] == removed_totals(before, after, size) == doc["total"]


def test_after_sigkill_removes_everything_where_0_6_12_leaves_some(
    peer: Peer, ours: Ours, tmp_path: Path
) -> None:
    """A killed server leaves its pid file, presence marker, sentinel, -wal and -shm.
    Ours removes them all; 0.6.12's own uninstall runs on byte-identical copies."""
    build_state(peer).stop()
    server = peer.start_server()
    pid, run = server.pid, peer.runtime_dir
    assert peer.kill9(server) == -9
    presence = one(run / "presence", f"{pid}-*.lock")
    stale = [peer.server_pid_file(), presence, one(run / "instances", f"{pid}-*.lock")]
    db = peer.state_dir / "memtomem.db"
    database = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    assert all(p is not None and p.is_file() for p in [*stale, *database])
    root, backup = peer.home.parent, tmp_path / "backup"
    shutil.copytree(root, backup, symlinks=True)
    original, size = tree(peer), sizes(peer)

    def fresh() -> None:
        shutil.rmtree(root)
        shutil.copytree(backup, root, symlinks=True)
        assert tree(peer) == original

    code, doc = run_json(ours, "--dry-run")
    assert (code, doc["outcome"], doc["processes"]) == (0, "dry-run", [])
    assert [g for g in doc["groups"] if g["group"] == "database"] == [
        {
            "group": "database",
            "path": str(db),
            "entries": 3,
            "files": 3,
            "bytes": sum(size[k] for k in (DB, f"{DB}-wal", f"{DB}-shm")),
            "kept": False,
            "kept_by": None,
        }
    ]
    # Byte for byte, -wal and -shm included: the probe opened no SQLite connection.
    assert tree(peer) == original

    code, doc = run_json(ours, "-y")
    after = tree(peer)
    assert (code, doc["outcome"], doc["processes"]) == (0, "removed", [])
    assert after == cleaned(original), "\n".join(diff(cleaned(original), after))
    assert doc["removed"] == removed_totals(original, after, size) == doc["total"]

    # 0.6.12 leaves logs/ (so the state dir) and the stale presence marker.
    fresh()
    memories = subtree(original, "home/.memtomem/memories")
    upstream_leaves = [
        "home/.",
        "home/.memtomem",
        "home/.memtomem/logs",
        "home/.memtomem/logs/web.log",
        *(f"run/{k}" for k in (".", "instances.registry.lock", "lifecycle.lock", "presence")),
        f"run/presence/{presence.name}",
    ]
    peer.run("uninstall", "-y")
    assert tree(peer) == pick(original, upstream_leaves)

    # --keep-data: 0.6.12's writer probe opens the DB; closing it checkpoints the WAL into
    # the DB and deletes -wal/-shm. Ours keeps every kept byte as it was.
    fresh()
    peer.run("uninstall", "-y", "--keep-data")
    after = tree(peer)
    assert sorted(after) == sorted([*upstream_leaves, DB, *memories])
    assert after[DB] != original[DB]
    unchanged = [*upstream_leaves, *memories]
    assert pick(after, unchanged) == pick(original, unchanged)
    fresh()
    assert ours("-y", "--keep-data").returncode == 0
    kept = ["home/.memtomem", DB, f"{DB}-wal", f"{DB}-shm", *memories]
    assert tree(peer) == {**cleaned(original), **pick(original, kept)}
