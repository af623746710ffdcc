"""README.md and `mm uninstall --help` say the same: each option's words, the exit codes, and
that the program itself stays installed. Both are parsed; neither is copied from the other."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import REPO

README = REPO / "README.md"


@pytest.fixture(scope="module")
def help_text() -> str:
    """The real `mm uninstall --help`, from a child process."""
    done = subprocess.run(
        [sys.executable, "-m", "memtomem", "uninstall", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout


def plain(markdown: str) -> str:
    """A README cell or paragraph as the terminal would show it: no code marks, and no
    emphasis marks outside code."""
    parts = markdown.split("`")
    text = "".join(part if i % 2 else part.replace("*", "") for i, part in enumerate(parts))
    return " ".join(text.split())


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def readme_table(title: str) -> list[list[str]]:
    """The first table of a README section: its body rows, each as a list of cells."""
    rows = []
    for line in readme_section(title).splitlines():
        if line.startswith("|"):
            rows.append([plain(cell) for cell in line.strip().strip("|").split(" | ")])
        elif rows:
            break
    return rows[2:]  # past the header and the --- line


def help_options(text: str) -> dict[str, str]:
    """`Options:` entries: names, then the description joined across its wrapped lines."""
    block = text.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    options: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        found = re.fullmatch(r"  (-\S.*?)  +(\S.*)", line)
        if found:
            name = found.group(1)
            options[name] = found.group(2)
        else:
            options[name] += " " + line.strip()
    del options["-h, --help"]
    return options


def help_exit_codes(text: str) -> list[list[str]]:
    block = text.split("\n  Exit codes:\n", 1)[1]
    return [re.split(r" {2,}", line.strip(), maxsplit=1) for line in block.splitlines()]


def test_every_option_reads_the_same_in_readme_and_help(help_text: str) -> None:
    readme = {option: effect for option, effect in readme_table("Usage")}
    assert readme == help_options(help_text)
    usage = re.search(r"^    mm uninstall (.*)$", readme_section("Usage"), flags=re.MULTILINE)
    assert usage is not None
    flags = re.findall(r"--[a-z-]+", usage.group(1))
    assert flags == [re.findall(r"--[a-z-]+", name)[-1] for name in readme]


def test_exit_codes_read_the_same_in_readme_and_help(help_text: str) -> None:
    readme = [[code, meaning] for code, meaning, _details in readme_table("Exit codes")]
    assert readme == help_exit_codes(help_text)
    assert [code for code, _ in readme] == ["0", "1", "2", "3", "4", "5", "70", "128+N"]


def test_both_say_the_program_stays_installed(help_text: str) -> None:
    paragraphs = help_text.split("\n\n")
    stays = plain(paragraphs[2])
    assert stays.startswith("The memtomem program itself stays installed")
    assert stays in plain(readme_section("Usage"))


def test_json_help_names_no_document_the_package_lacks(help_text: str) -> None:
    """The packaged README has no schema, so the help must not send anyone to "the README"."""
    assert "README" not in help_text
    assert '"schema": "memtomem.uninstall"' in readme_section("JSON output")
    assert '"version": 1' in readme_section("JSON output")
