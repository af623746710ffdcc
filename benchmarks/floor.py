"""The least any Python `mm uninstall` could take: delete a tree and nothing else.

    python floor.py DIR [--click] [--stat]

Walks DIR once (os.scandir, never following links), splits its directories between this
process and one forked child so both unlink the same number of files (an oracle's
balance, whole directories each, as no real run can know it in advance), unlinks
directory-fd-relative, then removes the directories. No inventory, no liveness probes,
no journal, no report. With --click it first imports click, as the `mm` CLI must; with
--stat each process also lstats its files once before unlinking them and sums their sizes,
the least the inventory of issue #5 (counts and bytes per group, each entry stat-ed once)
can cost.

bench.py times it beside `rm -rf` and `mm uninstall -y`: whatever this takes is out of
reach for any implementation in Python (with Click), so it tells a fixed cost from ours.
"""

from __future__ import annotations

import os
import sys


def walk(path: str, out: list[tuple[str, list[str]]]) -> None:
    """Post-order: every directory after its subdirectories, with its non-directories."""
    names: list[str] = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path, out)
            else:
                names.append(entry.name)
    out.append((path, names))


def halves(dirs: list[tuple[str, list[str]]]) -> tuple[list[int], list[int]]:
    """Greedy: the largest directories first, each to the side with fewer files so far."""
    sides: tuple[list[int], list[int]] = ([], [])
    load = [0, 0]
    for index in sorted(range(len(dirs)), key=lambda i: -len(dirs[i][1])):
        side = 0 if load[0] <= load[1] else 1
        sides[side].append(index)
        load[side] += len(dirs[index][1])
    return sides


def unlink_all(dirs: list[tuple[str, list[str]]], indexes: list[int], *, stat: bool) -> int:
    """Unlink the files of these directories; with `stat`, lstat them all first. Returns
    their total size (0 without `stat`)."""
    size = 0
    for index in indexes if stat else ():
        path, names = dirs[index]
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for name in names:
                size += os.lstat(name, dir_fd=fd).st_size
        finally:
            os.close(fd)
    for index in indexes:
        path, names = dirs[index]
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for name in names:
                os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)
    return size


def main() -> None:
    root = sys.argv[1]
    if "--click" in sys.argv[2:]:
        import click  # noqa: F401  (its import is the cost being measured)
    stat = "--stat" in sys.argv[2:]
    dirs: list[tuple[str, list[str]]] = []
    walk(root, dirs)
    mine, theirs = halves(dirs)
    child = os.fork()
    if child == 0:
        try:
            unlink_all(dirs, theirs, stat=stat)
        finally:
            os._exit(0)
    unlink_all(dirs, mine, stat=stat)
    os.waitpid(child, 0)
    for path, _names in dirs:
        os.rmdir(path)


if __name__ == "__main__":
    main()
