"""The states a power-cut sweep starts from, with what a complete run must leave of them.

Every crash state of a scenario is laid out at the same `root`: journals and pid-file names
hold absolute paths. `pristine` is a copy of the tree before the run, files are copied from it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import flag_args
from tests.support.image import Tree
from tests.support.snapshot import snapshot
from tests.support.world import FLAG_IDS, FLAGS, World, full_world, write
from tests.test_fixture import REMAINING, extract


@dataclass(frozen=True)
class Scenario:
    name: str
    root: Path
    pristine: Path
    env: dict[str, str]
    flags: tuple[bool, bool]
    before: Tree
    expected: Tree  # after a complete run: nothing of memtomem's but what the flags keep
    state_dir: str  # relative to root, like every path below
    places: tuple[tuple[str, str], ...]  # (directory, what to call it in a failure's shape)

    @property
    def args(self) -> list[str]:
        return ["-y", "--json", *flag_args(*self.flags)]

    @property
    def title(self) -> str:
        return f"{self.name} {FLAG_IDS[FLAGS.index(self.flags)]}"

    def settled(self) -> list[Tree]:
        """What recovery alone may leave: the tree before, or the removed one (with the
        state dir itself still there when the crash came after its last journal went)."""
        with_dir = {**self.expected, self.state_dir: self.before[self.state_dir]}
        return [self.before, self.expected, with_dir]

    def place(self, rel: str) -> str:
        """What a path is, for grouping failures: a staging dir, or a place or files in it."""
        for where, label in sorted(self.places, key=lambda p: -len(p[0])):
            if rel == where:
                return label
            if rel.startswith(where + "/"):
                name = rel[len(where) + 1 :].split("/")[0]
                staged = name.startswith(".uninstall-staging-")
                return f"a staging dir in {label}" if staged else f"files in {label}"
        return "files elsewhere"


def _scenario(base: Path, root: Path, **fields: Any) -> Scenario:
    pristine = base / "pristine"
    shutil.copytree(root, pristine, symlinks=True)
    return Scenario(root=root, pristine=pristine, before=snapshot(root), **fields)


def fixture_scenario(base: Path, flags: tuple[bool, bool]) -> Scenario:
    """The real 0.6.12 state, extracted as tests/test_fixture.py does; what a complete run
    leaves of it is what that file writes out by hand."""
    fx = extract(base)
    root = fx.root
    before = snapshot(root)
    env = {**fx.env, "PYTEST_CURRENT_TEST": os.environ.get("PYTEST_CURRENT_TEST", "powercut")}
    state, runtime = _rel(fx.state, root), _rel(fx.runtime, root)
    return _scenario(
        base,
        root,
        name="0.6.12",
        env=env,
        flags=flags,
        expected={path: before[path] for path in REMAINING[FLAG_IDS[FLAGS.index(flags)]]},
        state_dir=state,
        places=((state, "~/.memtomem"), (runtime, "the runtime dir")),
    )


def world_scenario(base: Path, flags: tuple[bool, bool], files: int) -> Scenario:
    """tests/support/world.py's full world with a custom DB dir, and `files` more."""
    world = full_world(base / "w", custom_db=True)
    bulk(world, files)
    state, runtime = _rel(world.state, world.root), _rel(world.runtime, world.root)
    return _scenario(
        base,
        world.root,
        name=f"world+{files}",
        env=world.env,
        flags=flags,
        expected=world.expected(world.tree(), *flags),
        state_dir=state,
        places=(
            (state, "~/.memtomem"),
            (runtime, "the runtime dir"),
            (_rel(world.db.parent, world.root), "the DB dir"),
        ),
    )


def bulk(world: World, files: int) -> None:
    """`files` small files in nested dirs of memories/, uploads/ and cache/ (no new group)."""
    homes = [world.state / "memories" / "bulk", world.state / "uploads", world.state / "cache"]
    for i in range(files):
        where = homes[i % len(homes)] / f"d{i % 7}" / f"e{i % 3}"
        write(where / f"f{i:04d}.md", f"file {i}\n" * (i % 5))


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)
