"""A disk image as inodes and directory entries: what a trace does to it, op by op.

A power cut keeps some operations and loses others, and a kept op acts on an inode, not on a
path: an unlink inside a directory whose rename was lost still removes that file where the
directory really is. So a trace is compiled once into effects on inodes (`compile_trace`),
and a crash state is the image with a chosen subset of effects applied in program order
(`apply`). `lay_out` writes a state as a real tree, copying files from the tree before the run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.snapshot import Node
from tests.support.trace import Op, Trace

ROOT = 0
# A file's contents: a path relative to the pristine copy of the tree before the run, or bytes.
Source = str | bytes
Tree = dict[str, Node]  # as tests.support.snapshot gives it: relative path -> node


@dataclass(frozen=True)
class Inode:
    kind: str  # "dir" | "file" | "link"
    mode: int
    source: Source = b""  # a new file starts empty
    sha: str = ""
    target: str = ""  # a link's target


@dataclass(frozen=True)
class Effect:
    """What op number `n` of a trace does to the image.

    entry: sets names atomically, `sets` = ((directory inode, name, inode or None), ...):
    a mkdir or create (`born` is the new inode), a replace (both names), an unlink, a rmdir;
    `removes` is the inode whose name it takes away (unlink, rmdir, replace over a file).
    data: file `ino` receives `data` (written whole into a new file). mode: `ino` gets `mode`.
    sync: an fsync of `ino`, a file or a directory.
    """

    n: int
    kind: str
    op: Op
    sets: tuple[tuple[int, str, int | None], ...] = ()
    born: int = -1
    removes: int = -1
    ino: int = -1
    data: bytes = b""
    mode: int = 0

    @property
    def dirs(self) -> frozenset[int]:
        return frozenset(d for d, _name, _ino in self.sets)


@dataclass
class Image:
    """A tree as inodes and each directory's entries (inode 0 is `root`)."""

    root: Path
    inodes: dict[int, Inode] = field(default_factory=dict)
    entries: dict[int, dict[str, int]] = field(default_factory=dict)
    births: set[int] = field(default_factory=set)  # inodes a compiled trace creates

    def new(self, inode: Inode) -> int:
        ino = len(self.inodes)
        self.inodes[ino] = inode
        if inode.kind == "dir":
            self.entries[ino] = {}
        return ino


def load(root: Path) -> Image:
    """Read the tree at `root` (links not followed); file sources are paths below it."""
    image = Image(root)
    image.new(Inode("dir", stat.S_IMODE(os.lstat(root).st_mode)))
    stack = [(ROOT, root)]
    while stack:
        ino, path = stack.pop()
        for entry in os.scandir(path):
            st = entry.stat(follow_symlinks=False)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                child = image.new(Inode("dir", mode))
                stack.append((child, Path(entry.path)))
            elif stat.S_ISLNK(st.st_mode):
                child = image.new(Inode("link", 0, target=os.readlink(entry.path)))
            elif stat.S_ISREG(st.st_mode):
                sha = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
                rel = os.path.relpath(entry.path, root)
                child = image.new(Inode("file", mode, source=rel, sha=sha))
            else:
                raise ValueError(f"{entry.path}: only dirs, files and links are modelled")
            image.entries[ino][entry.name] = child
    return image


def image_of(state: State, root: Path) -> Image:
    """A crash state as the image a following run starts from."""
    image = Image(root)
    by_path = {".": image.new(Inode("dir", state.tree["."][1]))}
    for rel in sorted(state.tree, key=lambda r: (r.count("/"), r)):
        if rel == ".":
            continue
        kind, mode, extra = state.tree[rel]
        if kind == "dir":
            ino = image.new(Inode("dir", mode))
        elif kind == "link":
            ino = image.new(Inode("link", 0, target=extra))
        else:
            ino = image.new(Inode("file", mode, source=state.sources[rel], sha=extra))
        by_path[rel] = ino
        parent, _slash, name = rel.rpartition("/")
        image.entries[by_path[parent or "."]][name] = ino
    return image


