"""Streaming walks: measure a tree and remove a tree, in memory flat in its size.

Both keep one open directory per level and nothing per file, never follow links, and
never cross into another filesystem.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from memtomem.uninstall.fsops import FsOps, Listing, stat_entry

MAX_KEPT_ERRORS = 20


@dataclass(frozen=True)
class TreeStats:
    files: int
    bytes: int


def measure(fs: FsOps, path: str, st: os.stat_result) -> TreeStats:
    """Count non-directory entries and their bytes below (and including) `path`.

    Directory-fd-relative, like remove_tree, so depth is bounded by descriptors, not PATH_MAX.
    """
    if not stat.S_ISDIR(st.st_mode):
        return TreeStats(1, st.st_size if stat.S_ISREG(st.st_mode) else 0)
    files = size = 0
    stack: list[tuple[int, Listing]] = []
    _push(fs, stack, path, None)
    try:
        while stack:
            fd, listing = stack[-1]
            try:
                entry = next(listing, None)
            except OSError:
                entry = None
            if entry is None:
                stack.pop()
                listing.close()
                os.close(fd)
                continue
            try:
                est = stat_entry(fs, entry)
            except OSError:
                continue
            if not stat.S_ISDIR(est.st_mode):
                files += 1
                size += est.st_size if stat.S_ISREG(est.st_mode) else 0
            elif est.st_dev != st.st_dev:
                files += 1  # a mount point: counted, never entered
            else:
                _push(fs, stack, entry.name, fd)
    finally:
        for fd, listing in stack:
            listing.close()
            os.close(fd)
    return TreeStats(files, size)


def _push(fs: FsOps, stack: list[tuple[int, Listing]], name: str, dir_fd: int | None) -> None:
    try:
        fd = fs.open_dir(name, dir_fd=dir_fd)
    except OSError:
        return
    try:
        stack.append((fd, fs.scandir(fd)))
    except OSError:
        os.close(fd)


@dataclass
class Removal:
    """What a removal did. Errors are capped; `error_count` counts them all."""

    files: int = 0
    bytes: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    error_count: int = 0
    stopped: bool = False

    def fail(self, path: str, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append((path, reason))


Progress = Callable[[int, int], None]


@dataclass
class _Frame:
    fd: int
    path: str
    entries: Listing
    name: str
    subdirs: list[str] = field(default_factory=list)


def remove_tree(
    fs: FsOps,
    path: str,
    *,
    stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    removal: Removal | None = None,
) -> Removal:
    """Delete `path` and everything below it, directory-fd-relative, collecting errors."""
    out = removal if removal is not None else Removal()
    try:
        st = fs.lstat(path)
    except FileNotFoundError:
        return out
    except OSError as exc:
        out.fail(path, _reason(exc))
        return out
    if not stat.S_ISDIR(st.st_mode):
        _unlink(fs, path, None, path, st.st_size if stat.S_ISREG(st.st_mode) else 0, out)
        return out
    try:
        top = fs.open_dir(path)
    except OSError as exc:
        out.fail(path, _reason(exc))
        return out
    try:
        listing = fs.scandir(top)
    except OSError as exc:
        os.close(top)
        out.fail(path, _reason(exc))
        return out
    stack = [_Frame(top, path, listing, "")]
    try:
        _drain(fs, stack, st.st_dev, out, stop, progress)
    finally:
        for frame in stack:
            frame.entries.close()
            os.close(frame.fd)
    if not out.stopped:
        try:
            fs.rmdir(path)
        except OSError as exc:
            out.fail(path, _reason(exc))
    return out


# Unlinking in inode order keeps the filesystem's inode-table writes local: measured on
# ext4 it halves the time for a large directory. (inode, name) batches bound the memory.
BATCH = 32_768


def _drain(
    fs: FsOps,
    stack: list[_Frame],
    device: int,
    out: Removal,
    stop: Callable[[], bool],
    progress: Progress | None,
) -> None:
    while stack:
        frame = stack[-1]
        if frame.subdirs:
            name = frame.subdirs.pop()
            child = f"{frame.path}/{name}"
            try:
                est = fs.lstat(name, dir_fd=frame.fd)
            except OSError as exc:
                out.fail(child, _reason(exc))
                continue
            if stat.S_ISDIR(est.st_mode):
                _descend(fs, stack, frame, name, child, est, device, out)
            else:  # replaced by a file since it was listed
                _unlink(fs, name, frame.fd, child, est.st_size, out)
            continue
        files = _next_batch(frame, out)
        if files is None:
            if len(stack) == 1:
                return  # the caller closes the top and removes it by path
            stack.pop()
            frame.entries.close()
            os.close(frame.fd)
            _rmdir_child(fs, stack[-1], frame, out)
            if stop():
                out.stopped = True
                return
            continue
        files.sort()
        for _inode, name in files:
            size = _size(fs, name, frame.fd) if progress is not None else 0
            _unlink(fs, name, frame.fd, f"{frame.path}/{name}", size, out)
            if out.files % 1024 == 0:
                if progress is not None:
                    progress(out.files, out.bytes)
                if stop():
                    out.stopped = True
                    return


def _next_batch(frame: _Frame, out: Removal) -> list[tuple[int, str]] | None:
    """Up to BATCH non-directories as (inode, name); subdirs are set aside. None at the end."""
    files: list[tuple[int, str]] = []
    try:
        for entry in frame.entries:
            if entry.is_dir(follow_symlinks=False):
                frame.subdirs.append(entry.name)
            else:
                files.append((entry.inode(), entry.name))
            if len(files) + len(frame.subdirs) >= BATCH:
                return files
    except OSError as exc:  # a directory that fails mid-read: name it, move on
        out.fail(frame.path, _reason(exc))
    return files if files or frame.subdirs else None


def _size(fs: FsOps, name: str, dir_fd: int) -> int:
    try:
        st = fs.lstat(name, dir_fd=dir_fd)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _descend(
    fs: FsOps,
    stack: list[_Frame],
    frame: _Frame,
    name: str,
    path: str,
    st: os.stat_result,
    device: int,
    out: Removal,
) -> None:
    if st.st_dev != device:
        out.fail(path, "is a mount point of another filesystem; unmount it first")
        return
    try:
        fd = fs.open_dir(name, dir_fd=frame.fd)
    except OSError as exc:
        out.fail(path, _reason(exc))
        return
    try:
        entries = fs.scandir(fd)
    except OSError as exc:
        os.close(fd)
        out.fail(path, _reason(exc))
        return
    stack.append(_Frame(fd, path, entries, name))


def _rmdir_child(fs: FsOps, parent: _Frame, child: _Frame, out: Removal) -> None:
    try:
        fs.rmdir(child.name, dir_fd=parent.fd)
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY or out.error_count == 0:
            out.fail(child.path, _reason(exc))


def _unlink(fs: FsOps, name: str, dir_fd: int | None, path: str, size: int, out: Removal) -> None:
    try:
        fs.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        out.fail(path, _reason(exc))
        return
    out.files += 1
    out.bytes += size


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
