"""Rendering, end to end: golden human text and whole-dict JSON for each outcome.

Sizes and counts below are summed by hand from what `full_world` writes (see the table),
so a wrong count, order or format fails here, not only in the renderer's own terms.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.children import Children
from tests.support.cli import invoke, invoke_json
from tests.support.faults import Fault, ScriptedFs
from tests.support.snapshot import diff
from tests.support.world import World, digest, full_world, write

# (group, main path relative to the state dir, entries, files, bytes), by hand from world.py.
GROUPS = [
    ("database", "memtomem.db", 6, 6, 4112 + 3 * 300 + 32 + 1),
    ("config", "config.json", 4, 4, 34 + 24 + 2 + 2),
    ("memories", "memories", 1, 4, 8 + 5),  # two notes, an empty lock, a link; no dirs
    ("uploads", "uploads", 1, 1, 3),
    ("agents", "agents", 1, 1, 6),
    ("skills", "skills", 1, 1, 6),
    ("commands", "commands", 1, 1, 8),
    ("cache", "cache", 1, 1, 1000),
    ("traces", "traces", 1, 1, 3),
    ("logs", "logs", 1, 1, 4),
    ("debounce-queue", "index_debounce_queue.json", 2, 2, 2),
    ("runtime", ".config.json.lock", 9, 9, 9 + 8 + 0 + 20 + 8 + 14),
]
TOTAL = {"files": 32, "bytes": 6211}


def remove_program() -> str:
    """The hint for the interpreter running these tests, derived from sys.prefix."""
    if sys.prefix != sys.base_prefix:
        venv = shlex.quote(sys.prefix)
        return (
            f"uv pip uninstall --python {venv} memtomem  (or remove the virtual environment {venv})"
        )
    return f"{shlex.quote(sys.executable)} -m pip uninstall memtomem"


GOLDEN_DRY_RUN = """\
memtomem state found:
  database        ~/.memtomem/memtomem.db                     6 files     4.9 KiB
  config          ~/.memtomem/config.json                     4 files        62 B
  memories        ~/.memtomem/memories                        4 files        13 B
  uploads         ~/.memtomem/uploads                          1 file         3 B
  agents          ~/.memtomem/agents                           1 file         6 B
  skills          ~/.memtomem/skills                           1 file         6 B
  commands        ~/.memtomem/commands                         1 file         8 B
  cache           ~/.memtomem/cache                            1 file      1000 B
  traces          ~/.memtomem/traces                           1 file         3 B
  logs            ~/.memtomem/logs                             1 file         4 B
  debounce-queue  ~/.memtomem/index_debounce_queue.json       2 files         2 B
  runtime         ~/.memtomem/.config.json.lock               9 files        59 B
  total to delete: 32 files, 6.1 KiB
Editor integration (not modified): ~/.claude.json has mcpServers.memtomem; remove that entry yourself.
To remove the memtomem program too: {remove_program}
Dry run: nothing was changed.
"""

GOLDEN_DRY_RUN_KEEP_BOTH = """\
memtomem state found:
  database        ~/.memtomem/memtomem.db                     6 files     4.9 KiB  (kept: --keep-data)
  config          ~/.memtomem/config.json                     4 files        62 B  (kept: --keep-config)
  memories        ~/.memtomem/memories                        4 files        13 B  (kept: --keep-data)
  uploads         ~/.memtomem/uploads                          1 file         3 B
  agents          ~/.memtomem/agents                           1 file         6 B  (kept: --keep-data)
  skills          ~/.memtomem/skills                           1 file         6 B  (kept: --keep-data)
  commands        ~/.memtomem/commands                         1 file         8 B  (kept: --keep-data)
  cache           ~/.memtomem/cache                            1 file      1000 B
  traces          ~/.memtomem/traces                           1 file         3 B
  logs            ~/.memtomem/logs                             1 file         4 B
  debounce-queue  ~/.memtomem/index_debounce_queue.json       2 files         2 B
  runtime         ~/.memtomem/.config.json.lock               9 files        59 B
  total to delete: 15 files, 1.0 KiB
