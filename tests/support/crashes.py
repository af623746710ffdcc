"""Which disk states a power cut can leave, under two persistence models.

A power cut at point k (after op k, before op k+1; k = 0 .. n) keeps every effect that is
durable at k, and any subset of the others. docs/testing.md states both models in full.

weak (what POSIX promises): a directory entry change (mkdir, create, replace, unlink, rmdir)
is durable once its directory has been fsynced after it (a replace across two directories:
once both have); a file's data, once the file has; a chmod, once its inode has. Anything not
yet durable may each be lost, independently; a write may also land in part (TORN).

ext4 (data=ordered): metadata persists in program order, so a state keeps a prefix of the
entry and mode effects, at least up to the last fsync (any fsync commits the journal). A
write not fsynced may be missing (LOST) or short (TORN) even when the rename that follows
it landed.

`drop` removes one recorded fsync (by its op number) from the run: the barrier analysis
asks what states a run without it can leave.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tests.support.image import LOST, TORN, Effect, Image, State, apply

WEAK = "weak"
EXT4 = "ext4"
FULL_LIMIT = 1024  # every combination up to this many; beyond, singles, pairs and a sample


@dataclass(frozen=True)
class Cut:
    """One crash state of a trace: power lost after op `point`; `lost` effects (op numbers)
    never reached the disk; `torn` data effects landed in part."""

    point: int
    lost: frozenset[int] = frozenset()
    torn: frozenset[int] = frozenset()

    def applied(self, effects: Sequence[Effect]) -> list[Effect]:
        return [e for e in effects if e.n <= self.point and e.n not in self.lost]

    def variants(self) -> dict[int, str]:
        return {**dict.fromkeys(self.lost, LOST), **dict.fromkeys(self.torn, TORN)}


def barriers(effects: Sequence[Effect]) -> list[Effect]:
    return [e for e in effects if e.kind == "sync"]


def uncovered(effects: Sequence[Effect], point: int, drop: int | None = None) -> list[Effect]:
    """The weak model: effects up to `point` that no later fsync up to `point` made durable."""
    synced: dict[int, int] = {}  # inode -> the last fsync of it up to the point
    for e in effects:
        if e.kind == "sync" and e.n <= point and e.n != drop:
            synced[e.ino] = e.n
    out = []
    for e in effects:
        if e.n > point or e.kind == "sync":
            continue
        needs = e.dirs if e.kind == "entry" else frozenset({e.ino})
        if not all(synced.get(ino, 0) > e.n for ino in needs):
            out.append(e)
    return out


def durable(image: Image, effects: Sequence[Effect], point: int, drop: int | None = None) -> State:
    """What a power cut at `point` leaves for certain (weak model): the durable effects only."""
    free = {e.n for e in uncovered(effects, point, drop)}
    return apply(image, [e for e in effects if e.n <= point and e.n not in free])


def stretch_ends(effects: Sequence[Effect], n: int, drop: int | None = None) -> list[int]:
    """The last point before each fsync, and the end: every weak state of an earlier point
    since the previous fsync is also a state of that point (its later ops lost)."""
    return sorted({e.n - 1 for e in effects if e.kind == "sync" and e.n != drop} | {n})


def _options(e: Effect) -> tuple[str, ...]:
    """What may become of an effect that is not durable: lost, and for a write, torn."""
    if e.kind == "data" and len(e.data) > 1:
        return (LOST, TORN)
    return (LOST,)


def _cut(point: int, choice: dict[int, str]) -> Cut:
    lost = frozenset(n for n, v in choice.items() if v == LOST)
    torn = frozenset(n for n, v in choice.items() if v == TORN)
    return Cut(point, lost, torn)


def weak_cuts(
    effects: Sequence[Effect],
    point: int,
    rng: random.Random,
    sample: int,
    *,
    pairs: bool = True,
    drop: int | None = None,
) -> Iterator[Cut]:
    """Every weak-model state at `point` while there are few (up to FULL_LIMIT); otherwise
    each single (and with `pairs`, pairwise) loss, each single (pairwise) survival with all
    else lost, and `sample` random ones."""
    free = uncovered(effects, point, drop)
    slots = [(e.n, ("kept", *_options(e))) for e in free]
    total = 1
    for _n, values in slots:
        total *= len(values)
    if total <= FULL_LIMIT:
        for combo in itertools.product(*(values for _n, values in slots)):
            yield _cut(point, {n: v for (n, _values), v in zip(slots, combo, strict=True)})
        return
    everything_lost = {n: LOST for n, _values in slots}
    yield Cut(point)
    yield _cut(point, everything_lost)
    singles = [(n, v) for n, values in slots for v in values[1:]]
    width = 2 if pairs else 1
    for group in itertools.combinations_with_replacement(singles, width):
        if len({n for n, _v in group}) == len(set(group)):  # never one op two ways
            yield _cut(point, dict(group))
    for kept in itertools.combinations_with_replacement([n for n, _v in slots], width):
        yield _cut(point, {n: v for n, v in everything_lost.items() if n not in kept})
    for _ in range(sample):
        yield _cut(point, {n: v for n, values in slots if (v := rng.choice(values)) != "kept"})


def ext4_cuts(effects: Sequence[Effect], point: int, drop: int | None = None) -> Iterator[Cut]:
    """Every ext4 (data=ordered) state at `point`: each metadata prefix from the last fsync
    on, each with every outcome of the writes not yet fsynced."""
    last = max(
        (e.n for e in effects if e.kind == "sync" and e.n <= point and e.n != drop), default=0
    )
    data_synced = {  # data effect -> whether an fsync of its file follows it
        e.n: any(
            s.kind == "sync" and s.ino == e.ino and e.n < s.n <= point and s.n != drop
            for s in effects
        )
        for e in effects
        if e.kind == "data" and e.n <= point
    }
    for prefix in range(last, point + 1):
        lost = {e.n: LOST for e in effects if prefix < e.n <= point and e.kind != "sync"}
        open_data = [
            e for e in effects if e.kind == "data" and e.n <= prefix and not data_synced[e.n]
        ]
        slots = [(e.n, ("kept", *_options(e))) for e in open_data]
        for combo in itertools.product(*(values for _n, values in slots)):
            chosen = {n: v for (n, _values), v in zip(slots, combo, strict=True) if v != "kept"}
            yield _cut(point, {**lost, **chosen})
