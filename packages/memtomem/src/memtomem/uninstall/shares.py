"""Two processes for the two walks that touch every file: the inventory's measure and the
delete of a committed run. This process and a forked helper each take a share.

Measuring: both walk every directory; each lstats and counts only its share of the entries,
so the sum is exact. If the helper fails in any way, this process measures again alone.

Deleting, best effort:

Once a run is COMMITTED, everything in its staging dirs goes. On a machine with two cores a
forked child unlinks its share of the files while this process unlinks the other share:
both walk the same directories in the same order and each small directory goes whole to
the side that locks it first (a flock on its fd, dropped when the walk closes it), so the
side that is ahead takes the next one; a large flat directory is split by a hash of each
name, and the roots that are single files (the database) go to the helper. Neither
removes a directory. Afterwards the ordinary sequential pass
(tree.remove_tree) removes what is left, the directories and anything a share missed, and
is the only one that reports errors. So the helper may fail at anything or be killed without
changing the outcome (on Linux it dies with its parent): it only unlinks non-directories
among and below the roots it is given, below a root directory-fd-relative, never following
a link and never entering another filesystem.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import struct
import sys
import time
import zlib
from collections.abc import Callable

from memtomem.uninstall import system
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.system import Mounts, is_mount
from memtomem.uninstall.tree import BATCH, CHUNK, Progress, Removal, TreeStats, crosses, measure

MIN_FILES = 5_000  # below this, the second worker saves less than a few milliseconds
LARGE_DIR_BYTES = 256 * 1024  # an ext4 directory this large holds some 8,000 entries or more
_PR_SET_PDEATHSIG = 1
_DIR_FLAGS = os.O_RDONLY | system.O_DIRECTORY | system.O_NOFOLLOW
_REPORT = struct.Struct("=qq")  # files and bytes removed so far, sent by the helper
_ROOT_FILES_SIDE = 1  # the helper: its unlink of the database overlaps this process's share


def worth_it(fs: FsOps, files: int) -> bool:
    """Whether to split a delete: a large one, on two cores, and no seam hooks (a hooked seam
    must see every call, in one process)."""
    return files >= MIN_FILES and can_split(fs)


def can_split(fs: FsOps) -> bool:
    if fs.hooked or system.IS_WINDOWS or not hasattr(os, "fork"):
        return False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) >= 2


def measure_roots(
    fs: FsOps,
    roots: list[tuple[str, os.stat_result]],
    mounts: Mounts = frozenset(),
) -> list[TreeStats]:
    """tree.measure of each root, the directories shared with a helper when that can help.
    Exactly what tree.measure returns: on any trouble with the helper, measured again here."""

    def alone() -> list[TreeStats]:
        return [measure(fs, path, st, mounts) for path, st in roots]

    if not can_split(fs) or not any(stat.S_ISDIR(st.st_mode) for _path, st in roots):
        return alone()
    parent = os.getpid()
    forked = _fork_with_pipe()
    if forked is None:
        return alone()
    pid, read_end, write_end = forked
    if pid == 0:
        _measuring_helper(roots, mounts, read_end, write_end, parent)
    os.close(write_end)
    finished = False
    try:
        mine = [_measure_share(path, st, 0, mounts) for path, st in roots]
        data = _read_all(read_end)
        _pid, status = os.waitpid(pid, 0)
        finished = True
    finally:
        if not finished:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        os.close(read_end)
    if status != 0 or len(data) != _REPORT.size * len(roots):
        return alone()
    theirs = [_REPORT.unpack_from(data, i * _REPORT.size) for i in range(len(roots))]
    return [TreeStats(a.files + f, a.bytes + b) for a, (f, b) in zip(mine, theirs, strict=True)]


def _measuring_helper(
    roots: list[tuple[str, os.stat_result]],
    mounts: Mounts,
    read_end: int,
    write_end: int,
    parent: int,
) -> None:
    status = 1
    try:
        _die_with(parent)
        _detach(read_end)
        data = b"".join(
            _REPORT.pack(t.files, t.bytes)
            for t in (_measure_share(p, st, 1, mounts) for p, st in roots)
        )
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
        status = 0
    finally:
        os._exit(status)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _measure_share(path: str, st: os.stat_result, me: int, mounts: Mounts) -> TreeStats:
    """`me`'s share of tree.measure(path): the same counting rules, for the entries it owns."""
    if not stat.S_ISDIR(st.st_mode) or is_mount(st, mounts):
        size = st.st_size if stat.S_ISREG(st.st_mode) else 0
        return TreeStats(1, size) if me == 0 else TreeStats(0, 0)
    totals = [0, 0]
    _walk(
        path,
        st.st_dev,
        lambda fd, rel, subdirs: _count_share(fd, rel, me, mounts, totals, subdirs),
        mounts,
    )
    return TreeStats(totals[0], totals[1])


