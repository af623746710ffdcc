"""What exists: a streaming, no-follow scan of every anchor into entries with totals."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from memtomem.uninstall import system, trust
from memtomem.uninstall.errors import Refused
from memtomem.uninstall.fsops import FsOps, stat_entry
from memtomem.uninstall.groups import STAGING_PREFIX, Group, classify, is_database_name
from memtomem.uninstall.layout import DEFAULT_DB_NAME, Layout
from memtomem.uninstall.printable import show
from memtomem.uninstall.system import Mounts, is_mount
from memtomem.uninstall.tree import TreeStats, measure
from memtomem.uninstall.trust import PRIVATE, Trust


class Role(Enum):
    """What a runtime file means to liveness probes."""

    PLAIN = "plain"
    PID_FILE = "pid-file"
    WEB_PID = "web-pid"
    SENTINEL = "sentinel"
    PRESENCE = "presence"
    FOREIGN_PRESENCE = "foreign-presence"


@dataclass(frozen=True)
class Entry:
    group: Group
    path: Path
    anchor: Path
    kind: str
    dev: int
    files: int
    bytes: int
    role: Role = Role.PLAIN
    mount: bool = False  # a mount point (a bind mount included): it cannot be moved
    inside: Path | None = None  # a database file inside this entry of the state dir


@dataclass(frozen=True)
class Stray:
    """An entry in the state dir that is not memtomem's: reported, never touched."""

    path: Path
    kind: str

    @property
    def is_staging(self) -> bool:
        """Left by an interrupted uninstall: recovery reports it, with what to do."""
        return self.path.name.startswith(STAGING_PREFIX)


@dataclass(frozen=True)
class Anchor:
    path: Path
    dev: int
    trust: Trust = PRIVATE


@dataclass(frozen=True)
class Inventory:
    layout: Layout
    anchors: tuple[Anchor, ...]
    entries: tuple[Entry, ...]
    unknown: tuple[Stray, ...]
    barrier: Path | None
    notes: tuple[str, ...] = ()


def kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "file" if stat.S_ISREG(mode) else "other"


def scan(fs: FsOps, layout: Layout) -> Inventory:
    """Find every entry of ours in the state dir, the DB's dir and the runtime dirs."""
    _check_database_path(fs, layout)
    anchors: list[Anchor] = []
    entries: list[Entry] = []
    unknown: list[Stray] = []
    notes: list[str] = []
    db_paths = (layout.db_path, layout.state_dir / DEFAULT_DB_NAME)
    state = _lstat(fs, layout.state_dir)
    if state is not None:
        if not stat.S_ISDIR(state.st_mode):
            what = "a symbolic link" if stat.S_ISLNK(state.st_mode) else "not a directory"
            raise Refused(
                f"{show(layout.state_dir, layout.home)} is {what}; mm uninstall never follows "
                "links. Remove or move it yourself.",
                path=str(layout.state_dir),
            )
        anchors.append(Anchor(layout.state_dir, state.st_dev, trust.of_anchor(state)))
        with fs.scandir(layout.state_dir) as listing:
            entries_found = list(listing)
        mounts = system.mount_points_below([str(layout.state_dir)])
        for found in _measured_all(fs, entries_found, layout.state_dir, db_paths, mounts):
            if found.group is not None:
                entries.append(_as_entry(found))
            else:
                unknown.append(Stray(found.path, kind_of(found.st.st_mode)))
    if layout.db_dir != layout.state_dir:
        _scan_db_dir(fs, layout, anchors, entries, notes)
    barrier = None
    for directory in layout.runtime_dirs:
        exists = _scan_runtime_dir(fs, layout, directory, anchors, entries)
        if exists and directory == layout.primary_runtime_dir:
            barrier = directory / "lifecycle.lock"
    return Inventory(layout, tuple(anchors), tuple(entries), tuple(unknown), barrier, tuple(notes))


@dataclass(frozen=True)
class _Measured:
    path: Path
    anchor: Path
    group: Group | None
    st: os.stat_result
    files: int
    bytes: int
    mount: bool = False


def _measured_all(
    fs: FsOps,
    found: list[os.DirEntry[str]],
    anchor: Path,
    db_paths: tuple[Path, ...],
    mounts: Mounts,
) -> list[_Measured]:
    """Every entry of the state dir, classified; ours measured (mount points below counted
    as one entry, never entered), the rest stat-ed. All are stat-ed first, right after the
    listing: measuring a large tree takes seconds, in which a file may come and go."""
    stated = [(e, classify(e.name, db_paths), stat_entry(fs, e)) for e in found]
    return [_measured_stated(fs, e, anchor, group, st, mounts) for e, group, st in stated]


def _measured(fs: FsOps, entry: os.DirEntry[str], anchor: Path, group: Group) -> _Measured:
    return _measured_stated(fs, entry, anchor, group, stat_entry(fs, entry))


def _measured_stated(
    fs: FsOps,
    entry: os.DirEntry[str],
    anchor: Path,
    group: Group | None,
    st: os.stat_result,
    mounts: Mounts = frozenset(),
) -> _Measured:
    totals = measure(fs, entry.path, st, mounts) if group is not None else TreeStats(0, 0)
    path, mount = Path(entry.path), is_mount(st, mounts)
    return _Measured(path, anchor, group, st, totals.files, totals.bytes, mount)


