"""Shortening a shown path to fit a column: the middle goes, "…" says so, escapes stay whole."""

from __future__ import annotations

import pytest

from memtomem.uninstall.printable import escape, shorten

# (shown text, width, expected): written out by hand.
CASES = [
    ("~/.memtomem/memories/", 21, "~/.memtomem/memories/"),
    ("~/.memtomem/memories/", 40, "~/.memtomem/memories/"),
    ("~/.memtomem/memories/", 20, "~/.memtom…/memories/"),
    (
        "/tmp/pytest-of-root/pytest-12/test_x0/run/memtomem-test/",
        30,
        "/tmp/pytest-of…/memtomem-test/",
    ),
    ("abcdef", 2, "…f"),
    ("abcdef", 1, "…"),
]


@pytest.mark.parametrize(("shown", "width", "expected"), CASES)
def test_shorten_cuts_the_middle(shown: str, width: int, expected: str) -> None:
    assert shorten(shown, width) == expected
    assert len(shorten(shown, width)) <= max(width, 1)


def test_shorten_never_splits_an_escape_sequence() -> None:
    shown = escape("/data/\x1b[31mred\x1b[0m/and-some-more/tail\udcff.db")
    assert shown == "/data/\\x1b[31mred\\x1b[0m/and-some-more/tail\\xff.db"
    # 20 columns: 9 for the head, where "\x1b" (4 more after "/data/") does not fit whole;
    # 10 for the tail, "\xff" counted as its 4 characters.
    assert shorten(shown, 20) == "/data/…ail\\xff.db"
    # 21: 10 for the head, where it fits.
    assert shorten(shown, 21) == "/data/\\x1b…ail\\xff.db"
