"""How the memtomem program itself was installed, and what removes it: a pure decision
from the facts the install left (install_facts.py), table-tested without a disk."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from memtomem.uninstall.install_facts import NAME, InstallFacts, gather
from memtomem.uninstall.printable import escape, quote

# uvx and `uv run --with` build their environments in buckets like archive-v0 of uv's cache.
_UV_CACHE_BUCKET = re.compile(r"[a-z]+-v[0-9]+")
_PIP_LIKE = frozenset({"pip", "uv"})


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


def removal_hint(env: Mapping[str, str]) -> str:
    """The text the report and the JSON's `remove_program` show."""
    return str(decide(gather(env)))
