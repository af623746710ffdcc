"""A power cut, not just a killed process: whatever no fsync made durable may be lost.

The recorder (tests/support/trace.py) writes every change a real run makes to the disk; the
models (tests/support/crashes.py) give the disk states a power cut at each point can leave;
each distinct state is laid out for real and the real `mm uninstall -y` runs on it
(tests/support/powercut.py), which must end in the removed tree, with a recovery that left
the tree before or the removed one, a report that tells the truth, and no file deleted
before a durable COMMITTED record. docs/testing.md states the models and the numbers.

The seed of the random samples is printed with the counts; MM_POWERCUT_SEED overrides it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from random import Random

import pytest

from tests.conftest import MmRunner
from tests.support.crash import scratch_root
from tests.support.crashes import EXT4, WEAK, barriers, ext4_cuts, weak_cuts
from tests.support.image import apply, compile_trace, lay_out, load
from tests.support.powercut import JOURNAL, committed, deletes_without_commit
from tests.support.scenarios import Scenario, fixture_scenario, world_scenario
from tests.support.snapshot import snapshot
from tests.support.sweep import ENDS, EVERY, NONE, Depth, Sweep
from tests.support.trace import Op, Trace
from tests.support.trace import load as load_trace
from tests.support.world import FLAG_IDS, FLAGS

SEED = int(os.environ.get("MM_POWERCUT_SEED", "20261126"))
LARGER = 240  # files added to the synthetic world
PLAIN, KEEP_DATA = FLAGS[0], FLAGS[2]


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    with scratch_root(tmp_path) as path:
        yield path


def publish(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Hand lines to the terminal summary (conftest prints them after the run)."""
    request.node.user_properties.append(("power cut", "\n".join(lines)))


KINDS = {"mkdir", "create", "write", "fsync file", "fsync dir", "replace", "unlink", "rmdir"}


def kinds(trace: Trace) -> set[str]:
    out = set()
    for op in trace:
        out.add(f"fsync {'dir' if op.directory else 'file'}" if op.kind == "fsync" else op.kind)
    return out


@pytest.mark.parametrize("which", ["0.6.12", "larger"])
def test_the_trace_of_a_real_run_replays_to_the_tree_it_left(base: Path, which: str) -> None:
    """Replaying every recorded op on the tree before the run gives the tree after it, byte
    for byte (`check` asserts it for every run): nothing that changes the disk is missed."""
    scenario = (
        fixture_scenario(base, PLAIN) if which == "0.6.12" else world_scenario(base, PLAIN, LARGER)
    )
    first = Sweep(scenario, SEED, Depth()).record()
    assert snapshot(scenario.root) == scenario.expected
    assert kinds(first.run.trace) == KINDS
    assert apply(load(scenario.pristine), []).tree == scenario.before
    journals = [op for op in first.run.trace if op.kind == "write"]
    assert [json.loads(op.data)["state"] for op in journals] == ["staging"] * (
        len(journals) - 1
    ) + ["committed"]
    if which == "larger":
        assert sum(op.kind == "unlink" for op in first.run.trace) > LARGER


def normalized(trace: Trace, root: Path) -> list[tuple[str, str, str, str]]:
    def neutral(text: str) -> str:
        return re.sub(r"(\.uninstall-staging-)\d+", r"\1N", text.replace(str(root), "<root>"))

    def data(op: Op) -> str:
        return json.loads(op.data)["state"] if op.kind == "write" else ""

    return [(op.kind, neutral(op.path), neutral(op.dest), data(op)) for op in trace]


def test_a_real_process_records_the_trace_recorded_in_process(
    base: Path, mm_subprocess: MmRunner
) -> None:
    scenario = fixture_scenario(base, PLAIN)
    in_process = Sweep(scenario, SEED, Depth()).record().run.trace
    lay_out(apply(load(scenario.pristine), []), scenario.pristine, scenario.root)
    record = base / "record.jsonl"
    ran = mm_subprocess(
        "uninstall", *scenario.args, env={**scenario.env, "MM_TEST_RECORD": str(record)}
    )
    assert ran.returncode == 0, ran.stderr
    assert snapshot(scenario.root) == scenario.expected
    real = load_trace(record.read_text(encoding="utf-8"))
    assert normalized(real, scenario.root) == normalized(in_process, scenario.root)
    assert len(real) == len(in_process) > 40


