"""Real installs of this checkout's memtomem, the ways users install it.

A wheel is built once per session (per xdist worker) from a copy of packages/memtomem; each
test installs it under its own root (with a space in its name, so every printed path must
be quoted), with HOME, the runtime dir and the tools' default dirs all inside that root.
Only PyPI is reached (for click and the build backend)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

SOURCE = REPO / "packages" / "memtomem"
_IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
# Variables that would steer an install or an interpreter away from the test's own dirs.
_DROP = ("MEMTOMEM", "PYTHON", "PIPX_", "UV_", "XDG_", "VIRTUAL_ENV", "PIP_USER", "PIP_TARGET")


def run(argv: list[str], env: dict[str, str], *, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def base_env(home: Path, runtime: Path, caches: Path) -> dict[str, str]:
    """The test's environment: this venv's tools (uv, pipx) on PATH, everything else in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    tools = os.path.dirname(sys.executable)
    env.update(
        PATH=f"{tools}{os.pathsep}{env.get('PATH', os.defpath)}",
        HOME=str(home),
        _MEMTOMEM_TEST_RUNTIME_DIR=str(runtime),
        PYTEST_CURRENT_TEST=os.environ.get("PYTEST_CURRENT_TEST", "installs"),
        PIP_CACHE_DIR=str(caches / "pip"),
        UV_CACHE_DIR=str(caches / "uv"),
        UV_PYTHON_DOWNLOADS="never",
    )
    return env


def build_wheel(root: Path) -> Path:
    """The package's wheel, built from a copy (a build writes into its source tree)."""
    source = root / "source"
    shutil.copytree(SOURCE, source, ignore=_IGNORE)
    env = base_env(root / "home", root / "run", root / "caches")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(root / "dist"),
            str(source),
        ],
        env,
    )
    (wheel,) = (root / "dist").glob("memtomem-*.whl")
    return wheel


class Installs:
    """One test's root, its environment, and the installs made in it."""

    def __init__(self, root: Path, wheel: Path, caches: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True)
        self.wheel = wheel
        self.env = base_env(self.home, root / "run" / "memtomem-test", caches)

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> str:
        return run(argv, self.env if env is None else env, cwd=self.home)

    def pip_venv(self) -> tuple[Path, dict[str, str]]:
        """`python3 -m venv` + pip, as the README sets up."""
        venv = self.root / "pip venv"
        self.run([sys.executable, "-m", "venv", str(venv)])
        self.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(self.wheel)])
        return venv, self.env

    def uv_venv(self) -> tuple[Path, dict[str, str]]:
        venv = self.root / "uv venv"
        self.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)])
        self.run(["uv", "pip", "install", "-q", "--python", str(venv), str(self.wheel)])
        return venv, self.env

    def editable_venv(self) -> tuple[Path, Path, dict[str, str]]:
        venv, source = self.root / "dev venv", self.root / "memtomem source"
        shutil.copytree(SOURCE, source, ignore=_IGNORE)
        self.run([sys.executable, "-m", "venv", str(venv)])
        self.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "-e", str(source)])
        return venv, source, self.env

    def pip_user(self) -> tuple[Path, dict[str, str]]:
        """`pip install --user` into the interpreter this venv was made from, with the user
        base (PYTHONUSERBASE) inside the test's root."""
        python = Path(getattr(sys, "_base_executable", None) or sys.executable)
        env = {**self.env, "PYTHONUSERBASE": str(self.root / "user base")}
        has_pip = subprocess.run(
            [str(python), "-m", "pip", "--version"], env=env, capture_output=True
        )
        if has_pip.returncode != 0:
            pytest.skip(f"{python} has no pip, which a --user install needs; install pip for it")
        flag = ["--break-system-packages"] if self.externally_managed(python) else []
        self.run([str(python), "-m", "pip", "install", "-q", "--user", *flag, str(self.wheel)], env)
        return python, env

    def target_dir(self) -> tuple[Path, Path, dict[str, str]]:
        """`pip install --target`, used through PYTHONPATH by a venv without pip."""
        target, venv = self.root / "vendor dir", self.root / "bare venv"
        self.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), str(self.wheel)]
        )
        self.run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        return target, venv / "bin/python", {**self.env, "PYTHONPATH": str(target)}

    def externally_managed(self, python: Path) -> bool:
        code = "import sysconfig, os; print(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))"
        return Path(self.run([str(python), "-c", code]).strip()).is_file()
