"""Rendering, end to end: golden human text and whole-dict JSON for each outcome.

Sizes and counts below are summed by hand from what `full_world` writes (see the table),
so a wrong count, order or format fails here, not only in the renderer's own terms.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from memtomem.uninstall import install
from tests.support.children import Children
from tests.support.cli import invoke, invoke_json
from tests.support.commands import clean_up, move_home
from tests.support.faults import Fault, ScriptedFs
from tests.support.snapshot import diff, snapshot
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
    """The hint for the interpreter running these tests; its decision is tested, context by
    context, in test_install_hint.py and test_install_contexts.py."""
    return install.removal_hint(os.environ)


# The whole report at 80 columns, by hand. The runtime dir is under the home here, so every
# path shows with `~` and the text is the same in every run.
TABLE = """\
memtomem state found:
  database        6 files  4.9 KiB  ~/.memtomem/memtomem.db
  config          4 files     62 B  ~/.memtomem/config.json
  memories        4 files     13 B  ~/.memtomem/memories/
  uploads         1 file       3 B  ~/.memtomem/uploads/
  agents          1 file       6 B  ~/.memtomem/agents/
  skills          1 file       6 B  ~/.memtomem/skills/
  commands        1 file       8 B  ~/.memtomem/commands/
  cache           1 file    1000 B  ~/.memtomem/cache/
  traces          1 file       3 B  ~/.memtomem/traces/
  logs            1 file       4 B  ~/.memtomem/logs/
  debounce-queue  2 files      2 B  ~/.memtomem/index_debounce_queue.json
  runtime         9 files     59 B  ~/.memtomem/, ~/run/memtomem-test/
  total to delete: 32 files, 6.1 KiB
"""

TABLE_KEEP_DATA = """\
memtomem state found:
  database        6 files  4.9 KiB  kept  ~/.memtomem/memtomem.db
  config          4 files     62 B        ~/.memtomem/config.json
  memories        4 files     13 B  kept  ~/.memtomem/memories/
  uploads         1 file       3 B        ~/.memtomem/uploads/
  agents          1 file       6 B  kept  ~/.memtomem/agents/
  skills          1 file       6 B  kept  ~/.memtomem/skills/
  commands        1 file       8 B  kept  ~/.memtomem/commands/
  cache           1 file    1000 B        ~/.memtomem/cache/
  traces          1 file       3 B        ~/.memtomem/traces/
  logs            1 file       4 B        ~/.memtomem/logs/
  debounce-queue  2 files      2 B        ~/.memtomem/index_debounce_queue.json
  runtime         9 files     59 B        ~/.memtomem/, ~/run/memtomem-test/
  total to delete: 19 files, 1.1 KiB
"""

TABLE_KEEP_CONFIG = """\
memtomem state found:
  database        6 files  4.9 KiB        ~/.memtomem/memtomem.db
  config          4 files     62 B  kept  ~/.memtomem/config.json
  memories        4 files     13 B        ~/.memtomem/memories/
  uploads         1 file       3 B        ~/.memtomem/uploads/
  agents          1 file       6 B        ~/.memtomem/agents/
  skills          1 file       6 B        ~/.memtomem/skills/
  commands        1 file       8 B        ~/.memtomem/commands/
  cache           1 file    1000 B        ~/.memtomem/cache/
  traces          1 file       3 B        ~/.memtomem/traces/
  logs            1 file       4 B        ~/.memtomem/logs/
  debounce-queue  2 files      2 B        ~/.memtomem/index_debounce_queue.json
  runtime         9 files     59 B        ~/.memtomem/, ~/run/memtomem-test/
  total to delete: 28 files, 6.0 KiB
"""

TABLE_KEEP_BOTH = """\
memtomem state found:
  database        6 files  4.9 KiB  kept  ~/.memtomem/memtomem.db
  config          4 files     62 B  kept  ~/.memtomem/config.json
  memories        4 files     13 B  kept  ~/.memtomem/memories/
  uploads         1 file       3 B        ~/.memtomem/uploads/
  agents          1 file       6 B  kept  ~/.memtomem/agents/
  skills          1 file       6 B  kept  ~/.memtomem/skills/
  commands        1 file       8 B  kept  ~/.memtomem/commands/
  cache           1 file    1000 B        ~/.memtomem/cache/
  traces          1 file       3 B        ~/.memtomem/traces/
  logs            1 file       4 B        ~/.memtomem/logs/
  debounce-queue  2 files      2 B        ~/.memtomem/index_debounce_queue.json
  runtime         9 files     59 B        ~/.memtomem/, ~/run/memtomem-test/
  total to delete: 15 files, 1.0 KiB
"""

# After the result: what else to remove once the state is gone.
HINTS = """\
Editor configs name memtomem (not modified; remove these entries yourself):
  ~/.claude.json: mcpServers.memtomem