def _count_share(
    fd: int,
    rel: str,
    me: int,
    mounts: Mounts,
    totals: list[int],
    subdirs: list[str],
) -> bool:
    """Like tree._count, for `me`'s entries; subdirectories are collected by both sides (a
    directory is counted by neither, and both must walk into it)."""
    try:
        dst = os.fstat(fd)
    except OSError:
        return True
    split, device = dst.st_size >= LARGE_DIR_BYTES, dst.st_dev
    whole = _owner(rel) == me
    files = size = 0
    isreg, isdir = stat.S_ISREG, stat.S_ISDIR
    try:
        with os.scandir(fd) as listing:
            for entry in listing:
                mine = (_owner(entry.name) == me) if split else whole
                if not mine and not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    est = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                mode = est.st_mode
                if isdir(mode) and not crosses(est, device, mounts):
                    subdirs.append(entry.name)
                elif mine:
                    files += 1
                    size += est.st_size if isreg(mode) else 0
    except OSError:
        pass
    totals[0] += files
    totals[1] += size
    return True


Root = tuple[int, str, str]  # a staging dir held open, its path, and an item's path in it


def delete_shares(
    roots: list[Root],
    removal: Removal,
    *,
    stop: Callable[[], bool],
    progress: Progress | None,
    mounts: Mounts = frozenset(),
) -> None:
    """Unlink the files below `roots` in two processes; add what both removed to `removal`.
    Sets removal.stopped when `stop` asked for it (the helper is then killed). Directories
    in `mounts` (mount points by device and inode) are not entered."""
    parent = os.getpid()
    forked = _fork_with_pipe()
    if forked is None:
        return
    pid, read_end, write_end = forked
    sizes = progress is not None
    if pid == 0:  # the helper: never returns
        _helper(roots, read_end, write_end, sizes=sizes, parent=parent, mounts=mounts)
    os.close(write_end)
    os.set_blocking(read_end, False)
    helper = [0, 0]
    mine = Removal()

    def report(files: int, size: int) -> None:
        _drain(read_end, helper)  # always: a full pipe would block the helper
        if progress is not None:
            progress(removal.files + files + helper[0], removal.bytes + size + helper[1])

    finished = False
    try:
        _unlink_share(roots, 0, mine, stop=stop, report=report, sizes=sizes, mounts=mounts)
        while not mine.stopped and not finished:  # wait for the helper, still stoppable
            select.select([read_end], [], [], 0.05)
            finished = os.waitpid(pid, os.WNOHANG)[0] != 0
            report(mine.files, mine.bytes)
            mine.stopped = not finished and stop()
    finally:
        if not finished:
            _stop_helper(pid, read_end, helper)
        os.set_blocking(read_end, True)
        _drain(read_end, helper)
        os.close(read_end)
    removal.files += mine.files + helper[0]
    removal.bytes += mine.bytes + helper[1]
    removal.stopped = mine.stopped


