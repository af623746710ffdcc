"""Run the released memtomem 0.6.12 (PyPI) as an isolated peer for interop tests.

The peer lives in its own venv built from a Python >= 3.12 and always runs
with a temporary HOME and runtime dir, so it never touches the real
``~/.memtomem`` or ``/tmp/memtomem-<uid>``. See NOTES.md beside this file.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import pwd
import re
import selectors
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEER_VERSION = "0.6.12"
PEER_REQUIREMENT = f"memtomem[web]=={PEER_VERSION}"
# pysqlite3-binary has manylinux wheels for cp312/cp313; the sdist fallback
# needs a C compiler and SQLite headers.
SQLITE_STANDINS = ("pysqlite3-binary", "pysqlite3")
_MARKER = ".peer-complete"

# The pyenv CPython builds cannot load SQLite extensions, which sqlite-vec needs.
# A .pth "import" line runs at interpreter start-up, before memtomem imports
# sqlite3, so the alias is in place for `mm`, `mm web`'s child and `mm serve`.
_ALIAS_MODULE = """\
import sys
try:
    import pysqlite3
    import pysqlite3.dbapi2
except ImportError:
    pass
else:
    sys.modules["sqlite3"] = pysqlite3
    sys.modules["sqlite3.dbapi2"] = pysqlite3.dbapi2
