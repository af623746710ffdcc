"""Paths made safe to print: `~` for home, control bytes escaped, shell-quoted in commands,
shortened in the middle to fit a column."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff\\]")
_NEEDS_ANSI_C = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff]")
_SHOWN_UNIT = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|.)|.", re.DOTALL)  # what escape() made
ELLIPSIS = "\u2026"


def escape(text: str) -> str:
    """Escape control characters and undecodable bytes so text cannot drive a terminal."""
    return _UNSAFE.sub(_escape_char, text) if _UNSAFE.search(text) else text


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    if char == "\r":
        return "\\r"
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def show(path: str | os.PathLike[str], home: Path | None) -> str:
    """A path for humans: `~/...` under home, control bytes escaped."""
    text = os.fspath(path)
    if home is not None:
        base = os.fspath(home).rstrip("/")
        if base and (text == base or text.startswith(base + "/")):
            text = "~" + text[len(base) :]
    return escape(text)


def shorten(shown: str, width: int) -> str:
    """`shown` (escaped text) in at most `width` columns: the middle replaced by "…", never
    splitting an escape sequence. The end, which names the file, keeps the larger half."""
    if len(shown) <= width:
        return shown
    units = _SHOWN_UNIT.findall(shown)
    room = max(width - 1, 0)
    head, tail = _take(units, room // 2), _take(reversed(units), room - room // 2)
    return "".join(head) + ELLIPSIS + "".join(reversed(tail))


def _take(units: Iterable[str], width: int) -> list[str]:
    taken: list[str] = []
    used = 0
    for unit in units:
        if used + len(unit) > width:
            break
        taken.append(unit)
        used += len(unit)
    return taken


def quote(path: str | os.PathLike[str]) -> str:
    """A path as one shell word that bash reads back byte for byte."""
    text = os.fspath(path)
    if not _NEEDS_ANSI_C.search(text):
        return shlex.quote(text)
    data = os.fsencode(text)
    out = []
    for byte in data:
        char = chr(byte)
        if byte < 0x20 or byte >= 0x7F or char in "'\\":
            out.append(f"\\x{byte:02x}")
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"
