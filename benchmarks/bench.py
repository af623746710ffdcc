#!/usr/bin/env python3
"""Measure `mm uninstall` against its scale targets; print one Markdown table.

    .venv/bin/python benchmarks/bench.py [--sizes 10000,100000] [--rounds 3] [--db-mb 300]
        [--workdir /var/tmp/mm-bench] [--json-out FILE] [--mm PATH] [--skip PARTS]

Run it with the project's venv Python (the in-process parts import memtomem). PARTS, comma-
separated: rounds, txn, rate, startup, fsync. benchmarks/README.md says what each measures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from click.testing import CliRunner

from memtomem.cli import mm as mm_cli
from memtomem.cli import uninstall_cmd
from memtomem.uninstall import pace
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.layout import build_layout, path_digest
from memtomem.uninstall.steps import Options, prepare, recover_interrupted
from memtomem.uninstall.transaction import Transaction

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
PARTS = ("rounds", "txn", "rate", "startup", "fsync")
COMMANDS = ("rm -rf", "mm uninstall -y", "mm uninstall --dry-run")
SETTLE = 2.0  # seconds after each sync: ext4 (mounted `discard` here) works on after it
PER_DIR = 1000  # files per directory, as a year of daily notes would give
RATE_TREES = ((20_000, 2400), (4, 128 << 20))  # (files, bytes each): small notes, large files
# Runs one command; prints its exit code, wall time and peak RSS (kB). A fresh parent per
# run, so RUSAGE_CHILDREN is that command's alone.
WRAPPER = """import json, resource, subprocess, sys, time
with open(sys.argv[1], "w") as log:
    start = time.perf_counter()
    rc = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log).returncode
    wall = time.perf_counter() - start
