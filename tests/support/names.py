"""The names the command gives what it makes, as the README states them: written out here
once, by hand, so tests never take them from the code under test."""

from __future__ import annotations

STAGING = ".uninstall-staging-"  # + the pid of the run that made it
JOURNAL = ".uninstall-journal.json"
JOURNAL_TEMP = JOURNAL + ".tmp"
