"""Record every operation of a run that changes the disk, in order, through the seam.

A trace is what a power cut can cut short: mkdir, create, write (with its bytes), fsync of
a file or of a directory, replace, unlink, rmdir and chmod, each as it succeeded. An op that
raised changed nothing and is not recorded. One JSON line per op, so a real process (the
launcher's MM_TEST_RECORD) and an in-process run write the same format.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from memtomem.uninstall.fsops import At, FsOps, PathArg

RECORDED = frozenset({"mkdir", "create", "write", "fsync", "replace", "unlink", "rmdir", "chmod"})


@dataclass(frozen=True)
class Op:
    """One operation that succeeded. `dest` for a replace; `data` for a write; `mode` as
    found right after a mkdir, create or chmod; `directory` for an fsync of a directory."""

    kind: str
    path: str
    dest: str = ""
    data: bytes = b""
    mode: int = 0
    directory: bool = False

    def to_json(self) -> str:
        doc: dict[str, object] = {"op": self.kind, "path": self.path}
        if self.kind == "replace":
            doc["dest"] = self.dest
        if self.kind == "write":
            doc["data"] = base64.b64encode(self.data).decode("ascii")
        if self.kind in ("mkdir", "create", "chmod"):
            doc["mode"] = self.mode
        if self.kind == "fsync":
            doc["directory"] = self.directory
        return json.dumps(doc, ensure_ascii=True)

    @classmethod
    def from_json(cls, line: str) -> Op:
        doc = json.loads(line)
        return cls(
            doc["op"],
            doc["path"],
            dest=doc.get("dest", ""),
            data=base64.b64decode(doc.get("data", "")),
            mode=doc.get("mode", 0),
            directory=doc.get("directory", False),
        )

    def __str__(self) -> str:
        if self.kind == "replace":
            return f"replace {self.path} -> {self.dest}"
        if self.kind == "fsync":
            return f"fsync {'dir ' if self.directory else ''}{self.path}"
        if self.kind == "write":
            return f"write {self.path} ({len(self.data)} bytes)"
        return f"{self.kind} {self.path}"


Trace = tuple[Op, ...]


def dump(trace: Iterable[Op]) -> str:
    return "".join(op.to_json() + "\n" for op in trace)


def load(text: str) -> Trace:
    return tuple(Op.from_json(line) for line in text.splitlines() if line)


class RecordingFs(FsOps):
    """The shipped seam, plus a record of each disk-changing op once it has succeeded.

    With hooks installed the seam makes every call itself (no bulk unlink), so the record
    is complete; `sink` also receives each op as it happens."""

    def __init__(self, sink: Callable[[Op], None] | None = None) -> None:
        super().__init__(retry_seconds=0.05)
        self.ops: list[Op] = []
        self.sink = sink
        self._data: bytes | None = None

    def write_file(
        self, path: PathArg, data: bytes, mode: int = 0o600, *, at: At | None = None
    ) -> None:
        self._data = data  # write_file is the only verb that writes bytes: catch them here
        try:
            super().write_file(path, data, mode, at=at)
        finally:
            self._data = None

    def after(self, op: str, target: str) -> None:
        if op not in RECORDED:
            return
        if op == "replace":
            src, arrow, dst = target.partition(" -> ")
            assert arrow and " -> " not in dst, f"ambiguous replace target {target!r}"
            self._add(Op("replace", src, dest=dst))
        elif op == "write":
            assert self._data is not None, f"a write outside write_file: {target}"
            self._add(Op("write", target, data=self._data))
        elif op in ("mkdir", "create", "chmod"):
            self._add(Op(op, target, mode=stat.S_IMODE(os.lstat(target).st_mode)))
        elif op == "fsync":
            self._add(Op("fsync", target, directory=stat.S_ISDIR(os.lstat(target).st_mode)))
        else:
            self._add(Op(op, target))

    def _add(self, op: Op) -> None:
        assert os.path.isabs(op.path), f"a hook target that is not a full path: {op.path!r}"
        self.ops.append(op)
        if self.sink is not None:
            self.sink(op)
