"""A real `mm` on a real pseudo-terminal, which is its controlling terminal: typing \\x03
there sends SIGINT to its process group, as a terminal's Ctrl-C does, and \\x04 is the end of
input (Ctrl-D), both decided by the kernel's line discipline, not by the test."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from types import TracebackType

from tests.support import REPO

TIMEOUT = 120.0


def _take_terminal() -> None:
    """In the child, after setsid: make stdin (the pty) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`mm uninstall ARGS` with stdin and stderr on a pty (stdout too, unless `pipe_stdout`:
    then stdout is a pipe, as in `mm uninstall --json > out.json` typed at a terminal)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        cwd: Path,
        *,
        pipe_stdout: bool = False,
        columns: int = 80,
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        attrs = termios.tcgetattr(slave)
        # Linux's defaults, set explicitly: Ctrl-C signals and echoes as ^C; Ctrl-D is EOF.
        attrs[3] |= termios.ISIG | termios.ICANON | termios.ECHO | termios.ECHOCTL
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.launcher", "uninstall", *args],
            stdin=slave,
            stdout=subprocess.PIPE if pipe_stdout else slave,
            stderr=slave,
            env={**env, "PYTHONPATH": str(REPO)},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        self.master = master
        self.seen = bytearray()
        self.out = bytearray()

    @property
    def text(self) -> str:
        """What the terminal shows so far (its CR LF line ends read as LF)."""
        return self.seen.decode("utf-8", "replace").replace("\r\n", "\n")

    def expect(self, wanted: str) -> None:
        """Read until `wanted` is on the terminal."""
        deadline = time.monotonic() + TIMEOUT
        while wanted not in self.text:
            if time.monotonic() > deadline or not self._read_some(deadline):
                raise AssertionError(f"never saw {wanted!r}; terminal so far:\n{self.text}")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self) -> tuple[int, str, str]:
        """Read until the run ends: (exit code, terminal text, stdout when piped)."""
        deadline = time.monotonic() + TIMEOUT
        while self._read_some(deadline):
            pass
        code = self.proc.wait(timeout=30)
        return code, self.text, self.out.decode("utf-8", "replace")

    def _read_some(self, deadline: float) -> bool:
        """One read from the terminal or the stdout pipe; False once both are closed."""
        sources = [self.master] if self.master >= 0 else []
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            sources.append(self.proc.stdout.fileno())
        if not sources or time.monotonic() > deadline:
            return False
        ready, _, _ = select.select(sources, [], [], 0.2)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: every slave fd is closed
                chunk = b""
            if fd == self.master:
                if chunk:
                    self.seen += chunk
                else:
                    os.close(self.master)
                    self.master = -1
            elif chunk:
                self.out += chunk
            else:
                assert self.proc.stdout is not None
                self.proc.stdout.close()
        return True

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master >= 0:
            os.close(self.master)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
