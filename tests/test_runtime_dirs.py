"""Which runtime dirs a run looks in, from the environment: memtomem's rules, and an
XDG_RUNTIME_DIR or TMPDIR that is not what it should be (a link, another owner, a loose
mode, a file, nothing, a name too long, bytes that are not UTF-8). Computing the candidates
reads the environment and stats two dirs; it changes nothing, inside or outside the sandbox.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.runtime import MEMTOMEM_TEST_RUNTIME_DIR, candidates
from tests.support.snapshot import snapshot

UID = os.geteuid()
NOBODY = 65534


def private(path: Path) -> Path:
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    return path


def loose(path: Path) -> Path:
    path.mkdir()
    os.chmod(path, 0o755)
    return path


def linked(path: Path) -> Path:
    os.symlink(private(path.parent / "real-xdg"), path)
    return path


def foreign(path: Path) -> Path:
    if UID != 0:
        pytest.skip("giving a dir to another uid needs root")
    os.chown(private(path), NOBODY, NOBODY)
    return path


def a_file(path: Path) -> Path:
    path.write_bytes(b"not a dir")
    return path


def missing(path: Path) -> Path:
    return path


def undecodable(path: Path) -> Path:
    return private(Path(os.fsdecode(os.fsencode(path.parent) + b"/xdg-\xff")))


def too_long(path: Path) -> Path:
    return path / ("x" * 300) / ("y" * 5000)


XDG_SETUPS: dict[str, tuple[Callable[[Path], Path], bool]] = {
    "private": (private, True),
    "undecodable-private": (undecodable, True),
    "mode-0755": (loose, False),
    "symlink-to-private": (linked, False),
    "other-owner": (foreign, False),
    "a-file": (a_file, False),
    "missing": (missing, False),
    "name-too-long": (too_long, False),
}


def fixed(tmpdir: str = "/tmp") -> list[Path]:
    return [Path(f"/tmp/memtomem-{UID}"), Path(tmpdir) / f"memtomem-{UID}"]


@pytest.mark.parametrize("setup", list(XDG_SETUPS), ids=list(XDG_SETUPS))
def test_xdg_runtime_dir_counts_only_when_private_and_ours(tmp_path: Path, setup: str) -> None:
    make, counts = XDG_SETUPS[setup]
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    xdg = make(sandbox / "xdg")
    outside = snapshot(tmp_path)
    env = {"XDG_RUNTIME_DIR": str(xdg), "TMPDIR": str(tmp_path / "no-such-dir")}

    found = candidates(FsOps(), env)

    expected = [fixed()[0], *([xdg / "memtomem"] if counts else [])]
    assert found == (*expected, Path(f"/run/user/{UID}/memtomem"))
    assert snapshot(tmp_path) == outside


@pytest.mark.parametrize("kind", ["dir", "file", "empty"])
def test_tmpdir_is_used_only_when_it_is_a_directory(tmp_path: Path, kind: str) -> None:
    tmpdir = tmp_path / "tmpdir"
    if kind == "dir":
        tmpdir.mkdir()
    elif kind == "file":
        tmpdir.write_bytes(b"")
    value = "" if kind == "empty" else str(tmpdir)
    before = snapshot(tmp_path)

    found = candidates(FsOps(), {"TMPDIR": value})

    middle = [tmpdir / f"memtomem-{UID}"] if kind == "dir" else []
    assert found == (fixed()[0], *middle, Path(f"/run/user/{UID}/memtomem"))
    assert snapshot(tmp_path) == before


def test_the_test_override_needs_pytest_current_test(tmp_path: Path) -> None:
    """memtomem's own rule: the variable alone never redirects a user's run."""
    override = str(tmp_path / "elsewhere")
    alone = candidates(FsOps(), {MEMTOMEM_TEST_RUNTIME_DIR: override})
    both = candidates(FsOps(), {MEMTOMEM_TEST_RUNTIME_DIR: override, "PYTEST_CURRENT_TEST": "x"})
    assert Path(override) not in alone
    assert alone[0] == Path(f"/tmp/memtomem-{UID}")
    assert both == (Path(override),)