print(json.dumps([rc, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))"""


@dataclass(frozen=True)
class Sample:
    wall: float
    rss_mb: float
    rc: int


def mm_env(root: Path, runtime: Path | None = None) -> dict[str, str]:
    """memtomem pointed at root/home and a runtime dir of its own (memtomem's test rule)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMTOMEM", "XDG_RUNTIME"))}
    env.update(HOME=str(root / "home"), PYTEST_CURRENT_TEST="x", LC_ALL="C.UTF-8")
    env["_MEMTOMEM_TEST_RUNTIME_DIR"] = str(runtime or root / "run" / "memtomem")
    return env


def settle() -> None:
    subprocess.run(["sync"], check=True)
    time.sleep(SETTLE)


def timed(action: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


class Writer:
    """Deterministic text files from one random pool: 72 % of 200 B-1.5 kB, 25 % up to
    8 kB, 3 % up to 32 kB (a mean of about 2.4 kB); or all the same `data`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pool = bytes(self.rng.choices(b"abcdefghijklmnopqrstuvwxyz    \n#-", k=1 << 20))
        bands = ((200, 1500), (1500, 8000), (8000, 32000))
        draws = [self.rng.random() for _ in range(4096)]
        self.sizes = [self.rng.randint(*bands[(x >= 0.72) + (x >= 0.97)]) for x in draws]
        self.files = 0

    def spread(self, base: Path, count: int, per_dir: int, folder: str, data: bytes = b"") -> None:
        """`count` files, `per_dir` to a directory base/folder, where the folder's {d} is the
        directory's index ({p} and {m}: project and month; {kind}: agents, skills, commands)."""
        where = base
        for i in range(count):
            if i % per_dir == 0:
                d = i // per_dir
                kind = ("agents", "skills", "commands")[d % 3]
                where = base / folder.format(d=d, p=d // 12, m=d % 12 + 1, kind=kind)
                where.mkdir(parents=True, exist_ok=True)
            chunk = data
            if not chunk:
                size = self.sizes[self.files % len(self.sizes)]
                start = self.rng.randrange(len(self.pool) - size)
                chunk = self.pool[start : start + size]
            (where / f"{i:07d}.md").write_bytes(chunk)
            self.files += 1


def build_state(root: Path, files: int, db_mb: int) -> None:
    """root/home/.memtomem with exactly `files` files, the database included."""
    state = root / "home" / ".memtomem"
    (state / "config.d").mkdir(parents=True)
    (root / "run").mkdir()
    w = Writer(files)
    con = sqlite3.connect(state / "memtomem.db")  # a real database of incompressible rows
    con.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, body BLOB)")
    for _ in range(db_mb):
        con.execute("INSERT INTO chunks (body) VALUES (?)", (w.rng.randbytes((1 << 20) - 4096),))
    con.commit()
    con.close()
    config = b'{"indexing": {"memory_dirs": ["~/.memtomem/memories"]}}\n'
    small = ("config.d/10-local.json", "known_projects.json", "index_debounce_queue.json")
    for name in ("config.json", "config.json.bak-1767225600", *small, ".current_session"):
        (state / name).write_bytes(config if name.startswith("config.json") else b"{}\n")
    (state / "memtomem.provenance_key").write_bytes(w.rng.randbytes(32))
    rest = files - 8  # the DB, the six files above and the key
    nested, uploads, cache, traces, user = (int(rest * f) for f in (0.60, 0.03, 0.03, 0.02, 0.02))
    flat = rest - nested - uploads - cache - traces - user
    w.spread(state, nested, PER_DIR, "memories/projects/p{p:03d}/2025-{m:02d}")
    w.spread(state, flat, max(flat, 1), "memories/inbox")
    w.spread(state, uploads, PER_DIR, "uploads/batch-{d:04d}")
    w.spread(state, cache, cache // 64 + 1, "cache/{d:02x}")
    w.spread(state, traces, 500, "traces/2025-06-{d:04d}")
    w.spread(state, user, user // 3 + 1, "{kind}/set-{d}")
    (state / "logs").mkdir()
    assert w.files == rest, (w.files, rest)


def copy_state(src: Path, dst: Path) -> Path:
    (dst / "run").mkdir(parents=True)
    subprocess.run(["cp", "-a", str(src / "home"), str(dst / "home")], check=True)
    settle()
    return dst


def run_timed(cmd: list[str], root: Path, log: Path) -> Sample:
    argv = [sys.executable, "-c", WRAPPER, str(log), *cmd]
    done = subprocess.run(argv, env=mm_env(root), cwd=root, capture_output=True, check=True)
    rc, wall, kb = json.loads(done.stdout)
    return Sample(wall, kb / 1024, rc)


def side_by_side(mm: str, src: Path, work: Path, rounds: int) -> dict[str, list[Sample]]:
    """Per round: a fresh copy for each deleting command, then all three, in an order
    reversed every other round; the dry run reads the source, which it does not change."""
    samples: dict[str, list[Sample]] = {name: [] for name in COMMANDS}
    for r in range(rounds):
        made = COMMANDS[:2] if r % 2 == 0 else COMMANDS[1::-1]  # the last copy is warmest
        copies = {name: copy_state(src, work / f"r{r}-{name[:2]}") for name in made}
        for name in COMMANDS if r % 2 == 0 else COMMANDS[::-1]:
            root = copies.get(name, src)
            state, log = root / "home" / ".memtomem", work / f"r{r}-{name.replace(' ', '_')}.log"
            cmd = ["rm", "-rf", str(state)] if name == "rm -rf" else [mm, *name.split()[1:]]
            s = run_timed(cmd, root, log)
            if s.rc != 0 or state.exists() != name.endswith("--dry-run"):
                kept = "still there" if state.exists() else "gone"
                raise SystemExit(f"{name} in {root}: exit {s.rc}, state dir {kept}; see {log}")
            samples[name].append(s)
            print(f"  round {r + 1}/{rounds} {name:24s} {s.wall:7.3f} s {s.rss_mb:5.1f} MB")
            settle()
        for copy in copies.values():
            shutil.rmtree(copy)
    return samples


def transaction_verbs(root: Path) -> dict[str, float]:
    """Seconds of stage and rollback, then of stage, commit and delete (`finish`) again;
    `run` is the second stage, commit and delete together, as a run does after its prompt."""
    fs, env, state = FsOps(), mm_env(root), root / "home" / ".memtomem"
    layout = build_layout(fs, env, cwd=root)
    recovery = recover_interrupted(fs, layout, env, dry_run=False, stop=lambda: False)
    plan = prepare(fs, layout, Options(), recovery, env).plan
    before = sorted(os.listdir(state))
    out = {"files": float(plan.files), "mib": plan.bytes / 2**20}
    tx = Transaction(fs, plan, interrupted=lambda: None)
    out["stage"], _ = timed(tx.stage)
    out["rollback"], unrestored = timed(tx.rollback)
    left = tx.left()
    tx.close()
    if unrestored or left or sorted(os.listdir(state)) != before:
        raise SystemExit(f"the rollback did not restore {state}: {unrestored} {left}")
    tx = Transaction(fs, plan, interrupted=lambda: None)
    again, _ = timed(tx.stage)
    out["commit"], _ = timed(tx.commit)
    out["finish"], removal = timed(lambda: tx.finish(stop=lambda: False))
    tx.close()
    if removal.error_count or state.exists():
        raise SystemExit(f"the delete left {removal.errors} in {state}")
    out["run"] = again + out["commit"] + out["finish"]
    return out


def delete_rate(work: Path, rounds: int) -> list[float]:
    """Median seconds of a run's stage, commit and delete per small file, and per MiB of
    large files, each on a tree of its own in memories/."""
    per: list[list[float]] = [[], []]
    for r in range(rounds):
        for (count, size), unit, out in zip(RATE_TREES, ("files", "mib"), per, strict=True):
            root = work / f"rate-{r}-{count}"
            (root / "run").mkdir(parents=True)
            data = random.Random(size).randbytes(size)
            Writer(0).spread(root / "home/.memtomem", count, PER_DIR, "memories/d{d:04d}", data)
            settle()
            t = transaction_verbs(root)
            out.append(t["run"] / t[unit])
            shutil.rmtree(root)
    return [statistics.median(values) for values in per]


def startup(mm: str, work: Path, runs: int = 20) -> float:
    """Median wall of `mm uninstall --help`."""
    help_ = [mm, "uninstall", "--help"]
    return statistics.median(
        timed(lambda: subprocess.run(help_, env=mm_env(work), capture_output=True, check=True))[0]
        for _ in range(runs)
    )


class CountingFs(FsOps):
    """The shipped seam, counting and timing its fsyncs. It overrides `_call`, not the
    hooks, so `hooked` stays False and the run takes the path a user's run takes."""

    count, seconds = 0, 0.0

    def _call(self, op: str, target: str, func: Callable[[], T]) -> T:
        if op != "fsync":
            return super()._call(op, target, func)
        start = time.perf_counter()
        try:
            return super()._call(op, target, func)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - start


def fsyncs(root: Path, runtime: Path | None = None) -> tuple[int, float]:
    """Fsyncs and their seconds in one in-process `mm uninstall -y` of root's state."""
    fs, env = CountingFs(), mm_env(root, runtime)
    unset: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    previous, uninstall_cmd.make_fsops = uninstall_cmd.make_fsops, lambda: fs
    try:
        with contextlib.chdir(root):
            args = ["uninstall", "-y"]
            result = CliRunner().invoke(mm_cli, args, env={**unset, **env}, catch_exceptions=False)
    finally:
        uninstall_cmd.make_fsops = previous
    if result.exit_code != 0 or (root / "home" / ".memtomem").exists():
        raise SystemExit(f"mm uninstall -y in {root}: exit {result.exit_code}\n{result.output}")
    return fs.count, fs.seconds


def fixture_fsyncs(work: Path) -> int:
    """Fsyncs of `mm uninstall -y` on the state the real memtomem 0.6.12 wrote."""
    root = work / "fixture"
    with tarfile.open(REPO / "tests/fixtures/memtomem-0.6.12-state.tar.gz") as archive:
        archive.extractall(root, filter="tar")  # "tar" keeps the runtime dir's 0700
    runtime = root / "tmp" / "memtomem-0"
    # The server's pid file is named for the DB path it was written for: make it this one's.
    digest = path_digest(root / "home" / ".memtomem" / "memtomem.db")
    os.rename(runtime / "server-9fa97ba7ed3fddbf.pid", runtime / f"server-{digest}.pid")
    count = fsyncs(root, runtime)[0]
    shutil.rmtree(root)
    return count


def install(venv: Path) -> str:
    """This checkout in a fresh venv, as users get it: a regular install (no editable import
    hook), bytecode compiled by pip (the dev shell may set PYTHONDONTWRITEBYTECODE)."""
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--compile"]
    subprocess.run([*pip, str(REPO / "packages" / "memtomem")], check=True)
    return str(venv / "bin" / "mm")


def machine(work: Path) -> dict[str, str]:
    def out(*cmd: str) -> str:
        return " ".join(subprocess.run(cmd, capture_output=True, text=True).stdout.split())

    return {
        "date": datetime.date.today().isoformat(),
        "commit": out("git", "-C", str(REPO), "describe", "--always", "--dirty"),
        "machine": f"{os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}",
        "workdir": f"{work}: {out('findmnt', '-no', 'FSTYPE,OPTIONS', '-T', str(work))}",
        "peak RSS": "getrusage(RUSAGE_CHILDREN) of a fresh `python -c` parent per run (it "
        "includes the parent's RSS before the exec: `rm -rf` shows that floor)",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="files per state (1000000 works)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--db-mb", type=int, default=300)
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/mm-bench"))
    p.add_argument("--json-out", type=Path)
    p.add_argument("--mm", help="the mm to time (default: this checkout, installed in WORKDIR)")
    p.add_argument("--skip", default="", help="parts to skip: " + ", ".join(PARTS))
    args = p.parse_args()
    sizes, skip = sorted(int(x) for x in args.sizes.split(",")), set(args.skip.split(",")) - {""}
    if skip - set(PARTS) or sizes[0] < 100 or args.rounds < 1:
        p.error(f"--skip takes {', '.join(PARTS)}; --sizes at least 100 each; --rounds >= 1")
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    st = os.statvfs(work)  # room for three copies of the largest state, and the rate trees
    need = 3 * (sizes[-1] * 8192 + (args.db_mb << 20)) + (1 << 30) + (600 << 20)
    if st.f_bavail * st.f_frsize < need or st.f_favail < 3 * sizes[-1] + 100_000:
        raise SystemExit(f"{work}: less than {need >> 30} GiB or {3 * sizes[-1]} inodes free")
    info = machine(work)
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    mm = args.mm or ("" if {"rounds", "startup"} <= skip else install(work / "venv"))
    rows: list[tuple[str, str, str]] = []
    raw: dict[int, dict[str, list[dict[str, float]]]] = {}

    def add(measure: str, value: str, target: str = "", good: bool | None = None) -> None:
        target += "" if good is None else " ok" if good else " **over**"
        rows.append((measure, value, target))
        print(f"  {measure}: {value} {target}", flush=True)

    for n in sizes:
        src = work / f"n{n}" / "src"
        shutil.rmtree(src.parent, ignore_errors=True)
        print(f"building {n:,} files", flush=True)
        build_state(src, n, args.db_mb)
        settle()
        if "rounds" not in skip:
            got = side_by_side(mm, src, src.parent, args.rounds)
            raw[n] = {name: [asdict(s) for s in runs] for name, runs in got.items()}
            wall = {name: statistics.median(s.wall for s in got[name]) for name in COMMANDS}
            pairs = zip(got["mm uninstall -y"], got["rm -rf"], strict=True)
            ratio = statistics.median(m.wall / r.wall for m, r in pairs)
            rss, floor = (max(s.rss_mb for s in got[name]) for name in COMMANDS[1::-1])
            at, mb = f"{n:,} files:", f"{rss:.1f} MB (`rm -rf` {floor:.1f})"
            add(f"{at} `rm -rf`, median of {args.rounds}", f"{wall['rm -rf']:.3f} s")
            add(f"{at} `mm uninstall -y`", f"{wall['mm uninstall -y']:.3f} s")
            at_100k, at_1m = n >= 100_000, n >= 1_000_000  # where the targets apply
            target = ("≤ 1.15x", ratio <= 1.15) if at_100k else ("(target at 100k, 1M)", None)
            add(f"{at} `mm -y` / `rm -rf`, median", f"{ratio:.2f}x", *target)
            add(f"{at} peak RSS of `mm -y`", mb, *(("≤ 40 MB", rss <= 40) if at_1m else ()))
            add(f"{at} `mm uninstall --dry-run`", f"{wall['mm uninstall --dry-run']:.3f} s")
        if "fsync" not in skip and n == sizes[0]:
            count, seconds = fsyncs(copy_state(src, src.parent / "fsync"))
            add(f"{n:,} files: fsyncs of `mm uninstall -y`", f"{count}, {seconds * 1e3:.1f} ms")
        if "txn" not in skip and n == sizes[-1]:
            t = transaction_verbs(copy_state(src, src.parent / "txn"))
            verbs = " / ".join(f"{t[k] * 1e3:.1f}" for k in ("stage", "commit", "rollback"))
            good = max(t["stage"], t["commit"], t["rollback"]) < 0.1
            add(f"{n:,} files: stage / commit / rollback", f"{verbs} ms", "< 100 ms each", good)
        shutil.rmtree(src.parent)
    if "rate" not in skip:
        per_file, per_mib = delete_rate(work, args.rounds)
        (files, size), (big, big_size) = RATE_TREES
        quoted = f"pace.py: {pace.SECONDS_PER_FILE * 1e6:.0f} µs"
        add(f"delete rate, {files:,} files of {size} B", f"{per_file * 1e6:.0f} µs/file", quoted)
        quoted, mib = f"pace.py: {pace.SECONDS_PER_BYTE * 2**20 * 1e3:.2f} ms", big_size >> 20
        add(f"delete rate, {big} files of {mib} MiB", f"{per_mib * 1e3:.2f} ms/MiB", quoted)
    if "startup" not in skip:
        s = startup(mm, work)
        add("`mm uninstall --help`, median of 20", f"{s * 1e3:.0f} ms", "< 150 ms", s < 0.15)
    if "fsync" not in skip:
        add("0.6.12 fixture: fsyncs of `mm uninstall -y`", str(fixture_fsyncs(work)), "16 in docs")
    print("\n| measure | value | target |\n| --- | ---: | --- |")
    print("\n".join(f"| {m} | {v} | {t} |" for m, v, t in rows))
    if args.json_out:
        doc = {**info, "argv": sys.argv[1:], "table": rows, "rounds": raw}
        args.json_out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