"""

_CHECK_SQLITE = (
    "import sqlite3, sqlite_vec; c = sqlite3.connect(':memory:'); "
    "c.enable_load_extension(True); sqlite_vec.load(c); "
    "print(sqlite3.__name__, sqlite3.sqlite_version, c.execute('select vec_version()').fetchone()[0])"
)


class PeerUnavailable(RuntimeError):
    """No Python >= 3.12 here: tests should skip with this message."""


class PeerInstallError(RuntimeError):
    """Building the peer venv failed; the message carries the tool output."""


def find_python312() -> str | None:
    """Return a working Python >= 3.12 interpreter, or None."""
    candidates = [shutil.which(n) for n in ("python3.12", "python3.13")]
    for root in _pyenv_roots():
        candidates += sorted(glob.glob(f"{root}/versions/3.1[2-9]*/bin/python3"))
    candidates.append(shutil.which("python3"))
    for cand in candidates:
        if not cand:
            continue
        # Must actually run it: a pyenv shim exists on PATH for every installed
        # version but fails unless that version is selected.
        try:
            out = subprocess.run(
                [cand, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == "True":
            return cand
    return None


def _pyenv_roots() -> list[str]:
    # The real home, not $HOME: tests point HOME at a temporary directory.
    roots = [os.environ.get("PYENV_ROOT", ""), f"{pwd.getpwuid(os.getuid()).pw_dir}/.pyenv"]
    roots.append("/root/.pyenv")
    return list(dict.fromkeys(r for r in roots if r))


def _run_checked(argv: list[str], what: str, timeout: float = 900) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise PeerInstallError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc.stdout


def ensure_peer_venv(cache_dir: Path) -> Path:
    """Build (once) the peer venv under *cache_dir* and return its ``mm``."""
    venv = cache_dir / "peer-venv"
    mm, py, marker = venv / "bin" / "mm", venv / "bin" / "python", venv / _MARKER
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Serialize concurrent builders (e.g. pytest-xdist workers).
    with open(cache_dir / "peer-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == PEER_REQUIREMENT and mm.exists():
            return mm
        python = find_python312()
        if python is None:
            raise PeerUnavailable("no Python >= 3.12 found (memtomem 0.6.12 requires it)")
        if venv.exists():
            shutil.rmtree(venv)  # a half-built venv from an interrupted run
        _run_checked([python, "-m", "venv", str(venv)], "venv creation")
        pip = [str(py), "-m", "pip", "install", "--no-input"]
        _run_checked([*pip, PEER_REQUIREMENT], f"pip install {PEER_REQUIREMENT}")
        errors: list[str] = []
        for standin in SQLITE_STANDINS:
            try:
                _run_checked([*pip, standin], f"pip install {standin}")
                break
            except PeerInstallError as exc:
                errors.append(str(exc))
        else:
            raise PeerInstallError("no SQLite stand-in could be installed\n" + "\n".join(errors))
        purelib = Path(
            _run_checked(
                [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                "purelib",
            ).strip()
        )
        (purelib / "_peer_sqlite_alias.py").write_text(_ALIAS_MODULE)
        (purelib / "zz_peer_sqlite_alias.pth").write_text("import _peer_sqlite_alias\n")
        check = _run_checked([str(py), "-c", _CHECK_SQLITE], "SQLite extension check")
        if not check.startswith("pysqlite3 "):
            raise PeerInstallError(f"sqlite3 alias not active in the peer venv: {check!r}")
        marker.write_text(PEER_REQUIREMENT + "\n")
        return mm


@dataclass
class WebHandle:
    peer: Peer
    pid: int
    port: int

    def stop(self) -> None:
        """``mm web stop``; SIGKILL the recorded pid if it survives that."""
        self.peer.run("web", "stop", timeout=30, check=False)
        if _alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


@dataclass
class Peer:
    home: Path
    runtime_dir: Path
    mm: Path
    # Everything started, so close() can stop what a failing test left running.
    webs: list[WebHandle] = field(default_factory=list, repr=False)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    # Where the latest server's part of the (appended) serve log begins.
    serve_log_start: int = field(default=0, repr=False)

    @classmethod
    def create(cls, root: Path, mm: Path) -> Peer:
        """A fresh peer whose HOME and runtime dir live under *root*."""
        home, runtime_dir = root / "home", root / "run"
        home.mkdir(parents=True)
        # memtomem refuses a runtime dir that is not 0700 and owned by us.
        runtime_dir.mkdir(mode=0o700)
        runtime_dir.chmod(0o700)
        return cls(home=home, runtime_dir=runtime_dir, mm=mm)

    @property
    def state_dir(self) -> Path:
        return self.home / ".memtomem"

    @property
    def serve_log(self) -> Path:
        return self.home.parent / f"{self.home.name}-serve.log"

    def env(self) -> dict[str, str]:
        """A from-scratch environment: nothing MEMTOMEM_*, PYTHON* or XDG_* leaks in."""
        path = f"{self.mm.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
        return {
            "PATH": path,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "_MEMTOMEM_TEST_RUNTIME_DIR": str(self.runtime_dir),
            # 0.6.12 honours the override above only while this is set.
            "PYTEST_CURRENT_TEST": os.environ.get("PYTEST_CURRENT_TEST", "interop-peer (call)"),
            # The server loads the nearest .env walking up from its own
            # install dir, i.e. from the repo's cache dir.
            "PYTHON_DOTENV_DISABLED": "1",
            "MEMTOMEM_EMBEDDING__PROVIDER": "none",
            "HF_HUB_OFFLINE": "1",
        }

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.mm), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"mm {' '.join(args)} exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def init(self) -> subprocess.CompletedProcess[str]:
        return self.run(
            "init",
            "--non-interactive",
            "--preset",
            "minimal",
            "--mcp",
            "skip",
            "--memory-dir",
            str(self.state_dir / "memories"),
        )

    def add(self, text: str, file: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("add", text, *(["--file", file] if file else []))

    def start_web(self, timeout: float = 60) -> WebHandle:
        # --port 0: mm picks a free loopback port and prints it.
        out = self.run("web", "--background", "--port", "0", timeout=timeout).stdout
        m = re.search(r"started pid=(\d+) port=(\d+)", out)
        if m is None:
            raise AssertionError(f"unexpected `mm web --background` output: {out!r}")
        handle = WebHandle(self, int(m.group(1)), int(m.group(2)))
        self.webs.append(handle)
        return handle

    def upload(self, port: int, name: str, data: bytes) -> dict[str, Any]:
        """POST one file to the Web UI's ``/api/upload``; return its JSON answer."""
        base = f"http://127.0.0.1:{port}/api"
        with urllib.request.urlopen(f"{base}/session", timeout=30) as resp:
            token = json.load(resp)["csrf"]
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        req = urllib.request.Request(
            f"{base}/upload",
            data=body,
            method="POST",
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "X-Memtomem-CSRF": token,
            },
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            result: dict[str, Any] = json.load(resp)
        if any(f.get("error") for f in result.get("files", [])):
            raise AssertionError(f"upload of {name} was refused: {result}")
        return result

    def start_server(self, timeout: float = 60) -> subprocess.Popen[bytes]:
        """Start ``mm serve``, handshake, ``mem_add`` once; return once the store is open."""
        # stderr must not fill a pipe; keep the log out of the peer's HOME.
        log = open(self.serve_log, "ab")
        self.serve_log_start = log.tell()
        proc = subprocess.Popen(
            [str(self.mm), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=self.env(),
            cwd=self.home,
        )
        log.close()
        self.servers.append(proc)
        try:
            rpc = _StdioRpc(proc, timeout)
            rpc.request(
                "initialize",
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "interop-peer", "version": "0"},
                },
            )
            rpc.notify("notifications/initialized")
            result = rpc.request(
                "tools/call",
                {
                    "name": "mem_add",
                    "arguments": {"content": "peer server memory"},
                },
            )
            if result.get("isError"):
                raise AssertionError(f"mem_add failed: {result}")
            # This process's store sentinel (instances/<pid>-...) is published
            # once storage is open; others' (stale or live) may already exist.
            _wait_for(
                lambda: any((self.runtime_dir / "instances").glob(f"{proc.pid}-*.lock")),
                timeout,
                f"instances/{proc.pid}-*.lock sentinel",
            )
        except BaseException:
            self.kill9(proc)
            raise
        return proc

    def stop_server(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
        """Graceful stop: EOF on stdin, then SIGTERM, then SIGKILL as a last resort."""
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.kill9(proc)

    @staticmethod
    def kill9(proc: subprocess.Popen[bytes]) -> int:
        """SIGKILL: leaves pid file, presence marker, sentinel and WAL behind."""
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return proc.wait()

    def wait_server_settled(self, timeout: float = 30) -> None:
        """Wait for the file watcher's re-index of the file ``mem_add`` wrote.

        That re-index writes the DB about 5 s (``watcher_debounce_ms``) after
        ``mem_add``; afterwards an idle server writes nothing (its health
        watchdog and scheduler are off by default).
        """
        _wait_for(
            lambda: b"Auto-reindexed" in self.serve_log.read_bytes()[self.serve_log_start :],
            timeout,
            f"the watcher's re-index in {self.serve_log}",
        )

    def close(self) -> None:
        """Stop whatever is still running: the Web UI is detached and outlives us."""
        for web in self.webs:
            if _alive(web.pid):
                web.stop()
        for proc in self.servers:
            if proc.poll() is None:
                self.kill9(proc)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def server_pid_file(self) -> Path | None:
        files = sorted(self.runtime_dir.glob("server-*.pid"))
        return files[0] if files else None


class _StdioRpc:
    """Newline-delimited JSON-RPC over the server's stdio pipes, with timeouts."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc, self.timeout, self.buf, self.next_id = proc, timeout, b"", 1

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def notify(self, method: str) -> None:
        self._send({"jsonrpc": "2.0", "method": method})

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        msg_id, self.next_id = self.next_id, self.next_id + 1
        self._send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        deadline = time.monotonic() + self.timeout
        while True:
            line = self._readline(deadline)
            msg = json.loads(line)
            if msg.get("id") != msg_id:
                continue  # server notifications / log messages
            if "error" in msg:
                raise AssertionError(f"{method} failed: {msg['error']}")
            result: dict[str, Any] = msg["result"]
            return result

    def _readline(self, deadline: float) -> bytes:
        # Raw os.read on the fd: select() cannot see data already sitting in
        # a BufferedReader, so readline() after select() could hang.
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no answer from `mm serve`")
                if sel.select(left):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        raise EOFError(f"`mm serve` closed stdout (exit {self.proc.poll()})")
                    self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return True


def _wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)
