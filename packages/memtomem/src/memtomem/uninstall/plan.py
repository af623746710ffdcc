"""Pure: (Inventory, liveness, keep flags) -> Plan. No I/O; table-tested."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memtomem.uninstall.display import quote, show
from memtomem.uninstall.errors import CrossDevice, Refused
from memtomem.uninstall.groups import Group, is_kept
from memtomem.uninstall.inventory import Anchor, Entry, Inventory

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
class Row:
    """One report row: a group's main path, its totals, and whether it is kept."""

    group: Group
    path: Path
    entries: int
    files: int
    bytes: int
    kept: bool


@dataclass(frozen=True)
class Plan:
    moves: tuple[Move, ...]
    rows: tuple[Row, ...]
    anchors: tuple[Path, ...]
    state_dir: Path
    remove_state_dir: bool
    keep_config: bool
    keep_data: bool

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
    rows = tuple(_row(group, items, keep_config, keep_data) for group, items in by_group.items())
    used = tuple(dict.fromkeys(_primary_first(moves, inventory.layout.state_dir)))
    state_dir_present = inventory.layout.state_dir in anchors
    held_in_state = any(p.parent == inventory.layout.state_dir for p in held)
    remove_state_dir = (
        state_dir_present and not inventory.unknown and not kept_any_in_state and not held_in_state
    )
    return Plan(
        tuple(moves),
        rows,
        used,
        inventory.layout.state_dir,
        remove_state_dir,
        keep_config,
        keep_data,
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


def _row(group: Group, items: list[Entry], keep_config: bool, keep_data: bool) -> Row:
    return Row(
        group,
        min(items, key=_prominence).path,
        len(items),
        sum(e.files for e in items),
        sum(e.bytes for e in items),
        is_kept(group, keep_config=keep_config, keep_data=keep_data),
    )


def _prominence(entry: Entry) -> tuple[int, int, str]:
    """The entry a report row is named by: the DB or config.json, else a dir, else the first."""
    name = entry.path.name
    main = name == "config.json" or (
        entry.group is Group.DATABASE and "." in name and name.endswith(".db")
    )
    return (0 if main else 1, 0 if entry.kind == "dir" else 1, str(entry.path))
