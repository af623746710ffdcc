"""tree.measure and tree.remove_tree on real trees: shape, names, links, failures, stop.

Every test builds a real tree under tmp_path and compares whole snapshots: what
remains must be exactly what could not be removed, and nothing outside is touched.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.tree import MAX_KEPT_ERRORS, Removal, TreeStats, measure, remove_tree
from tests.support.snapshot import Node, diff, snapshot


def _write(path: Path | bytes, size: int) -> int:
    with open(path, "wb") as f:
        f.write(b"m" * size)
    return size


def _measure(path: Path) -> TreeStats:
    return measure(FsOps(), str(path), os.lstat(path))


def _flat(root: Path, count: int) -> int:
    """`count` files of sizes 0..96 bytes in one directory; returns the bytes written."""
    root.mkdir(parents=True)
    return sum(_write(root / f"{i:05d}.md", i % 97) for i in range(count))


def _kept(before: dict[str, Node], root: Path, failed: list[Path]) -> dict[str, Node]:
    """The part of a snapshot of `root.parent` a removal of `root` must leave: every failed
    path with everything below it, the directories that lead to it, and whatever is beside
    `root`."""
    top = root.parent
    whole = {os.path.relpath(p, top) for p in failed}
    chain = {os.path.relpath(a, top) for p in failed for a in p.parents if a.is_relative_to(root)}
    inside = os.path.relpath(root, top)
    return {
        rel: node
        for rel, node in before.items()
        if rel in whole
        or rel in chain
        or any(rel.startswith(w + "/") for w in whole)
        or not (rel == inside or rel.startswith(inside + "/"))
    }


def _assert_only_failures(removal: Removal, root: Path, failed: list[Path]) -> None:
    """Each kept error names a failed path, or an ancestor left non-empty by one."""
    allowed = {str(p) for p in failed}
    allowed |= {str(a) for p in failed for a in p.parents if a.is_relative_to(root)}
    assert removal.error_count >= len(failed)
    assert removal.errors, "failures must be reported"
    assert {path for path, _reason in removal.errors} <= allowed, removal.errors


# --- measure ------------------------------------------------------------------------------


def test_measure_counts_links_and_specials_as_entries_without_following(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _flat(outside, 50)
    root = tmp_path / "root"
    (root / "sub" / "empty").mkdir(parents=True)
    size = _write(root / "sub" / "note.md", 123)
    (root / "to-dir").symlink_to(outside)
    (root / "to-file").symlink_to(outside / "00001.md")
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    os.mkfifo(root / "fifo")
    before = snapshot(tmp_path)

    # 1 file, 4 links, 1 fifo; links and the fifo count as entries of 0 bytes
    assert _measure(root) == TreeStats(6, size)
    assert _measure(root / "to-dir") == TreeStats(1, 0)
    assert snapshot(tmp_path) == before


def test_measure_of_a_single_file_and_of_empty_directories(tmp_path: Path) -> None:
    size = _write(tmp_path / "one.md", 777)
    for rel in ("e/a/b/c", "e/d", "e/f/g"):
        (tmp_path / rel).mkdir(parents=True)

    assert _measure(tmp_path / "one.md") == TreeStats(1, size)
    assert _measure(tmp_path / "e") == TreeStats(0, 0)


def test_measure_300_levels_deep(tmp_path: Path) -> None:
    deepest = _deep(tmp_path / "deep", 300, "d")

    assert _measure(tmp_path / "deep") == TreeStats(300, 300 * 3)
    assert deepest.name == "d"


def test_measure_odd_names(tmp_path: Path) -> None:
    root, total = _odd_names(tmp_path / "odd")

    assert _measure(root) == TreeStats(len(ODD_NAMES), total)


def test_measure_counts_a_tree_deeper_than_path_max(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    _deep_by_fd(root, 300, "level-xxxxxxxxxxxxxxxx")  # about 7 kB of path at the bottom

    assert _measure(root) == TreeStats(300, 0)  # empty files


# --- remove_tree: shapes --------------------------------------------------------------------


def test_flat_directory_of_5000_files_is_measured_then_removed(tmp_path: Path) -> None:
    total = _flat(tmp_path / "flat", 5000)
    _write(tmp_path / "beside.md", 5)
    before = snapshot(tmp_path)

    stats = _measure(tmp_path / "flat")
    assert snapshot(tmp_path) == before  # measuring changes nothing
    removal = remove_tree(FsOps(), str(tmp_path / "flat"), progress=lambda f, b: None)

    assert stats == TreeStats(5000, total)
    assert (removal.files, removal.bytes, removal.errors, removal.stopped) == (
        5000,
        total,
        [],
        False,
    )
    assert snapshot(tmp_path) == {k: v for k, v in before.items() if not k.startswith("flat")}


def test_remove_300_levels_deep(tmp_path: Path) -> None:
    _deep(tmp_path / "deep", 300, "d")
    _write(tmp_path / "beside.md", 2)
    before = snapshot(tmp_path)

    removal = remove_tree(FsOps(), str(tmp_path / "deep"))

    assert (removal.files, removal.errors) == (300, [])
    assert snapshot(tmp_path) == {k: v for k, v in before.items() if not k.startswith("deep")}


def test_remove_a_tree_deeper_than_path_max(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    _deep_by_fd(root, 300, "level-xxxxxxxxxxxxxxxx")

    removal = remove_tree(FsOps(), str(root))

    assert (removal.files, removal.errors) == (300, [])
    assert os.listdir(tmp_path) == []


def test_remove_empty_directories(tmp_path: Path) -> None:
    for rel in ("e/a/b/c", "e/d", "e/f/g/h/i"):
        (tmp_path / rel).mkdir(parents=True)
    _write(tmp_path / "beside.md", 1)
    before = snapshot(tmp_path)

    removal = remove_tree(FsOps(), str(tmp_path / "e"))

    assert (removal.files, removal.errors) == (0, [])
    assert snapshot(tmp_path) == {k: v for k, v in before.items() if not k.startswith("e")}


def test_remove_odd_names(tmp_path: Path) -> None:
    root, total = _odd_names(tmp_path / "odd")

    removal = remove_tree(FsOps(), str(root), progress=lambda f, b: None)

    assert (removal.files, removal.bytes, removal.errors) == (len(ODD_NAMES), total, [])
    assert os.listdir(tmp_path) == []


def test_remove_never_follows_links_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _flat(outside / "dir", 20)
    _write(outside / "file.md", 9)
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "to-dir").symlink_to(outside / "dir")
    (root / "a" / "to-dir-slash").symlink_to(f"{outside / 'dir'}/")
    (root / "to-file").symlink_to(outside / "file.md")
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    (root / "to-root").symlink_to(root)
    outside_before = snapshot(outside)

    removal = remove_tree(FsOps(), str(root))

    assert (removal.files, removal.errors) == (6, [])
    assert not os.path.lexists(root)
    assert snapshot(outside) == outside_before


def test_remove_a_link_given_as_the_root_removes_only_the_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _flat(outside, 10)
    (tmp_path / "link").symlink_to(outside)
    outside_before = snapshot(outside)

    removal = remove_tree(FsOps(), str(tmp_path / "link"))

    assert (removal.files, removal.errors) == (1, [])
    assert not os.path.lexists(tmp_path / "link")
    assert snapshot(outside) == outside_before


def test_remove_a_missing_path_is_a_no_op(tmp_path: Path) -> None:
    removal = remove_tree(FsOps(), str(tmp_path / "absent"))

    assert (removal.files, removal.error_count, removal.stopped) == (0, 0, False)


def test_removals_share_one_tally(tmp_path: Path) -> None:
    first = _flat(tmp_path / "a", 30)
    second = _flat(tmp_path / "b", 70)
    removal = Removal()

    for name in ("a", "b"):
        remove_tree(FsOps(), str(tmp_path / name), removal=removal, progress=lambda f, b: None)

    assert (removal.files, removal.bytes, removal.errors) == (100, first + second, [])


# --- remove_tree: failures are collected, and exactly the failures remain ----------------


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[list[Path]]:
    """Mark paths immutable with chattr +i; undone afterwards. Skips where unsupported."""
    marked: list[Path] = []
    probe = tmp_path / "chattr-probe"
    probe.touch()
    if not _chattr("+i", probe):
        pytest.skip("chattr +i is not supported here (needs root and ext4/xfs/btrfs)")
    _chattr("-i", probe)
    probe.unlink()
    yield marked
    for path in marked:
        _chattr("-i", path)


def test_an_immutable_file_is_reported_and_only_its_path_remains(
    tmp_path: Path, immutable: list[Path]
) -> None:
    root = tmp_path / "root"
    _flat(root / "a" / "keep", 40)
    _flat(root / "b", 40)
    _write(root / "top.md", 3)
    stuck = root / "a" / "keep" / "00007.md"
    _chattr("+i", stuck)
    immutable.append(stuck)
    before = snapshot(tmp_path)

    removal = remove_tree(FsOps(), str(root))

    assert snapshot(tmp_path) == _kept(before, root, [stuck])
    assert removal.files == 40 + 39 + 1
    assert removal.errors[0] == (str(stuck), os.strerror(1))  # EPERM
    _assert_only_failures(removal, root, [stuck])


def test_an_immutable_directory_keeps_its_contents_and_errors_are_capped(
    tmp_path: Path, immutable: list[Path]
) -> None:
    root = tmp_path / "root"
    _flat(root / "frozen", MAX_KEPT_ERRORS + 15)
    _flat(root / "free", 25)
    frozen = root / "frozen"
    _chattr("+i", frozen)
    immutable.append(frozen)
    before = snapshot(tmp_path)

    removal = remove_tree(FsOps(), str(root))

    assert snapshot(tmp_path) == _kept(before, root, [frozen])
    assert removal.files == 25
    assert len(removal.errors) == MAX_KEPT_ERRORS
    # every file in the frozen dir failed and is counted, though only the first are kept
    assert removal.error_count >= MAX_KEPT_ERRORS + 15
    inside = [p for p, _r in removal.errors if Path(p).parent == frozen]
    assert len(inside) == MAX_KEPT_ERRORS
    assert {r for p, r in removal.errors if p in inside} == {os.strerror(1)}
    _assert_only_failures(removal, root, [frozen / f"{i:05d}.md" for i in range(35)] + [frozen])


@pytest.mark.mount
def test_a_mount_point_inside_is_not_entered(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _flat(root / "memories", 10)
    mount = root / "memories" / "mnt"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        _write(mount / "on-other-fs.md", 11)
        before = snapshot(tmp_path)

        stats = _measure(root)
        removal = remove_tree(FsOps(), str(root))

        assert stats == TreeStats(11, sum(i % 97 for i in range(10)))  # the mount is one entry
        assert snapshot(tmp_path) == _kept(before, root, [mount])
        assert removal.files == 10
        assert removal.errors[0] == (
            str(mount),
            "is a mount point of another filesystem; unmount it first",
        )
        _assert_only_failures(removal, root, [mount])
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# --- stop and progress --------------------------------------------------------------------


def test_stop_is_checked_every_1024_files_in_a_flat_directory(tmp_path: Path) -> None:
    _flat(tmp_path / "flat", 3000)
    asked = [0]

    def stop() -> bool:
        asked[0] += 1
        return asked[0] >= 2

    removal = remove_tree(FsOps(), str(tmp_path / "flat"), stop=stop)

    assert (removal.stopped, removal.files, removal.errors) == (True, 2048, [])
    assert len(os.listdir(tmp_path / "flat")) == 3000 - 2048

    rest = remove_tree(FsOps(), str(tmp_path / "flat"))  # a second run finishes the job
    assert (rest.files, rest.stopped, rest.errors) == (3000 - 2048, False, [])
    assert os.listdir(tmp_path) == []


def test_stop_after_a_directory_leaves_every_other_directory_whole(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for d in range(5):
        _flat(root / f"d{d}", 10)
    before = snapshot(tmp_path)

    removal = remove_tree(FsOps(), str(root), stop=lambda: True)

    assert (removal.stopped, removal.files, removal.errors) == (True, 10, [])
    gone = [d for d in range(5) if not (root / f"d{d}").exists()]
    assert len(gone) == 1
    expected = {k: v for k, v in before.items() if not k.startswith(f"root/d{gone[0]}")}
    assert snapshot(tmp_path) == expected, diff(expected, snapshot(tmp_path))


def test_progress_counts_rise_and_add_up(tmp_path: Path) -> None:
    root = tmp_path / "root"
    total = _flat(root / "flat", 2500)
    for d in range(4):
        total += _flat(root / "nested" / f"n{d}", 400)
    calls: list[tuple[int, int]] = []

    removal = remove_tree(FsOps(), str(root), progress=lambda f, b: calls.append((f, b)))

    assert (removal.files, removal.bytes, removal.errors) == (4100, total, [])
    assert [f for f, _b in calls] == [1024, 2048, 3072, 4096]
    assert all(b0 <= b1 for (_f0, b0), (_f1, b1) in itertools.pairwise(calls))
    assert 0 < calls[-1][1] <= total
    assert not root.exists()


# --- helpers that build trees --------------------------------------------------------------

ODD_NAMES: list[bytes] = [
    b"new\nline.md",
    b"-rf",
    b"--help",
    b"-",
    b" leading space",
    b"trailing space ",
    b"tab\there",
    b"esc\x1b[31mred",
    b"\xff\xfe not utf-8",
    b"caf\xc3\xa9.md",
    b"*?[glob]",
    b"'quote\"",
    b"$(echo x)",
    b".hidden",
    b"..dots",
    b"back\\slash",
]


def _odd_names(root: Path) -> tuple[Path, int]:
    """Every odd name as a file at the top and inside a dir that has an odd name itself."""
    total = 0
    broot = os.fsencode(root)
    os.makedirs(broot + b"/-d\n\xff")
    for i, name in enumerate(ODD_NAMES[: len(ODD_NAMES) // 2]):
        total += _write(broot + b"/" + name, i + 1)
    for i, name in enumerate(ODD_NAMES[len(ODD_NAMES) // 2 :]):
        total += _write(broot + b"/-d\n\xff/" + name, 100 + i)
    return root, total


def _deep(root: Path, levels: int, name: str) -> Path:
    """`levels` nested dirs, each with one 3-byte file; returns the deepest dir."""
    path = root
    root.mkdir()
    for _ in range(levels):
        path = path / name
        path.mkdir()
        _write(path / "f.md", 3)
    return path


def _deep_by_fd(root: Path, levels: int, name: str) -> None:
    """Like _deep with empty files, built fd-relative so the full path may pass PATH_MAX."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            os.close(os.open("f.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def _chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