def small_tree(root: Path) -> Path:
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "x").write_bytes(b"x")
    return root


def outcomes(root: Path, trace: list[Op], model: str, point: int) -> set[frozenset[str]]:
    """Each state as its paths, with a file's contents after a colon."""
    image = load(root)
    effects = compile_trace(image, tuple(trace))
    cuts = weak_cuts(effects, point, Random(0), 0) if model == WEAK else ext4_cuts(effects, point)
    found = set()
    for cut in cuts:
        state = apply(image, cut.applied(effects), cut.variants())
        found.add(
            frozenset(
                rel
                + (f":{src.decode()}" if isinstance(src := state.sources.get(rel), bytes) else "")
                for rel in state.tree
                if rel != "."
            )
        )
    return found


def paths(*sets: str) -> set[frozenset[str]]:
    return {frozenset(s.split()) for s in sets}


def test_weak_a_rename_across_directories_is_durable_once_both_are_synced(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "t")
    trace = [
        Op("replace", f"{root}/a/x", dest=f"{root}/b/x"),
        Op("fsync", f"{root}/a", directory=True),
        Op("fsync", f"{root}/b", directory=True),
    ]
    assert outcomes(root, trace, WEAK, 1) == paths("a a/x b", "a b b/x")
    assert outcomes(root, trace, WEAK, 2) == paths("a a/x b", "a b b/x")  # whole, or not at all
    assert outcomes(root, trace, WEAK, 3) == paths("a b b/x")


def test_weak_a_write_lands_whole_in_part_or_not_until_its_file_is_synced(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "t")
    trace = [
        Op("create", f"{root}/a/n", mode=0o600),
        Op("write", f"{root}/a/n", data=b"hello"),
        Op("fsync", f"{root}/a/n"),
        Op("fsync", f"{root}/a", directory=True),
    ]
    before = "a a/x b"
    assert outcomes(root, trace, WEAK, 2) == paths(
        before, f"{before} a/n:", f"{before} a/n:he", f"{before} a/n:hello"
    )
    assert outcomes(root, trace, WEAK, 3) == paths(before, f"{before} a/n:hello")
    assert outcomes(root, trace, WEAK, 4) == paths(f"{before} a/n:hello")


def test_weak_a_removed_directory_takes_what_was_below_it(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "t")
    trace = [Op("unlink", f"{root}/a/x"), Op("rmdir", f"{root}/a")]
    assert outcomes(root, trace, WEAK, 2) == paths("a a/x b", "a b", "b")


def test_weak_nothing_happens_inside_a_directory_whose_mkdir_was_lost(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "t")
    trace = [
        Op("mkdir", f"{root}/c", mode=0o700),
        Op("replace", f"{root}/a/x", dest=f"{root}/c/x"),
        Op("fsync", f"{root}/a", directory=True),
    ]
    # The replace needs c: with the mkdir lost it cannot have happened, so x stays in a.
    assert outcomes(root, trace, WEAK, 3) == paths("a a/x b", "a a/x b c", "a b c c/x")


def test_weak_an_op_acts_on_the_directory_wherever_it_really_is(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "t")
    trace = [Op("replace", f"{root}/a", dest=f"{root}/b/a"), Op("unlink", f"{root}/b/a/x")]
    assert outcomes(root, trace, WEAK, 2) == paths("a a/x b", "a b", "b b/a b/a/x", "b b/a")


