"""The confirmation prompt on a real pseudo-terminal: default No, "y" proceeds, Ctrl-C and
Ctrl-D typed there (the kernel turns them into SIGINT and end of input) change nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.snapshot import diff
from tests.support.terminal import Terminal
from tests.support.world import full_world

PROMPT = "Remove it? [y/N]: "
INTERRUPTED = "Interrupted; nothing was changed."
DECLINED = "Not confirmed. Nothing was changed."


@pytest.mark.parametrize(("answer", "code"), [("", 1), ("y", 0)], ids=["enter", "yes"])
def test_prompt_on_a_terminal(tmp_path: Path, answer: str, code: int) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    sizes = {rel: os.lstat(world.root / rel).st_size for rel, node in before.items()}
    with Terminal([], world.env, world.home) as terminal:
        terminal.expect(PROMPT)
        terminal.send(answer.encode() + b"\r")
        exit_code, text, _ = terminal.finish()
    assert exit_code == code, text
    after = world.tree()
    expected = before if code == 1 else world.expected(before, False, False)
    assert after == expected, "\n".join(diff(expected, after))
    report = text.index("memtomem state found:")
    total = text.index("  total to delete: 32 files, 6.1 KiB\n")
    prompt = text.index(PROMPT)
    assert report < total < prompt
    # What follows the prompt: the echoed answer, the outcome, then (once the state is gone)
    # what else to remove.
    tail = text[prompt + len(PROMPT) :]
    if code == 1:
        assert tail == f"\n{DECLINED}\n"
    else:
        gone = [rel for rel, node in before.items() if rel not in after and node[0] != "dir"]
        size = sum(sizes[rel] for rel in gone if before[rel][0] == "file")
        assert tail.startswith(
            f"y\nRemoved {len(gone)} files ({size / 1024:.1f} KiB).\n"
            "Editor configs name memtomem (not modified; remove these entries yourself):\n"
            "  ~/.claude.json: mcpServers.memtomem\n"
            "To remove the memtomem program too: "
        )


# (typed key, its echo, exit code, outcome, message): Ctrl-C before anything moved is 130,
# as any interrupt; the end of input is an answer that is not yes.
KEYS = [
    (b"\x03", "^C", 130, "interrupted", INTERRUPTED),
    (b"\x04", "", 1, "declined", DECLINED),
]
IDS = ["ctrl-c", "ctrl-d"]


@pytest.mark.parametrize(("key", "echo", "code", "outcome", "message"), KEYS, ids=IDS)
def test_control_keys_at_the_prompt(
    tmp_path: Path, key: bytes, echo: str, code: int, outcome: str, message: str
) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    with Terminal([], world.env, world.home) as terminal:
        terminal.expect(PROMPT)
        terminal.send(key)
        exit_code, text, _ = terminal.finish()
    assert exit_code == code, text
    assert text[text.index(PROMPT) + len(PROMPT) :] == f"{echo}\n{message}\n"
    assert world.tree() == before


@pytest.mark.parametrize(("key", "echo", "code", "outcome", "message"), KEYS, ids=IDS)
def test_control_keys_at_the_prompt_print_one_json_document(
    tmp_path: Path, key: bytes, echo: str, code: int, outcome: str, message: str
) -> None:
    """`mm uninstall --json > out.json` at a terminal: the report and the prompt are on the
    terminal, the document alone on stdout, whatever key ends the prompt."""
    world = full_world(tmp_path)
    before = world.tree()
    with Terminal(["--json"], world.env, world.home, pipe_stdout=True) as terminal:
        terminal.expect(PROMPT)
        terminal.send(key)
        exit_code, text, stdout = terminal.finish()
    assert exit_code == code, text
    doc = json.loads(stdout)
    assert stdout == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    fields = ("status", "outcome", "exit_code", "dry_run", "message", "total", "removed", "error")
    assert {k: doc[k] for k in fields} == {
        "status": "error",
        "outcome": outcome,
        "exit_code": code,
        "dry_run": False,
        "message": message,
        "total": {"files": 32, "bytes": 6211},
        "removed": {"files": 0, "bytes": 0},
        "error": None,
    }
    assert len(doc["groups"]) == 12
    assert text.index("  total to delete: 32 files, 6.1 KiB\n") < text.index(PROMPT)
    assert text.endswith(f"{PROMPT}{echo}\n")
    assert world.tree() == before


@pytest.mark.parametrize("columns", [80, 200])
def test_the_report_fits_the_terminal_it_is_shown_on(tmp_path: Path, columns: int) -> None:
    """The width comes from the terminal itself (no $COLUMNS): at 80 columns the runtime
    dir's long temporary path is shortened in the middle, at 200 it is shown whole."""
    world = full_world(tmp_path)
    before = world.tree()
    with Terminal([], world.env, world.home, columns=columns) as terminal:
        terminal.expect(PROMPT)
        terminal.send(b"n\r")
        exit_code, text, _ = terminal.finish()
    assert exit_code == 1, text
    table = text[: text.index("  total to delete:")].splitlines()
    runtime = next(line for line in table if line.startswith("  runtime "))
    if columns == 80:
        assert all(len(line) <= 80 for line in table)
        assert len(runtime) == 80
        assert runtime.endswith("-test/") and "\u2026" in runtime
        assert str(world.runtime) not in text
    else:
        assert runtime.endswith(f"  ~/.memtomem/, {world.runtime}/")
    assert world.tree() == before