class _Hooked(FsOps):
    """Installs a hook, so every call takes the per-call seam path instead of the direct one."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def before(self, op: str, target: str) -> None:
        self.ops.append(op)


def _mixed_tree(root: Path, immutable: list[Path]) -> list[Path]:
    """Flat and nested files, odd names, links, a fifo, and two immutable files."""
    _flat(root / "flat", 3000)
    _flat(root / "a" / "b" / "c", 50)
    _write(root / "a" / "-lead ing", 5)
    _write(os.fsencode(root / "a") + b"/bad-\xff", 6)
    os.symlink("/etc/passwd", root / "a" / "link")
    os.symlink("missing", root / "flat" / "dangling")
    os.mkfifo(root / "a" / "fifo")
    stuck = [root / "flat" / "01234.md", root / "a" / "b" / "c" / "00002.md"]
    for path in stuck:
        _chattr("+i", path)
        immutable.append(path)
    return stuck


def test_the_direct_path_and_the_seam_path_agree(tmp_path: Path, immutable: list[Path]) -> None:
    """Without hooks, measure and remove_tree call the OS directly; with a hook, every call
    goes through the seam. Both must count, remove, fail and report exactly alike."""
    results = []
    for name, fs in (("direct", FsOps()), ("seam", _Hooked())):
        root = tmp_path / name / "root"
        stuck = _mixed_tree(root, immutable)
        before = snapshot(root.parent)
        stats = measure(fs, str(root), os.lstat(root))
        removal = remove_tree(fs, str(root))
        assert snapshot(root.parent) == _kept(before, root, stuck)
        errors = sorted((os.path.relpath(p, root), reason) for p, reason in removal.errors)
        results.append((stats, removal.files, removal.bytes, removal.error_count, errors))
        if isinstance(fs, _Hooked):  # the seam saw every call, once per entry
            assert fs.ops.count("unlink") == 3055
            assert fs.ops.count("lstat") >= 3055
    direct, seam = results
    assert direct == seam
    assert direct == (
        TreeStats(3055, _bytes(3000) + _bytes(50) + 5 + 6),
        3053,  # every entry but the two immutable files
        0,  # bytes are only looked up for a progress bar
        3,
        [
            (".", os.strerror(39)),  # ENOTEMPTY, for the root only: the cause is named below
            ("a/b/c/00002.md", os.strerror(1)),  # EPERM
            ("flat/01234.md", os.strerror(1)),
        ],
    )


def _bytes(count: int) -> int:
    return sum(i % 97 for i in range(count))


class _Targets(FsOps):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def before(self, op: str, target: str) -> None:
        self.calls.append((op, target))


def test_hooks_see_full_paths_for_directory_relative_calls(tmp_path: Path) -> None:
    """remove_tree calls lstat, open, unlink and rmdir relative to a directory fd; a hook
    must still see the full path of each (a recorder or a fault matches on it)."""
    root = tmp_path / "root"
    _deep(root, 3, "d")
    _write(root / "top.md", 1)
    fs = _Targets()
    remove_tree(fs, str(root))
    d = f"{root}/d"
    mutations = [(op, t) for op, t in fs.calls if op in ("unlink", "rmdir")]
    assert sorted(mutations) == sorted(
        [
            ("unlink", f"{root}/top.md"),
            ("unlink", f"{d}/f.md"),
            ("unlink", f"{d}/d/f.md"),
            ("unlink", f"{d}/d/d/f.md"),
            ("rmdir", f"{d}/d/d"),
            ("rmdir", f"{d}/d"),
            ("rmdir", d),
            ("rmdir", str(root)),
        ]
    )
    assert ("lstat", f"{d}/d") in fs.calls
    assert ("open", f"{d}/d/d") in fs.calls