def test_ext4_keeps_metadata_in_order_but_may_lose_unsynced_data(tmp_path: Path) -> None:
    root = small_tree(tmp_path / "t")
    (root / "b" / "y").write_bytes(b"y")
    trace = [Op("unlink", f"{root}/a/x"), Op("unlink", f"{root}/b/y")]
    assert outcomes(root, trace, WEAK, 2) == paths("a a/x b b/y", "a b b/y", "a a/x b", "a b")
    assert outcomes(root, trace, EXT4, 2) == paths("a a/x b b/y", "a b b/y", "a b")
    trace = [
        Op("fsync", f"{root}/b", directory=True),
        Op("create", f"{root}/a/n", mode=0o600),
        Op("write", f"{root}/a/n", data=b"hello"),
        Op("replace", f"{root}/a/n", dest=f"{root}/a/m"),
    ]
    before = "a a/x b b/y"
    assert outcomes(root, trace, EXT4, 4) == paths(
        before,
        f"{before} a/n:",
        *(f"{before} a/{name}:{data}" for name in "nm" for data in ("", "he", "hello")),
    )


@pytest.mark.parametrize("flags", [PLAIN, KEEP_DATA], ids=["plain", "keep-data"])
def test_no_file_is_deleted_before_committed_is_durable(
    base: Path, flags: tuple[bool, bool]
) -> None:
    scenario = fixture_scenario(base, flags)
    first = Sweep(scenario, SEED, Depth()).record()
    image, effects = first.image, first.effects
    assert deletes_without_commit(image, effects, scenario.pristine) == []
    # It can fail: without the fsync of the COMMITTED journal's data, or of its directory
    # after the rename, the first delete comes before the record is durable.
    commit = max(e.n for e in effects if e.op.kind == "replace" and e.op.dest.endswith(JOURNAL))
    data_sync = max(e.n for e in barriers(effects) if e.n < commit)
    dir_sync = min(e.n for e in barriers(effects) if e.n > commit)
    first_delete = deletes_without_commit(image, effects, scenario.pristine, drop=dir_sync)[0]
    number = re.match(r"op (\d+) removes ", first_delete)
    assert number and int(number[1]) > dir_sync, first_delete
    for barrier in (data_sync, dir_sync):
        early = deletes_without_commit(image, effects, scenario.pristine, drop=barrier)
        assert early and early[0] == first_delete, early
    assert committed(apply(image, [e for e in effects if e.n <= dir_sync]), scenario.pristine)


DEFAULT = Depth(sample=20, pairs=ENDS)
DEEP = Depth(sample=50, pairs=EVERY, nested=6, nested_pairs=ENDS)


def sweep_run(scenario: Scenario, model: str, depth: Depth) -> Sweep:
    """Record the run, then check every crash state of it that `depth` asks for."""
    sweep = Sweep(scenario, SEED, depth)
    first = sweep.record()
    sweep.sweep(first, model, sweep.cuts(first, model), "the run")
    return sweep


def verdict(request: pytest.FixtureRequest, sweep: Sweep, model: str) -> None:
    """Publish the counts, then fail with every failure shape and an example of each."""
    verbose = request.config.getoption("verbose") > 0
    publish(request, sweep.report((model,), examples=verbose))
    assert sum(t.states for t in sweep.tallies.values()) > 0
    failing = sum(t.failing for (m, _level), t in sweep.tallies.items() if m == model)
    assert failing == 0, "\n".join(sweep.report((model,)))


@pytest.mark.parametrize(
    ("model", "flags"),
    [
        pytest.param(WEAK, PLAIN, id="weak-plain"),
        pytest.param(WEAK, KEEP_DATA, id="weak-keep-data"),
        pytest.param(EXT4, PLAIN, id="ext4-plain"),
        pytest.param(EXT4, KEEP_DATA, id="ext4-keep-data"),
    ],
)
def test_every_power_cut_state_of_the_real_store_recovers(
    request: pytest.FixtureRequest, base: Path, model: str, flags: tuple[bool, bool]
) -> None:
    sweep = sweep_run(fixture_scenario(base, flags), model, DEFAULT)
    verdict(request, sweep, model)


@pytest.mark.parametrize("model", [pytest.param(WEAK, id="weak"), pytest.param(EXT4, id="ext4")])
def test_a_power_cut_during_recovery_also_converges(
    request: pytest.FixtureRequest, base: Path, model: str
) -> None:
    """The recovering runs of crash states a real ext4 can leave (one that rolls back, one
    that finishes, one that cleans up), each cut at every point in turn."""
    sweep = sweep_run(
        fixture_scenario(base, PLAIN),
        EXT4,
        Depth(sample=0, pairs=NONE, nested=3, nested_pairs=NONE),
    )
    seeds = sweep.seeds()
    assert len(seeds) == 3
    sweep.nested(model, seeds)
    verdict(request, sweep, model)


