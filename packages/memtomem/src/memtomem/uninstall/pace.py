"""How long a delete should take, from the plan's counts, and how long the rest of one
will take, from the rate seen so far. Pure: the CLI decides from it whether to show progress.

The rates come from the delete rate of benchmarks/bench.py (stage, commit and delete in
process, as a run does) on the project's 2-vCPU VM, root ext4 mounted with `discard`: a small
file took 76 us (benchmarks/README.md), earlier runs 13-35 us on a quiet machine and up to
700 us under heavy load; a large file took 0.20-0.32 ms per MiB whatever the load. The
estimate takes a middle of those.
"""

from __future__ import annotations

SECONDS_PER_FILE = 100e-6  # 10,000 files a second
SECONDS_PER_BYTE = 0.25e-3 / 2**20  # 4,000 MiB a second, for the blocks of large files
SHOW_AFTER = 1.0  # a delete expected to take longer than this shows its progress
MIN_ELAPSED = 0.5  # before this much time has passed, the rate seen is noise


def expected_seconds(files: int, size: int) -> float:
    """The time a delete of `files` files and `size` bytes is expected to take."""
    return files * SECONDS_PER_FILE + size * SECONDS_PER_BYTE


def worth_showing(files: int, size: int) -> bool:
    return expected_seconds(files, size) > SHOW_AFTER


def done_fraction(files: int, size: int, total_files: int, total_size: int) -> float:
    """How much of the work is done, files and bytes weighed as the estimate weighs them."""
    total = expected_seconds(total_files, total_size)
    if total <= 0:
        return 1.0
    return min(expected_seconds(files, size) / total, 1.0)


def remaining_seconds(
    files: int, size: int, total_files: int, total_size: int, elapsed: float
) -> float | None:
    """The time the rest should take at the rate seen so far; None until that rate means
    something (MIN_ELAPSED passed and some work done)."""
    fraction = done_fraction(files, size, total_files, total_size)
    if elapsed < MIN_ELAPSED or fraction <= 0:
        return None
    return elapsed * (1 - fraction) / fraction