def _fork_with_pipe() -> tuple[int, int, int] | None:
    """A pipe, then a fork: (pid, read end, write end), pid 0 in the child. None, with
    nothing left open, when either cannot be made (the caller then works alone)."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    return pid, read_end, write_end


def _stop_helper(pid: int, read_end: int, helper: list[int]) -> None:
    """Ask the helper to stop (SIGUSR1): it finishes its current chunk and reports its exact
    count. One that does not end within a few seconds is killed (its last chunk uncounted)."""
    deadline = time.monotonic() + 5
    try:
        os.kill(pid, signal.SIGUSR1)
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            select.select([read_end], [], [], 0.01)
            _drain(read_end, helper)
    except ChildProcessError:
        return
    _reap(pid)


def _helper(
    roots: list[Root],
    read_end: int,
    write_end: int,
    *,
    sizes: bool,
    parent: int,
    mounts: Mounts,
) -> None:
    status = 1
    try:
        stopping = [False]
        signal.signal(signal.SIGUSR1, lambda _sig, _frame: stopping.__setitem__(0, True))
        _die_with(parent)
        _detach(read_end)
        done = Removal()

        def report(files: int, size: int) -> None:
            try:
                os.write(write_end, _REPORT.pack(files, size))
            except OSError:
                pass

        def stopped() -> bool:
            return stopping[0]

        _unlink_share(roots, 1, done, stop=stopped, report=report, sizes=sizes, mounts=mounts)
        report(done.files, done.bytes)
        status = 0
    finally:
        os._exit(status)


def _die_with(parent: int) -> None:
    """A killed run takes its helper with it (Linux: PR_SET_PDEATHSIG), so the next run can
    start at once and finish the delete. Elsewhere an orphaned helper finishes its share,
    keeping the run lock it inherited until it ends."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError, ImportError):
            pass
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


def _detach(read_end: int) -> None:
    """In a helper: no stdio, and the signals a terminal sends its whole process group
    ignored, since the run decides when to stop and asks for an exact count (a killed run
    takes its helper along). It never prints; and if its parent is killed, it must not keep
    the caller's pipes open (a caller reading them would wait for the helper's end)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    os.close(read_end)
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    if null > 2:
        os.close(null)


def _drain(read_end: int, into: list[int]) -> None:
    """Read the helper's reports; keep the latest (they are cumulative)."""
    buffered = b""
    while True:
        try:
            chunk = os.read(read_end, 64 * _REPORT.size)
        except BlockingIOError:
            break
        except OSError:
            break
        if not chunk:
            break
        buffered += chunk
    whole = len(buffered) - len(buffered) % _REPORT.size
    if whole:
        into[0], into[1] = _REPORT.unpack(buffered[whole - _REPORT.size : whole])


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except InterruptedError:  # pragma: no cover - Python retries EINTR itself
            continue


def _owner(name: str) -> int:
    return zlib.crc32(name.encode("utf-8", "surrogateescape")) % 2


def _unlink_share(
    roots: list[Root],
    me: int,
    out: Removal,
    *,
    stop: Callable[[], bool],
    report: Progress,
    sizes: bool,
    mounts: Mounts = frozenset(),
) -> None:
    """Unlink the non-directories that are `me`'s share: the helper first takes the roots
    that are single files (the database among them, often the dearest unlink of all), then
    both walk every root that is a directory. Roots are reached from their staging dir's
    descriptor, never through a link."""

    def visit(fd: int, rel: str, subdirs: list[str]) -> bool:
        _clear(fd, rel, me, subdirs, out, stop, report, sizes)
        return not out.stopped

    trees = []
    opened: list[int] = []
    try:
        for staging_fd, _path, rel in roots:
            *parents, name = rel.split("/")
            parent = _open_below(staging_fd, parents, opened)
            if parent is None:
                continue
            try:
                st = os.lstat(name, dir_fd=parent)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                trees.append((parent, name, st.st_dev))
            elif me == _ROOT_FILES_SIDE:
                _unlink_root(parent, name, st, out, sizes)
        for parent, name, device in trees:
            if not _walk((parent, name), device, visit, mounts):
                return
    finally:
        for fd in opened:
            os.close(fd)


def _open_below(fd: int, parts: list[str], opened: list[int]) -> int | None:
    """The directory `parts` below `fd`, without following links; None if it cannot be
    opened (the sequential pass then reports the item)."""
    for part in parts:
        try:
            fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            return None
        opened.append(fd)
    return fd


def _unlink_root(parent: int, name: str, st: os.stat_result, out: Removal, sizes: bool) -> None:
    """Unlink a root that is not a directory (a link itself, never its target)."""
    try:
        os.unlink(name, dir_fd=parent)
    except OSError:
        return  # the sequential pass retries and reports it
    out.files += 1
    out.bytes += st.st_size if sizes and stat.S_ISREG(st.st_mode) else 0


