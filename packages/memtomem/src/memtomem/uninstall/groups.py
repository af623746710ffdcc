"""What memtomem 0.6.12 writes, by name: the groups and which flag keeps each."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path


class Group(Enum):
    DATABASE = "database"
    CONFIG = "config"
    MEMORIES = "memories"
    UPLOADS = "uploads"
    AGENTS = "agents"
    SKILLS = "skills"
    COMMANDS = "commands"
    CACHE = "cache"
    TRACES = "traces"
    LOGS = "logs"
    DEBOUNCE_QUEUE = "debounce-queue"
    RUNTIME = "runtime"


class KeptBy(Enum):
    NOTHING = "nothing"
    KEEP_CONFIG = "--keep-config"
    KEEP_DATA = "--keep-data"


KEPT_BY = {
    Group.DATABASE: KeptBy.KEEP_DATA,
    Group.CONFIG: KeptBy.KEEP_CONFIG,
    Group.MEMORIES: KeptBy.KEEP_DATA,
    Group.AGENTS: KeptBy.KEEP_DATA,
    Group.SKILLS: KeptBy.KEEP_DATA,
    Group.COMMANDS: KeptBy.KEEP_DATA,
}

_FIXED_NAMES = {
    "config.json": Group.CONFIG,
    "config.d": Group.CONFIG,
    "known_projects.json": Group.CONFIG,
    "memories": Group.MEMORIES,
    "uploads": Group.UPLOADS,
    "agents": Group.AGENTS,
    "skills": Group.SKILLS,
    "commands": Group.COMMANDS,
    "cache": Group.CACHE,
    "traces": Group.TRACES,
    "logs": Group.LOGS,
    "index_debounce_queue.json": Group.DEBOUNCE_QUEUE,
    "index_debounce_queue.json.lock": Group.DEBOUNCE_QUEUE,
    ".current_session": Group.RUNTIME,
    ".server.pid": Group.RUNTIME,
    ".config.json.lock": Group.RUNTIME,
}
_CONFIG_BACKUP = re.compile(r"config\.json\.bak-\d+")
STAGING_PREFIX = ".uninstall-staging-"


def kept_by(group: Group) -> KeptBy:
    return KEPT_BY.get(group, KeptBy.NOTHING)


def is_kept(group: Group, *, keep_config: bool, keep_data: bool) -> bool:
    flag = kept_by(group)
    return (flag is KeptBy.KEEP_CONFIG and keep_config) or (flag is KeptBy.KEEP_DATA and keep_data)


def database_names(db_path: Path) -> tuple[frozenset[str], re.Pattern[str]]:
    """The DB file, its SQLite siblings, its provenance key, and its pre-reset backups."""
    name = db_path.name
    key = db_path.with_suffix(".provenance_key").name if name else ""
    exact = frozenset({name, f"{name}-wal", f"{name}-shm", f"{name}-journal", key})
    backups = re.compile(re.escape(name) + r"\.pre-reset-\d{8}T\d{6}-\d{6}\.bak")
    return exact, backups


def is_database_name(name: str, db_path: Path) -> bool:
    exact, backups = database_names(db_path)
    return name in exact or backups.fullmatch(name) is not None


def classify(name: str, db_paths: tuple[Path, ...]) -> Group | None:
    """The group of a top-level entry of the state dir, or None when it is not ours."""
    group = _FIXED_NAMES.get(name)
    if group is not None:
        return group
    if _CONFIG_BACKUP.fullmatch(name):
        return Group.CONFIG
    if any(is_database_name(name, db) for db in db_paths):
        return Group.DATABASE
    return None
