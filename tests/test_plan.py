"""build_plan by tables: Inventory values in, Plan values out; no disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from memtomem.uninstall.errors import CrossDevice
from memtomem.uninstall.groups import Group
from memtomem.uninstall.inventory import Anchor, Entry, Inventory, Role, Stray
from memtomem.uninstall.layout import Layout
from memtomem.uninstall.plan import Move, Place, Plan, Row, build_plan

HOME = Path("/h")
STATE = HOME / ".memtomem"
DB_DIR = Path("/data")
RUN = Path("/run/mm")
LAYOUT = Layout(
    home=HOME,
    state_dir=STATE,
    db_path=DB_DIR / "custom.db",
    db_source="~/.memtomem/config.json",
    runtime_dirs=(RUN,),
    cwd=HOME,
)

DB = DB_DIR / "custom.db"
WAL = DB_DIR / "custom.db-wal"
CONFIG = STATE / "config.json"
CONFIG_D = STATE / "config.d"
MEMORIES = STATE / "memories"
UPLOADS = STATE / "uploads"
SESSION = STATE / ".current_session"
PID_FILE = RUN / "server-0123456789abcdef.pid"
SENTINEL = RUN / "instances" / "1-1-c297a376c157ebb9-4f4c68fe-c872ece7.lock"


def entry(
    group: Group, path: Path, *, kind: str = "file", files: int = 1, size: int = 0, dev: int = 1
) -> Entry:
    anchor = next(a for a in (STATE, DB_DIR, RUN) if path.is_relative_to(a))
    return Entry(group, path, anchor, kind, dev, files, size, Role.PLAIN)


# Deliberately out of order: the plan orders by group, then path.
ENTRIES = (
    entry(Group.RUNTIME, PID_FILE, size=20),
    entry(Group.UPLOADS, UPLOADS, kind="dir", size=3),
    entry(Group.RUNTIME, SESSION, size=9),
    entry(Group.MEMORIES, MEMORIES, kind="dir", files=4, size=13),
    entry(Group.CONFIG, CONFIG, size=34),
    entry(Group.DATABASE, WAL, size=300),
    entry(Group.CONFIG, CONFIG_D, kind="dir", size=24),
    entry(Group.DATABASE, DB, size=4096),
    entry(Group.RUNTIME, SENTINEL),
)
ANCHORS = (Anchor(STATE, 1), Anchor(DB_DIR, 1), Anchor(RUN, 1))


def inventory(
    entries: tuple[Entry, ...] = ENTRIES,
    anchors: tuple[Anchor, ...] = ANCHORS,
    unknown: tuple[Stray, ...] = (),
) -> Inventory:
    return Inventory(LAYOUT, anchors, entries, unknown, RUN / "lifecycle.lock")


ALL_MOVES = {
    Group.DATABASE: [Move(Group.DATABASE, DB, DB_DIR), Move(Group.DATABASE, WAL, DB_DIR)],
    Group.CONFIG: [Move(Group.CONFIG, CONFIG_D, STATE), Move(Group.CONFIG, CONFIG, STATE)],
    Group.MEMORIES: [Move(Group.MEMORIES, MEMORIES, STATE)],
    Group.UPLOADS: [Move(Group.UPLOADS, UPLOADS, STATE)],
    Group.RUNTIME: [
        Move(Group.RUNTIME, SESSION, STATE),
        Move(Group.RUNTIME, SENTINEL, RUN),
        Move(Group.RUNTIME, PID_FILE, RUN),
    ],
}


# Where each row's entries are, as the report names them: the main entry (the database,
# config.json) or the only one in its directory, else the directory; the state dir first.
RUNTIME_PLACES = (Place(SESSION, False), Place(RUN, True))


def rows(kept: set[Group]) -> tuple[Row, ...]:
    return (
        Row(Group.DATABASE, DB, 2, 2, 4396, Group.DATABASE in kept, (Place(DB, False),)),
        Row(Group.CONFIG, CONFIG, 2, 2, 58, Group.CONFIG in kept, (Place(CONFIG, False),)),
        Row(Group.MEMORIES, MEMORIES, 1, 4, 13, Group.MEMORIES in kept, (Place(MEMORIES, True),)),
        Row(Group.UPLOADS, UPLOADS, 1, 1, 3, False, (Place(UPLOADS, True),)),
        Row(Group.RUNTIME, SESSION, 3, 3, 29, False, RUNTIME_PLACES),
    )


# keep_config, keep_data -> (groups kept, anchors, remove_state_dir, files, bytes to delete)
FLAG_TABLE = {
    (False, False): (set(), (STATE, DB_DIR, RUN), True, 12, 4499),
    (True, False): ({Group.CONFIG}, (STATE, DB_DIR, RUN), False, 10, 4441),
    (False, True): ({Group.DATABASE, Group.MEMORIES}, (STATE, RUN), False, 6, 90),
    (True, True): ({Group.DATABASE, Group.CONFIG, Group.MEMORIES}, (STATE, RUN), False, 4, 32),
}


@pytest.mark.parametrize(("keep_config", "keep_data"), list(FLAG_TABLE))
def test_keep_flags_decide_rows_and_moves(keep_config: bool, keep_data: bool) -> None:
    kept, anchors, remove_state_dir, files, size = FLAG_TABLE[keep_config, keep_data]
    plan = build_plan(inventory(), keep_config=keep_config, keep_data=keep_data)
    moves = tuple(m for group, ms in ALL_MOVES.items() if group not in kept for m in ms)
    # The custom DB dir, when its database moves, is the one anchor only the config names.
    db_dirs = frozenset({DB_DIR} if DB_DIR in anchors else ())
    expected = Plan(
        moves, rows(kept), anchors, STATE, remove_state_dir, keep_config, keep_data, db_dirs
    )
    assert plan == expected
    assert (plan.files, plan.bytes) == (files, size)


def test_a_kept_database_outside_the_state_dir_does_not_keep_the_state_dir() -> None:
    entries = tuple(e for e in ENTRIES if e.group in (Group.DATABASE, Group.UPLOADS))
    plan = build_plan(inventory(entries), keep_config=False, keep_data=True)
    assert plan.moves == (Move(Group.UPLOADS, UPLOADS, STATE),)
    assert plan.anchors == (STATE,)
    assert plan.remove_state_dir is True


@pytest.mark.parametrize(
    ("held", "row_path", "row_bytes", "places", "remove_state_dir"),
    [
        (PID_FILE, SESSION, 9, (Place(SESSION, False), Place(SENTINEL, False)), True),
        (SESSION, SENTINEL, 20, (Place(RUN, True),), False),
    ],
    ids=["held-in-runtime-dir", "held-in-state-dir"],
)
def test_held_paths_are_neither_moved_nor_counted(
    held: Path,
    row_path: Path,
    row_bytes: int,
    places: tuple[Place, ...],
    remove_state_dir: bool,
) -> None:
    plan = build_plan(inventory(), keep_config=False, keep_data=False, held=frozenset({held}))
    assert plan.moves == tuple(m for ms in ALL_MOVES.values() for m in ms if m.src != held)
    runtime = Row(Group.RUNTIME, row_path, 2, 2, row_bytes, False, places)
    assert plan.rows == rows(set())[:-1] + (runtime,)
    assert plan.remove_state_dir is remove_state_dir


def test_a_row_names_every_directory_its_entries_are_in() -> None:
    """A database with companions in the state dir too, and runtime files only in the state
    dir: each directory once, the state dir first, by its main entry where it has one."""
    default_db = STATE / "memtomem.db"
    entries = (
        entry(Group.DATABASE, DB),
        entry(Group.DATABASE, WAL),
        entry(Group.DATABASE, STATE / "memtomem.db-wal"),
        entry(Group.DATABASE, STATE / "memtomem.provenance_key"),
        entry(Group.DATABASE, default_db),
        entry(Group.RUNTIME, SESSION),
        entry(Group.RUNTIME, STATE / ".server.pid"),
        entry(Group.DEBOUNCE_QUEUE, STATE / "index_debounce_queue.json.lock"),
        entry(Group.DEBOUNCE_QUEUE, STATE / "index_debounce_queue.json"),
    )
    plan = build_plan(inventory(entries), keep_config=False, keep_data=False)
    assert [(r.group, r.places) for r in plan.rows] == [
        (Group.DATABASE, (Place(default_db, False), Place(DB, False))),
        (Group.DEBOUNCE_QUEUE, (Place(STATE / "index_debounce_queue.json", False),)),
        (Group.RUNTIME, (Place(STATE, True),)),
    ]


@pytest.mark.parametrize(
    ("path", "anchor_shown"),
    [(MEMORIES, "~/.memtomem"), (DB, "/data"), (PID_FILE, "/run/mm")],
    ids=["state-dir", "db-dir", "runtime-dir"],
)
def test_an_entry_on_another_device_is_refused_naming_it(path: Path, anchor_shown: str) -> None:
    entries = tuple(
        e if e.path != path else entry(e.group, path, kind=e.kind, dev=2) for e in ENTRIES
    )
    with pytest.raises(CrossDevice) as caught:
        build_plan(inventory(entries), keep_config=False, keep_data=False)
    shown = str(path).replace(str(HOME), "~", 1) if path.is_relative_to(HOME) else str(path)
    assert caught.value.path == str(path)
    assert caught.value.message.startswith(
        f"{shown} is on another filesystem than {anchor_shown}; it cannot be moved atomically"
    )
    assert caught.value.exit_code == 2


def test_a_kept_entry_on_another_device_is_fine() -> None:
    entries = tuple(
        e if e.path != MEMORIES else entry(Group.MEMORIES, MEMORIES, dev=2) for e in ENTRIES
    )
    plan = build_plan(inventory(entries), keep_config=False, keep_data=True)
    assert Move(Group.MEMORIES, MEMORIES, STATE) not in plan.moves


@pytest.mark.parametrize(("keep_data", "refused"), [(False, True), (True, False)])
def test_an_entry_that_is_a_mount_point_is_refused_unless_kept(
    keep_data: bool, refused: bool
) -> None:
    """A mount point on the same device (a bind mount) cannot be renamed into staging."""
    mounted = Entry(Group.MEMORIES, MEMORIES, STATE, "dir", 1, 1, 0, Role.PLAIN, mount=True)
    entries = tuple(mounted if e.path == MEMORIES else e for e in ENTRIES)
    if not refused:
        plan = build_plan(inventory(entries), keep_config=False, keep_data=keep_data)
        assert Move(Group.MEMORIES, MEMORIES, STATE) not in plan.moves
        return
    with pytest.raises(CrossDevice) as caught:
        build_plan(inventory(entries), keep_config=False, keep_data=keep_data)
    assert (caught.value.path, caught.value.exit_code) == (str(MEMORIES), 2)
    assert caught.value.message == (
        "~/.memtomem/memories is a mount point; it cannot be moved, so nothing was changed. "
        "Unmount it (or remove it yourself), then run mm uninstall again."
    )


def test_a_stranger_keeps_the_state_dir() -> None:
    stranger = (Stray(STATE / "my-notes.txt", "file"),)
    plan = build_plan(inventory(unknown=stranger), keep_config=False, keep_data=False)
    assert plan.moves == tuple(m for ms in ALL_MOVES.values() for m in ms)
    assert plan.remove_state_dir is False


def test_no_state_dir_on_disk_means_none_to_remove() -> None:
    entries = tuple(e for e in ENTRIES if e.anchor != STATE)
    plan = build_plan(inventory(entries, ANCHORS[1:]), keep_config=False, keep_data=False)
    assert plan.anchors == (DB_DIR, RUN)
    assert plan.remove_state_dir is False


def test_anchors_put_the_state_dir_first_even_when_the_database_moves_first() -> None:
    entries = tuple(e for e in ENTRIES if e.group in (Group.DATABASE, Group.RUNTIME))
    plan = build_plan(inventory(entries), keep_config=False, keep_data=False)
    assert plan.moves[0].anchor == DB_DIR
    assert plan.anchors == (STATE, DB_DIR, RUN)


def test_nothing_found_plans_nothing_but_the_empty_state_dir() -> None:
    plan = build_plan(inventory(()), keep_config=False, keep_data=False)
    assert plan == Plan((), (), (), STATE, True, False, False)
    assert (plan.files, plan.bytes) == (0, 0)