Editor integration (not modified): ~/.claude.json has mcpServers.memtomem; remove that entry yourself.
To remove the memtomem program too: {remove_program}
Dry run: nothing was changed.
"""


@pytest.mark.parametrize(
    ("flags", "golden"),
    [((), GOLDEN_DRY_RUN), (("--keep-config", "--keep-data"), GOLDEN_DRY_RUN_KEEP_BOTH)],
    ids=["plain", "keep-both"],
)
def test_dry_run_report_golden_text(tmp_path: Path, flags: tuple[str, ...], golden: str) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    result = invoke("--dry-run", *flags, env=world.env)
    assert result.exit_code == 0
    assert result.output == golden.format(remove_program=remove_program())
    assert world.tree() == before


def groups(world: World, kept: dict[str, str] | None = None) -> list[dict[str, Any]]:
    kept = kept or {}
    return [
        {
            "group": name,
            "path": str(world.state / rel),
            "entries": entries,
            "files": files,
            "bytes": size,
            "kept": name in kept,
            "kept_by": kept.get(name),
        }
        for name, rel, entries, files, size in GROUPS
    ]


def document(world: World, **fields: Any) -> dict[str, Any]:
    """The envelope of a run that got as far as a plan, with `fields` replaced."""
    doc: dict[str, Any] = {
        "schema": "memtomem.uninstall",
        "version": 1,
        "status": "success",
        "outcome": "removed",
        "exit_code": 0,
        "dry_run": False,
        "message": "",
        "state_dir": str(world.state),
        "database": {"path": str(world.db), "source": "default"},
        "groups": groups(world),
        "total": TOTAL,
        "removed": {"files": 0, "bytes": 0},
        "not_ours": [],
        "processes": [],
        "integrations": [
            {"path": str(world.home / ".claude.json"), "entry": "mcpServers.memtomem"}
        ],
        "remove_program": remove_program(),
        "recovery": {"dry_run": False, "runs": [], "orphans": []},
        "leftovers": [],
        "leftover_count": 0,
        "unrestored": [],
        "restore_commands": [],
        "error": None,
        "warnings": [],
    }
    assert fields.keys() <= doc.keys()
    return doc | fields


def test_json_dry_run(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    code, doc = invoke_json("--dry-run", "--keep-data", env=world.env)
    assert code == 0
    kept = dict.fromkeys(["database", "memories", "agents", "skills", "commands"], "--keep-data")
    assert doc == document(
        world,
        outcome="dry-run",
        dry_run=True,
        message="Dry run: nothing was changed.",
        groups=groups(world, kept),
        total={"files": 32 - 13, "bytes": 6211 - 5045 - 13 - 6 - 6 - 8},
        recovery={"dry_run": True, "runs": [], "orphans": []},
    )
    assert world.tree() == before


def test_json_removed(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0
    assert doc == document(world, message="Removed 32 files (6.1 KiB).", removed=TOTAL)
    after, expected = world.tree(), world.expected(before, False, False)
    assert after == expected, "\n".join(diff(expected, after))


def test_json_refused_in_use(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    pid_file = world.runtime / f"server-{digest(world.db)}.pid"
    with Children() as kids:
        child = kids.flock(pid_file)
        before = world.tree()
        code, doc = invoke_json("-y", env=world.env)
    assert code == 2
    what = (
        f"a memtomem server (pid {child.pid}: {child.shown}) is running for this store "
        f"({pid_file} is locked)"
    )
    hint = f"Stop it (for example `kill {child.pid}`), then run mm uninstall again."
    process = {
        "path": str(pid_file),
        "pid": child.pid,
        "what": what,
        "hint": hint,
        "forceable": False,
        "blocks": True,
    }
    # The refusal still shows the plan, minus the held pid file, which is never staged.
    held_bytes = pid_file.stat().st_size
    rows = groups(world)
    runtime = next(r for r in rows if r["group"] == "runtime")
    runtime.update(
        entries=runtime["entries"] - 1,
        files=runtime["files"] - 1,
        bytes=runtime["bytes"] - held_bytes,
    )
    assert doc == document(
        world,
        status="error",
        outcome="refused",
        exit_code=2,
        message=what,
        groups=rows,
        total={"files": TOTAL["files"] - 1, "bytes": TOTAL["bytes"] - held_bytes},
        processes=[process],
        error={"path": str(pid_file), "hint": hint},
    )
    assert world.tree() == before


def test_human_refusal_says_how_to_stop_it_once(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    pid_file = world.runtime / f"server-{digest(world.db)}.pid"
    with Children() as kids:
        child = kids.flock(pid_file)
        result = invoke("-y", env=world.env)
    assert result.exit_code == 2
    hint = f"Stop it (for example `kill {child.pid}`), then run mm uninstall again."
    lines = result.output.splitlines()
    assert lines[0] == (
        f"Refused: a memtomem server (pid {child.pid}: {child.shown}) is running for "
        f"this store ({pid_file} is locked). {hint}"
    )
    assert lines[-1] == "Nothing was changed."
    assert result.output.count(hint) == 1


def uploads_fault() -> Fault:
    return Fault(errno.EACCES, op="replace", contains="/uploads ->")


def test_json_rolled_back(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(uploads_fault()))
    assert code == 3
    assert doc == document(
        world,
        status="error",
        outcome="rolled-back",
        exit_code=3,
        message="could not move ~/.memtomem/uploads: Permission denied (injected); "
        "everything was put back, nothing was changed. Fix the cause and run mm uninstall again.",
    )
    assert world.tree() == before


def _rollback_incomplete(world: World) -> tuple[int, dict[str, Any], Path, Path]:
    """Staging uploads fails, then moving config.json back fails too."""
    staging = world.state / f".uninstall-staging-{os.getpid()}"
    back = Fault(errno.EIO, op="replace", contains=f"{staging}/config.json -> ")
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(uploads_fault(), back))
    return code, doc, staging, world.runtime / staging.name


def test_json_rollback_incomplete(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    code, doc, staging, runtime_staging = _rollback_incomplete(world)
    assert code == 4
    q = shlex.quote
    commands = [f"mv -- {q(str(staging / 'config.json'))} {q(str(world.state / 'config.json'))}"]
    for s in (staging, runtime_staging):
        journals = [s / ".uninstall-journal.json.tmp", s / ".uninstall-journal.json"]
        commands.append("rm -f -- " + " ".join(q(str(j)) for j in journals))
        commands.append(f"find {q(str(s))} -depth -type d -empty -delete")
    expected = document(
        world,
        status="partial",
        outcome="rollback-incomplete",
        exit_code=4,
        message=doc["message"],  # its wording has its own test below
        unrestored=[
            {"now": str(staging / "config.json"), "belongs": str(world.state / "config.json")}
        ],
        restore_commands=commands,
    )
    assert doc == expected
    # Every byte is still there: config.json sits in staging, everything else is back.
    after = world.tree()
    rel = os.path.relpath(staging, world.root)
    moved = after.pop(f"{rel}/config.json")
    assert moved == before.pop("home/.memtomem/config.json")
    rest = {
        k: v for k, v in after.items() if not k.startswith(rel) and ".uninstall-staging-" not in k
    }
    assert rest == before, "\n".join(diff(before, rest))


def test_rollback_incomplete_message_does_not_claim_everything_was_put_back(
    tmp_path: Path,
) -> None:
    world = full_world(tmp_path)
    _code, doc, _staging, _ = _rollback_incomplete(world)
    message = doc["message"]
    assert "putting everything back failed for 1 item(s)" in message
    assert "Nothing was deleted" in message
    assert "everything was put back" not in message
    assert "nothing was changed" not in message


EVIL = "evil\x1b[31m\n.txt"
EVIL_SHOWN = "evil\\x1b[31m\\n.txt"


@pytest.mark.parametrize("flag", ["--dry-run", "-y"])
def test_control_characters_in_paths_are_escaped(tmp_path: Path, flag: str) -> None:
    world = full_world(tmp_path)
    write(world.state / EVIL, "mine")
    before = world.tree()

    human = invoke(flag, env=world.env)
    assert human.exit_code == 0
    assert "\x1b" not in human.output
    assert f"Not memtomem's, left in place: ~/.memtomem/{EVIL_SHOWN} (file)\n" in human.output
    assert "  so ~/.memtomem itself stays.\n" in human.output

    machine = invoke("--json", flag, env=world.env)
    assert machine.exit_code == 0
    assert "\x1b" not in machine.stdout
    doc = json.loads(machine.stdout)
    # Escaped before encoding: JSON's own \u001b / \n would decode back to raw bytes.
    assert doc["not_ours"] == [{"path": f"{world.state}/{EVIL_SHOWN}", "kind": "file"}]

    after = world.tree()
    expected = before if flag == "--dry-run" else world.expected(before, False, False)
    if flag == "-y":
        for rel in ("home/.memtomem", f"home/.memtomem/{EVIL}"):
            expected[rel] = before[rel]
    assert after == expected, "\n".join(diff(expected, after))


def test_control_characters_in_a_database_path_are_escaped(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    db = world.root / "outside" / "we\x1bird\n.db"
    write(db, b"SQLite format 3\x00" + bytes(100))
    write(world.state / "config.json", json.dumps({"storage": {"sqlite_path": str(db)}}))
    before = world.tree()
    fault = Fault(errno.EACCES, op="replace", contains="/we\x1bird\n.db ->")
    shown = f"{world.root}/outside/we\\x1bird\\n.db"

    human = invoke("-y", env=world.env, fs=ScriptedFs(fault))
    assert human.exit_code == 3
    assert "\x1b" not in human.output
    assert f"could not move {shown}: Permission denied (injected);" in human.output

    fault = Fault(errno.EACCES, op="replace", contains="/we\x1bird\n.db ->")
    machine = invoke("--json", "-y", env=world.env, fs=ScriptedFs(fault))
    assert machine.exit_code == 3
    assert "\x1b" not in machine.stdout
    doc = json.loads(machine.stdout)
    assert doc["database"] == {"path": shown, "source": "~/.memtomem/config.json"}
    assert doc["message"].startswith(f"could not move {shown}: ")
    assert world.tree() == before
