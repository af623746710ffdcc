"""The sweep: every crash state of a recorded run, each distinct tree checked once.

A tree that several cuts (or both models) produce is checked once and counted for each
model that can produce it. Failures are grouped by shape, each with its smallest example:
the point, the ops lost, and what the next run did.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from tests.support.crashes import WEAK, Cut, ext4_cuts, stretch_ends, uncovered, weak_cuts
from tests.support.image import Effect, State, apply, load
from tests.support.powercut import Checked, Verdict, check, deletes_without_commit
from tests.support.scenarios import Scenario

Key = bytes
EVERY, ENDS, NONE = "every", "ends", "none"
KEPT = 64  # passing states kept per kind of recovery, to seed the nested sweeps
RUN = "crash states of the run"
RECOVERY = "crash states of a recovering run"


@dataclass(frozen=True)
class Depth:
    """How much of each trace to enumerate (docs/testing.md explains each knob)."""

    sample: int = 20  # random weak states per point, where not every subset is taken
    pairs: str = EVERY  # where pairs are taken: EVERY point, stretch ENDS only, or NONE
    points: int = 0  # crash points per trace, spread evenly over it; 0 = every point
    nested: int = 3  # passing states whose recovering run is itself cut
    nested_pairs: str = NONE  # where pairs are taken in a recovering run's trace


@dataclass(frozen=True)
class Example:
    model: str
    label: str  # "run", or which run was cut
    cut: Cut
    effects: tuple[Effect, ...]
    verdict: Verdict

    def describe(self, root: str) -> list[str]:
        def show(n: int) -> str:
            return str(by_n[n].op).replace(root + "/", "")

        by_n = {e.n: e for e in self.effects}
        at = f" ({show(self.cut.point)})" if self.cut.point in by_n else ""
        lines = [f"{self.label}, power cut after op {self.cut.point}{at}:"]
        free = [e.n for e in uncovered(self.effects, self.cut.point)]
        landed = [n for n in free if n not in self.cut.lost]
        if len(self.cut.lost) <= 6:
            lines += [f"  lost: {show(n)}" for n in sorted(self.cut.lost)] or ["  nothing lost"]
        else:
            lines.append(f"  lost: {len(self.cut.lost)} of the {len(free)} ops not yet durable")
            lines += [f"  landed: {show(n)}" for n in landed[:6]]
        lines += [f"  torn: {show(n)}" for n in sorted(self.cut.torn)]
        lines.append(f"  next run: {self.verdict.said}")
        lines += [f"  {p}" for p in self.verdict.problems]
        return lines


@dataclass
class Tally:
    states: int = 0
    failing: int = 0
    shapes: dict[tuple[str, ...], int] = field(default_factory=dict)


@dataclass
class Sweep:
    scenario: Scenario
    seed: int
    depth: Depth
    verdicts: dict[Key, Verdict] = field(default_factory=dict)
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)  # (model, level)
    examples: dict[tuple[str, str, tuple[str, ...]], Example] = field(default_factory=dict)
    passing: dict[str, list[State]] = field(default_factory=dict)  # by recovery, sampled
    seen: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def record(self) -> Checked:
        """The run itself, from the tree before it: it must pass every check too."""
        first = check(self.scenario, apply(load(self.scenario.pristine), []))
        assert first.verdict.ok, first.verdict.problems
        return first

    def cuts(self, checked: Checked, model: str, *, nested: bool = False) -> Iterator[Cut]:
        effects, n = checked.effects, len(checked.run.trace)
        ends = set(stretch_ends(effects, n))
        where = self.depth.nested_pairs if nested else self.depth.pairs
        for point in spread(n, 0 if nested else self.depth.points):
            if model == WEAK:
                pairs = where == EVERY or (where == ENDS and point in ends)
                yield from weak_cuts(effects, point, self.rng, self.depth.sample, pairs=pairs)
            else:
                yield from ext4_cuts(effects, point)

    def sweep(
        self, checked: Checked, model: str, cuts: Iterable[Cut], label: str, level: str = RUN
    ) -> None:
        """Check every distinct state that the cuts of `checked`'s trace leave."""
        tally = self.tallies.setdefault((model, level), Tally())
        mine: set[Key] = set()
        for cut in cuts:
            state = apply(checked.image, cut.applied(checked.effects), cut.variants())
            if state.key in mine:
                continue
            mine.add(state.key)
            verdict = self.judge(state)
            tally.states += 1
            if verdict.ok:
                continue
            tally.failing += 1
            tally.shapes[verdict.shape] = tally.shapes.get(verdict.shape, 0) + 1
            example = Example(model, label, cut, checked.effects, verdict)
            old = self.examples.get((model, level, verdict.shape))
            if old is None or _size(example) < _size(old):
                self.examples[(model, level, verdict.shape)] = example

    def judge(self, state: State) -> Verdict:
        verdict = self.verdicts.get(state.key)
        if verdict is None:
            verdict = check(self.scenario, state).verdict
            self.verdicts[state.key] = verdict
            if verdict.ok and verdict.recovered != "nothing":
                self._keep(state, verdict.recovered)
        return verdict

    def _keep(self, state: State, kind: str) -> None:
        """Reservoir sampling: each passing state of a kind is equally likely to be kept."""
        kept = self.passing.setdefault(kind, [])
        self.seen[kind] = self.seen.get(kind, 0) + 1
        if len(kept) < KEPT:
            kept.append(state)
        elif (slot := self.rng.randrange(self.seen[kind])) < KEPT:
            kept[slot] = state

    def seeds(self) -> list[State]:
        """Up to depth.nested passing states whose recovery had work to do, one of each
        kind of recovery in turn (rolled back, finished, cleaned), chosen by the seed."""
        kinds = {kind: list(states) for kind, states in self.passing.items()}
        for states in kinds.values():
            self.rng.shuffle(states)
        picked: list[State] = []
        while len(picked) < self.depth.nested and any(kinds.values()):
            for kind in sorted(kinds):
                if kinds[kind] and len(picked) < self.depth.nested:
                    picked.append(kinds[kind].pop())
        return picked

    def nested(self, model: str, seeds: Iterable[State]) -> None:
        """Cut the recovering run of each seed state, at each of its points."""
        for state in seeds:
            again = check(self.scenario, state)
            label = f"recovering run ({again.verdict.recovered}, {len(again.run.trace)} ops)"
            cuts = self.cuts(again, model, nested=True)
            self.sweep(again, model, cuts, label, level=RECOVERY)

    def first_failure(self, checked: Checked) -> int:
        """The first point at which the run, with every fsync it makes, can leave a failing
        weak state (past the end when none): a failure before it is a barrier's doing."""
        for point in range(len(checked.run.trace) + 1):
            for cut in weak_cuts(checked.effects, point, self.rng, self.depth.sample):
                state = apply(checked.image, cut.applied(checked.effects), cut.variants())
                if not self.judge(state).ok:
                    return point
        return len(checked.run.trace) + 1

    def without(self, checked: Checked, barrier: Effect, until: int) -> Example | str | None:
        """A failure that only a run without `barrier` can have: a delete before COMMITTED
        is durable, or a failing weak state at a point before `until` (the first point at
        which the run with it fails). None when there is none."""
        image, effects = checked.image, checked.effects
        early = deletes_without_commit(image, effects, self.scenario.pristine, drop=barrier.n)
        if early:
            return early[0]
        for point in range(barrier.n, until):
            for cut in weak_cuts(effects, point, self.rng, self.depth.sample, drop=barrier.n):
                state = apply(image, cut.applied(effects), cut.variants())
                if not self.judge(state).ok:
                    label = f"the run without op {barrier.n}"
                    return Example(WEAK, label, cut, effects, self.judge(state))
        return None

    def report(self, models: Collection[str], *, examples: bool = True) -> list[str]:
        seconds = time.monotonic() - self.started
        lines = [
            f"power cut, {self.scenario.title}, seed {self.seed}: "
            f"{len(self.verdicts)} distinct states run in {seconds:.0f} s"
        ]
        root = str(self.scenario.root)
        for (model, level), tally in sorted(self.tallies.items()):
            if model not in models:
                continue
            lines.append(f"  {model}, {level}: {tally.states} states, {tally.failing} failing")
            for shape, count in sorted(tally.shapes.items(), key=lambda kv: -kv[1]):
                lines.append(f"  - {count} x " + " | ".join(shape))
                if examples:
                    example = self.examples[(model, level, shape)]
                    lines += ["      " + line for line in example.describe(root)]
        return lines


def spread(n: int, count: int) -> list[int]:
    """`count` points of 0..n spread evenly (both ends included); 0 = all of them."""
    if not count or count >= n + 1:
        return list(range(n + 1))
    return sorted({round(i * n / (count - 1)) for i in range(count)})


def _size(example: Example) -> tuple[int, int]:
    return (len(example.cut.lost) + len(example.cut.torn), example.cut.point)
