"""The "remove the program too" hint for every way memtomem is installed, for real.

Each test installs this checkout's wheel the way users do (pip into a venv, uv into a venv,
pipx with either backend, uv tool, uvx, `pip install --user`, an editable install, `pip
install --target`), runs that install's own `mm uninstall --dry-run --json`, checks the
exact `remove_program`, runs the printed command exactly as printed through bash, and checks
that memtomem is gone from that environment (not importable, no dist-info, no `mm`). They
need PyPI (click, the build backend), hence the interop mark. A system Python's package is
only table-tested (test_install_hint.py): a test may not install into the system's Python.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.installs import Installs, build_wheel

pytestmark = pytest.mark.interop


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip's and uv's caches, shared by a session's installs: click is fetched once."""
    return tmp_path_factory.mktemp("caches")


@pytest.fixture
def installs(tmp_path: Path, wheel: Path, caches: Path) -> Iterator[Installs]:
    yield Installs(tmp_path / "install root", wheel, caches)


def run_mm(mm: Path | list[str], env: dict[str, str]) -> str:
    """That install's own `mm uninstall --dry-run --json`; returns `remove_program`."""
    argv = [str(mm)] if isinstance(mm, Path) else mm
    done = subprocess.run(
        [*argv, "uninstall", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["outcome"] in ("nothing-to-remove", "dry-run"), doc
    hint = doc["remove_program"]
    assert isinstance(hint, str)
    return hint


def run_printed(command: str, env: dict[str, str]) -> None:
    """The printed command, as printed, in bash; `y` answers pip's question."""
    done = subprocess.run(
        ["bash", "-c", command], env=env, input="y\n", capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


def assert_gone(python: Path, env: dict[str, str]) -> None:
    """memtomem is neither importable nor known to importlib.metadata in that environment."""
    probe = (
        "import importlib.metadata as m, importlib.util as u, sys\n"
        "try:\n    m.distribution('memtomem')\nexcept m.PackageNotFoundError:\n    pass\n"
        "else:\n    sys.exit('dist-info still there')\n"
        "sys.exit('importable' if u.find_spec('memtomem') else 0)\n"
    )
    done = subprocess.run([str(python), "-c", probe], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def q(path: Path) -> str:
    return shlex.quote(str(path))


def test_pip_venv(installs: Installs) -> None:
    venv, env = installs.pip_venv()
    command = f"{q(venv / 'bin/python')} -m pip uninstall memtomem"
    assert (
        run_mm(venv / "bin/mm", env) == f"{command}  (or remove the virtual environment {q(venv)})"
    )
    run_printed(command, env)
    assert_gone(venv / "bin/python", env)
    assert not (venv / "bin/mm").exists()


def test_uv_venv(installs: Installs) -> None:
    venv, env = installs.uv_venv()
    command = f"uv pip uninstall --python {q(venv)} memtomem"
    assert (
        run_mm(venv / "bin/mm", env) == f"{command}  (or remove the virtual environment {q(venv)})"
    )
    run_printed(command, env)
    assert_gone(venv / "bin/python", env)
    assert not (venv / "bin/mm").exists()


# pipx's own pip backend is slower (a shared pip venv): one layout is enough for it.
@pytest.mark.parametrize(
    ("backend", "where"),
    [("uv", "default"), ("uv", "home-set"), ("uv", "home-unset"), ("pip", "home-set")],
)
def test_pipx(installs: Installs, backend: str, where: str) -> None:
    """`home-unset`: installed with PIPX_HOME and PIPX_BIN_DIR set, run without them."""
    pipx_home = (
        installs.home / ".local/share/pipx" if where == "default" else installs.root / "pipx home"
    )
    install_env = dict(installs.env)
    if where != "default":
        install_env.update(PIPX_HOME=str(pipx_home), PIPX_BIN_DIR=str(installs.root / "pipx bin"))
    bin_dir = installs.home / ".local/bin" if where == "default" else installs.root / "pipx bin"
    installs.run(["pipx", "install", "--backend", backend, str(installs.wheel)], install_env)
    venv = pipx_home / "venvs/memtomem"
    assert (venv / "pipx_metadata.json").is_file()
    env = installs.env if where == "home-unset" else install_env
    command = "pipx uninstall memtomem"
    if where == "home-unset":
        command = f"PIPX_HOME={q(pipx_home)} PIPX_BIN_DIR={q(bin_dir)} {command}"
    assert run_mm(bin_dir / "mm", env) == command
    run_printed(command, env)
    assert not venv.exists()
    assert not os.path.lexists(bin_dir / "mm")


@pytest.mark.parametrize("where", ["default", "dir-set", "dir-unset"])
def test_uv_tool(installs: Installs, where: str) -> None:
    tool_dir = (
        installs.home / ".local/share/uv/tools"
        if where == "default"
        else installs.root / "uv tools"
    )
    bin_dir = installs.home / ".local/bin" if where == "default" else installs.root / "uv bin"
    install_env = dict(installs.env)
    if where != "default":
        install_env.update(UV_TOOL_DIR=str(tool_dir), UV_TOOL_BIN_DIR=str(bin_dir))
    installs.run(["uv", "tool", "install", "-q", str(installs.wheel)], install_env)
    assert (tool_dir / "memtomem/uv-receipt.toml").is_file()
    env = installs.env if where == "dir-unset" else install_env
    command = "uv tool uninstall memtomem"
    if where == "dir-unset":
        command = f"UV_TOOL_DIR={q(tool_dir)} {command}"
    assert run_mm(bin_dir / "mm", env) == command
    run_printed(command, env)
    assert not (tool_dir / "memtomem").exists()
    assert not os.path.lexists(bin_dir / "mm")  # the receipt names the link it made


def test_uvx(installs: Installs) -> None:
    """uvx installs nothing: the hint says so, and the environment it ran in is uv's cache."""
    env = {**installs.env, "UV_CACHE_DIR": str(installs.root / "uvx cache")}
    uvx = ["uvx", "--from", str(installs.wheel)]
    assert run_mm([*uvx, "mm"], env) == "nothing to remove: uvx runs memtomem from uv's cache"
    done = subprocess.run(
        [*uvx, "python", "-c", "import sys; print(sys.prefix)"],
        env=env,
        capture_output=True,
        text=True,
    )
    prefix = Path(done.stdout.strip())
    assert prefix.is_relative_to(installs.root / "uvx cache"), done
    assert (prefix / "pyvenv.cfg").is_file()


def test_pip_user(installs: Installs) -> None:
    python, env = installs.pip_user()
    managed = installs.externally_managed(python)
    flag = " --break-system-packages" if managed else ""
    command = f"{q(python)} -m pip uninstall{flag} memtomem"
    user_bin = Path(env["PYTHONUSERBASE"]) / "bin"
    assert run_mm(user_bin / "mm", env) == command
    run_printed(command, env)
    assert_gone(python, env)
    assert not (user_bin / "mm").exists()


def test_editable_install(installs: Installs) -> None:
    venv, source, env = installs.editable_venv()
    command = f"{q(venv / 'bin/python')} -m pip uninstall memtomem"
    assert run_mm(venv / "bin/mm", env) == (
        f"{command}  (an editable install: its source {q(source)} stays; "
        f"or remove the virtual environment {q(venv)})"
    )
    before = sorted(p.relative_to(source) for p in (source / "src").rglob("*.py"))
    run_printed(command, env)
    assert_gone(venv / "bin/python", env)
    assert sorted(p.relative_to(source) for p in (source / "src").rglob("*.py")) == before


def test_pip_target_dir(installs: Installs) -> None:
    """No uninstaller reaches a --target dir: the hint names the RECORD of what to delete."""
    target, python, env = installs.target_dir()
    record = next(target.glob("memtomem-*.dist-info")) / "RECORD"
    assert run_mm([str(python), "-m", "memtomem"], env) == (
        f"memtomem was installed by pip into {q(target)}, where no uninstall command reaches "
        f"it: {q(record)} lists the files to delete"
    )
    assert "memtomem/cli/uninstall_cmd.py" in record.read_text(encoding="utf-8")
