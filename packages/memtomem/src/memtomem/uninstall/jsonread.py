"""JSON read from disk, totally: any bytes in, a value or a one-line reason out."""

from __future__ import annotations

import json
from typing import Any


class Unreadable(ValueError):
    """Why some bytes are not the JSON they should be, in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def loads(raw: bytes, *, limit: int) -> Any:
    """The JSON value in `raw` (read with at most `limit` + 1 bytes, so a longer file shows).
    Raises Unreadable. The decoder's depth is bounded by the interpreter's recursion limit,
    which it checks itself; hitting it is an answer like any other."""
    if len(raw) > limit:
        raise Unreadable(f"larger than {limit >> 20} MiB" if limit >= 1 << 20 else "too large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise Unreadable("nested too deeply") from None
    except ValueError:  # malformed, or a number too long to convert
        raise Unreadable("not valid JSON") from None
