"""The progress estimate and its display, by tables: when a delete shows progress, how the
time left follows the rate seen, and the exact line on the terminal."""

from __future__ import annotations

import io

import pytest

from memtomem.cli.progress import ProgressLine
from memtomem.uninstall import pace, report

MIB = 2**20


# (files, bytes, expected seconds): 10,000 files a second, 4,000 MiB a second.
@pytest.mark.parametrize(
    ("files", "size", "seconds"),
    [
        (0, 0, 0.0),
        (10_000, 0, 1.0),
        (0, 4_000 * MIB, 1.0),
        (5_000, 2_000 * MIB, 1.0),
        (100, MIB, 0.01025),
    ],
)
def test_expected_seconds(files: int, size: int, seconds: float) -> None:
    assert pace.expected_seconds(files, size) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("files", "size", "shown"),
    [
        (9_900, 0, False),
        (10_100, 0, True),
        (32, 3_900 * MIB, False),
        (32, 4_100 * MIB, True),
        (5_000, 2_100 * MIB, True),  # neither alone would be
        (5_000, 1_900 * MIB, False),
    ],
)
def test_progress_is_shown_for_a_delete_expected_to_take_over_a_second(
    files: int, size: int, shown: bool
) -> None:
    assert pace.worth_showing(files, size) is shown


# (files, bytes) done of (files, bytes) in all, seconds elapsed -> seconds left
@pytest.mark.parametrize(
    ("done", "total", "elapsed", "left"),
    [
        ((5_000, 0), (10_000, 0), 0.4, None),  # too soon to tell
        ((0, 0), (10_000, 0), 2.0, None),  # nothing done yet
        ((5_000, 0), (10_000, 0), 2.0, 2.0),
        ((2_500, 0), (10_000, 0), 1.0, 3.0),
        ((10_000, 0), (10_000, 4_000 * MIB), 3.0, 3.0),  # the files were half the work
        ((10_000, 4_000 * MIB), (10_000, 4_000 * MIB), 9.0, 0.0),
    ],
)
def test_time_left_follows_the_rate_seen(
    done: tuple[int, int], total: tuple[int, int], elapsed: float, left: float | None
) -> None:
    assert pace.remaining_seconds(*done, *total, elapsed) == (
        None if left is None else pytest.approx(left)
    )


def test_nothing_to_delete_is_all_done() -> None:
    assert pace.done_fraction(0, 0, 0, 0) == 1.0


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.2, "1 s"),
        (59.0, "59 s"),
        (59.5, "1 min 00 s"),
        (125, "2 min 05 s"),
        (3600, "1 h 00 min"),
        (3725, "1 h 02 min"),
    ],
)
def test_duration(seconds: float, shown: str) -> None:
    assert report.duration(seconds) == shown


TOTAL = (20_532, 211_212)


@pytest.mark.parametrize(
    ("done", "left", "width", "line"),
    [
        ((0, 0), None, 80, "Deleting   0%: 0/20532 files, 0 B of 206.3 KiB"),
        (
            (10_300, 105_606),
            1.2,
            80,
            "Deleting  50%: 10300/20532 files, 103.1 KiB of 206.3 KiB, about 2 s left",
        ),
        (TOTAL, None, 80, "Deleting 100%: 20532/20532 files, 206.3 KiB of 206.3 KiB"),
        ((10_300, 105_606), 1.2, 40, "Deleting  50%: 10300/20532 files, 103.…"),
    ],
)
def test_progress_line(done: tuple[int, int], left: float | None, width: int, line: str) -> None:
    assert report.progress(done, TOTAL, left, width) == line
    assert len(line) < width


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_line_is_redrawn_in_place_at_most_ten_times_a_second() -> None:
    clock = Clock()
    out = io.StringIO()
    line = ProgressLine((10_000, 0), 80, out, clock)
    line.close()
    assert out.getvalue() == ""  # never started: nothing to end
    line.update(0, 0)
    clock.now += 0.05
    line.update(1_024, 0)  # too soon after the last redraw
    clock.now += 0.95
    line.update(2_048, 0)  # a second in, a fifth done: 4 s left
    line.update(3_072, 0)
    clock.now += 0.5
    line.update(10_000, 0)  # the end is always drawn
    line.close()
    done = "\rDeleting 100%: 10000/10000 files, 0 B of 0 B"
    assert out.getvalue() == (
        "\rDeleting   0%: 0/10000 files, 0 B of 0 B"
        "\rDeleting  20%: 2048/10000 files, 0 B of 0 B, about 4 s left"
        f"{done}{' ' * 15}{done}\n"  # spaces over the rest of the longer line
    )
