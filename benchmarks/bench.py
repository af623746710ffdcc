#!/usr/bin/env python3
"""Benchmark `mm uninstall` against `rm -rf` on synthetic memtomem states.

Run it with the project's venv Python (it imports memtomem for the in-process parts):

    .venv/bin/python benchmarks/bench.py --sizes 10000,100000,1000000 --db-mb 300 \
        --rounds 5,3,2 --workdir /var/tmp/mm-bench --json-out bench.json

For each size it builds one source state, then per round makes two identical copies with
`cp -a` and runs `mm uninstall -y` (on copy A), `mm uninstall --dry-run` (on the source,
which it never changes) and `rm -rf <state dir>` (on copy B), rotating their order every
round. Page caches cannot be dropped here, so every copy is synced before anything is
timed and the medians of the rounds are reported. It also times the transaction verbs
in-process (stage, commit's journal write, rollback, finish), a 1-vs-2 delete-worker
experiment, and the start-up of `mm --help` / `mm uninstall --help`. See README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import random
import re
import resource
import shutil
import sqlite3
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memtomem.uninstall import journal as journal_io
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.inventory import scan
from memtomem.uninstall.layout import build_layout
from memtomem.uninstall.plan import build_plan
from memtomem.uninstall.transaction import Transaction, finish
from memtomem.uninstall.tree import Removal, measure, remove_tree

TIME_BIN = "/usr/bin/time"
LEAF_FILES = 1000  # files per nested memories dir, as a year of daily notes would give
STARTUP_TARGET = 0.150
RATIO_TARGET = 1.15
RSS_TARGET_MB = 40.0
TXN_TARGET = 0.100

# --- building a synthetic state ------------------------------------------------------


@dataclass
class Built:
    root: Path
    files: int
    dirs: int
    bytes: int
    seconds: float


class _Writer:
    """Writes small text files from one random pool: fast, deterministic, not sparse."""

    def __init__(self, rng: random.Random) -> None:
        alphabet = b"abcdefghijklmnopqrstuvwxyz     \n#-"
        self.pool = bytes(rng.choices(alphabet, k=1 << 20))
        self.view = memoryview(self.pool)
        # ~72% short notes, ~25% medium, ~3% long: mean about 2.4 kB
        self.sizes = [
            rng.randint(200, 1500)
            if x < 0.72
            else rng.randint(1500, 8000)
            if x < 0.97
            else rng.randint(8000, 32000)
            for x in (rng.random() for _ in range(4096))
        ]
        self.rng = rng
        self.files = self.dirs = self.bytes = 0

    def mkdir(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self.dirs += 1
        return path

    def file(self, path: Path, size: int | None = None) -> None:
        size = self.sizes[self.files % len(self.sizes)] if size is None else size
        start = self.rng.randrange(0, len(self.pool) - size) if size < len(self.pool) else 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, self.view[start : start + size])
        finally:
            os.close(fd)
        self.files += 1
        self.bytes += size

    def leaf(self, directory: Path, count: int, stem: str) -> None:
        self.mkdir(directory)
        for i in range(count):
            self.file(directory / f"{i:07d}-{stem}.md")


def _spread(total: int, per_dir: int) -> Iterator[int]:
    while total > 0:
        yield min(per_dir, total)
        total -= per_dir


def build_state(root: Path, files: int, db_mb: int) -> Built:
    """A state dir of exactly `files` non-directory entries, DB included."""
    started = time.perf_counter()
    rng = random.Random(files)
    w = _Writer(rng)
    state = w.mkdir(root / "home" / ".memtomem")
    (root / "run").mkdir()
    _write_db(state / "memtomem.db", db_mb)
    w.files += 1
    w.bytes += (state / "memtomem.db").stat().st_size
    w.file(state / "memtomem.provenance_key", 32)
    w.file(state / "config.json", 400)
    w.file(state / "config.json.bak-1767225600", 380)
    w.file(w.mkdir(state / "config.d") / "10-local.json", 120)
    w.file(state / "known_projects.json", 900)
    w.file(state / "index_debounce_queue.json", 60)
    w.file(state / ".current_session", 40)
    rest = files - w.files
    nested, uploads, cache, traces, user = (int(rest * f) for f in (0.60, 0.03, 0.03, 0.02, 0.02))
    flat = rest - nested - uploads - cache - traces - user
    for d, n in enumerate(_spread(nested, LEAF_FILES)):
        project, month = divmod(d, 12)
        w.leaf(
            state / "memories" / "projects" / f"p{project:03d}" / f"2025-{month + 1:02d}", n, "note"
        )
    w.leaf(state / "memories" / "inbox", flat, "inbox")  # the flat share
    for d, n in enumerate(_spread(uploads, LEAF_FILES)):
        w.leaf(state / "uploads" / f"batch-{d:04d}", n, "upload")
    for d, n in enumerate(_spread(cache, max(1, cache // 64 + 1))):
        w.leaf(state / "cache" / f"{d:02x}", n, "blob")
    for d, n in enumerate(_spread(traces, 500)):
        w.leaf(state / "traces" / f"2025-06-{d:04d}", n, "trace")
    for d, n in enumerate(_spread(user, max(1, user // 3 + 1))):
        w.leaf(state / ("agents", "skills", "commands")[d % 3] / f"set-{d}", n, "item")
    w.leaf(state / "logs", 0, "log")
    assert w.files == files, (w.files, files)
    return Built(root, w.files, w.dirs, w.bytes, time.perf_counter() - started)


def _write_db(path: Path, mb: int) -> None:
    """A real SQLite file of `mb` MB of incompressible rows (no holes, no -wal left)."""
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, body BLOB)")
        chunk = 1 << 20
        for _ in range(mb):
            con.execute("INSERT INTO chunks (body) VALUES (?)", (os.urandom(chunk - 4096),))
        con.commit()
    finally:
        con.close()


SETTLE = 2.0  # seconds of quiet after each sync: ext4 (here with `discard`) works on after it


def settle() -> None:
    subprocess.run(["sync"], check=True)
    time.sleep(SETTLE)


def copy_state(src: Path, dst: Path) -> float:
    started = time.perf_counter()
    dst.mkdir(parents=True)
    (dst / "run").mkdir()  # the runtime dir's parent, as /tmp is for the real one
    subprocess.run(["cp", "-a", str(src / "home"), str(dst / "home")], check=True)
    elapsed = time.perf_counter() - started
    settle()
    return elapsed


def discard(path: Path) -> None:
    if path.exists():
        subprocess.run(["rm", "-rf", str(path)], check=True)
    settle()


# --- running and measuring one command ------------------------------------------------


@dataclass
class Sample:
    wall: float
    rss_mb: float
    user: float
    sys: float
    rc: int
    load: float = 0.0  # 1-minute load average just before: other work on the machine


_RUSAGE_CHILD = """
import json, resource, subprocess, sys
rc = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=open(sys.argv[1], 'w'),
                    stderr=subprocess.STDOUT).returncode
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([rc, ru.ru_maxrss, ru.ru_utime, ru.ru_stime]))
"""


def measure_command(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> Sample:
    """Wall time from here; peak RSS, CPU times and exit code from /usr/bin/time -v
    (or, without it, from a fresh Python parent's RUSAGE_CHILDREN)."""
    if os.path.exists(TIME_BIN):
        report = log.with_suffix(".time")
        with log.open("w") as out:
            started = time.perf_counter()
            subprocess.run(
                [TIME_BIN, "-v", "-o", str(report), *cmd],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            wall = time.perf_counter() - started
        text = report.read_text()
        return Sample(
            wall,
            _field(text, r"Maximum resident set size \(kbytes\): (\d+)") / 1024,
            _field(text, r"User time \(seconds\): ([\d.]+)"),
            _field(text, r"System time \(seconds\): ([\d.]+)"),
            int(_field(text, r"Exit status: (\d+)")),
        )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _RUSAGE_CHILD, str(log), *cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    rc, maxrss, utime, stime = json.loads(done.stdout)
    return Sample(wall, maxrss / 1024, utime, stime, rc)


def _field(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in /usr/bin/time output:\n{text}")
    return float(match.group(1))


def mm_env(copy: Path) -> dict[str, str]:
    """Point mm at the copy: its HOME, and a runtime dir under it (the test override)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTOMEM")}
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(
        HOME=str(copy / "home"),
        _MEMTOMEM_TEST_RUNTIME_DIR=str(copy / "run" / "memtomem-test"),
        PYTEST_CURRENT_TEST="benchmarks/bench.py::bench (call)",
        LC_ALL="C.UTF-8",
    )
    return env


# --- the side-by-side rounds ----------------------------------------------------------

COMMANDS = ("mm uninstall -y", "mm uninstall --dry-run", "rm -rf")
FLOORS = (  # benchmarks/floor.py, with no option, --click, and --click --stat
    "floor: 2 processes",
    "floor: 2 processes+click",
    "floor: +click+stat",
)
FLOOR_SCRIPT = Path(__file__).with_name("floor.py")


@dataclass
class SizeResult:
    files: int
    dirs: int
    bytes: int
    build_s: float
    copy_s: list[float] = field(default_factory=list)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    txn: dict[str, float] = field(default_factory=dict)
    workers: dict[str, list[float]] = field(default_factory=dict)

    def median(self, command: str, attr: str = "wall") -> float:
        return statistics.median(float(getattr(s, attr)) for s in self.samples[command])

    def paired(self, command: str) -> float:
        """Median over rounds of this command's wall time / rm -rf's in the same round."""
        pairs = zip(self.samples[command], self.samples["rm -rf"], strict=True)
        return statistics.median(s.wall / rm.wall for s, rm in pairs)


def run_rounds(
    mm: str, src: Path, work: Path, rounds: int, result: SizeResult, *, floors: bool = False
) -> None:
    """Each round: a fresh copy per deleting command, then every command once, in an order
    rotated every round; the dry run reads the source, which nothing changes."""
    names = COMMANDS + (FLOORS if floors else ())
    python = str(Path(mm).parent / "python")
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        copies = {name: work / f"r{r}-{_slug(name)}" for name in names if "dry-run" not in name}
        for copy in copies.values():
            result.copy_s.append(copy_state(src, copy))
        for name in order:
            target = copies.get(name, src)
            state = str(target / "home" / ".memtomem")
            if name == "rm -rf":
                cmd = ["rm", "-rf", state]
            elif name == "mm uninstall -y":
                cmd = [mm, "uninstall", "-y"]
            elif name == "mm uninstall --dry-run":
                cmd = [mm, "uninstall", "--dry-run"]
            else:
                flags = [f"--{word}" for word in ("click", "stat") if word in name]
                cmd = [python, str(FLOOR_SCRIPT), state, *flags]
            log = work / f"r{r}-{_slug(name)}.log"
            load = os.getloadavg()[0]
            sample = measure_command(cmd, mm_env(target), target, log)
            sample.load = load
            _check(name, sample, target, log)
            result.samples.setdefault(name, []).append(sample)
            print(
                f"  n={result.files} round {r + 1}/{rounds} {name:26s} "
                f"{sample.wall:8.3f} s  {sample.rss_mb:6.1f} MB  load {load:.1f}",
                flush=True,
            )
            settle()  # the deferred work of one command stays out of the next one's time
        for copy in copies.values():
            discard(copy)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def _check(name: str, sample: Sample, target: Path, log: Path) -> None:
    gone = not (target / "home" / ".memtomem").exists()
    ok = sample.rc == 0 and gone == (name != "mm uninstall --dry-run")
    if not ok:
        raise RuntimeError(f"{name} on {target}: rc={sample.rc}, state gone={gone}; see {log}")


# --- transaction verbs in-process -----------------------------------------------------


def time_transaction(copy: Path) -> dict[str, float]:
    """Stage+rollback, then stage+commit-write+finish, timing only those verbs."""
    fs, env = FsOps(), mm_env(copy)
    home = copy / "home"
    layout = build_layout(fs, env, home=home, cwd=copy)
    before = sorted(os.listdir(layout.state_dir))
    t0 = time.perf_counter()
    inventory = scan(fs, layout)
    out = {"scan": time.perf_counter() - t0}
    plan = build_plan(inventory, keep_config=False, keep_data=False)
    out["groups_moved"] = len(plan.moves)
    tx = Transaction(fs, plan, interrupted=lambda: None)
    out["stage"] = _timed(tx.stage)
    started = time.perf_counter()
    unrestored = tx.rollback()
    out["rollback"] = time.perf_counter() - started
    if unrestored or sorted(os.listdir(layout.state_dir)) != before:
        raise RuntimeError("rollback did not restore the state dir")
    tx = Transaction(fs, plan, interrupted=lambda: None)
    out["stage_again"] = _timed(tx.stage)
    committed = tx.journal.committed()
    # Transaction.commit is this write followed by finish(); timed apart.
    out["commit_write"] = _timed(lambda: journal_io.write(fs, committed.primary, committed))
    started = time.perf_counter()
    removal = finish(fs, committed, stop=lambda: False)
    out["finish"] = time.perf_counter() - started
    out["finish_files"] = removal.files
    if removal.error_count or layout.state_dir.exists():
        raise RuntimeError(f"finish left {removal.errors}")
    return out


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# --- one delete worker or two ----------------------------------------------------------

FLAT_DIR_BYTES = 256 * 1024  # an ext4 directory this large holds roughly 8k+ entries
Unit = tuple[str, str, int, int]  # ("tree", path, 0, 1) or ("share", dir, index, of)


def plan_units(root: str, workers: int) -> list[Unit]:
    """Split a tree into units of work: leaf dirs whole, flat dirs shared by name hash.

    A dir with subdirs (st_nlink > 2) is opened up; a leaf dir is one unit, or one
    share per worker when it is large. Files met on the way are units of their own.
    """
    units: list[Unit] = []
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as listing:
            for entry in listing:
                if not entry.is_dir(follow_symlinks=False):
                    units.append(("tree", entry.path, 0, 1))
                    continue
                st = entry.stat(follow_symlinks=False)
                if st.st_nlink > 2:
                    stack.append(entry.path)
                elif st.st_size >= FLAT_DIR_BYTES:
                    units.extend(("share", entry.path, i, workers) for i in range(workers))
                else:
                    units.append(("tree", entry.path, 0, 1))
    units.sort(key=lambda u: u[0] != "share")  # the biggest first
    return units


INODE_BATCH = 65536  # entries sorted per batch: about 10 MB of (inode, name) pairs at most


def remove_tree_by_inode(fs: FsOps, root: str, batch: int = INODE_BATCH) -> int:
    """Experimental: remove_tree's fd-relative walk, but each directory's entries unlinked in
    inode order, `batch` at a time (GNU rm's fts sorts a large directory by inode the same way).
    Raises on the first error: this is a measurement, not a product."""
    files = 0

    def clear(fd: int) -> None:
        nonlocal files
        subdirs: list[str] = []
        with fs.scandir(fd) as listing:
            while chunk := sorted(
                (e.inode(), e.name, e.is_dir(follow_symlinks=False))
                for _i, e in zip(range(batch), listing, strict=False)
            ):
                for _ino, name, is_dir in chunk:
                    if is_dir:
                        subdirs.append(name)
                    else:
                        fs.unlink(name, dir_fd=fd)
                        files += 1
        for name in subdirs:
            child = fs.open_dir(name, dir_fd=fd)
            try:
                clear(child)
            finally:
                os.close(child)
            fs.rmdir(name, dir_fd=fd)

    top = fs.open_dir(root)
    try:
        clear(top)
    finally:
        os.close(top)
    fs.rmdir(root)
    return files


def run_unit(unit: Unit) -> tuple[int, int]:
    kind, path, index, of = unit
    fs = FsOps()
    by_inode = kind.endswith("-ino")
    if kind.startswith("tree"):
        if by_inode and stat.S_ISDIR(os.lstat(path).st_mode):
            return remove_tree_by_inode(fs, path), 0
        removal = remove_tree(fs, path)
        return removal.files, removal.error_count
    removal = Removal()
    fd = fs.open_dir(path)
    try:
        with fs.scandir(fd) as listing:
            mine = (
                e
                for e in listing
                if zlib.crc32(e.name.encode("utf-8", "surrogateescape")) % of == index
            )
            while chunk := [e for _i, e in zip(range(INODE_BATCH), mine, strict=False)]:
                if by_inode:
                    chunk.sort(key=lambda e: e.inode())
                for entry in chunk:
                    if entry.is_dir(follow_symlinks=False):
                        remove_tree(fs, f"{path}/{entry.name}", removal=removal)
                        continue
                    try:
                        fs.unlink(entry.name, dir_fd=fd)
                        removal.files += 1
                    except OSError as exc:
                        removal.fail(entry.name, str(exc))
    finally:
        os.close(fd)
    return removal.files, removal.error_count


def remove_parallel(root: str, workers: int, mode: str, *, by_inode: bool = False) -> int:
    """Units by `workers` threads or processes, then the emptied skeleton by this one."""
    units = plan_units(root, workers)
    if by_inode:
        units = [(f"{kind}-ino", path, i, of) for kind, path, i, of in units]
    results: list[tuple[int, int]] = []
    if mode == "thread":
        todo: queue.SimpleQueue[Unit] = queue.SimpleQueue()
        for unit in units:
            todo.put(unit)
        lock = threading.Lock()

        def work() -> None:
            while True:
                try:
                    unit = todo.get_nowait()
                except queue.Empty:
                    return
                done = run_unit(unit)
                with lock:
                    results.append(done)

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = list(pool.imap_unordered(run_unit, units, chunksize=1))
    rest = remove_tree(FsOps(), root)
    errors = sum(e for _f, e in results) + rest.error_count
    if errors or os.path.lexists(root):
        raise RuntimeError(f"parallel delete left {errors} error(s) under {root}")
    return sum(f for f, _e in results) + rest.files


def _cpu() -> float:
    """User+sys seconds of this process and its reaped children (threads, pool, rm)."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


WORKER_VARIANTS: dict[str, Callable[[str], int]] = {
    "1 worker (remove_tree)": lambda root: remove_tree(FsOps(), root).files,
    "2 threads": lambda root: remove_parallel(root, 2, "thread"),
    "2 processes": lambda root: remove_parallel(root, 2, "process"),
    "1 worker inode-ordered": lambda root: remove_tree_by_inode(FsOps(), root),
    "2 processes inode-ordered": lambda root: remove_parallel(root, 2, "process", by_inode=True),
    "rm -rf": lambda root: subprocess.run(["rm", "-rf", root], check=True).returncode,
}


def compare_workers(src: Path, work: Path, rounds: int, names: list[str]) -> dict[str, list[float]]:
    variants = WORKER_VARIANTS
    out: dict[str, list[float]] = {name: [] for name in names}  # plus "<name> (cpu)"
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            copy = work / f"w{r}"
            copy_state(src, copy)
            root = str(copy / "home" / ".memtomem")
            before = _cpu()
            started = time.perf_counter()
            files = variants[name](root)
            out[name].append(time.perf_counter() - started)
            out.setdefault(f"{name} (cpu)", []).append(_cpu() - before)
            print(
                f"  workers round {r + 1}/{rounds} {name:24s} {out[name][-1]:8.3f} s "
                f"({files} files, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            discard(copy)
    return out


# --- start-up -------------------------------------------------------------------------


def time_startup(mm: str, runs: int) -> dict[str, Any]:
    """Median wall and CPU (user+sys) time of each command over `runs` runs."""
    home = Path(tempfile.mkdtemp(prefix="mm-bench-home-"))
    env = mm_env(home)
    out: dict[str, Any] = {}
    python = str(Path(mm).parent / "python")
    for label, cmd in (
        ("python -c pass", [python, "-c", "pass"]),
        ("mm --help", [mm, "--help"]),
        ("mm uninstall --help", [mm, "uninstall", "--help"]),
    ):
        walls, cpus = [], []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
            walls.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        out[label] = statistics.median(walls)
        out[f"{label} (cpu)"] = statistics.median(cpus)
    out["importtime_top"] = import_offenders(python, env)
    shutil.rmtree(home)
    return out


def import_offenders(python: str, env: dict[str, str], top: int = 8) -> list[tuple[str, int]]:
    """The modules that cost the most by their own import time (us), and the total."""
    done = subprocess.run(
        [python, "-X", "importtime", "-m", "memtomem", "uninstall", "--help"],
        env=env,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            rows.append((m.group(2), int(m.group(1))))
    total = ("(all imports, self time summed)", sum(us for _n, us in rows))
    return [total, *sorted(rows, key=lambda r: -r[1])[:top]]


# --- the mm under test -----------------------------------------------------------------


def install(venv: Path) -> str:
    """This checkout's memtomem in a fresh venv of this Python, installed the way a user's
    is: not editable (no import hook on every start), bytecode compiled at install time
    (the dev environment may set PYTHONDONTWRITEBYTECODE, which would make every timed
    start compile the sources). Returns its `mm`."""
    package = Path(__file__).resolve().parent.parent / "packages" / "memtomem"
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--compile"]
    subprocess.run([*pip, str(package)], check=True)
    compiled = list((venv / "lib").glob("python3*/site-packages/memtomem/**/*.pyc"))
    if not compiled:
        raise SystemExit(f"pip compiled no bytecode for memtomem in {venv}")
    print(f"installed {package} into {venv} ({len(compiled)} .pyc files)", flush=True)
    return str(venv / "bin" / "mm")


# --- machine, disk, report ------------------------------------------------------------


def machine(workdir: Path) -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = (
        subprocess.run(
            ["df", "--output=fstype,source", str(workdir)], capture_output=True, text=True
        )
        .stdout.split("\n")[1]
        .split()
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory_gib": f"{mem / 2**30:.1f}",
        "filesystem": f"{fs[0]} ({fs[1]}, {_mount_options(workdir)})",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "time_source": TIME_BIN if os.path.exists(TIME_BIN) else "resource.getrusage",
    }


def _mount_options(path: Path) -> str:
    done = subprocess.run(
        ["findmnt", "-n", "-o", "OPTIONS", "--target", str(path)], capture_output=True, text=True
    )
    return done.stdout.strip() or "options unknown"


def check_disk(workdir: Path, largest: int, db_mb: int) -> None:
    """Three copies of the largest state must fit (source + two timed copies)."""
    need = 3 * (largest * 8192 + db_mb * 2**20) + 2**30
    st = os.statvfs(workdir)
    free, inodes = st.f_bavail * st.f_frsize, st.f_favail
    print(f"disk: {free / 2**30:.1f} GiB and {inodes} inodes free; need ~{need / 2**30:.1f} GiB")
    if free < need or inodes < 3.1 * largest:
        raise SystemExit(f"not enough room in {workdir} for {largest} files x3")


def report(results: list[SizeResult], startup: dict[str, Any]) -> str:
    lines = [
        f"{'files':>9}  {'command':26s} {'wall s':>8} {'x rm -rf':>8} {'paired':>7} "
        f"{'peak RSS MB':>11} {'user s':>7} {'sys s':>7}  rounds: wall s (load)"
    ]
    for res in results:
        if not res.samples:
            continue
        rm = res.median("rm -rf")
        for name in ("rm -rf", *COMMANDS[:2], *FLOORS):
            if name not in res.samples:
                continue
            walls = " ".join(f"{s.wall:.3f}({s.load:.1f})" for s in res.samples[name])
            lines.append(
                f"{res.files:>9}  {name:26s} {res.median(name):8.3f} {res.median(name) / rm:7.2f}x "
                f"{res.paired(name):6.2f}x {max(s.rss_mb for s in res.samples[name]):11.1f} "
                f"{res.median(name, 'user'):7.2f} {res.median(name, 'sys'):7.2f}  {walls}"
            )
    lines.append("")
    for res in results:
        if res.txn:
            t = res.txn
            lines.append(
                f"transaction at {res.files} files ({t['groups_moved']:.0f} moves): "
                f"stage {t['stage'] * 1e3:.1f} ms, rollback {t['rollback'] * 1e3:.1f} ms, "
                f"stage again {t['stage_again'] * 1e3:.1f} ms, commit write "
                f"{t['commit_write'] * 1e3:.1f} ms; scan {t['scan']:.3f} s, "
                f"finish {t['finish']:.3f} s"
            )
    for res in results:
        for variant, times in res.workers.items():
            lines.append(
                f"delete at {res.files} files, {variant:24s} median "
                f"{statistics.median(times):.3f} s ({' '.join(f'{w:.3f}' for w in times)})"
            )
    if startup:
        lines.append(
            "start-up (median of runs): "
            + ", ".join(
                f"{k} {v * 1e3:.0f} ms" for k, v in startup.items() if k != "importtime_top"
            )
        )
        lines.append(
            "imports by self time (us): "
            + ", ".join(f"{n} {us}" for n, us in startup.get("importtime_top", []))
        )
    return "\n".join(lines)


def verdicts(results: list[SizeResult], startup: dict[str, Any]) -> list[str]:
    out = []
    for res in results:
        if not res.samples:
            continue
        ratio = res.paired("mm uninstall -y")
        rss = max(s.rss_mb for s in res.samples["mm uninstall -y"])
        out.append(
            f"{res.files}: paired ratio {ratio:.2f}x ({'ok' if ratio <= RATIO_TARGET else 'OVER'} "
            f"<= {RATIO_TARGET}x), peak RSS {rss:.1f} MB "
            f"({'ok' if rss <= RSS_TARGET_MB else 'OVER'} <= {RSS_TARGET_MB:.0f} MB)"
        )
        for name in FLOORS:
            if name in res.samples:
                out.append(
                    f"{res.files}: {name} (no probes, journal or report; an oracle's balance): "
                    f"paired ratio {res.paired(name):.2f}x"
                )
        if res.txn:
            worst = max(res.txn[k] for k in ("stage", "rollback", "stage_again", "commit_write"))
            ok = "ok" if worst < TXN_TARGET else "OVER"
            out.append(
                f"{res.files}: slowest transaction verb {worst * 1e3:.1f} ms ({ok} < 100 ms)"
            )
    if startup:
        worst = max(startup["mm --help"], startup["mm uninstall --help"])
        ok = "ok" if worst < STARTUP_TARGET else "OVER"
        out.append(f"start-up {worst * 1e3:.0f} ms ({ok} < 150 ms)")
    return out


def mount_private_fs(workdir: Path, gib: int) -> Callable[[], None]:
    """A fresh ext4 image loop-mounted at `workdir` (root only): its own journal, so other
    work on the machine's filesystem does not stall our unlinks. Returns the undo."""
    image = workdir.with_name(workdir.name + ".img")
    subprocess.run(["truncate", "-s", f"{gib}G", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-i", "8192", str(image)], check=True)
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(workdir)], check=True)

    def undo() -> None:
        subprocess.run(["umount", str(workdir)], check=True)
        image.unlink()

    return undo


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    global SETTLE
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--db-mb", type=int, default=300)
    p.add_argument("--rounds", default="3", help="one count, or one per size (e.g. 5,3,1)")
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/mm-bench"))
    p.add_argument("--json-out", type=Path)
    p.add_argument(
        "--mm",
        default="install",
        help="the mm to time; default: install this checkout into WORKDIR/venv, as users get "
        "it (a regular install, bytecode compiled by pip; not the editable dev install)",
    )
    p.add_argument("--floor-sizes", default="10000", help="sizes that also time floor.py")
    p.add_argument("--txn-sizes", default=None, help="default: every size")
    p.add_argument("--worker-sizes", default="100000,1000000")
    p.add_argument("--worker-rounds", default="3", help="one count, or one per worker size")
    p.add_argument(
        "--worker-variants",
        type=lambda text: text.split(","),
        default=list(WORKER_VARIANTS),
        help="comma-separated, of: " + ", ".join(WORKER_VARIANTS),
    )
    p.add_argument("--startup-runs", type=int, default=20)
    p.add_argument("--settle", type=float, default=SETTLE, help="seconds to wait after a sync")
    p.add_argument(
        "--loop-gib",
        type=int,
        default=0,
        help="run on a fresh ext4 image of this size loop-mounted at --workdir (root only)",
    )
    args = p.parse_args()
    SETTLE = args.settle

    sizes = _ints(args.sizes)
    rounds = _ints(args.rounds) * (len(sizes) if "," not in args.rounds else 1)
    txn_sizes = set(_ints(args.txn_sizes) if args.txn_sizes is not None else sizes)
    worker_sizes = _ints(args.worker_sizes)
    wr = _ints(args.worker_rounds) * (len(worker_sizes) if "," not in args.worker_rounds else 1)
    worker_rounds = dict(zip(worker_sizes, wr, strict=True))
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.loop_gib:
        unmount = mount_private_fs(args.workdir, args.loop_gib)
        try:
            run(args, sizes, rounds, txn_sizes, worker_rounds)
        finally:
            unmount()
    else:
        run(args, sizes, rounds, txn_sizes, worker_rounds)


def run(
    args: argparse.Namespace,
    sizes: list[int],
    rounds: list[int],
    txn_sizes: set[int],
    worker_rounds: dict[int, int],
) -> None:
    check_disk(args.workdir, max(sizes), args.db_mb)
    if args.mm == "install":
        args.mm = install(args.workdir / "venv")
    info = machine(args.workdir)
    print("machine:", json.dumps(info), flush=True)
    doc: dict[str, Any] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}

    def save(results: list[SizeResult], startup: dict[str, Any]) -> None:
        if args.json_out:
            doc["sizes"] = [asdict(r) for r in results]
            doc["startup"] = startup
            args.json_out.write_text(json.dumps(doc, indent=1))

    startup = time_startup(args.mm, args.startup_runs) if args.startup_runs else {}
    results: list[SizeResult] = []
    for n, count in zip(sizes, rounds, strict=True):
        work = args.workdir / f"n{n}"
        discard(work)
        src = work / "src"
        built = build_state(src, n, args.db_mb)
        settle()
        totals = measure(
            FsOps(), str(src / "home" / ".memtomem"), os.lstat(src / "home" / ".memtomem")
        )
        print(
            f"built n={n}: {built.files} files ({totals.files} by measure), {built.dirs} dirs, "
            f"{built.bytes / 2**20:.0f} MiB in {built.seconds:.1f} s",
            flush=True,
        )
        res = SizeResult(built.files, built.dirs, built.bytes, built.seconds)
        results.append(res)
        run_rounds(args.mm, src, work, count, res, floors=n in _ints(args.floor_sizes))
        if n in txn_sizes:
            copy_state(src, work / "txn")
            res.txn = time_transaction(work / "txn")
            discard(work / "txn")
        if n in worker_rounds:
            res.workers = compare_workers(src, work, worker_rounds[n], args.worker_variants)
        discard(work)
        save(results, startup)
        print(report([res], {}), flush=True)
    print("\n" + report(results, startup))
    print("\n" + "\n".join(verdicts(results, startup)))
    save(results, startup)


if __name__ == "__main__":
    main()
