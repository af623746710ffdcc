"""The Click shell itself: help text, and that asking for help loads none of the machinery."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

UNINSTALL_HELP = """\
Usage: mm uninstall [OPTIONS]

  Remove memtomem's local state: database, memories, config, uploads and
  runtime files.

  The memtomem program itself stays installed; the report names the command
  that removes it, for the way it was installed.

Options:
  --keep-config  Keep config.json, config.d/, config.json.bak-* and
                 known_projects.json.
  --keep-data    Keep the database (with its -wal, -shm and -journal files,
                 provenance key and pre-reset backups), memories/, agents/,
                 skills/ and commands/.
  --force        Proceed past heuristic evidence of use: an unlocked pid file
                 naming a live process that looks like memtomem, a SQLite lock
                 on the database, or a database that cannot be checked. Never
                 past a held lock.
  -y, --yes      Do not ask for confirmation. Without it and without a
                 terminal, nothing is removed.
  --dry-run      Show what would happen, recovery included; change nothing,
                 not even a lock file.
  --json         Print one JSON document on stdout for every outcome (schema
                 memtomem.uninstall, version 1).
  -h, --help     Show this message and exit.

  Exit codes:
    0      removed, nothing to remove, or a dry run that would proceed
    1      not confirmed
    2      refused; nothing changed
    3      failed and rolled back; nothing changed
    4      rollback incomplete; nothing deleted, restore commands printed
    5      removed with leftovers; run again to finish
    70     internal error
    128+N  interrupted by signal N (130: Ctrl-C)
"""

# What `mm ... --help` may load of memtomem: the shell, its error types and the seam's type.
SHELL_ONLY = [
    "memtomem",
    "memtomem.cli",
    "memtomem.cli.uninstall_cmd",
    "memtomem.uninstall",
    "memtomem.uninstall.errors",
    "memtomem.uninstall.fsops",
    "memtomem.uninstall.system",
]

_REPORT_MODULES = """
import atexit, sys
path = sys.argv[1]
def report():
    with open(path, "w") as out:
        out.write("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] == "memtomem")))
atexit.register(report)
sys.argv = ["mm", *sys.argv[2:]]
from memtomem.cli import main
main()
"""


def run_mm(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """A real `mm` process; returns it and the memtomem modules it had loaded at exit."""
    loaded = tmp_path / "modules.txt"
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES, str(loaded), *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, loaded.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("args", [["uninstall", "--help"], ["uninstall", "-h"]])
def test_uninstall_help_is_exact_and_loads_only_the_shell(tmp_path: Path, args: list[str]) -> None:
    proc, loaded = run_mm(tmp_path, *args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, UNINSTALL_HELP, "")
    assert loaded == SHELL_ONLY
    assert not (tmp_path / "home").exists()


def test_group_help_lists_uninstall_and_loads_only_the_shell(tmp_path: Path) -> None:
    proc, loaded = run_mm(tmp_path, "--help")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("Usage: mm [OPTIONS] COMMAND [ARGS]...\n")
    assert "  uninstall  Remove memtomem's local state: database, memories, config," in proc.stdout
    assert loaded == SHELL_ONLY


def test_running_the_command_loads_the_machinery(tmp_path: Path) -> None:
    """The counterpart: a real run (here a dry run of an empty home) loads and uses it."""
    (tmp_path / "home").mkdir()
    proc, loaded = run_mm(tmp_path, "uninstall", "--dry-run")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("No memtomem state found.\nDry run: nothing was changed.\n")
    assert {"memtomem.cli.uninstall_run", "memtomem.uninstall.transaction"} <= set(loaded)
    assert [p.name for p in (tmp_path / "home").iterdir()] == []


def _imports(path: Path, src: Path) -> set[str]:
    """The memtomem modules `path` imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from package import module` imports that module
                full = f"{node.module}.{alias.name}"
                is_module = (src / (full.replace(".", "/") + ".py")).exists()
                found.add(full if is_module else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m.split(".")[0] == "memtomem"}


def test_imports_flow_one_way() -> None:
    """No module imports, at its top or lazily, one that imports it back, however far round:
    the package's import graph has no cycle."""
    src = REPO / "packages/memtomem/src"
    graph = {}
    for path in sorted((src / "memtomem").rglob("*.py")):
        name = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = {m for m in _imports(path, src) if m != name}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import cycle: " + " -> ".join([*path, name])
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            if not name.startswith(dep + "."):  # a module's own package is loaded first
                visit(dep, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_the_readme_names_every_module_once() -> None:
    """README's "Layout of the code" has one row per module of the package."""
    repo = REPO
    package = repo / "packages/memtomem/src/memtomem"
    text = (repo / "README.md").read_text()
    table = text[text.index("## Layout of the code") :].split("\n## ")[0]
    named: list[str] = []
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        cells = line.split("|")[1].replace("`", "").split(",")
        first = cells[0].strip()
        folder = first.rsplit("/", 1)[0] + "/" if "/" in first else ""
        named += [first] + [folder + c.strip() for c in cells[1:]]
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py")}
    modules -= {"__init__.py", "__main__.py", "uninstall/__init__.py"}
    assert sorted(named) == sorted(modules)
