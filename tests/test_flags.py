"""Every flag combination on a full layout, with the default and a custom DB path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import flag_args, invoke, invoke_json
from tests.support.snapshot import diff
from tests.support.world import FLAG_IDS, FLAGS, full_world


@pytest.mark.parametrize("custom_db", [False, True], ids=["default-db", "custom-db"])
@pytest.mark.parametrize(("keep_config", "keep_data"), FLAGS, ids=FLAG_IDS)
def test_removes_exactly_the_non_kept_groups(
    tmp_path: Path, keep_config: bool, keep_data: bool, custom_db: bool
) -> None:
    world = full_world(tmp_path, custom_db=custom_db)
    before = world.tree()
    result = invoke("-y", *flag_args(keep_config, keep_data), env=world.env)
    assert result.exit_code == 0, result.output
    after = world.tree()
    expected = world.expected(before, keep_config, keep_data)
    assert after == expected, "\n".join(diff(expected, after))
    assert world.state.exists() == (keep_config or keep_data)
    assert (world.home / ".claude.json").exists()


@pytest.mark.parametrize(("keep_config", "keep_data"), FLAGS, ids=FLAG_IDS)
def test_dry_run_changes_nothing_and_reports_the_plan(
    tmp_path: Path, keep_config: bool, keep_data: bool
) -> None:
    world = full_world(tmp_path, custom_db=True)
    before = world.tree()
    code, doc = invoke_json("--dry-run", *flag_args(keep_config, keep_data), env=world.env)
    assert code == 0
    assert world.tree() == before
    assert doc["outcome"] == "dry-run"
    kept = {g["group"] for g in doc["groups"] if g["kept"]}
    expected_kept = ({"config"} if keep_config else set()) | (
        {"database", "memories", "agents", "skills", "commands"} if keep_data else set()
    )
    assert kept == expected_kept
    assert doc["integrations"] == [
        {"path": str(world.home / ".claude.json"), "entry": "mcpServers.memtomem"}
    ]


@pytest.mark.parametrize(
    ("toml", "reported"),
    [
        ('[mcp_servers.memtomem]\ncommand = "mm"\n', True),
        ('[mcp_servers.other]\ncommand = "x"\n', False),
        ("[mcp_servers.memtomem\n", False),  # not TOML: ignored, never a failure
    ],
    ids=["names-memtomem", "names-another", "unparsable"],
)
def test_a_codex_config_naming_memtomem_is_reported_and_left_alone(
    tmp_path: Path, toml: str, reported: bool
) -> None:
    world = full_world(tmp_path)
    codex = world.home / ".codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text(toml)
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0
    assert codex.read_text() == toml
    expected = [{"path": str(world.home / ".claude.json"), "entry": "mcpServers.memtomem"}]
    if reported:
        expected.append({"path": str(codex), "entry": "mcp_servers.memtomem"})
    assert doc["integrations"] == expected


def test_dry_run_creates_no_runtime_dir(tmp_path: Path) -> None:
    world = full_world(tmp_path, runtime_files=False)
    world.runtime.rmdir()
    before = world.tree()
    result = invoke("--dry-run", env=world.env)
    assert result.exit_code == 0, result.output
    assert world.tree() == before
    assert not world.runtime.exists()


def test_a_second_run_finds_nothing(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    assert invoke("-y", env=world.env).exit_code == 0
    before = world.tree()
    result = invoke("-y", env=world.env)
    assert result.exit_code == 0
    assert result.output.startswith("No memtomem state found; nothing to remove.\n")
    assert world.tree() == before


def test_stranger_entry_is_reported_and_keeps_the_state_dir(tmp_path: Path) -> None:
    world = full_world(tmp_path, stranger=True)
    before = world.tree()
    code, doc = invoke_json("-y", env=world.env)
    assert code == 0
    after = world.tree()
    expected = world.expected(before, False, False)
    expected["home/.memtomem"] = before["home/.memtomem"]
    expected["home/.memtomem/my-own-notes.txt"] = before["home/.memtomem/my-own-notes.txt"]
    assert after == expected, "\n".join(diff(expected, after))
    assert doc["not_ours"] == [{"path": str(world.state / "my-own-notes.txt"), "kind": "file"}]


def test_without_a_terminal_and_without_yes_it_refuses(tmp_path: Path) -> None:
    world = full_world(tmp_path)
    before = world.tree()
    result = invoke(env=world.env)
    assert result.exit_code == 1
    assert "run again with -y" in result.output
    assert world.tree() == before
