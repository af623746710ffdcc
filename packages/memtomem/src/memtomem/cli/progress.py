"""The delete's progress on a terminal: one line on stderr, redrawn in place."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from memtomem.uninstall import pace, report

REDRAW = 0.1  # seconds between two redraws: often enough to look alive, cheap at any rate


class ProgressLine:
    """Files and bytes removed of the plan's total, and the time left at the rate seen. It
    appears at the first update (the delete's start) and is ended by close()."""

    def __init__(
        self,
        total: tuple[int, int],
        width: int,
        stream: TextIO | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.width = width
        self.stream = stream
        self.clock = clock
        self.start: float | None = None
        self.done = (0, 0)
        self.drawn_at = 0.0
        self.drawn = 0  # the length of the line on screen

    def update(self, files: int, size: int) -> None:
        self.done = (files, size)
        now = self.clock()
        if self.start is None:
            self.start = now
        elif now - self.drawn_at < REDRAW and self.done != self.total:
            return
        finished = self.done == self.total
        left = pace.remaining_seconds(files, size, *self.total, now - self.start)
        self._draw(None if finished else left)
        self.drawn_at = now

    def close(self) -> None:
        """The last state, then a new line for what follows (nothing if it never started)."""
        if self.start is None:
            return
        self._draw(None)
        self._write("\n")

    def _draw(self, left: float | None) -> None:
        line = report.progress(self.done, self.total, left, self.width)
        self._write("\r" + line + " " * max(self.drawn - len(line), 0))
        self.drawn = len(line)

    def _write(self, text: str) -> None:
        """A terminal that went away ends the line, never the delete."""
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:
            self.stream = None
