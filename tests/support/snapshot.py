"""The whole tree as a value: every path with its type, mode and contents or link target."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

Node = tuple[str, int, str]  # (kind, mode, sha256 of contents | link target | "")


def snapshot(root: Path) -> dict[str, Node]:
    """Everything at and below `root`, keyed by path relative to `root`; links not followed."""
    out: dict[str, Node] = {}
    if not os.path.lexists(root):
        return out
    stack = [root]
    while stack:
        path = stack.pop()
        st = os.lstat(path)
        rel = os.path.relpath(path, root)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", mode, "")
            stack.extend(Path(e.path) for e in os.scandir(path))
        elif stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", 0, os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            out[rel] = ("file", mode, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[rel] = ("other", mode, "")
    return out


def without(tree: dict[str, Node], root: Path, removed: list[Path]) -> dict[str, Node]:
    """`tree` (taken at `root`) minus each removed path and everything below it."""
    rels = [os.path.relpath(p, root) for p in removed]
    return {
        rel: node
        for rel, node in tree.items()
        if not any(rel == r or rel.startswith(r + "/") for r in rels)
    }


def diff(before: dict[str, Node], after: dict[str, Node]) -> list[str]:
    lines = [f"- {k} {before[k]}" for k in sorted(before.keys() - after.keys())]
    lines += [f"+ {k} {after[k]}" for k in sorted(after.keys() - before.keys())]
    lines += [
        f"~ {k} {before[k]} -> {after[k]}"
        for k in sorted(before.keys() & after.keys())
        if before[k] != after[k]
    ]
    return lines