@pytest.mark.parametrize("model", [pytest.param(WEAK, id="weak"), pytest.param(EXT4, id="ext4")])
def test_power_cut_states_of_a_larger_store_recover(
    request: pytest.FixtureRequest, base: Path, model: str
) -> None:
    """The synthetic world with hundreds more files, a custom DB dir and a full runtime dir:
    12 crash points spread over the run (48 with --exhaustive)."""
    scenario = world_scenario(base, PLAIN, LARGER)
    sweep = sweep_run(scenario, model, Depth(sample=5, pairs=NONE, points=12))
    verdict(request, sweep, model)


ALL_CASES = [
    pytest.param(model, flags, id=f"{model}-{fid}")
    for model in (WEAK, EXT4)
    for flags, fid in zip(FLAGS, FLAG_IDS, strict=True)
]


@pytest.mark.exhaustive
@pytest.mark.parametrize(("model", "flags"), ALL_CASES)
def test_every_power_cut_state_recovers_exhaustive(
    request: pytest.FixtureRequest, base: Path, model: str, flags: tuple[bool, bool]
) -> None:
    scenario = fixture_scenario(base, flags)
    sweep = sweep_run(scenario, model, DEEP)
    sweep.nested(model, sweep.seeds())
    verdict(request, sweep, model)


@pytest.mark.exhaustive
@pytest.mark.parametrize(
    ("model", "flags"), [p for p in ALL_CASES if p.values[1] in (PLAIN, KEEP_DATA)]
)
def test_power_cut_states_of_a_larger_store_recover_exhaustive(
    request: pytest.FixtureRequest, base: Path, model: str, flags: tuple[bool, bool]
) -> None:
    scenario = world_scenario(base, flags, LARGER)
    sweep = sweep_run(scenario, model, Depth(sample=20, pairs=NONE, points=48))
    verdict(request, sweep, model)


@pytest.mark.exhaustive
@pytest.mark.parametrize(
    ("store", "flags"),
    [("0.6.12", PLAIN), ("0.6.12", KEEP_DATA), ("custom-db", PLAIN)],
    ids=["plain", "keep-data", "custom-db"],
)
def test_each_fsync_the_run_makes_is_needed(
    request: pytest.FixtureRequest, base: Path, store: str, flags: tuple[bool, bool]
) -> None:
    """Drop one recorded fsync at a time (the run is otherwise the same): each must let a
    delete come before COMMITTED is durable, or a state fail at a point where the run with
    it cannot fail yet. A barrier whose removal changes nothing is redundant, or untested.
    The world with a custom DB dir has the barrier a committed run keeps for that dir."""
    if store == "0.6.12":
        scenario = fixture_scenario(base, flags)
    else:
        scenario = world_scenario(base, flags, 0)
    sweep = Sweep(scenario, SEED, Depth(sample=20))
    first = sweep.record()
    root = str(scenario.root) + "/"
    until = sweep.first_failure(first)
    first_fails = f"op {until}" if until <= len(first.run.trace) else "no point"
    lines, needless = [f"  the run with every fsync can fail from {first_fails} on"], []
    for barrier in barriers(first.effects):
        found = sweep.without(first, barrier, until)
        name = f"op {barrier.n}: {str(barrier.op).replace(root, '')}"
        if found is None:
            needless.append(name)
            lines.append(f"  {name}: nothing fails without it")
        elif isinstance(found, str):
            lines.append(f"  {name}: {found}")
        else:
            lines.append(f"  {name}: a state fails, {found.verdict.shape[0]}")
            lines += ["      " + line for line in found.describe(str(scenario.root))]
    text = [f"barriers, {scenario.title}, seed {SEED}:", *lines]
    publish(request, text)
    assert needless == [], "\n".join(text)
