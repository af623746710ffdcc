"""A move fails and moving back fails too: exit 4, nothing deleted, printed commands restore.

Two faults through the seam: one on a forward move into staging, one on the move back of
an earlier item (target "<staging>/<rel> -> <original>"). The test then runs the printed
commands in bash and requires the original tree exactly.
"""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.inventory import scan
from memtomem.uninstall.layout import build_layout
from memtomem.uninstall.plan import Move, build_plan
from tests.support.cli import flag_args, invoke, invoke_json
from tests.support.faults import Fault, ScriptedFs
from tests.support.names import JOURNAL, STAGING
from tests.support.snapshot import Node, diff, snapshot
from tests.support.world import World, full_world

ODD_ROOTS = ["we ird 'home'", "new\nline $HOME `x`"]


def planned_moves(world: World, keep_config: bool = False, keep_data: bool = False) -> list[Move]:
    fs = FsOps()
    inventory = scan(fs, build_layout(fs, world.env))
    return list(build_plan(inventory, keep_config=keep_config, keep_data=keep_data).moves)


def staged(move: Move) -> Path:
    """Where this in-process run stages `move` (staging dirs are named by pid)."""
    return move.anchor / f"{STAGING}{os.getpid()}" / move.rel


def forward(move: Move) -> Fault:
    return Fault(errno.EIO, op="replace", contains=f"{move.src} -> {move.anchor}/{STAGING}")


def backward(move: Move) -> Fault:
    return Fault(errno.EIO, op="replace", contains=f"{staged(move)} -> {move.src}")


def shown(path: Path) -> str:
    """A path as the JSON document prints it: control characters escaped (by hand here)."""
    return str(path).replace("\\", "\\\\").replace("\n", "\\n")


def contents(tree: dict[str, Node]) -> Counter[tuple[str, int, str]]:
    """Every file's (kind, mode, hash) and link target, ignoring where it lives."""
    return Counter(
        node for rel, node in tree.items() if node[0] != "dir" and os.path.basename(rel) != JOURNAL
    )


def relocated(
    before: dict[str, Node], root: Path, pairs: list[tuple[Path, Path]]
) -> dict[str, Node]:
    """`before` with each (now, belongs) item moved from `belongs` to `now`."""
    out = dict(before)
    for now, belongs in pairs:
        src, dst = os.path.relpath(belongs, root), os.path.relpath(now, root)
        for key in [k for k in out if k == src or k.startswith(src + "/")]:
            out[dst + key[len(src) :]] = out.pop(key)
    return out


def assert_nothing_deleted(
    root: Path, before: dict[str, Node], after: dict[str, Node], pairs: list[tuple[Path, Path]]
) -> None:
    """The tree is the original with the unrestored items in staging, plus only staging dirs
    (0700), their scaffolds and journals."""
    assert contents(after) == contents(before)
    expected = relocated(before, root, pairs)
    changed = [k for k in expected if after.get(k) != expected[k]]
    assert changed == [], "\n".join(diff(expected, after))
    for rel, node in after.items():
        if rel in expected:
            continue
        assert STAGING in rel, f"unexpected {rel} {node}"
        assert node[:2] == ("dir", 0o700) or os.path.basename(rel) == JOURNAL, (rel, node)


