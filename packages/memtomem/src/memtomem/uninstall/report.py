"""One renderer for every outcome: human text or one versioned JSON document."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from memtomem.uninstall import pace
from memtomem.uninstall.groups import kept_by
from memtomem.uninstall.outcome import Outcome, Prepared, Status
from memtomem.uninstall.printable import ELLIPSIS, escape, shorten, show
from memtomem.uninstall.recipes import orphan_commands
from memtomem.uninstall.recovery import Orphan, Recovery, Why

SCHEMA = "memtomem.uninstall"
SCHEMA_VERSION = 1


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


WIDTH = 80  # the columns a report fits in when the terminal's width is not known
_MIN_WHERE = 20  # the narrowest the table's last column gets; a narrower terminal wraps it
_MIN_PLACE = 12  # no path is shortened below this


def progress(done: tuple[int, int], total: tuple[int, int], left: float | None, width: int) -> str:
    """One line of the delete's progress, (files, bytes) done of the total, narrower than
    `width`: a line that wrapped could not be redrawn in place."""
    percent = int(pace.done_fraction(*done, *total) * 100)
    line = (
        f"Deleting {percent:>3}%: {done[0]}/{total[0]} files, {size(done[1])} of {size(total[1])}"
    )
    if left is not None:
        line += f", about {duration(left)} left"
    return line if len(line) < width else line[: max(width - 2, 0)] + ELLIPSIS


def duration(seconds: float) -> str:
    """Whole seconds, rounded up: "5 s", "2 min 05 s", "1 h 02 min"."""
    whole = math.ceil(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def preview(prepared: Prepared, width: int = WIDTH) -> list[str]:
    """The report shown before confirming: what was found, one row per group, and what
    stays."""
    return _found(prepared, width) + _notes(prepared)


def _found(prepared: Prepared, width: int) -> list[str]:
    plan = prepared.plan
    if not plan.rows:
        return ["No memtomem state found."]
    home = prepared.layout.home
    counts = [_count(r.files) for r in plan.rows]
    sizes = [size(r.bytes) for r in plan.rows]
    name_w = max(len(r.group.value) for r in plan.rows)
    count_w = max(map(len, counts))
    size_w = max(map(len, sizes))
    kept_w = 6 if any(r.kept for r in plan.rows) else 0  # "kept" and its gap
    where_w = max(width - (2 + name_w + 2 + count_w + 2 + size_w + 2 + kept_w), _MIN_WHERE)
    lines = ["memtomem state found:"]
    for row, count, shown_size in zip(plan.rows, counts, sizes, strict=True):
        kept = ("kept" if row.kept else "").ljust(kept_w)
        where = _fit([show(p.path, home) + ("/" if p.is_dir else "") for p in row.places], where_w)
        lines.append(
            f"  {row.group.value:<{name_w}}  {count:>{count_w}}  {shown_size:>{size_w}}  "
            f"{kept}{where}".rstrip()
        )
    lines.append(f"  total to delete: {_count(plan.files).rstrip()}, {size(plan.bytes)}")
    return lines


def _count(files: int) -> str:
    """ "1 file " or "5 files": the numbers line up when right-aligned."""
    return f"{files} file " if files == 1 else f"{files} files"


def _fit(places: list[str], width: int) -> str:
    """The places, comma-separated, in `width` columns: the longest shortened first."""
    while len(", ".join(places)) > width:
        longest = max(range(len(places)), key=lambda i: len(places[i]))
        target = max(len(places[longest]) - (len(", ".join(places)) - width), _MIN_PLACE)
        if target >= len(places[longest]):
            break
        places[longest] = shorten(places[longest], target)
    return ", ".join(places)


def _notes(prepared: Prepared) -> list[str]:
    home = prepared.layout.home
    lines = []
    strays = [s for s in prepared.inventory.unknown if not s.is_staging]
    for stray in strays:
        lines.append(f"Not memtomem's, left in place: {show(stray.path, home)} ({stray.kind})")
    if strays:  # staging dirs are recovery's to report: a run may remove them first
        lines.append(f"  so {show(prepared.layout.state_dir, home)} itself stays.")
    for finding in prepared.findings:
        if not finding.blocks or finding.forceable:
            lines.append(f"Note: {finding.what}.")
    return lines


def hints(prepared: Prepared) -> list[str]:
    """What else to do once the state is gone: editor entries, and the program itself."""
    home = prepared.layout.home
    lines = []
    if prepared.integrations:
        lines.append("Editor configs name memtomem (not modified; remove these entries yourself):")
        lines += [f"  {show(i.path, home)}: {escape(i.where)}" for i in prepared.integrations]
    lines.append(f"To remove the memtomem program too: {prepared.binary_hint}")
    return lines


# The outcomes after which the state is gone, or would be: then what else to remove.
_HINTED = (Status.REMOVED, Status.NOTHING, Status.DRY_RUN)


def text(outcome: Outcome, width: int = WIDTH) -> str:
    """The human report of an outcome: recovery, warnings, the report (unless it was shown
    before the prompt), the result line, what could not be done, then hints."""
    home = outcome.layout.home if outcome.layout else None
    prepared = outcome.prepared
    lines = _recovery_lines(outcome.recovery, home)
    shown = prepared.warnings if prepared is not None and outcome.previewed else ()
    lines += [f"Warning: {w}" for w in outcome.warnings if w not in shown]
    if prepared is not None and not outcome.previewed:
        if outcome.status is Status.NOTHING:  # its message says whether anything was found
            lines += (_found(prepared, width) if prepared.plan.rows else []) + _notes(prepared)
        elif outcome.dry_run or outcome.status is Status.DRY_RUN:
            lines += preview(prepared, width)
    if outcome.status is Status.REFUSED:
        for finding in outcome.findings or ():
            lines.append(f"Refused: {finding.what}. {finding.hint}")
        if not outcome.findings:
            lines.append(f"Refused: {outcome.message}")
        if outcome.hint and not outcome.findings:
            lines.append(outcome.hint)
        lines.append("Nothing was changed.")
    elif outcome.message:
        lines.append(outcome.message)
    for path, reason in outcome.leftovers:
        lines.append(f"  could not delete {show(path, home)}: {escape(reason)}")
    if outcome.leftover_count > len(outcome.leftovers):
        lines.append(f"  ... and {outcome.leftover_count - len(outcome.leftovers)} more")
    if outcome.unrestored:
        lines.append("Not restored (nothing was deleted; every byte is still on disk):")
        for now, belongs in outcome.unrestored:
            lines.append(f"  {show(now, home)}  belongs at  {show(belongs, home)}")
    if outcome.restore:
        lines.append("To put everything back, run:")
        lines += [f"  {command}" for command in outcome.restore]
    if prepared is not None and outcome.status in _HINTED:
        lines += hints(prepared)
    return "\n".join(lines) + "\n"


# What recovery did, or in a dry run would do, with each interrupted run it found.
_RECOVERED = {
    "rolled-back": ("put back {n} item(s)", "Would put back {n} item(s)"),
    "finished": ("finished deleting {n} item(s)", "Would finish deleting {n} item(s)"),
    "cleaned": ("removed an empty staging dir", "Would remove an empty staging dir"),
}


def _recovery_lines(recovery: Recovery | None, home: Path | None) -> list[str]:
    if recovery is None:
        return []
    lines = []
    for run in recovery.runs:
        done, planned = _RECOVERED[run.action.value]
        what = (planned if recovery.dry_run else f"Recovered: {done}").format(n=run.items)
        lines.append(f"{what} of an interrupted uninstall ({show(run.primary, home)}).")
    left = "it would be left untouched" if recovery.dry_run else "it was left untouched"
    for orphan in recovery.orphans:
        found = f"Found {show(orphan.path, home)} ({orphan.kind})"
        if orphan.why is Why.FOREIGN:  # not yours: nothing to suggest doing with it
            lines.append(f"{found}, owned by uid {orphan.detail}, not by you; {left}.")
            continue
        if orphan.why is Why.BUSY:
            who = f" (pid {orphan.detail})" if orphan.detail else ""
            lines.append(f"{found}: another mm uninstall{who} is working in it; {left}.")
            continue
        if orphan.why is Why.UNSAFE:
            lines.append(f"{found}, which {escape(orphan.detail)}; {left}.")
        else:
            lines.append(f"{found} with no record of the run that made it; {left}.")
        restore, discard = orphan_commands(orphan.path, orphan.anchor)
        if orphan.kind == "dir":
            lines.append(f"  to put its contents back: {restore}")
        lines.append(f"  to discard it: {discard}")
    return lines


def document(outcome: Outcome) -> dict[str, Any]:
    """The JSON envelope (schema in the README). Paths are absolute, control bytes escaped."""
    prepared = outcome.prepared
    layout = outcome.layout
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "status": outcome.envelope_status,
        "outcome": outcome.status.value,
        "exit_code": int(outcome.exit_code),
        "dry_run": outcome.dry_run,
        "message": outcome.message,
        "state_dir": _p(layout.state_dir) if layout else None,
        "database": {"path": _p(layout.db_path), "source": escape(layout.db_source)}
        if layout
        else None,
        "groups": [],
        "total": None,
        "removed": {"files": outcome.removed_files, "bytes": outcome.removed_bytes},
        "not_ours": [],
        "processes": [
            {
                "path": _p(f.path),
                "pid": f.pid,
                "what": f.what,
                "hint": f.hint,
                "forceable": f.forceable,
                "blocks": f.blocks,
            }
            for f in (outcome.findings or (prepared.findings if prepared else ()))
        ],
        "integrations": [],
        "remove_program": prepared.binary_hint if prepared else None,
        "recovery": _recovery_doc(outcome.recovery),
        "leftovers": [{"path": _p(p), "reason": r} for p, r in outcome.leftovers],
        "leftover_count": outcome.leftover_count,
        "unrestored": [{"now": _p(n), "belongs": _p(b)} for n, b in outcome.unrestored],
        "restore_commands": list(outcome.restore),
        "error": {"path": escape(outcome.path) if outcome.path else None, "hint": outcome.hint}
        if outcome.status is Status.REFUSED
        else None,
        "warnings": list(outcome.warnings),
    }
    if prepared is not None:
        plan = prepared.plan
        doc["groups"] = [
            {
                "group": r.group.value,
                "path": _p(r.path),
                "entries": r.entries,
                "files": r.files,
                "bytes": r.bytes,
                "kept": r.kept,
                "kept_by": kept_by(r.group).value if r.kept else None,
            }
            for r in plan.rows
        ]
        doc["total"] = {"files": plan.files, "bytes": plan.bytes}
        doc["not_ours"] = [
            {"path": _p(s.path), "kind": s.kind}
            for s in prepared.inventory.unknown
            if not s.is_staging
        ]
        doc["integrations"] = [
            {"path": _p(i.path), "entry": escape(i.where)} for i in prepared.integrations
        ]
    return doc


def _recovery_doc(recovery: Recovery | None) -> dict[str, Any] | None:
    if recovery is None:
        return None
    return {
        "dry_run": recovery.dry_run,
        "runs": [
            {"staging": _p(r.primary), "pid": r.pid, "action": r.action.value, "items": r.items}
            for r in recovery.runs
        ],
        "orphans": [_orphan_doc(o) for o in recovery.orphans],
    }


def _orphan_doc(orphan: Orphan) -> dict[str, Any]:
    restore, discard = orphan_commands(orphan.path, orphan.anchor)
    yours = orphan.why not in (Why.FOREIGN, Why.BUSY)
    return {
        "path": _p(orphan.path),
        "anchor": _p(orphan.anchor),
        "kind": orphan.kind,
        "reason": orphan.why.value,
        "detail": escape(orphan.detail) or None,
        "restore": restore if yours and orphan.kind == "dir" else None,
        "discard": discard if yours else None,
    }


def _p(path: Path | str) -> str:
    return escape(str(path))


def json_text(outcome: Outcome) -> str:
    return json.dumps(document(outcome), indent=2, ensure_ascii=False) + "\n"
