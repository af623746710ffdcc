"""Editor integrations that name memtomem (reported, never modified)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtomem.uninstall import jsonread
from memtomem.uninstall.fsops import FsOps

_JSON_FILES = (
    ".claude.json",
    ".cursor/mcp.json",
    ".codeium/windsurf/mcp_config.json",
    ".gemini/settings.json",
    ".gemini/antigravity-cli/mcp_config.json",
    ".kimi/mcp.json",
    ".kimi-code/mcp.json",
)


MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class Integration:
    path: Path
    where: str


def candidates(home: Path, cwd: Path, env: Mapping[str, str]) -> list[Path]:
    files = [home / rel for rel in _JSON_FILES]
    if sys.platform == "darwin":  # pragma: no cover
        files.append(home / "Library/Application Support/Claude/claude_desktop_config.json")
    elif sys.platform == "win32":  # pragma: no cover
        files.append(Path(env.get("APPDATA", home)) / "Claude/claude_desktop_config.json")
    else:
        files.append(home / ".config/Claude/claude_desktop_config.json")
    files.append(cwd / ".mcp.json")
    return files


def find(fs: FsOps, home: Path, cwd: Path, env: Mapping[str, str]) -> tuple[Integration, ...]:
    found: list[Integration] = []
    for path in candidates(home, cwd, env):
        doc = _load(fs, path, toml=False)
        found.extend(Integration(path, where) for where in _json_entries(doc))
    toml_doc = _load(fs, home / ".codex/config.toml", toml=True)
    servers = toml_doc.get("mcp_servers") if isinstance(toml_doc, dict) else None
    if isinstance(servers, dict) and "memtomem" in servers:
        found.append(Integration(home / ".codex/config.toml", "mcp_servers.memtomem"))
    return tuple(found)


def _load(fs: FsOps, path: Path, *, toml: bool) -> Any:
    """The document in an editor's config, or None for anything unreadable: these are only
    reported, so any bytes, type, size or depth just means nothing to report."""
    try:
        raw = fs.read_bytes(path, MAX_BYTES + 1)
        if not toml:
            return jsonread.loads(raw, limit=MAX_BYTES)
        import tomllib  # here: only a Codex config needs it, and `mm` starts faster

        return tomllib.loads(raw[:MAX_BYTES].decode("utf-8")) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None


def _json_entries(doc: Any) -> list[str]:
    if not isinstance(doc, dict):
        return []
    found = []
    servers = doc.get("mcpServers")
    if isinstance(servers, dict) and "memtomem" in servers:
        found.append("mcpServers.memtomem")
    projects = doc.get("projects")
    if isinstance(projects, dict):
        for name, project in projects.items():
            nested = project.get("mcpServers") if isinstance(project, dict) else None
            if isinstance(nested, dict) and "memtomem" in nested:
                found.append(f"projects[{json.dumps(name)}].mcpServers.memtomem")
    return found
