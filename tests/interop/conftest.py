"""Fixtures for the real-peer tests: the 0.6.12 venv (built once), a peer, our CLI beside it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.peer import (
    PEER_VERSION,
    Peer,
    PeerInstallError,
    PeerUnavailable,
    ensure_peer_venv,
)
from tests.support import REPO

# .cache is git-ignored; the venv survives between runs and is reused when complete.
CACHE_DIR = REPO / ".cache"

# What pip prints when PyPI cannot be reached (no route, no DNS, a proxy refusing).
_OFFLINE_SIGNS = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Max retries exceeded",
    "ProxyError",
    "No matching distribution found",
)

Ours = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def peer_mm() -> Path:
    """The peer's `mm`. Session-scoped; xdist workers share one build through its flock."""
    try:
        return ensure_peer_venv(CACHE_DIR)
    except PeerUnavailable as exc:
        pytest.skip(str(exc))
    except PeerInstallError as exc:
        lines = [line for line in str(exc).splitlines() if any(s in line for s in _OFFLINE_SIGNS)]
        if not lines:
            raise
        reason = lines[-1].strip()
        pytest.skip(f"memtomem {PEER_VERSION} could not be installed from PyPI: {reason}")


@pytest.fixture
def peer(tmp_path: Path, peer_mm: Path) -> Iterator[Peer]:
    """A fresh peer under tmp_path; whatever it still runs is stopped afterwards."""
    peer = Peer.create(tmp_path / "peer", peer_mm)
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def ours(peer: Peer, mm_subprocess: Ours) -> Ours:
    """Our `mm uninstall` in a child process, seeing the peer's HOME and runtime dir."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return mm_subprocess("uninstall", *args, env=peer.env())

    return run
