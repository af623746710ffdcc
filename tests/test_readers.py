"""Every reader of what is on disk is total: any bytes, any JSON type, any depth, any size,
any number in; a value or "unreadable" out, never an exception.

Property tests (hypothesis) feed each reader arbitrary bytes and arbitrary JSON; then the
end-to-end cases that used to crash the command (a traceback, exit 1, on every run) are run
through the CLI with --dry-run and -y, comparing the whole tree."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memtomem.uninstall import config, integrations, jsonread, probes, system
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.journal import MAX_BYTES, Journal, State
from tests.support.cli import invoke, invoke_json
from tests.support.faults import Fault, ScriptedFs
from tests.support.names import STAGING
from tests.support.snapshot import diff
from tests.support.world import DEAD_PID, World, full_world, write

SETTINGS: dict[str, Any] = {
    "max_examples": 300,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
}

# JSON values of every type, numbers past any int or float a reader might assume, strings
# with NUL, escapes and lone surrogates (what a JSON "\ud800" decodes to).
strings = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12) | st.sampled_from(
    ["\x00", "\ud800", "\udcff", "../..", "/etc/passwd", "~", ""]
)
numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True)
scalars = st.none() | st.booleans() | numbers | strings
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=20,
)


def encoded(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def deep(n: int, kind: str = "list") -> bytes:
    return (b"[" * n) if kind == "list" else (b'{"storage":' * n)


@settings(**SETTINGS)
@given(st.binary(max_size=200) | json_values.map(encoded))
def test_the_json_reader_answers_any_bytes(raw: bytes) -> None:
    try:
        jsonread.loads(raw, limit=1 << 20)
    except jsonread.Unreadable as exc:
        assert exc.reason in ("not UTF-8", "not valid JSON", "nested too deeply")


@pytest.mark.parametrize("raw", [deep(100_000), deep(100_000, "object"), b"1" * 5000])
def test_the_json_reader_answers_deep_and_huge_input(raw: bytes) -> None:
    with pytest.raises(jsonread.Unreadable):
        jsonread.loads(raw, limit=1 << 20)
    with pytest.raises(jsonread.Unreadable, match="larger than 1 MiB"):
        jsonread.loads(b" " * ((1 << 20) + 1), limit=1 << 20)


def journal_like() -> st.SearchStrategy[Any]:
    """Documents close to a real journal: each field right, wrong, or missing."""
    field = {
        "format": st.just("memtomem-uninstall-journal") | scalars,
        "version": st.just(2) | st.just(True) | st.just(2.0) | scalars,
        "run": st.just("0123456789abcdef") | strings,
        "pid": st.integers(min_value=-5, max_value=2**40) | scalars,
        "state": st.sampled_from(["staging", "committed"]) | scalars,
        "primary": st.booleans() | scalars,
        "remove_state_dir": st.booleans() | scalars,
        "items": st.integers(min_value=-5, max_value=2**40) | scalars,
    }
    return st.fixed_dictionaries({}, optional=field)


@settings(**SETTINGS)
@given(st.binary(max_size=300) | json_values.map(encoded) | journal_like().map(encoded))
def test_a_journal_is_read_or_refused_never_raised(raw: bytes) -> None:
    journal = Journal.from_bytes(raw)
    if journal is not None:
        assert len(journal.run) == 16 and 0 < journal.pid < 2**31 and journal.items >= 0
        assert isinstance(journal.state, State) and isinstance(journal.primary, bool)


def test_a_journal_too_large_is_no_journal_and_a_real_one_always_fits() -> None:
    real = Journal.new(items=2**31 - 1, remove_state_dir=True).committed().to_bytes()
    assert Journal.from_bytes(real) is not None
    assert len(real) < MAX_BYTES // 8  # paths are never in it, however many items
    assert Journal.from_bytes(real[:-1] + b" " * MAX_BYTES + b"}") is None


@settings(**SETTINGS)
@given(
    main=st.binary(max_size=200) | json_values.map(encoded),
    fragment=st.binary(max_size=200)
    | json_values.map(lambda v: encoded({"storage": {"sqlite_path": v}})),
)
def test_the_config_chain_always_yields_an_absolute_path(main: bytes, fragment: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        state = root / ".memtomem"
        write(state / "config.json", main)
        write(state / "config.d" / "10.json", fragment)
        path, source, warnings = config.resolve_db_path(
            FsOps(), state, state / "memtomem.db", root, root, {}
        )
        assert path.is_absolute() and os.fsencode(path)
        assert source in ("default", "~/.memtomem/config.json", "~/.memtomem/config.d/10.json")
        assert all("\n" not in w for w in warnings)


@settings(**SETTINGS)
@given(st.binary(max_size=40))
def test_a_pid_file_yields_a_possible_pid_or_none(body: bytes) -> None:
    pid = probes._pid_in(Path("/run/server.pid"), body)
    assert pid is None or 0 < pid <= system.MAX_PID
    assert system.process_alive(pid or 2**63) in (True, False)


@settings(**{**SETTINGS, "max_examples": 100})
@given(json_doc=st.binary(max_size=200) | json_values.map(encoded), toml=st.binary(max_size=200))
def test_editor_configs_of_any_bytes_are_reported_or_ignored(json_doc: bytes, toml: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        write(home / ".claude.json", json_doc)
        write(home / ".codex" / "config.toml", toml)
        found = integrations.find(FsOps(), home, home, {})
        assert all(i.path in (home / ".claude.json", home / ".codex/config.toml") for i in found)


# --- end to end: what used to crash, through the CLI -------------------------------------


def removed_but(world: World, before: dict[str, Any], keep: Path) -> dict[str, Any]:
    """The fully removed tree, except `keep` (and everything below it) and so the state dir."""
    rel = os.path.relpath(keep, world.root)
    expected = world.expected(before, False, False)
    expected.update({k: v for k, v in before.items() if k == rel or k.startswith(rel + "/")})
    state = os.path.relpath(world.state, world.root)
    if keep.is_relative_to(world.state):
        expected[state] = before[state]
    return expected


JOURNALS = {
    "a JSON list": b"[1, 2, 3]",
    "a JSON string": b'"committed"',
    "nested 100k deep": deep(100_000),
    "a NUL in a field": encoded({"format": "memtomem-uninstall-journal", "run": "\x00"}),
    "a lone surrogate": b'{"format": "memtomem-uninstall-journal", "run": "\\ud800"}',
    "larger than its limit": b'{"x": "' + b"a" * (MAX_BYTES * 4) + b'"}',
    "torn": b'{"format": "memtomem-uninstall-jou',
    "not UTF-8": b'{"format": "\xff\xfe"}',
}


@pytest.mark.parametrize("case", list(JOURNALS), ids=list(JOURNALS))
@pytest.mark.parametrize("args", [["--dry-run"], ["-y"]], ids=["dry-run", "yes"])
def test_a_malformed_journal_is_an_orphan_never_a_crash(
    tmp_path: Path, case: str, args: list[str]
) -> None:
    world = full_world(tmp_path)
    staging = world.state / f"{STAGING}{DEAD_PID}"
    write(staging / ".uninstall-journal.json", JOURNALS[case], 0o600)
    write(staging / "memories" / "kept.md", "whose?\n")
    os.chmod(staging, 0o700)
    before = world.tree()
    code, doc = invoke_json(*args, env=world.env)
    assert code == 0, doc["message"]
    assert [(o["path"], o["reason"]) for o in doc["recovery"]["orphans"]] == [
        (str(staging), "no-record")
    ]
    expected = before if args == ["--dry-run"] else removed_but(world, before, staging)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


CONFIGS = {
    "nested 100k deep": deep(100_000, "object"),
    "a JSON list": b"[]",
    "a NUL in the path": encoded({"storage": {"sqlite_path": "/tmp/x\x00y"}}),
    "a lone surrogate in the path": b'{"storage": {"sqlite_path": "/tmp/\\ud800.db"}}',
    "a number too long to convert": b'{"storage": {"sqlite_path": ' + b"9" * 5000 + b"}}",
}


@pytest.mark.parametrize("case", list(CONFIGS), ids=list(CONFIGS))
@pytest.mark.parametrize("args", [["--dry-run"], ["-y"]], ids=["dry-run", "yes"])
def test_a_malformed_config_falls_back_to_the_default_with_one_warning(
    tmp_path: Path, case: str, args: list[str]
) -> None:
    world = full_world(tmp_path)
    write(world.state / "config.json", CONFIGS[case], 0o600)
    before = world.tree()
    code, doc = invoke_json(*args, env=world.env)
    assert code == 0, doc["message"]
    assert doc["database"] == {"path": str(world.db), "source": "default"}
    assert len(doc["warnings"]) == 1 and "config.json" in doc["warnings"][0]
    assert "\n" not in doc["warnings"][0]
    expected = before if args == ["--dry-run"] else world.expected(before, False, False)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


def test_a_valid_config_larger_than_a_mebibyte_is_read(tmp_path: Path) -> None:
    world = full_world(tmp_path, custom_db=True)
    doc = json.loads((world.state / "config.json").read_bytes())
    doc["padding"] = "x" * (3 << 20)
    write(world.state / "config.json", json.dumps(doc), 0o600)
    before = world.tree()
    code, out = invoke_json("-y", env=world.env)
    assert (code, out["warnings"]) == (0, [])
    assert out["database"]["path"] == str(world.db)
    expected = world.expected(before, False, False)  # the custom database is gone too
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


@pytest.mark.parametrize("body", [f"{2**31}\n", f"{2**64}\n", "-1\n", "1_000\n", "٣\n"])
def test_a_pid_file_with_an_impossible_number_is_stale(tmp_path: Path, body: str) -> None:
    world = full_world(tmp_path)
    write(world.state / ".server.pid", body)
    before = world.tree()
    for args in (["--dry-run"], ["-y"]):
        code, doc = invoke_json(*args, env=world.env)
        assert (code, doc["processes"]) == (0, []), doc
    expected = world.expected(before, False, False)
    assert world.tree() == expected, "\n".join(diff(expected, world.tree()))


def test_a_deep_tree_with_a_file_that_resists_is_a_leftover_not_a_crash(tmp_path: Path) -> None:
    """~1,200 levels (past PATH_MAX) and one file whose delete fails: nothing recurses."""
    world = full_world(tmp_path)
    fd = os.open(world.state / "memories", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1200):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("stuck.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    fault = Fault(13, op="unlink", contains="stuck.md", every_from=True)
    result = invoke("-y", env=world.env, fs=ScriptedFs(fault))
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output and "stuck.md: Permission denied" in result.stderr
    again = invoke("-y", env=world.env)
    assert again.exit_code == 0, again.output
    assert not world.state.exists()
