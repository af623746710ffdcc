"""One rule decides every exit code: an error's class names it, a status maps to it, and a
signal that ended the run makes it 128+N."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from memtomem.cli.uninstall_cmd import _UninstallPartialError
from memtomem.uninstall.errors import CrossDevice, ExitCode, NotConfirmed, Refused
from memtomem.uninstall.outcome import Outcome, Status, status_of
from memtomem.uninstall.transaction import StageFailed

HOME = Path("/h")
FAILED = StageFailed(HOME / ".memtomem" / "memories", OSError(errno.EIO, "I/O error"))


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (Refused("x"), Status.REFUSED, 2),
        (CrossDevice("x"), Status.REFUSED, 2),
        (NotConfirmed("x"), Status.DECLINED, 1),
        (_UninstallPartialError.of(FAILED, HOME), Status.ROLLED_BACK, 3),
        (
            _UninstallPartialError.of(
                StageFailed(HOME / "x", OSError(errno.EXDEV, "Invalid cross-device link")), HOME
            ),
            Status.REFUSED,
            2,
        ),
        (
            _UninstallPartialError.rollback_failed(
                FAILED, HOME, [HOME / "s"], ((HOME / "s" / "a", HOME / "a"),)
            ),
            Status.ROLLBACK_INCOMPLETE,
            4,
        ),
    ],
    ids=["refused", "cross-device", "declined", "rolled-back", "exdev-late", "rollback-failed"],
)
def test_an_error_class_names_its_exit_code_and_its_status(
    error: Exception, status: Status, code: int
) -> None:
    assert error.exit_code == code  # type: ignore[attr-defined]
    assert status_of(error) is status  # type: ignore[arg-type]
    assert status.exit_code == code


def test_a_wipe_a_signal_stopped_is_interrupted_and_exits_128_plus_n() -> None:
    error = _UninstallPartialError.of(StageFailed(HOME / "x", None, signal=15), HOME)
    assert status_of(error) is Status.INTERRUPTED
    assert Outcome(Status.INTERRUPTED, signal=15).exit_code == 143
    assert Outcome(Status.REMOVED, signal=1).exit_code == 129  # a signal after the delete
    assert Outcome(Status.REMOVED).exit_code == ExitCode.REMOVED


def test_every_status_has_its_exit_code() -> None:
    assert {s.value: int(s.exit_code) for s in Status} == {
        "removed": 0,
        "nothing-to-remove": 0,
        "dry-run": 0,
        "declined": 1,
        "refused": 2,
        "rolled-back": 3,
        "rollback-incomplete": 4,
        "leftover": 5,
        "interrupted": 3,
        "internal-error": 70,
    }
