"""Whose a directory is: what decides whether the command may stage in it or recover from it.

An anchor (a directory the run moves things out of) is private when only this user (or root)
can change what is in it; a sticky shared directory such as /tmp is usable too, since there
only an entry's owner can rename or remove it, so only entries owned by this user count.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from memtomem.uninstall import system


@dataclass(frozen=True)
class Trust:
    """`problem` is None when the command may act in the directory; `shared`: a sticky
    directory others write to, where only this user's own entries are acted on."""

    problem: str | None
    shared: bool = False


PRIVATE = Trust(None)


def of_anchor(st: os.stat_result) -> Trust:
    """Whether entries of a directory with this lstat may be moved, deleted or recovered."""
    if stat.S_ISLNK(st.st_mode):
        return Trust("is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        return Trust("is not a directory")
    if system.IS_WINDOWS:  # pragma: no cover - no owners or modes to go by
        return PRIVATE
    others_write = bool(st.st_mode & stat.S_IWOTH) or (
        bool(st.st_mode & stat.S_IWGRP) and not _private_group(st.st_gid)
    )
    if st.st_uid not in (system.euid(), 0):
        others_write = True  # its owner can always change it
    if not others_write:
        return PRIVATE
    if st.st_mode & stat.S_ISVTX:
        return Trust(None, shared=True)
    return Trust("can be changed by other users")


def of_staging(st: os.stat_result) -> str | None:
    """Why an entry named like a staging dir is not one of this user's runs, or None. Runs
    make them as real directories, mode 0700, owned by the user; none others can change."""
    return _own_dir(st, 0o022, ": others could have changed it")


def of_runtime_dir(st: os.stat_result) -> str | None:
    """Why a runtime dir must not be used, or None: memtomem's rule is a private directory,
    owned by the user, mode 0700."""
    return _own_dir(st, 0o077, ", not 0700")


def _own_dir(st: os.stat_result, forbidden: int, why_not: str) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if system.IS_WINDOWS:  # pragma: no cover
        return None
    if st.st_uid != system.euid():
        return f"is owned by uid {st.st_uid}, not by you"
    if st.st_mode & forbidden:
        return f"has mode {stat.S_IMODE(st.st_mode):04o}{why_not}"
    return None


def _private_group(gid: int) -> bool:
    """A group of this user alone (as in a user-private-group setup, where umask 002 makes
    directories group-writable): it is this process's group and lists no other member."""
    if gid != os.getegid():
        return False
    try:
        import grp
        import pwd

        members = set(grp.getgrgid(gid).gr_mem)
        me = pwd.getpwuid(system.euid()).pw_name
    except (ImportError, KeyError, OSError):
        return False
    return members <= {me}