def _as_entry(found: _Measured, role: Role = Role.PLAIN) -> Entry:
    assert found.group is not None
    return Entry(
        found.group,
        found.path,
        found.anchor,
        kind_of(found.st.st_mode),
        found.st.st_dev,
        found.files,
        found.bytes,
        role,
        found.mount,
    )


def _lstat(fs: FsOps, path: Path) -> os.stat_result | None:
    try:
        return fs.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _check_database_path(fs: FsOps, layout: Layout) -> None:
    if layout.db_dir == layout.state_dir and classify(layout.db_path.name, ()) is not None:
        raise _bad_database(layout, "is one of memtomem's own files, not its database")
    try:
        st = _lstat(fs, layout.db_path)
    except OSError as exc:
        raise _bad_database(layout, f"cannot be examined ({exc.strerror})") from None
    if st is None or stat.S_ISLNK(st.st_mode):
        return
    if not stat.S_ISREG(st.st_mode):
        raise _bad_database(layout, "is not a database file")
    if not system.IS_WINDOWS and st.st_uid != system.euid():
        raise _bad_database(layout, f"is owned by uid {st.st_uid}, not by you")


def _bad_database(layout: Layout, problem: str) -> Refused:
    shown = show(layout.db_path, layout.home)
    if layout.db_source == "default":
        text = f"{shown} (the default database path) {problem}; move it out of the way"
    else:
        text = (
            f"storage.sqlite_path (from {layout.db_source}) points at {shown}, which "
            f"{problem}; correct the setting"
        )
    return Refused(f"{text} and run mm uninstall again.", path=str(layout.db_path))


def _scan_db_dir(
    fs: FsOps, layout: Layout, anchors: list[Anchor], entries: list[Entry], notes: list[str]
) -> None:
    """The database's own files in a directory of its own. In a sticky shared directory
    (such as /tmp) only this user's files are the store's; the rest are left, with a note."""
    st = _lstat(fs, layout.db_dir)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return
    where = trust.of_anchor(st)
    anchors.append(Anchor(layout.db_dir, st.st_dev, where))
    container = _container(layout, entries)
    found = []
    with fs.scandir(layout.db_dir) as listing:
        for entry in listing:
            if not is_database_name(entry.name, layout.db_path):
                continue
            measured = _measured(fs, entry, layout.db_dir, Group.DATABASE)
            if where.shared and measured.st.st_uid != system.euid():
                notes.append(
                    f"left {show(measured.path, layout.home)}: it is owned by uid "
                    f"{measured.st.st_uid}, not by you"
                )
                continue
            found.append(replace(_as_entry(measured), inside=container))
    entries.extend(found)
    if container is not None:  # counted once: in the database's row, not also in its dir's
        files, size = sum(e.files for e in found), sum(e.bytes for e in found)
        at = next(i for i, e in enumerate(entries) if e.path == container)
        outer = entries[at]
        entries[at] = replace(outer, files=outer.files - files, bytes=outer.bytes - size)


def _container(layout: Layout, entries: list[Entry]) -> Path | None:
    """The entry of the state dir that the database's directory is inside, if it is ours."""
    if not layout.db_dir.is_relative_to(layout.state_dir):
        return None
    top = layout.state_dir / layout.db_dir.relative_to(layout.state_dir).parts[0]
    ours = next((e for e in entries if e.path == top and e.kind == "dir"), None)
    return None if ours is None else ours.path


def _scan_runtime_dir(
    fs: FsOps, layout: Layout, directory: Path, anchors: list[Anchor], entries: list[Entry]
) -> bool:
    st = _lstat(fs, directory)
    if st is None:
        return False
    reason = trust.of_runtime_dir(st)
    if reason is not None:
        raise Refused(
            f"runtime directory {show(directory, layout.home)} {reason}; memtomem only trusts a "
            "private directory you own. Inspect it and remove it yourself.",
            path=str(directory),
        )
    anchors.append(Anchor(directory, st.st_dev, trust.of_anchor(st)))
    digest = layout.store_digest
    roles = {f"server-{digest}.pid": Role.PID_FILE, "server.pid": Role.PID_FILE}
    roles["web.pid"] = Role.WEB_PID
    with fs.scandir(directory) as listing:
        for entry in listing:
            role = roles.get(entry.name)
            if role is not None:
                found = _measured(fs, entry, directory, Group.RUNTIME)
                entries.append(_as_entry(found, role=role))
            elif entry.name in ("instances", "presence") and entry.is_dir(follow_symlinks=False):
                _scan_sentinels(fs, Path(entry.path), directory, digest, entries)
    return True


def _scan_sentinels(
    fs: FsOps, folder: Path, anchor: Path, digest: str, entries: list[Entry]
) -> None:
    with fs.scandir(folder) as listing:
        for entry in listing:
            if not entry.name.endswith(".lock") or entry.is_dir(follow_symlinks=False):
                continue
            if folder.name == "instances":
                role = Role.SENTINEL
            else:
                fields = entry.name.split("-")
                ours = len(fields) >= 3 and fields[2] == digest
                role = Role.PRESENCE if ours else Role.FOREIGN_PRESENCE
            found = _measured(fs, entry, anchor, Group.RUNTIME)
            entries.append(_as_entry(found, role=role))
