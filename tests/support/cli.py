"""Run `mm uninstall` in-process through Click's runner, optionally with a scripted seam."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result

from memtomem.cli import mm, uninstall_cmd
from memtomem.uninstall.fsops import FsOps


def invoke(
    *args: str, env: dict[str, str], fs: FsOps | None = None, input: str | None = None
) -> Result:
    previous = uninstall_cmd.make_fsops
    if fs is not None:
        uninstall_cmd.make_fsops = lambda: fs
    try:
        return CliRunner().invoke(
            mm, ["uninstall", *args], env=env, input=input, catch_exceptions=False
        )
    finally:
        uninstall_cmd.make_fsops = previous


def invoke_json(*args: str, env: dict[str, str], fs: FsOps | None = None) -> tuple[int, Any]:
    result = invoke("--json", *args, env=env, fs=fs)
    return result.exit_code, json.loads(result.stdout)


def flag_args(keep_config: bool, keep_data: bool) -> list[str]:
    return (["--keep-config"] if keep_config else []) + (["--keep-data"] if keep_data else [])
