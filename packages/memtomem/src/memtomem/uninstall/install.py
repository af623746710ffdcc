"""How the memtomem program itself was installed, and what removes it.

`decide` is a pure function of `InstallFacts`, the traces an install leaves: the
dist-info's INSTALLER and direct_url.json, the environment's pyvenv.cfg and tool metadata,
and which tools are on PATH. `gather` collects them once, for the running interpreter."""

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
from memtomem.uninstall.display import escape, quote

NAME = "memtomem"
# uvx and `uv run --with` build their environments in buckets like archive-v0 of uv's cache.
_UV_CACHE_BUCKET = re.compile(r"[a-z]+-v[0-9]+")
_PIP_LIKE = frozenset({"pip", "uv"})
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


@dataclass(frozen=True)
class Hint:
    """A command that removes the program, with a note; or only a sentence (no command)."""

    command: str | None
    note: str = ""

    def __str__(self) -> str:
        if self.command is None:
            return self.note
        return f"{self.command}  ({self.note})" if self.note else self.command


def decide(facts: InstallFacts) -> Hint:
    """What removes memtomem, for the install these facts describe."""
    if facts.dist_info is None:
        return Hint(
            None,
            f"memtomem runs from {quote(facts.module_dir)}, not from an installed package: "
            "there is nothing to uninstall; take that directory off the Python path",
        )
    site = os.path.dirname(facts.dist_info)
    in_venv = facts.prefix != facts.base_prefix and _under(site, facts.prefix)
    if in_venv and _in_uv_cache(facts):
        return Hint(None, "nothing to remove: uvx runs memtomem from uv's cache")
    if in_venv and facts.uv_receipt:
        hint = _uv_tool(facts)
    elif in_venv and facts.pipx_metadata:
        hint = _pipx(facts)
    elif in_venv:
        hint = _venv(facts)
    elif facts.user_site and _under(site, facts.user_site):
        hint = _user(facts, site)
    elif _is_system(facts, site):
        return _system(facts, site)
    elif _under(site, facts.base_prefix) or _listed(site, facts.site_packages):
        hint = _interpreter(facts, site)
    else:
        return _elsewhere(facts, site)
    if facts.editable_source is not None and hint.command is not None:
        source = f"an editable install: its source {quote(facts.editable_source)} stays"
        hint = Hint(hint.command, "; ".join(n for n in (source, hint.note) if n))
    return hint


def _venv(facts: InstallFacts) -> Hint:
    venv = quote(facts.prefix)
    pip = f"{quote(facts.python)} -m pip uninstall {NAME}"
    uv = f"uv pip uninstall --python {venv} {NAME}"
    if facts.installer == "uv" and facts.uv_on_path:
        command = uv
    elif facts.has_pip:
        command = pip
    elif facts.uv_on_path:
        command = uv
    else:
        return Hint(
            None,
            f"remove the virtual environment {venv} (it has no pip, and no uv is on PATH to "
            "uninstall memtomem from it)",
        )
    return Hint(command, f"or remove the virtual environment {venv}")


def _uv_tool(facts: InstallFacts) -> Hint:
    tool_dir = os.path.dirname(facts.prefix)
    default = os.path.join(_data_home(facts), "uv", "tools")
    chosen = facts.uv_tool_dir if facts.uv_tool_dir else default
    env = "" if _same(chosen, tool_dir) else f"UV_TOOL_DIR={quote(tool_dir)} "
    command = f"{env}uv tool uninstall {quote(os.path.basename(facts.prefix))}"
    note = "" if facts.uv_on_path else "uv installed it as a tool, but no uv is on PATH"
    return Hint(command, note)


def _pipx(facts: InstallFacts) -> Hint:
    pipx_home = os.path.dirname(os.path.dirname(facts.prefix))
    name = quote(os.path.basename(facts.prefix))
    global_home = facts.pipx_global_home or "/opt/pipx"
    if _same(global_home, pipx_home):
        command = f"pipx uninstall --global {name}"
    else:
        homes = [facts.pipx_home] if facts.pipx_home else _pipx_defaults(facts)
        env = "" if any(_same(h, pipx_home) for h in homes) else f"PIPX_HOME={quote(pipx_home)} "
        # pipx removes the app links from the bin dir it is told of: name the one mm ran from.
        link = facts.launcher
        bin_dir = facts.pipx_bin_dir or os.path.join(facts.home, ".local", "bin")
        if link and not _under(link, facts.prefix) and not _same(os.path.dirname(link), bin_dir):
            env += f"PIPX_BIN_DIR={quote(os.path.dirname(link))} "
        command = f"{env}pipx uninstall {name}"
    note = "" if facts.pipx_on_path else "pipx installed it, but no pipx is on PATH"
    return Hint(command, note)


