"""How fast the delete of a committed run goes: the rates behind the progress estimate.

    python delete_rate.py [--workdir DIR] [--rounds N] [--files 5000,20000,50000,100000]
                          [--big-mib 1024] [--mid 100x10]

Builds a memtomem state dir in DIR for each shape, then times, in this process, exactly what
`mm uninstall -y` does after its prompt (stage every group, commit, delete: the same
`_delete_inventory`), once without and once with a progress callback (which makes the
delete look up each file's size). Prints the median seconds, per file and per MiB;
memtomem.uninstall.pace holds the estimate taken from them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from memtomem.cli.uninstall_cmd import _delete_inventory
from memtomem.uninstall.fsops import FsOps
from memtomem.uninstall.layout import build_layout
from memtomem.uninstall.recovery import recover
from memtomem.uninstall.signals import deferred
from memtomem.uninstall.steps import Options, prepare

PER_DIR = 1000
SMALL = 2400  # the mean size of a memory file in bench.py's trees


def build(root: Path, files: int, size: int) -> None:
    """A state dir with `files` files of `size` bytes in memories/, PER_DIR per directory."""
    state = root / "home" / ".memtomem"
    (state / "memories").mkdir(parents=True)
    (root / "run").mkdir(mode=0o700)
    (state / "config.json").write_text("{}")
    data = os.urandom(size)
    for index in range(files):
        folder = state / "memories" / f"d{index // PER_DIR:04d}"
        if index % PER_DIR == 0:
            folder.mkdir()
        (folder / f"{index:07d}.md").write_bytes(data)


def delete(root: Path, *, with_progress: bool) -> tuple[float, int, int]:
    """Seconds for the stage, commit and delete of everything under root; files; bytes."""
    env = {
        "HOME": str(root / "home"),
        "_MEMTOMEM_TEST_RUNTIME_DIR": str(root / "run"),
        "PYTEST_CURRENT_TEST": "delete_rate",
    }
    fs = FsOps()
    layout = build_layout(fs, env, cwd=root)
    recovery = recover(fs, [layout.state_dir], dry_run=False, stop=lambda: False)
    prepared = prepare(fs, layout, Options(), recovery, env)
    calls = [0]

    def progress(files: int, size: int) -> None:
        calls[0] += 1

    os.sync()
    with deferred() as signals:
        start = time.perf_counter()
        removal = _delete_inventory(fs, prepared, signals, progress if with_progress else None)
        took = time.perf_counter() - start
    assert not removal.error_count and not (root / "home" / ".memtomem").exists()
    return took, prepared.plan.files, prepared.plan.bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", default="5000,20000,50000,100000")
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--mid", default="100x10", help="COUNTxMIB: medium files")
    args = parser.parse_args()
    count, mib = (int(x) for x in args.mid.split("x"))
    shapes = [(n, SMALL) for n in map(int, args.files.split(","))]
    shapes += [(count, mib << 20), (1, args.big_mib << 20)]
    print(f"{'files':>8} {'MiB':>8} {'progress':>8} {'median s':>9} {'us/file':>8} {'ms/MiB':>7}")
    for files, size in shapes:
        for with_progress in (False, True):
            times = []
            for _round in range(args.rounds):
                root = Path(tempfile.mkdtemp(prefix="mm-rate-", dir=args.workdir))
                try:
                    build(root, files, size)
                    os.sync()
                    time.sleep(1)  # let the write-back of the build settle
                    took, planned, total = delete(root, with_progress=with_progress)
                    times.append(took)
                finally:
                    shutil.rmtree(root, ignore_errors=True)
            median = statistics.median(times)
            mib = total / 2**20
            per_file, per_mib = median / planned * 1e6, median / mib * 1e3
            shown = "yes" if with_progress else "no"
            print(
                f"{planned:>8} {mib:>8.1f} {shown:>8} {median:>9.3f} {per_file:>8.1f} "
                f"{per_mib:>7.2f}",
                flush=True,
            )
    sys.exit(0)


if __name__ == "__main__":
    main()
