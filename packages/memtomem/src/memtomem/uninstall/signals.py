"""Deferred signals: while the wipe runs, SIGINT/SIGTERM/SIGHUP are recorded, not raised,
so a rollback or a committed delete is never abandoned half-way."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_CAUGHT = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Deferred:
    def __init__(self) -> None:
        self.signal: int | None = None

    def pending(self) -> int | None:
        return self.signal

    def stopping(self) -> bool:
        return self.signal is not None

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum


@contextmanager
def deferred() -> Iterator[Deferred]:
    state = Deferred()
    previous: dict[int, Any] = {}
    try:
        for sig in _CAUGHT:
            previous[sig] = signal.signal(sig, state._record)
    except ValueError:  # not the main thread: signals stay as they are
        previous.clear()
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