def compile_trace(image: Image, trace: Trace) -> tuple[Effect, ...]:
    """The effect of each op, found by replaying the whole trace on the image's names.
    New inodes (mkdir, create) are added to `image`; an op that changed nothing (a create
    of a file that was there) has no effect."""
    live = {d: dict(names) for d, names in image.entries.items()}
    effects: list[Effect] = []

    def parent(path: str) -> tuple[int, str]:
        rel = os.path.relpath(path, image.root)
        assert not rel.startswith(".."), f"{path} is outside {image.root}"
        *dirs, name = rel.split("/")
        ino = ROOT
        for part in dirs:
            ino = live[ino][part]
        return ino, name

    def lookup(path: str) -> int:
        d, name = parent(path)
        return live[d][name]

    for n, op in enumerate(trace, 1):
        if op.kind in ("mkdir", "create"):
            d, name = parent(op.path)
            if name in live[d]:
                assert op.kind == "create", f"mkdir of an existing {op.path}"
                continue
            if op.kind == "mkdir":
                ino = image.new(Inode("dir", op.mode))
                live[ino] = {}
            else:
                ino = image.new(Inode("file", op.mode, sha=_sha(b"")))
            image.births.add(ino)
            live[d][name] = ino
            effects.append(Effect(n, "entry", op, sets=((d, name, ino),), born=ino))
        elif op.kind == "write":
            effects.append(Effect(n, "data", op, ino=lookup(op.path), data=op.data))
        elif op.kind == "chmod":
            effects.append(Effect(n, "mode", op, ino=lookup(op.path), mode=op.mode))
        elif op.kind == "fsync":
            effects.append(Effect(n, "sync", op, ino=lookup(op.path)))
        elif op.kind == "replace":
            (sd, sname), (dd, dname) = parent(op.path), parent(op.dest)
            ino = live[sd].pop(sname)
            over = live[dd].get(dname, -1)
            live[dd][dname] = ino
            sets = ((sd, sname, None), (dd, dname, ino))
            effects.append(Effect(n, "entry", op, sets=sets, removes=over))
        elif op.kind in ("unlink", "rmdir"):
            d, name = parent(op.path)
            gone = live[d].pop(name)
            assert op.kind == "unlink" or not live[gone], f"rmdir of a non-empty {op.path}"
            effects.append(Effect(n, "entry", op, sets=((d, name, None),), removes=gone))
        else:
            raise ValueError(f"unknown op {op.kind}")
    return tuple(effects)


@dataclass(frozen=True)
class State:
    """A disk state: the tree as a snapshot shows it, and each file's source."""

    tree: Tree
    sources: dict[str, Source]

    @property
    def key(self) -> bytes:
        """A digest of the tree: states are deduplicated by it, thousands at a time."""
        return hashlib.sha256(repr(sorted(self.tree.items())).encode()).digest()


LOST = "lost"  # a write that never landed: the file stays as created, empty
TORN = "torn"  # a write of which only the first half landed


def apply(image: Image, effects: Iterable[Effect], variants: dict[int, str] | None = None) -> State:
    """The image with `effects` applied in program order; `variants[n]` (LOST or TORN) for
    a data effect that did not land whole.

    An entry effect in a directory that does not exist in this state (its mkdir was lost)
    cannot have happened and is skipped. A removed directory takes what was below it."""
    variants = variants or {}
    entries = dict(image.entries)
    copied: set[int] = set()
    exists = set(image.entries) - image.births  # directories, as they come to exist
    data: dict[int, bytes] = {}
    modes: dict[int, int] = {}
    for effect in effects:
        if effect.kind == "entry":
            if not effect.dirs <= exists:
                continue
            for d, name, ino in effect.sets:
                if d not in copied:
                    entries[d] = dict(entries[d])
                    copied.add(d)
                if ino is None:
                    entries[d].pop(name, None)
                else:
                    entries[d][name] = ino
            if effect.born >= 0:
                exists.add(effect.born)
        elif effect.kind == "data":
            variant = variants.get(effect.n)
            if variant != LOST:
                half = effect.data[: len(effect.data) // 2]
                data[effect.ino] = half if variant == TORN else effect.data
        elif effect.kind == "mode":
            modes[effect.ino] = effect.mode
    return _visible(image, entries, data, modes)


def _visible(
    image: Image, entries: dict[int, dict[str, int]], data: dict[int, bytes], modes: dict[int, int]
) -> State:
    tree: Tree = {}
    sources: dict[str, Source] = {}
    stack = [(ROOT, ".")]
    while stack:
        ino, rel = stack.pop()
        inode = image.inodes[ino]
        mode = modes.get(ino, inode.mode)
        if inode.kind == "dir":
            tree[rel] = ("dir", mode, "")
            prefix = "" if rel == "." else rel + "/"
            stack.extend((child, prefix + name) for name, child in entries[ino].items())
        elif inode.kind == "link":
            tree[rel] = ("link", 0, inode.target)
        elif ino in data:
            tree[rel] = ("file", mode, _sha(data[ino]))
            sources[rel] = data[ino]
        else:
            tree[rel] = ("file", mode, inode.sha)
            sources[rel] = inode.source
    return State(tree, sources)


_SHAS: dict[bytes, str] = {}


def _sha(body: bytes) -> str:
    if body not in _SHAS:
        _SHAS[body] = hashlib.sha256(body).hexdigest()
    return _SHAS[body]


def contents(source: Source, pristine: Path) -> bytes:
    return source if isinstance(source, bytes) else (pristine / source).read_bytes()


def lay_out(state: State, pristine: Path, root: Path) -> None:
    """Write `state` as a real tree at `root`, replacing what is there."""
    if os.path.lexists(root):
        remove(root)
    dirs = []
    for rel in sorted(state.tree):
        kind, mode, target = state.tree[rel]
        path = root / rel if rel != "." else root
        if kind == "dir":
            path.mkdir(mode=0o700)
            dirs.append((path, mode))
        elif kind == "link":
            os.symlink(target, path)
        else:
            source = state.sources[rel]
            if isinstance(source, bytes):
                path.write_bytes(source)
            else:
                shutil.copyfile(pristine / source, path)
            os.chmod(path, mode)
    for path, mode in reversed(dirs):
        os.chmod(path, mode)


def remove(root: Path) -> None:
    """rmtree that first makes every directory writable (a state may hold read-only dirs)."""
    for dirpath, dirnames, _files in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
    shutil.rmtree(root)
