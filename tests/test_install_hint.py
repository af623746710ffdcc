"""The "remove the program too" hint, decided from the facts an install leaves: the pure
decision on hand-written facts, without a disk.

The system's own Python (a distribution's package, or root's pip past it) is tested only
here: installing into the machine's system Python is not something a test may do. So are
the corners without a tool on PATH. Every other context is also installed for real, in
test_install_contexts.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from memtomem.uninstall import install_facts
from memtomem.uninstall.install import decide
from memtomem.uninstall.install_facts import InstallFacts

HOME = "/home/me"
VENV = "/home/me/proj/.venv"
SITE = f"{VENV}/lib/python3.12/site-packages"
BASE = "/usr/local"
BASE_SITE = f"{BASE}/lib/python3.12/site-packages"
USER_SITE = f"{HOME}/.local/lib/python3.12/site-packages"
PIPX_VENV = f"{HOME}/.local/share/pipx/venvs/memtomem"
UV_TOOL = f"{HOME}/.local/share/uv/tools/memtomem"
UVX = f"{HOME}/.cache/uv/archive-v0/Ab3dE"


def dist(site: str) -> str:
    return f"{site}/memtomem-0.7.0.dist-info"


# A venv made by `python3 -m venv` + pip, on a machine where uv and pipx are on PATH too.
PIP_VENV = InstallFacts(
    python=f"{VENV}/bin/python",
    prefix=VENV,
    base_prefix=BASE,
    base_python=f"{BASE}/bin/python3.12",
    dist_info=dist(SITE),
    module_dir=f"{SITE}/memtomem",
    installer="pip",
    user_site=USER_SITE,
    site_packages=(SITE,),
    has_pip=True,
    uv_on_path=True,
    pipx_on_path=True,
    home=HOME,
)
# The interpreter itself (a pyenv or python.org build): no venv.
INTERPRETER = dataclasses.replace(
    PIP_VENV,
    python=f"{BASE}/bin/python3.12",
    prefix=BASE,
    dist_info=dist(BASE_SITE),
    module_dir=f"{BASE_SITE}/memtomem",
    site_packages=(BASE_SITE,),
)
DEBIAN = dataclasses.replace(
    INTERPRETER,
    python="/usr/bin/python3",
    prefix="/usr",
    base_prefix="/usr",
    base_python="/usr/bin/python3",
    dist_info=dist("/usr/lib/python3/dist-packages"),
    installer=None,
    site_packages=("/usr/local/lib/python3.12/dist-packages", "/usr/lib/python3/dist-packages"),
    externally_managed=True,
)


def venv(prefix: str, **changes: object) -> InstallFacts:
    site = f"{prefix}/lib/python3.12/site-packages"
    facts = dataclasses.replace(
        PIP_VENV, python=f"{prefix}/bin/python", prefix=prefix, dist_info=dist(site)
    )
    return dataclasses.replace(facts, site_packages=(site,), **changes)  # type: ignore[arg-type]


ODD = "/home/me/my venvs/it's\x1b"
CASES = {
    # The report's bug: uv on PATH does not make a pip venv uv's.
    "pip-venv": (
        PIP_VENV,
        f"{VENV}/bin/python -m pip uninstall memtomem  (or remove the virtual environment {VENV})",
    ),
    "pip-venv-odd-path": (
        venv(ODD),
        "$'/home/me/my venvs/it\\x27s\\x1b/bin/python' -m pip uninstall memtomem  "
        "(or remove the virtual environment $'/home/me/my venvs/it\\x27s\\x1b')",
    ),
    "pip-venv-no-uv": (
        dataclasses.replace(PIP_VENV, uv_on_path=False),
        f"{VENV}/bin/python -m pip uninstall memtomem  (or remove the virtual environment {VENV})",
    ),
    # `pip --python <venv> install`: pip is not in the venv; uv can still uninstall.
    "pip-from-outside": (
        dataclasses.replace(PIP_VENV, has_pip=False),
        f"uv pip uninstall --python {VENV} memtomem  (or remove the virtual environment {VENV})",
    ),
    "uv-venv": (
        dataclasses.replace(PIP_VENV, installer="uv", venv_uv=True, has_pip=False),
        f"uv pip uninstall --python {VENV} memtomem  (or remove the virtual environment {VENV})",
    ),
    "uv-venv-uv-gone-pip-there": (
        dataclasses.replace(PIP_VENV, installer="uv", venv_uv=True, uv_on_path=False),
        f"{VENV}/bin/python -m pip uninstall memtomem  (or remove the virtual environment {VENV})",
    ),
    "uv-venv-no-tool": (
        dataclasses.replace(
            PIP_VENV, installer="uv", venv_uv=True, has_pip=False, uv_on_path=False
        ),
        f"remove the virtual environment {VENV} (it has no pip, and no uv is on PATH to uninstall memtomem from it)",
    ),
    "venv-unknown-installer": (
        dataclasses.replace(PIP_VENV, installer=None),
        f"{VENV}/bin/python -m pip uninstall memtomem  (or remove the virtual environment {VENV})",
    ),
    "editable-venv": (
        dataclasses.replace(PIP_VENV, editable_source="/home/me/src/memtomem/packages/memtomem"),
        f"{VENV}/bin/python -m pip uninstall memtomem  (an editable install: its source "
        f"/home/me/src/memtomem/packages/memtomem stays; or remove the virtual environment {VENV})",
    ),
    "pipx": (venv(PIPX_VENV, pipx_metadata=True), "pipx uninstall memtomem"),
    "pipx-default-link": (
        venv(PIPX_VENV, pipx_metadata=True, launcher=f"{HOME}/.local/bin/mm"),
        "pipx uninstall memtomem",
    ),
    "pipx-run-from-its-venv": (
        venv(PIPX_VENV, pipx_metadata=True, launcher=f"{PIPX_VENV}/bin/mm"),
        "pipx uninstall memtomem",
    ),
    "pipx-bin-dir-set": (
        venv(PIPX_VENV, pipx_metadata=True, launcher="/opt/bin/mm", pipx_bin_dir="/opt/bin"),
        "pipx uninstall memtomem",
    ),
    # Installed with PIPX_BIN_DIR set, run without it: pipx must be told where its link is.
    "pipx-bin-dir-not-set": (
        venv(PIPX_VENV, pipx_metadata=True, launcher="/opt/my bin/mm"),
        "PIPX_BIN_DIR='/opt/my bin' pipx uninstall memtomem",
    ),
    "pipx-uv-backend": (
        venv(PIPX_VENV, pipx_metadata=True, installer="uv", venv_uv=True),
        "pipx uninstall memtomem",
    ),
    "pipx-legacy-home": (
        venv(f"{HOME}/.local/pipx/venvs/memtomem", pipx_metadata=True),
        "pipx uninstall memtomem",
    ),
    "pipx-xdg-home": (
        venv("/data/me/pipx/venvs/memtomem", pipx_metadata=True, xdg_data_home="/data/me"),
        "pipx uninstall memtomem",
    ),
    "pipx-suffix": (
        venv(f"{HOME}/.local/share/pipx/venvs/memtomem@2", pipx_metadata=True),
        "pipx uninstall memtomem@2",
    ),
    "pipx-home-set": (
        venv("/opt/tools/pipx/venvs/memtomem", pipx_metadata=True, pipx_home="/opt/tools/pipx/"),
        "pipx uninstall memtomem",
    ),
    "pipx-home-not-set": (
        venv("/opt/tools/pipx/venvs/memtomem", pipx_metadata=True),
        "PIPX_HOME=/opt/tools/pipx pipx uninstall memtomem",
    ),
    "pipx-home-set-elsewhere": (
        venv(
            "/opt/tools/pipx/venvs/memtomem",
            pipx_metadata=True,
            pipx_home=f"{HOME}/.local/share/pipx",
        ),
        "PIPX_HOME=/opt/tools/pipx pipx uninstall memtomem",
    ),
    "pipx-global": (
        venv("/opt/pipx/venvs/memtomem", pipx_metadata=True),
        "pipx uninstall --global memtomem",
    ),
    "pipx-global-home-set": (
        venv("/srv/pipx/venvs/memtomem", pipx_metadata=True, pipx_global_home="/srv/pipx"),
        "pipx uninstall --global memtomem",
    ),
    "pipx-not-on-path": (
        venv(PIPX_VENV, pipx_metadata=True, pipx_on_path=False),
        "pipx uninstall memtomem  (pipx installed it, but no pipx is on PATH)",
    ),
    "uv-tool": (
        venv(UV_TOOL, uv_receipt=True, installer="uv", venv_uv=True),
        "uv tool uninstall memtomem",
    ),
    "uv-tool-xdg": (
        venv(
            "/data/me/uv/tools/memtomem",
            uv_receipt=True,
            installer="uv",
            venv_uv=True,
            xdg_data_home="/data/me",
        ),
        "uv tool uninstall memtomem",
    ),
    "uv-tool-dir-set": (
        venv(
            "/opt/uv tools/memtomem",
            uv_receipt=True,
            installer="uv",
            venv_uv=True,
            uv_tool_dir="/opt/uv tools",
        ),
        "uv tool uninstall memtomem",
    ),
    "uv-tool-dir-not-set": (
        venv("/opt/uv tools/memtomem", uv_receipt=True, installer="uv", venv_uv=True),
        "UV_TOOL_DIR='/opt/uv tools' uv tool uninstall memtomem",
    ),
    "uv-tool-editable": (
        venv(UV_TOOL, uv_receipt=True, installer="uv", venv_uv=True, editable_source="/src/mt"),
        "uv tool uninstall memtomem  (an editable install: its source /src/mt stays)",
    ),
    "uv-tool-no-uv": (
        venv(UV_TOOL, uv_receipt=True, installer="uv", venv_uv=True, uv_on_path=False),
        "uv tool uninstall memtomem  (uv installed it as a tool, but no uv is on PATH)",
    ),
    "uvx": (
        venv(UVX, installer="uv", venv_uv=True, cache_tag_above=True),
        "nothing to remove: uvx runs memtomem from uv's cache",
    ),
    # The same shape outside a cache (no CACHEDIR.TAG above it) is an ordinary uv venv.
    "uv-venv-named-like-a-cache": (
        venv(UVX, installer="uv", venv_uv=True),
        f"uv pip uninstall --python {UVX} memtomem  (or remove the virtual environment {UVX})",
    ),
    "user": (
        dataclasses.replace(INTERPRETER, dist_info=dist(USER_SITE)),
        f"{BASE}/bin/python3.12 -m pip uninstall memtomem",
    ),
    # pip will not uninstall from an externally managed Python's user site without the flag.
    "user-externally-managed": (
        dataclasses.replace(
            DEBIAN, dist_info=dist(USER_SITE), user_site=USER_SITE, has_pip=True, installer="pip"
        ),
        "/usr/bin/python3 -m pip uninstall --break-system-packages memtomem",
    ),
    "user-no-pip": (
        dataclasses.replace(INTERPRETER, dist_info=dist(USER_SITE), has_pip=False),
        f"memtomem was installed by pip into {USER_SITE}, where no uninstall command reaches "
        f"it: {dist(USER_SITE)}/RECORD lists the files to delete",
    ),
    "system-debian-package": (
        DEBIAN,
        "memtomem belongs to the system's Python (/usr/lib/python3/dist-packages): remove it "
        "with the distribution's package manager (apt, dnf, pacman, ...), not with pip",
    ),
    "system-fedora-package": (
        dataclasses.replace(
            DEBIAN,
            dist_info=dist("/usr/lib/python3.12/site-packages"),
            site_packages=(
                "/usr/local/lib/python3.12/site-packages",
                "/usr/lib/python3.12/site-packages",
            ),
        ),
        "memtomem belongs to the system's Python (/usr/lib/python3.12/site-packages): remove "
        "it with the distribution's package manager (apt, dnf, pacman, ...), not with pip",
    ),
    "system-by-root-pip": (
        dataclasses.replace(
            DEBIAN, dist_info=dist("/usr/local/lib/python3.12/dist-packages"), installer="pip"
        ),
        "memtomem was put into the system's Python (/usr/local/lib/python3.12/dist-packages) "
        "by pip, past the distribution's package manager, which does not know it: remove it "
        "the way it was put there",
    ),
    # A venv with system site packages that gets memtomem from the system's Python.
    "system-through-venv": (
        dataclasses.replace(DEBIAN, python=f"{VENV}/bin/python", prefix=VENV),
        "memtomem belongs to the system's Python (/usr/lib/python3/dist-packages): remove it "
        "with the distribution's package manager (apt, dnf, pacman, ...), not with pip",
    ),
    "interpreter-pip": (INTERPRETER, f"{BASE}/bin/python3.12 -m pip uninstall memtomem"),
    "interpreter-uv": (
        dataclasses.replace(INTERPRETER, installer="uv"),
        f"uv pip uninstall --python {BASE}/bin/python3.12 memtomem",
    ),
    "interpreter-hostile-installer": (
        dataclasses.replace(INTERPRETER, installer="x\x1b]0;owned\x07"),
        f"memtomem was installed by x\\x1b]0;owned\\x07 into {BASE_SITE}: remove it with "
        "x\\x1b]0;owned\\x07",
    ),
    "interpreter-conda": (
        dataclasses.replace(INTERPRETER, installer="conda"),
        f"memtomem was installed by conda into {BASE_SITE}: remove it with conda",
    ),
    "interpreter-through-venv": (
        dataclasses.replace(INTERPRETER, python=f"{VENV}/bin/python", prefix=VENV),
        f"{BASE}/bin/python3.12 -m pip uninstall memtomem",
    ),
    "target-dir": (
        dataclasses.replace(PIP_VENV, dist_info=dist("/home/me/vendor")),
        "memtomem was installed by pip into /home/me/vendor, where no uninstall command "
        "reaches it: /home/me/vendor/memtomem-0.7.0.dist-info/RECORD lists the files to delete",
    ),
    "no-dist-info": (
        dataclasses.replace(
            PIP_VENV, dist_info=None, installer=None, module_dir="/home/me/src/memtomem"
        ),
        "memtomem runs from /home/me/src/memtomem, not from an installed package: there is "
        "nothing to uninstall; take that directory off the Python path",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_decide(case: str) -> None:
    facts, expected = CASES[case]
    assert str(decide(facts)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"url": "file:///src/my%20tree", "dir_info": {"editable": true}}', "/src/my tree"),
        ('{"url": "file:///src/tree", "dir_info": {}}', None),
        ('{"url": "file:///w/memtomem.whl", "archive_info": {}}', None),
        ('{"url": "https://example.org/x", "dir_info": {"editable": true}}', None),
        ('{"url": 7, "dir_info": {"editable": true}}', None),
        ("[]", None),
        ("not json", None),
        (None, None),
    ],
)
def test_editable_source_is_read_from_direct_url_json(
    text: str | None, expected: str | None
) -> None:
    assert install_facts._editable_source(text) == expected


def test_unreadable_metadata_counts_as_absent(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "memtomem-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "INSTALLER").write_bytes(b"\xff\xfe")
    (info / "direct_url.json").mkdir()
    (tmp_path / "pyvenv.cfg").write_bytes(b"uv = \xff\n")
    assert install_facts._find_dist_info([str(tmp_path / "missing"), str(site)]) == str(info)
    assert install_facts._read(str(info / "INSTALLER")) is None
    assert install_facts._read(str(info / "direct_url.json")) is None
    assert install_facts._venv_config(str(tmp_path)) == {}
    assert install_facts._first_line(" UV \n0.13\n") == "uv"
    assert install_facts._first_line("\n") is None
