"""The real thing: state written by the released memtomem 0.6.12, uninstalled by us.

The remaining tree for each flag combination is written out by hand from the archive's
listing (see ../shared/fixtures/README.md), not derived from the code under test.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import flag_args, invoke, invoke_json
from tests.support.snapshot import diff, snapshot
from tests.support.world import FLAG_IDS, FLAGS, digest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "memtomem-0.6.12-state.tar.gz"
OLD_PID_FILE = "server-9fa97ba7ed3fddbf.pid"

pytestmark = pytest.mark.skipif(not FIXTURE.is_file(), reason=f"{FIXTURE} is not on this machine")

# What stays of the runtime dir whatever the flags: the two shared locks and the emptied
# registry and presence folders (other servers create entries in them).
ALWAYS = {
    ".",
    "home",
    "tmp",
    "tmp/memtomem-0",
    "tmp/memtomem-0/instances",
    "tmp/memtomem-0/instances.registry.lock",
    "tmp/memtomem-0/lifecycle.lock",
    "tmp/memtomem-0/presence",
}
REMAINING = {
    "plain": ALWAYS,
    "keep-config": ALWAYS
    | {
        "home/.memtomem",
        "home/.memtomem/config.json",
        "home/.memtomem/config.json.bak-1795673805",
        "home/.memtomem/config.d",
        "home/.memtomem/config.d/10-admin.json",
    },
    "keep-data": ALWAYS
    | {
        "home/.memtomem",
        "home/.memtomem/memtomem.db",
        "home/.memtomem/memtomem.db-wal",
        "home/.memtomem/memtomem.db-shm",
        "home/.memtomem/memories",
        "home/.memtomem/memories/.2026-11-26.md.lock",
        "home/.memtomem/memories/2026-11-26.md",
        "home/.memtomem/memories/notes",
        "home/.memtomem/memories/notes/.tools.md.lock",
        "home/.memtomem/memories/notes/tools.md",
        "home/.memtomem/memories/ops",
        "home/.memtomem/memories/ops/runbooks",
        "home/.memtomem/memories/ops/runbooks/.rollback.md.lock",
        "home/.memtomem/memories/ops/runbooks/rollback.md",
    },
    "keep-both": ALWAYS
    | {
        "home/.memtomem",
        "home/.memtomem/config.json",
        "home/.memtomem/config.json.bak-1795673805",
        "home/.memtomem/config.d",
        "home/.memtomem/config.d/10-admin.json",
        "home/.memtomem/memtomem.db",
        "home/.memtomem/memtomem.db-wal",
        "home/.memtomem/memtomem.db-shm",
        "home/.memtomem/memories",
        "home/.memtomem/memories/.2026-11-26.md.lock",
        "home/.memtomem/memories/2026-11-26.md",
        "home/.memtomem/memories/notes",
        "home/.memtomem/memories/notes/.tools.md.lock",
        "home/.memtomem/memories/notes/tools.md",
        "home/.memtomem/memories/ops",
        "home/.memtomem/memories/ops/runbooks",
        "home/.memtomem/memories/ops/runbooks/.rollback.md.lock",
        "home/.memtomem/memories/ops/runbooks/rollback.md",
    },
}
# Files and bytes deleted per combination, summed by hand from the archive's listing.
REMOVED = {
    "plain": {"files": 22, "bytes": 532020},
    "keep-config": {"files": 19, "bytes": 531227},
    "keep-data": {"files": 13, "bytes": 2682},
    "keep-both": {"files": 10, "bytes": 1889},
}


class Fixture:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.state = self.home / ".memtomem"
        self.runtime = root / "tmp" / "memtomem-0"
        self.db = self.state / "memtomem.db"
        self.pid_file = self.runtime / f"server-{digest(self.db)}.pid"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTOMEM")}
        env.update(HOME=str(self.home), _MEMTOMEM_TEST_RUNTIME_DIR=str(self.runtime))
        return env


def extract(tmp_path: Path) -> Fixture:
    root = tmp_path / "fx"
    root.mkdir()
    with tarfile.open(FIXTURE) as archive:
        # "tar", not "data": the data filter drops directory modes, and the runtime dir
        # is only trusted at 0700.
        archive.extractall(root, filter="tar")
    fx = Fixture(root)
    # The pid file is named for the DB path it was written for; renamed, it is this store's.
    os.rename(fx.runtime / OLD_PID_FILE, fx.pid_file)
    return fx


@pytest.mark.parametrize(("keep_config", "keep_data"), FLAGS, ids=FLAG_IDS)
def test_uninstalls_real_0_6_12_state(
    tmp_path: Path, keep_config: bool, keep_data: bool, request: pytest.FixtureRequest
) -> None:
    combo = request.node.callspec.id
    fx = extract(tmp_path)
    before = snapshot(fx.root)
    assert "tmp/memtomem-0/presence/19240-19239-9fa97ba7ed3fddbf-4f4c68fe-e7348a8c.lock" in before
    code, doc = invoke_json("-y", *flag_args(keep_config, keep_data), env=fx.env)
    assert code == 0, doc
    assert doc["outcome"] == "removed"
    assert doc["processes"] == []
    assert doc["removed"] == REMOVED[combo]
    after = snapshot(fx.root)
    expected = {path: before[path] for path in REMAINING[combo]}
    assert after == expected, "\n".join(diff(expected, after))


def _group(name: str, path: Path, entries: int, files: int, size: int) -> dict[str, Any]:
    return {
        "group": name,
        "path": str(path),
        "entries": entries,
        "files": files,
        "bytes": size,
        "kept": False,
        "kept_by": None,
    }


def expected_groups(fx: Fixture, keep_config: bool, keep_data: bool) -> list[dict[str, Any]]:
    groups = [
        _group("database", fx.db, 3, 3, 434176 + 32768 + 61832),
        _group("config", fx.state / "config.json", 3, 3, 34 + 477 + 282),
        _group("memories", fx.state / "memories", 1, 6, 319 + 88 + 155),
        _group("uploads", fx.state / "uploads", 1, 4, 41 + 34),
        _group("logs", fx.state / "logs", 1, 1, 1737),
        _group("runtime", fx.state / ".config.json.lock", 5, 5, 37 + 40),
    ]
    kept = {"config": "--keep-config"} if keep_config else {}
    if keep_data:
        kept |= {"database": "--keep-data", "memories": "--keep-data"}
    for group in groups:
        if group["group"] in kept:
            group.update(kept=True, kept_by=kept[group["group"]])
    return groups


@pytest.mark.parametrize(("keep_config", "keep_data"), FLAGS, ids=FLAG_IDS)
def test_dry_run_on_real_state_changes_no_byte_and_reports_every_group(
    tmp_path: Path, keep_config: bool, keep_data: bool, request: pytest.FixtureRequest
) -> None:
    combo = request.node.callspec.id
    fx = extract(tmp_path)
    wal, shm = Path(f"{fx.db}-wal"), Path(f"{fx.db}-shm")
    wal_bytes, shm_bytes = wal.read_bytes(), shm.read_bytes()
    before = snapshot(fx.root)
    code, doc = invoke_json("--dry-run", *flag_args(keep_config, keep_data), env=fx.env)
    assert code == 0, doc
    assert snapshot(fx.root) == before
    # 0.6.12's writer probe would have checkpointed the WAL and deleted both.
    assert wal.read_bytes() == wal_bytes
    assert shm.read_bytes() == shm_bytes
    assert doc["outcome"] == "dry-run"
    assert doc["groups"] == expected_groups(fx, keep_config, keep_data)
    assert doc["total"] == REMOVED[combo]
    assert doc["database"] == {"path": str(fx.db), "source": "~/.memtomem/config.json"}
    assert doc["processes"] == []
    assert doc["not_ours"] == []
    assert doc["integrations"] == []


def test_human_dry_run_on_real_state_shows_each_row(tmp_path: Path) -> None:
    fx = extract(tmp_path)
    before = snapshot(fx.root)
    result = invoke("--dry-run", env=fx.env)
    assert result.exit_code == 0, result.output
    assert snapshot(fx.root) == before
    rows = result.output.splitlines()[1:8]
    assert rows == [
        "  database        ~/.memtomem/memtomem.db             3 files   516.4 KiB",
        "  config          ~/.memtomem/config.json             3 files       793 B",
        "  memories        ~/.memtomem/memories                6 files       562 B",
        "  uploads         ~/.memtomem/uploads                 4 files        75 B",
        "  logs            ~/.memtomem/logs                     1 file     1.7 KiB",
        "  runtime         ~/.memtomem/.config.json.lock       5 files        77 B",
        "  total to delete: 22 files, 519.6 KiB",
    ]
