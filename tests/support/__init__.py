"""Helpers shared by the tests; `REPO` is the checkout they run from."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
