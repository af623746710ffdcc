"""The `mm` command group."""

from __future__ import annotations

import click

from memtomem import __version__
from memtomem.cli.uninstall_cmd import uninstall


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mm")
def mm() -> None:
    """memtomem: a local memory store for AI agents."""


mm.add_command(uninstall)


def main() -> None:
    mm(prog_name="mm")
