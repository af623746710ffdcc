"""Every test runs with a temporary HOME and runtime dir; touching the real ones fails."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import REPO, guard
from tests.support.children import Children

guard.install()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--exhaustive",
        action="store_true",
        help="run the long fault matrices (every N, every error, every layout)",
    )
    parser.addoption(
        "--interop",
        action="store_true",
        help="run the tests against the real memtomem 0.6.12 (installs it)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "exhaustive" in item.keywords and not config.getoption("--exhaustive"):
            item.add_marker(pytest.mark.skip(reason="long matrix: run with --exhaustive"))
        if "interop" in item.keywords and not config.getoption("--interop"):
            item.add_marker(pytest.mark.skip(reason="real-peer test: run with --interop"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The counts the power-cut sweeps publish (from every worker), after the run."""
    texts = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "power cut"
    ]
    if texts:
        terminalreporter.section("power cut")
        for text in texts:
            terminalreporter.write_line(str(text))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("MEMTOMEM"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("_MEMTOMEM_TEST_RUNTIME_DIR", str(tmp_path / "run" / "memtomem-test"))
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def children() -> Iterator[Children]:
    """Real child processes holding real locks; all killed when the test ends."""
    with Children() as kids:
        yield kids


MmRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def mm_subprocess() -> MmRunner:
    """Run the real CLI in a child process through the test launcher."""

    def run(
        *args: str, env: dict[str, str], timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        full = {**env, "PYTHONPATH": str(REPO)}
        return subprocess.run(
            [sys.executable, "-m", "tests.support.launcher", *args],
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            cwd=env.get("HOME", str(REPO)) if Path(env.get("HOME", "")).is_dir() else str(REPO),
        )

    return run
