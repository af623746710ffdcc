"""Pure: (Inventory, liveness, keep flags) -> Plan. No I/O; table-tested."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memtomem.uninstall.errors import CrossDevice, Refused
from memtomem.uninstall.groups import Group, is_kept
from memtomem.uninstall.inventory import Anchor, Entry, Inventory
from memtomem.uninstall.layout import Layout
from memtomem.uninstall.printable import quote, show

_ORDER = {group: index for index, group in enumerate(Group)}


@dataclass(frozen=True)
class Move:
    group: Group
    src: Path
    anchor: Path

    @property
    def rel(self) -> str:
        return str(self.src.relative_to(self.anchor))


@dataclass(frozen=True)
class Place:
    """Where some of a row's entries are: its main entry, or the directory holding several."""

    path: Path
    is_dir: bool


@dataclass(frozen=True)
class Row:
    """One report row: a group's main path, its totals, whether it is kept, and its places
    (one per directory holding its entries, the state dir's first)."""

    group: Group
    path: Path
    entries: int
    files: int
    bytes: int
    kept: bool
    places: tuple[Place, ...] = ()


@dataclass(frozen=True)
class Plan:
    moves: tuple[Move, ...]
    rows: tuple[Row, ...]
    anchors: tuple[Path, ...]
    state_dir: Path
    remove_state_dir: bool
    keep_config: bool
    keep_data: bool
    db_dirs: frozenset[Path] = frozenset()  # anchors only the config names (not state/runtime)

    @property
    def files(self) -> int:
        return sum(r.files for r in self.rows if not r.kept)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.rows if not r.kept)


def build_plan(
    inventory: Inventory,
    *,
    keep_config: bool,
    keep_data: bool,
    held: frozenset[Path] = frozenset(),
) -> Plan:
    """Decide what moves where. Raises Refused (CrossDevice for another filesystem or a mount
    point) before anything could move."""
    anchors = {a.path: a for a in inventory.anchors}
    home = inventory.layout.home
    ordered = sorted(inventory.entries, key=lambda e: (_ORDER[e.group], str(e.path)))
    moves: list[Move] = []
    kept_any_in_state = False
    by_group: dict[Group, list[Entry]] = {}
    kept = {
        e.path for e in ordered if is_kept(e.group, keep_config=keep_config, keep_data=keep_data)
    }
    for entry in ordered:
        if entry.path in held:
            continue
        by_group.setdefault(entry.group, []).append(entry)
        if entry.path in kept:
            kept_any_in_state |= entry.anchor == inventory.layout.state_dir
            if entry.inside is not None and entry.inside not in kept:
                raise _kept_inside_removed(entry, inventory)
            continue
        if entry.inside is not None and entry.inside not in kept:
            continue  # it goes with the directory it is in
        _check_movable(entry, anchors[entry.anchor], home)
        moves.append(Move(entry.group, entry.path, entry.anchor))
    layout = inventory.layout
    rows = tuple(
        _row(group, items, keep_config, keep_data, layout) for group, items in by_group.items()
    )
    used = tuple(dict.fromkeys(_primary_first(moves, inventory.layout.state_dir)))
    state_dir_present = inventory.layout.state_dir in anchors
    held_in_state = any(p.parent == inventory.layout.state_dir for p in held)
    remove_state_dir = (
        state_dir_present and not inventory.unknown and not kept_any_in_state and not held_in_state
    )
    fixed = {inventory.layout.state_dir, *inventory.layout.runtime_dirs}
    db_dirs = frozenset(m.anchor for m in moves if m.group is Group.DATABASE) - fixed
    return Plan(
        tuple(moves),
        rows,
        used,
        inventory.layout.state_dir,
        remove_state_dir,
        keep_config,
        keep_data,
        db_dirs,
    )


def _check_movable(entry: Entry, anchor: Anchor, home: Path) -> None:
    if entry.dev != anchor.dev:
        raise CrossDevice(
            f"{show(entry.path, home)} is on another filesystem than "
            f"{show(entry.anchor, home)}; it cannot be moved atomically, so nothing was "
            "changed. Move it back onto the same filesystem or remove it yourself.",
            path=str(entry.path),
        )
    if entry.mount:
        raise CrossDevice(
            f"{show(entry.path, home)} is a mount point; it cannot be moved, so nothing was "
            "changed. Unmount it (or remove it yourself), then run mm uninstall again.",
            path=str(entry.path),
        )
    if anchor.trust.problem is not None:
        raise Refused(
            f"{show(anchor.path, home)} {anchor.trust.problem}, so what this command stages "
            "there could be tampered with; nothing was changed. Make it writable only by you "
            f"(for example `chmod go-w {quote(anchor.path)}`), then run mm uninstall again.",
            path=str(anchor.path),
        )


def _kept_inside_removed(entry: Entry, inventory: Inventory) -> Refused:
    home = inventory.layout.home
    assert entry.inside is not None
    return Refused(
        f"the database {show(inventory.layout.db_path, home)} is inside "
        f"{show(entry.inside, home)}, which this run removes, so it cannot be kept there; "
        "nothing was changed. Move the database out of it (and update storage.sqlite_path), "
        "or run without --keep-data.",
        path=str(entry.path),
    )


def _primary_first(moves: list[Move], state_dir: Path) -> list[Path]:
    anchors = [m.anchor for m in moves]
    return sorted(anchors, key=lambda a: a != state_dir)


def _row(
    group: Group, items: list[Entry], keep_config: bool, keep_data: bool, layout: Layout
) -> Row:
    return Row(
        group,
        min(items, key=lambda entry: _prominence(entry, layout.db_path)).path,
        len(items),
        sum(e.files for e in items),
        sum(e.bytes for e in items),
        is_kept(group, keep_config=keep_config, keep_data=keep_data),
        _places(items, layout),
    )


def _prominence(entry: Entry, db_path: Path) -> tuple[bool, bool, bool, str]:
    """The entry a row's JSON path names: the configured database, else a main entry, else
    a dir, else the first."""
    main = _is_main(entry, db_path)
    return (entry.path != db_path, not main, entry.kind != "dir", str(entry.path))


def _is_main(entry: Entry, db_path: Path) -> bool:
    """The entry a row is named by: the database (its companions go with it), config.json,
    the debounce queue; a group such as the runtime files has none."""
    name = entry.path.name
    if entry.group is Group.DATABASE:
        return entry.path == db_path or ("." in name and name.endswith(".db"))
    return name in ("config.json", "index_debounce_queue.json")


def _places(items: list[Entry], layout: Layout) -> tuple[Place, ...]:
    by_anchor: dict[Path, list[Entry]] = {}
    for entry in sorted(items, key=lambda e: e.anchor != layout.state_dir):
        by_anchor.setdefault(entry.anchor, []).append(entry)
    places = []
    for anchor, entries in by_anchor.items():
        main = [e for e in entries if _is_main(e, layout.db_path)]
        if len(entries) == 1 or main:
            named = (main or entries)[0]
            places.append(Place(named.path, named.kind == "dir"))
        else:
            places.append(Place(anchor, True))
    return tuple(places)