To remove the memtomem program too: {remove_program}
"""

DRY_RUN = "Dry run: nothing was changed.\n"


def world_80(root: Path, **options: bool) -> tuple[World, dict[str, str]]:
    """full_world with its runtime dir in the home, and a report laid out at 80 columns."""
    world = full_world(root, runtime_in_home=True, **options)
    return world, {**world.env, "COLUMNS": "80"}


def golden(*parts: str) -> str:
    text = "".join(parts).replace("{remove_program}", remove_program())
    assert all(len(line) <= 80 for line in text.splitlines() if line.startswith("  "))
    return text


@pytest.mark.parametrize(
    ("flags", "table"),
    [
        ((), TABLE),
        (("--keep-data",), TABLE_KEEP_DATA),
        (("--keep-config",), TABLE_KEEP_CONFIG),
        (("--keep-config", "--keep-data"), TABLE_KEEP_BOTH),
    ],
    ids=["plain", "keep-data", "keep-config", "keep-both"],
)
def test_dry_run_report_golden_text(tmp_path: Path, flags: tuple[str, ...], table: str) -> None:
    world, env = world_80(tmp_path)
    before = world.tree()
    result = invoke("--dry-run", *flags, env=env)
    assert result.exit_code == 0
    assert result.output == golden(table, DRY_RUN, HINTS)
    assert world.tree() == before


@pytest.mark.parametrize(
    ("flags", "table", "removed"),
    [
        ((), TABLE, "Removed 32 files (6.1 KiB).\n"),
        (("--keep-data",), TABLE_KEEP_DATA, "Removed 19 files (1.1 KiB).\n"),
        (("--keep-config",), TABLE_KEEP_CONFIG, "Removed 28 files (6.0 KiB).\n"),
    ],
    ids=["plain", "keep-data", "keep-config"],
)
def test_removal_golden_text_has_the_result_before_the_hints(
    tmp_path: Path, flags: tuple[str, ...], table: str, removed: str
) -> None:
    world, env = world_80(tmp_path)
    before = world.tree()
    result = invoke("-y", *flags, env=env)
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == (golden(table, removed, HINTS), "")
    expected = world.expected(before, "--keep-config" in flags, "--keep-data" in flags)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


@pytest.mark.parametrize(
    ("flags", "result_line"),
    [
        (("--dry-run",), "No memtomem state found.\n" + DRY_RUN),
        (("-y",), "No memtomem state found; nothing to remove.\n"),
    ],
    ids=["dry-run", "real"],
)
def test_an_empty_home_says_no_state_was_found(
    tmp_path: Path, flags: tuple[str, ...], result_line: str
) -> None:
    (tmp_path / "home").mkdir()
    env = {
        **full_world(tmp_path / "unused").env,
        "HOME": str(tmp_path / "home"),
        "_MEMTOMEM_TEST_RUNTIME_DIR": str(tmp_path / "run"),
        "COLUMNS": "80",
    }
    before = snapshot(tmp_path)
    result = invoke(*flags, env=env)
    assert result.exit_code == 0
    hint = "To remove the memtomem program too: {remove_program}\n"
    assert result.output == golden(result_line, hint)
    code, doc = invoke_json(*flags, env=env)
    assert (code, doc["message"]) == (0, result_line.splitlines()[-1])
    assert snapshot(tmp_path) == before


def test_nothing_to_remove_when_everything_found_is_kept(tmp_path: Path) -> None:
    world, env = world_80(tmp_path, runtime_files=False)
    for name in ("uploads", "cache", "traces", "logs"):
        shutil.rmtree(world.state / name)
    for name in ("index_debounce_queue.json", "index_debounce_queue.json.lock"):
        (world.state / name).unlink()
    for name in (".current_session", ".server.pid", ".config.json.lock"):
        (world.state / name).unlink()
    before = world.tree()
    result = invoke("-y", "--keep-config", "--keep-data", env=env)
    assert result.exit_code == 0
    table = """\
memtomem state found:
  database  6 files  4.9 KiB  kept  ~/.memtomem/memtomem.db
  config    4 files     62 B  kept  ~/.memtomem/config.json
  memories  4 files     13 B  kept  ~/.memtomem/memories/
  agents    1 file       6 B  kept  ~/.memtomem/agents/
  skills    1 file       6 B  kept  ~/.memtomem/skills/
  commands  1 file       8 B  kept  ~/.memtomem/commands/
  total to delete: 0 files, 0 B