def _user(facts: InstallFacts, site: str) -> Hint:
    if not facts.has_pip:
        return _elsewhere(facts, site)
    # pip refuses to uninstall from an externally managed Python's user site without it.
    flag = " --break-system-packages" if facts.externally_managed else ""
    return Hint(f"{quote(facts.python)} -m pip uninstall{flag} {NAME}")


def _system(facts: InstallFacts, site: str) -> Hint:
    if facts.installer in _PIP_LIKE:
        return Hint(
            None,
            f"memtomem was put into the system's Python ({quote(site)}) by {_installer(facts)}, "
            "past the distribution's package manager, which does not know it: remove it the "
            "way it was put there",
        )
    return Hint(
        None,
        f"memtomem belongs to the system's Python ({quote(site)}): remove it with the "
        "distribution's package manager (apt, dnf, pacman, ...), not with pip",
    )


def _interpreter(facts: InstallFacts, site: str) -> Hint:
    python = quote(facts.base_python)
    if facts.installer is not None and facts.installer not in _PIP_LIKE:
        return Hint(
            None,
            f"memtomem was installed by {_installer(facts)} into {quote(site)}: "
            f"remove it with {_installer(facts)}",
        )
    if facts.installer == "uv" and facts.uv_on_path:
        return Hint(f"uv pip uninstall --python {python} {NAME}")
    if facts.has_pip:
        return Hint(f"{python} -m pip uninstall {NAME}")
    if facts.uv_on_path:
        return Hint(f"uv pip uninstall --python {python} {NAME}")
    return _elsewhere(facts, site)


def _elsewhere(facts: InstallFacts, site: str) -> Hint:
    """No uninstaller applies (e.g. `pip install --target`): name the record of its files."""
    by = f" by {_installer(facts)}" if facts.installer else ""
    record = quote(os.path.join(facts.dist_info or site, "RECORD"))
    return Hint(
        None,
        f"memtomem was installed{by} into {quote(site)}, where no uninstall command "
        f"reaches it: {record} lists the files to delete",
    )


def _installer(facts: InstallFacts) -> str:
    return escape(facts.installer or "")  # a file's text: never let it drive a terminal


def _in_uv_cache(facts: InstallFacts) -> bool:
    bucket = os.path.basename(os.path.dirname(facts.prefix))
    return facts.venv_uv and facts.cache_tag_above and bool(_UV_CACHE_BUCKET.fullmatch(bucket))


def _is_system(facts: InstallFacts, site: str) -> bool:
    if "dist-packages" in site.split(os.sep):
        return True  # Debian and Ubuntu: the distribution's (or root's pip's) packages
    ours = _under(site, facts.base_prefix) or _listed(site, facts.site_packages)
    return ours and facts.externally_managed


def _data_home(facts: InstallFacts) -> str:
    return facts.xdg_data_home or os.path.join(facts.home, ".local", "share")


def _pipx_defaults(facts: InstallFacts) -> list[str]:
    return [
        os.path.join(_data_home(facts), "pipx"),
        os.path.join(facts.home, ".local", "pipx"),
        os.path.join(facts.home, "Library", "Application Support", "pipx"),
    ]


def _same(a: str, b: str) -> bool:
    return os.path.normpath(a) == os.path.normpath(b)


def _listed(path: str, paths: tuple[str, ...]) -> bool:
    return any(_same(path, p) for p in paths)


def _under(path: str, parent: str) -> bool:
    path, parent = os.path.normpath(path), os.path.normpath(parent)
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def gather(env: Mapping[str, str]) -> InstallFacts:
    """The facts for the interpreter running now; anything unreadable counts as absent."""
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


def removal_hint(env: Mapping[str, str]) -> str:
    """The text the report and the JSON's `remove_program` show."""
    return str(decide(gather(env)))


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
