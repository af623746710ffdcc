"""The conftest guard: touching the real home's memtomem state or the real runtime dir fails.

Every attempt is checked to have been stopped before it happened: the target does not
exist afterwards unless it existed before.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.guard import RealStateTouched

REAL_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)
REAL_STATE = REAL_HOME / ".memtomem"
REAL_RUNTIME = Path(f"/tmp/memtomem-{os.getuid()}")


def _write(path: Path) -> Callable[[], object]:
    return lambda: open(path, "w")


ATTEMPTS: dict[str, tuple[Path, Callable[[], object]]] = {
    "mkdir-state-dir": (REAL_STATE, lambda: os.mkdir(REAL_STATE)),
    "create-config": (REAL_STATE / "config.json", _write(REAL_STATE / "config.json")),
    "touch-db": (REAL_STATE / "memtomem.db", lambda: (REAL_STATE / "memtomem.db").touch()),
    "mkdir-runtime-dir": (REAL_RUNTIME, lambda: os.mkdir(REAL_RUNTIME, 0o700)),
    "create-barrier": (
        REAL_RUNTIME / "lifecycle.lock",
        lambda: os.open(REAL_RUNTIME / "lifecycle.lock", os.O_CREAT | os.O_RDWR, 0o644),
    ),
    "list-runtime-dir": (REAL_RUNTIME, lambda: os.listdir(REAL_RUNTIME)),
    "relative-path": (
        REAL_STATE / "x",
        lambda: open(os.path.relpath(REAL_STATE / "x"), "w"),
    ),
}


@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_in_process_access_raises_before_anything_is_created(name: str) -> None:
    target, attempt = ATTEMPTS[name]
    existed = {p: os.path.lexists(p) for p in (target, REAL_STATE, REAL_RUNTIME)}
    with pytest.raises(RealStateTouched, match="a test touched real memtomem state"):
        attempt()
    assert {p: os.path.lexists(p) for p in existed} == existed


def test_a_subprocess_with_the_real_home_fails_without_creating_anything(
    tmp_path: Path,
) -> None:
    existed = {p: os.path.lexists(p) for p in (REAL_STATE, REAL_RUNTIME)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTOMEM")}
    env.update(HOME=str(REAL_HOME), PYTHONPATH=str(REPO))
    # Dry run only: if the guard ever failed, this must still not change a thing.
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.launcher", "uninstall", "--dry-run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "RealStateTouched: a test touched real memtomem state" in result.stderr
    assert str(REAL_STATE) in result.stderr
    assert {p: os.path.lexists(p) for p in existed} == existed