Nothing to remove: everything found is kept.
"""
    assert result.output == golden(table, HINTS)
    assert world.tree() == before


def test_refusal_by_a_running_server_golden_text(tmp_path: Path) -> None:
    """A real run refuses before the report; a dry run shows the plan (without the held pid
    file, which is never staged), then the same refusal."""
    world, env = world_80(tmp_path)
    pid_file = world.runtime / f"server-{digest(world.db)}.pid"
    with Children() as kids:
        child = kids.flock(pid_file)
        before = world.tree()
        real = invoke("-y", env=env)
        dry = invoke("--dry-run", env=env)
    refusal = (
        f"Refused: a memtomem server (pid {child.pid}: {child.shown}) is running for this "
        f"store (~/run/memtomem-test/{pid_file.name} is locked). Stop it (for example "
        f"`kill {child.pid}`), then run mm uninstall again.\nNothing was changed.\n"
    )
    assert (real.exit_code, real.stdout, real.stderr) == (2, "", refusal)
    table = TABLE.replace("9 files     59 B", "8 files     39 B").replace(
        "32 files, 6.1 KiB", "31 files, 6.0 KiB"
    )
    assert (dry.exit_code, dry.stdout, dry.stderr) == (2, "", golden(table, refusal))
    assert world.tree() == before


def test_rollback_golden_text(tmp_path: Path) -> None:
    """The report went out before the failure; the failure says everything was put back."""
    world, env = world_80(tmp_path)
    before = world.tree()
    result = invoke("-y", env=env, fs=ScriptedFs(uploads_fault()))
    assert result.exit_code == 3
    assert (result.stdout, result.stderr) == (
        golden(TABLE),
        "could not move ~/.memtomem/uploads: Permission denied (injected); everything was "
        "put back, nothing was changed. Fix the cause and run mm uninstall again.\n",
    )
    assert world.tree() == before


def test_leftovers_and_recovery_golden_text(tmp_path: Path) -> None:
    """A delete that fails after commit names what is left; a dry run then says what the
    next run would do, in the future tense, and that run does it."""
    world, env = world_80(tmp_path)
    before = world.tree()
    fault = Fault(errno.EACCES, op="unlink", contains="x.md")
    result = invoke("-y", env=env, fs=ScriptedFs(fault))
    staging = f"~/.memtomem/.uninstall-staging-{os.getpid()}"
    assert result.exit_code == 5
    assert (result.stdout, result.stderr) == (
        golden(TABLE),
        "Removed memtomem's state, but 2 item(s) could not be deleted; fix the cause below, "
        "then run mm uninstall again to finish.\n"
        f"  could not delete {staging}/memories/notes/deep/nested/x.md: Permission denied "
        "(injected)\n"
        f"  could not delete {staging}/memories: Directory not empty\n",
    )
    left = world.tree()
    # 29 items moved: 6 database files, 4 config entries, 7 directories (memories to logs),
    # 2 of the debounce queue, 9 runtime files.
    recovery = f"of an interrupted uninstall ({staging}).\n"
    dry = invoke("--dry-run", env=env)
    assert (dry.exit_code, dry.stderr) == (0, "")
    assert dry.stdout == golden(
        f"Would finish deleting 29 item(s) {recovery}",
        "No memtomem state found.\n",
        DRY_RUN,
        HINTS,
    )
    assert world.tree() == left
    real = invoke("-y", env=env)
    assert (real.exit_code, real.stderr) == (0, "")
    assert real.stdout == golden(
        f"Recovered: finished deleting 29 item(s) {recovery}",
        "No memtomem state found; nothing to remove.\n",
        HINTS,
    )
    expected = world.expected(before, False, False)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


def test_long_paths_are_shortened_in_the_middle_to_fit(tmp_path: Path) -> None:
    """A database deep below the home, beside the default one: at 80 columns the longer path
    loses its middle to "…", at 120 both are whole; the JSON keeps them whole."""
    world, env = world_80(tmp_path, runtime_files=False)
    deep = world.home / "clients" / "a-rather-long-client-name" / "projects" / "store" / "mm.db"
    write(deep, b"SQLite format 3\x00" + bytes(100), 0o600)
    env["MEMTOMEM_STORAGE__SQLITE_PATH"] = str(deep)
    before = world.tree()
    narrow = invoke("--dry-run", env=env)
    assert narrow.exit_code == 0
    assert narrow.output.splitlines()[1] == (
        "  database        7 files  5.0 KiB  ~/.memtomem/memtomem.db, ~/clients…ore/mm.db"
    )
    wide = invoke("--dry-run", env={**env, "COLUMNS": "120"})
    assert wide.output.splitlines()[1] == (
        "  database        7 files  5.0 KiB  ~/.memtomem/memtomem.db, "
        "~/clients/a-rather-long-client-name/projects/store/mm.db"
    )
    _code, doc = invoke_json("--dry-run", env=env)
    assert doc["database"]["path"] == str(deep)
    assert doc["groups"][0]["path"] == str(deep)
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
    commands = [move_home(staging / "config.json", world.state / "config.json")]
    commands += [clean_up(s) for s in (staging, runtime_staging)]
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


def test_a_warning_is_shown_once_before_the_report(tmp_path: Path) -> None:
    """With -y the report is printed before the wipe; the result does not repeat its
    warnings (the JSON has each once too)."""
    world, env = world_80(tmp_path)
    write(world.state / "config.d" / "20-bad.json", "{nope")
    result = invoke("-y", env=env)
    warning = (
        "Warning: ignored ~/.memtomem/config.d/20-bad.json (not valid JSON); its database "
        "path setting was not used\n"
    )
    table = TABLE.replace("4 files     62 B", "5 files     67 B").replace(
        "32 files, 6.1 KiB", "33 files, 6.1 KiB"
    )
    assert result.exit_code == 0
    assert result.stdout == golden(warning, table, "Removed 33 files (6.1 KiB).\n", HINTS)
