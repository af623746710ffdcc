"""One renderer for every outcome: human text or one versioned JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memtomem.uninstall.display import escape, show
from memtomem.uninstall.groups import kept_by
from memtomem.uninstall.outcome import Outcome, Prepared, Status
from memtomem.uninstall.recipes import orphan_commands
from memtomem.uninstall.recovery import Recovery

SCHEMA = "memtomem.uninstall"
SCHEMA_VERSION = 1


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


def preview(prepared: Prepared, home: Path | None = None) -> list[str]:
    """The report shown before confirming: one row per group, then what else was found."""
    home = prepared.layout.home if home is None else home
    plan = prepared.plan
    lines: list[str] = []
    if plan.rows:
        width = max(len(show(r.path, home)) for r in plan.rows)
        lines.append("memtomem state found:")
        for row in plan.rows:
            mark = f"  (kept: {kept_by(row.group).value})" if row.kept else ""
            files = f"{row.files} file" + ("" if row.files == 1 else "s")
            lines.append(
                f"  {row.group.value:<15} {show(row.path, home):<{width}}  "
                f"{files:>12}  {size(row.bytes):>10}{mark}"
            )
        lines.append(f"  total to delete: {plan.files} files, {size(plan.bytes)}")
    for stray in prepared.inventory.unknown:
        if not stray.is_staging:
            lines.append(f"Not memtomem's, left in place: {show(stray.path, home)} ({stray.kind})")
    if prepared.inventory.unknown:
        lines.append(f"  so {show(prepared.layout.state_dir, home)} itself stays.")
    for finding in prepared.findings:
        if not finding.blocks or finding.forceable:
            lines.append(f"Note: {finding.what}.")
    for integration in prepared.integrations:
        lines.append(
            f"Editor integration (not modified): {show(integration.path, home)} "
            f"has {escape(integration.where)}; remove that entry yourself."
        )
    lines.append(f"To remove the memtomem program too: {prepared.binary_hint}")
    return lines


def text(outcome: Outcome) -> str:
    home = outcome.layout.home if outcome.layout else None
    lines = _recovery_lines(outcome.recovery, home)
    lines += [f"Warning: {w}" for w in outcome.warnings]
    if outcome.prepared is not None and (
        outcome.dry_run or outcome.status in (Status.DRY_RUN, Status.NOTHING)
    ):
        lines += preview(outcome.prepared)
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
        lines.append("To put everything back, run:")
        lines += [f"  {command}" for command in outcome.restore]
    return "\n".join(lines) + "\n"


def _recovery_lines(recovery: Recovery | None, home: Path | None) -> list[str]:
    if recovery is None:
        return []
    lines = []
    verb = "Would have" if recovery.dry_run else "Recovered:"
    for run in recovery.runs:
        what = {
            "rolled-back": f"put back {run.items} item(s) of an interrupted uninstall",
            "finished": f"finished deleting {run.items} item(s) of an interrupted uninstall",
            "cleaned": "removed an empty staging dir of an interrupted uninstall",
        }[run.action.value]
        lines.append(f"{verb} {what} ({show(run.primary, home)}).")
    for orphan in recovery.orphans:
        restore, discard = orphan_commands(orphan.path, orphan.anchor)
        lines.append(
            f"Found {show(orphan.path, home)} ({orphan.kind}) with no record of the "
            "run that made it; it was left untouched."
        )
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
        "orphans": [
            {
                "path": _p(o.path),
                "anchor": _p(o.anchor),
                "kind": o.kind,
                "restore": orphan_commands(o.path, o.anchor)[0] if o.kind == "dir" else None,
                "discard": orphan_commands(o.path, o.anchor)[1],
            }
            for o in recovery.orphans
        ],
    }


def _p(path: Path | str) -> str:
    return escape(str(path))


def json_text(outcome: Outcome) -> str:
    return json.dumps(document(outcome), indent=2, ensure_ascii=False) + "\n"
