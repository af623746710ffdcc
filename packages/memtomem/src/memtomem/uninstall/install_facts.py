"""The facts an install of memtomem leaves, gathered once for the running interpreter:
the dist-info's INSTALLER and direct_url.json, the environment's pyvenv.cfg and tool
metadata, and which tools are on PATH. Anything unreadable counts as absent."""

from __future__ import annotations

import json
import os
import re
import site
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.machinery import PathFinder
from urllib.parse import unquote, urlsplit

import memtomem

NAME = "memtomem"
_DIST_INFO = re.compile(rf"{NAME}-[^-]+\.dist-info", re.IGNORECASE)


@dataclass(frozen=True)
class InstallFacts:
    python: str  # the interpreter running mm
    prefix: str  # sys.prefix
    base_prefix: str  # sys.base_prefix: equal to prefix outside a venv
    base_python: str  # the interpreter a venv was made from (python outside one)
    dist_info: str | None  # memtomem's .dist-info directory; None: none on the path
    module_dir: str  # where the running memtomem package lives
    launcher: str | None = None  # the script this process was started as (sys.argv[0])
    installer: str | None = None  # first line of the dist-info's INSTALLER
    editable_source: str | None = None  # an editable install's source dir (direct_url.json)
    venv_uv: bool = False  # the venv's pyvenv.cfg has uv's `uv = <version>` key
    uv_receipt: bool = False  # <prefix>/uv-receipt.toml: a `uv tool install` environment
    pipx_metadata: bool = False  # <prefix>/pipx_metadata.json: a pipx environment
    cache_tag_above: bool = False  # a CACHEDIR.TAG in the prefix's grandparent (uv's cache)
    user_site: str | None = None  # site.getusersitepackages()
    site_packages: tuple[str, ...] = ()  # site.getsitepackages(): the interpreter's own
    externally_managed: bool = False  # an EXTERNALLY-MANAGED marker in the stdlib dir
    has_pip: bool = False  # pip is importable by `python`
    uv_on_path: bool = False
    pipx_on_path: bool = False
    home: str = ""
    xdg_data_home: str | None = None
    pipx_home: str | None = None  # $PIPX_HOME
    pipx_bin_dir: str | None = None  # $PIPX_BIN_DIR
    pipx_global_home: str | None = None  # $PIPX_GLOBAL_HOME
    uv_tool_dir: str | None = None  # $UV_TOOL_DIR


def gather(env: Mapping[str, str]) -> InstallFacts:
    """The facts for the interpreter running now."""
    dist_info = _find_dist_info(sys.path)
    if dist_info is not None:
        installer = _first_line(_read(os.path.join(dist_info, "INSTALLER")))
        editable = _editable_source(_read(os.path.join(dist_info, "direct_url.json")))
    else:
        installer = editable = None
    prefix, base_prefix = sys.prefix, sys.base_prefix
    stdlib = os.path.dirname(os.__file__)  # sysconfig's "stdlib" path, without importing it
    return InstallFacts(
        python=sys.executable,
        prefix=prefix,
        base_prefix=base_prefix,
        base_python=getattr(sys, "_base_executable", None) or sys.executable,
        dist_info=dist_info,
        module_dir=os.path.dirname(os.path.abspath(memtomem.__file__)),
        launcher=_launcher(sys.argv),
        installer=installer,
        editable_source=editable,
        venv_uv=prefix != base_prefix and "uv" in _venv_config(prefix),
        uv_receipt=os.path.isfile(os.path.join(prefix, "uv-receipt.toml")),
        pipx_metadata=os.path.isfile(os.path.join(prefix, "pipx_metadata.json")),
        cache_tag_above=os.path.isfile(
            os.path.join(os.path.dirname(os.path.dirname(prefix)), "CACHEDIR.TAG")
        ),
        user_site=site.getusersitepackages(),
        site_packages=tuple(site.getsitepackages()),
        externally_managed=os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED")),
        has_pip=PathFinder.find_spec("pip") is not None,
        uv_on_path=_on_path("uv", env),
        pipx_on_path=_on_path("pipx", env),
        home=env.get("HOME") or os.path.expanduser("~"),
        xdg_data_home=env.get("XDG_DATA_HOME") or None,
        pipx_home=env.get("PIPX_HOME") or None,
        pipx_bin_dir=env.get("PIPX_BIN_DIR") or None,
        pipx_global_home=env.get("PIPX_GLOBAL_HOME") or None,
        uv_tool_dir=env.get("UV_TOOL_DIR") or None,
    )


def _find_dist_info(path: list[str]) -> str | None:
    """The first memtomem dist-info on the path, as importlib.metadata would find it; by hand,
    because importing importlib.metadata costs about 20 ms of every run."""
    for entry in path:
        directory = os.path.abspath(entry or ".")
        try:
            with os.scandir(directory) as found:
                names = sorted(e.name for e in found if _DIST_INFO.fullmatch(e.name))
        except OSError:
            continue
        if names:
            return os.path.join(directory, names[0])
    return None


def _on_path(name: str, env: Mapping[str, str]) -> bool:
    """shutil.which, without importing shutil (and with it bz2 and lzma) on every run."""
    names = [name]
    if sys.platform == "win32":  # pragma: no cover
        names += [name + ext for ext in env.get("PATHEXT", ".EXE").split(os.pathsep) if ext]
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        for candidate in names:
            path = os.path.join(directory or ".", candidate)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return True
    return False


def _launcher(argv: list[str]) -> str | None:
    path = os.path.abspath(argv[0]) if argv and argv[0] else None
    return path if path is not None and os.path.isfile(path) else None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return None


def _first_line(text: str | None) -> str | None:
    lines = text.strip().splitlines() if text else []
    return lines[0].strip().lower() if lines else None


def _editable_source(text: str | None) -> str | None:
    """PEP 610: an editable install records {"url": "file:...", "dir_info": {"editable": true}}."""
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        return None
    info = doc.get("dir_info") if isinstance(doc, dict) else None
    url = doc.get("url") if isinstance(doc, dict) else None
    if not isinstance(info, dict) or info.get("editable") is not True or not isinstance(url, str):
        return None
    parts = urlsplit(url)
    return unquote(parts.path) if parts.scheme == "file" else None


def _venv_config(prefix: str) -> dict[str, str]:
    try:
        with open(os.path.join(prefix, "pyvenv.cfg"), encoding="utf-8") as cfg:
            lines = cfg.read(1 << 16).splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    pairs = (line.partition("=") for line in lines)
    return {key.strip().lower(): value.strip() for key, sep, value in pairs if sep}