Visit = Callable[[int, str, list[str]], bool]


def _walk(
    root: str | tuple[int, str], device: int, visit: Visit, mounts: Mounts = frozenset()
) -> bool:
    """Call visit(fd, relative path, subdirs) for each directory of the tree at `root`, depth
    first, directory-fd-relative, never through a link, into another filesystem or into a
    mount point in `mounts`; `visit` adds the names of the subdirectories to enter. False
    when a visit asked to stop."""
    stack: list[tuple[int, str, list[str]]] = []
    try:
        parent, name = (None, root) if isinstance(root, str) else root
        if not _enter(stack, name, parent, "", (device, mounts), visit):
            return False
        while stack:
            parent, rel, subdirs = stack[-1]
            if not subdirs:
                os.close(stack.pop()[0])
                continue
            name = subdirs.pop()
            if not _enter(stack, name, parent, f"{rel}/{name}", (device, mounts), visit):
                return False
    finally:
        for fd, _rel, _subdirs in stack:
            os.close(fd)
    return True


def _enter(
    stack: list[tuple[int, str, list[str]]],
    name: str,
    parent: int | None,
    rel: str,
    where: tuple[int, Mounts],
    visit: Visit,
) -> bool:
    """Open one directory, push it and visit it; one that cannot be opened, is on another
    filesystem than `where` names or is one of its mount points is skipped. False when the
    visit asked to stop."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError:
        return True
    stack.append((fd, rel, []))  # on the stack first: the walk's finally closes it
    device, mounts = where
    try:
        st = os.fstat(fd)
        inside = not crosses(st, device, mounts)
    except OSError:
        inside = False
    return visit(fd, rel, stack[-1][2]) if inside else True


def _clear(
    fd: int,
    rel: str,
    me: int,
    subdirs: list[str],
    out: Removal,
    stop: Callable[[], bool],
    report: Progress,
    sizes: bool,
) -> None:
    """Unlink `me`'s share of one directory's files; collect its subdirectories."""
    try:
        st = os.fstat(fd)
    except OSError:
        return
    split = st.st_size >= LARGE_DIR_BYTES  # both share it, name by name
    whole = not split and _claim(fd, rel, me)
    if not split and not whole and st.st_nlink == 2:
        return  # the other side's leaf directory (ext4, xfs: 2 links = no subdirectories)
    batch: list[tuple[int, str]] = []
    try:
        with os.scandir(fd) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                elif (_owner(entry.name) == me) if split else whole:
                    batch.append((entry.inode(), entry.name))
                    if len(batch) >= BATCH:
                        _unlink_batch(fd, batch, out, stop, report, sizes)
                        batch = []
                        if out.stopped:
                            return
    except OSError:
        pass  # unreadable, or failed mid-read: the sequential pass reports it
    _unlink_batch(fd, batch, out, stop, report, sizes)


def _claim(fd: int, rel: str, me: int) -> bool:
    """Whether this side unlinks the files of a directory: the side that locks it first.
    A directory seen again after the other side let go of it holds only what that side
    could not unlink, so trying those again costs little. Without flock, a hash decides."""
    try:
        return system.try_flock(fd, exclusive=True)
    except OSError:
        return _owner(rel) == me


def _unlink_batch(
    fd: int,
    batch: list[tuple[int, str]],
    out: Removal,
    stop: Callable[[], bool],
    report: Progress,
    sizes: bool,
) -> None:
    batch.sort()  # inode order, as remove_tree
    unlink, lstat = os.unlink, os.lstat
    for _inode, name in batch:
        size = 0
        if sizes:
            try:
                st = lstat(name, dir_fd=fd)
                size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            except OSError:
                pass
        try:
            unlink(name, dir_fd=fd)
        except OSError:
            continue  # gone, or failed: the sequential pass retries and reports it
        out.files += 1
        out.bytes += size
        if out.files % CHUNK == 0:
            report(out.files, out.bytes)
            if stop():
                out.stopped = True
                return