def run_in_bash(commands: list[str], cwd: Path) -> None:
    done = subprocess.run(
        ["bash", "-e", "-c", "\n".join(commands)], cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def printed_commands(output: str) -> list[str]:
    """The indented lines after "To put everything back, run:" in the human output."""
    lines = output.splitlines()
    start = lines.index("To put everything back, run:") + 1
    commands = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        commands.append(line[2:])
    return commands


def assert_incomplete(doc: dict[str, Any], code: int, pairs: list[tuple[Path, Path]]) -> None:
    assert code == 4, doc["message"]
    assert (doc["outcome"], doc["status"], doc["exit_code"]) == (
        "rollback-incomplete",
        "partial",
        4,
    )
    assert doc["unrestored"] == [{"now": shown(n), "belongs": shown(b)} for n, b in pairs]
    assert doc["restore_commands"], doc
    assert doc["message"].endswith(
        f"failed for {len(pairs)} item(s). Nothing was deleted: every byte is still on disk."
    )


@pytest.mark.parametrize("custom_db", [False, True], ids=["default-db", "custom-db"])
@pytest.mark.parametrize("source", ["json", "human"])
def test_printed_commands_restore_the_tree_exactly(
    tmp_path: Path, custom_db: bool, source: str
) -> None:
    world = full_world(tmp_path, custom_db=custom_db)
    moves = planned_moves(world)
    failing = next(i for i, m in enumerate(moves) if m.group.value == "memories")
    first = moves[0]
    before = world.tree()
    whole = snapshot(tmp_path)
    fs = ScriptedFs(forward(moves[failing]), backward(first))
    pairs = [(staged(first), first.src)]
    if source == "json":
        code, doc = invoke_json("-y", env=world.env, fs=fs)
        assert_incomplete(doc, code, pairs)
        commands = doc["restore_commands"]
    else:
        result = invoke("-y", env=world.env, fs=fs)
        assert result.exit_code == 4, result.output
        assert "Not restored (nothing was deleted; every byte is still on disk):" in result.stderr
        commands = printed_commands(result.stderr)
    assert [f.fired for f in fs.faults] == [1, 1]
    assert_nothing_deleted(tmp_path, whole, snapshot(tmp_path), pairs)
    home, now = shlex.quote(str(first.src)), shlex.quote(str(staged(first)))
    exists = shlex.quote(f"{first.src} already exists")
    assert commands[0] == (
        f"if [ -e {home} ] || [ -L {home} ]; then echo {exists} >&2; false; "
        f"else mv -- {now} {home}; fi"
    )
    run_in_bash(commands, tmp_path)
    after = world.tree()
    assert after == before, "\n".join(diff(before, after))


@pytest.mark.parametrize("odd", ODD_ROOTS, ids=["space-quote", "newline-dollar-backtick"])
def test_unrestored_items_across_three_anchors_with_odd_paths(tmp_path: Path, odd: str) -> None:
    # The custom DB dir, the state dir and the runtime dir each keep one item in staging.
    world = full_world(tmp_path / odd, custom_db=True)
    moves = planned_moves(world)
    by_src = {m.src: m for m in moves}
    stuck = [
        by_src[world.db],
        by_src[world.state / "memories"],
        next(
            m for m in moves if m.src.parent == world.runtime and m.src.name.startswith("server-")
        ),
    ]
    assert len({m.anchor for m in stuck}) == 3
    before = world.tree()
    whole = snapshot(tmp_path)
    fs = ScriptedFs(forward(moves[-1]), *(backward(m) for m in stuck))
    code, doc = invoke_json("-y", env=world.env, fs=fs)
    assert [f.fired for f in fs.faults] == [1, 1, 1, 1]
    pairs = [(staged(m), m.src) for m in stuck]  # reported in plan order
    assert_incomplete(doc, code, pairs)
    assert_nothing_deleted(tmp_path, whole, snapshot(tmp_path), pairs)
    run_in_bash(doc["restore_commands"], tmp_path)
    after = world.tree()
    assert after == before, "\n".join(diff(before, after))


@pytest.mark.parametrize("odd", ODD_ROOTS, ids=["space-quote", "newline-dollar-backtick"])
def test_human_and_json_print_the_same_commands(tmp_path: Path, odd: str) -> None:
    world = full_world(tmp_path / odd, custom_db=True)
    moves = planned_moves(world)
    faults = (forward(moves[-1]), backward(moves[0]), backward(moves[-2]))
    code, doc = invoke_json("-y", env=world.env, fs=ScriptedFs(*faults))
    assert code == 4
    run_in_bash(doc["restore_commands"], tmp_path)
    faults = (forward(moves[-1]), backward(moves[0]), backward(moves[-2]))
    result = invoke("-y", env=world.env, fs=ScriptedFs(*faults))
    assert result.exit_code == 4
    assert printed_commands(result.stderr) == doc["restore_commands"]
    # One line per unrestored item: a newline in a path never reaches the terminal raw.
    rows = result.stderr.split("Not restored")[1].split("To put everything back")[0]
    assert [line for line in rows.splitlines() if " belongs at " in line] == [
        f"  {shown(staged(m))}  belongs at  {shown(m.src)}" for m in (moves[0], moves[-2])
    ]


def test_the_incomplete_rollback_message_does_not_claim_everything_was_put_back(
    tmp_path: Path,
) -> None:
    world = full_world(tmp_path)
    moves = planned_moves(world)
    code, doc = invoke_json(
        "-y", env=world.env, fs=ScriptedFs(forward(moves[3]), backward(moves[1]))
    )
    assert code == 4
    assert "everything was put back" not in doc["message"]
    assert "nothing was changed" not in doc["message"]
    assert "Nothing was deleted: every byte is still on disk." in doc["message"]


@pytest.mark.parametrize(
    ("keep_config", "keep_data"), [(False, False), (False, True)], ids=["plain", "keep-data"]
)
def test_running_again_recovers_then_removes(
    tmp_path: Path, keep_config: bool, keep_data: bool
) -> None:
    world = full_world(tmp_path, custom_db=True)
    flags = flag_args(keep_config, keep_data)
    moves = planned_moves(world, keep_config, keep_data)
    stuck = [moves[0], moves[len(moves) // 2]]
    before = world.tree()
    fs = ScriptedFs(forward(moves[-1]), *(backward(m) for m in stuck))
    code, doc = invoke_json("-y", *flags, env=world.env, fs=fs)
    assert_incomplete(doc, code, [(staged(m), m.src) for m in stuck])

    # The fault is gone. When the new run creates its first staging dir, recovery has
    # already put the leftover back: the tree is the original then.
    at_stage: list[dict[str, Node]] = []

    def hook(_n: int, when: str, op: str, target: str) -> None:
        if when == "before" and op == "mkdir" and STAGING in target and not at_stage:
            at_stage.append(world.tree())

    code, doc = invoke_json("-y", *flags, env=world.env, fs=ScriptedFs(hook=hook))
    assert code == 0, doc["message"]
    assert at_stage and at_stage[0] == before, "\n".join(diff(before, at_stage[0]))
    assert doc["recovery"]["runs"] == [
        {
            "staging": str(world.state / f"{STAGING}{os.getpid()}"),
            "pid": os.getpid(),
            "action": "rolled-back",
            "items": len(moves),
        }
    ]
    expected = world.expected(before, keep_config, keep_data)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


def test_a_new_process_recovers_the_leftover_of_another(tmp_path: Path, mm_subprocess: Any) -> None:
    # Realistic pids: the leftover's staging is named by this process, the recovery is a child.
    world = full_world(tmp_path, custom_db=True)
    moves = planned_moves(world)
    before = world.tree()
    fs = ScriptedFs(forward(moves[-1]), backward(moves[0]), backward(moves[-2]))
    code, _doc = invoke_json("-y", env=world.env, fs=fs)
    assert code == 4
    done = mm_subprocess("uninstall", "-y", env=world.env)
    assert done.returncode == 0, done.stderr
    primary = world.state / f"{STAGING}{os.getpid()}"
    assert f"Recovered: put back {len(moves)} item(s) of an interrupted uninstall" in done.stdout
    assert "~/.memtomem/" + primary.name in done.stdout
    expected = world.expected(before, False, False)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))
