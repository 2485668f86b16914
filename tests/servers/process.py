"""Start, watch and stop one server subprocess, with its log kept for error messages.

Every server runs in its own session (process group) so teardown can kill it together with any
children (postgres backends, uvicorn workers, nginx workers) even when the leader already exited.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .ports import STARTUP_TIMEOUT, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVERS_VENV = REPO_ROOT / ".venv-servers"
# Variables of the test venv that would make the servers' Python import the wrong packages.
_LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


class ServerStartError(RuntimeError):
    """A server could not start: the message carries the server's own output."""


def servers_bin(name: str) -> Path:
    """Path of an executable in `.venv-servers`, or an error that says how to create it."""
    path = SERVERS_VENV / "bin" / name
    if not path.exists():
        raise ServerStartError(f"{path} is missing: run `make servers-venv` first")
    return path


def server_env(**extra: str) -> dict[str, str]:
    """The current environment without the test venv's Python variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env.update(extra)
    return env


def temp_dir(prefix: str, cleanup: ExitStack) -> Path:
    """A fresh directory in the system temp dir, removed when `cleanup` unwinds.

    Not pytest's tmp_path: its parents are 0700, which the postgres user cannot traverse.
    """
    path = Path(tempfile.mkdtemp(prefix=f"cubescope-{prefix}-"))
    cleanup.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file (empty when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_checked(
    argv: Sequence[str | os.PathLike[str]],
    what: str,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    timeout: float = 120.0,
) -> str:
    """Run a setup command to completion; raise ServerStartError with its output when it fails."""
    try:
        done = subprocess.run(
            [str(a) for a in argv], env=env, cwd=cwd, capture_output=True, text=True,
            timeout=timeout, **as_user(user),
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerStartError(f"{what} did not finish within {timeout:.0f} s: {exc.stderr!r}") from exc
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise ServerStartError(f"{what} failed (rc {done.returncode}):\n{output}")
    return done.stdout


def as_user(user: str | None) -> dict[str, object]:
    """Popen keyword arguments that run a child as `user` when we are root (else as ourselves)."""
    if user is None or os.geteuid() != 0:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


@dataclass
class ServerProcess:
    """A running server: its Popen handle and the file its stdout/stderr go to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    _log_file: IO[bytes]
    extra_logs: tuple[Path, ...] = ()

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        extra_logs: tuple[Path, ...] = (),
    ) -> ServerProcess:
        """Launch `argv` in a new session with output appended to `log`.

        `extra_logs` are files the server writes itself; failures quote them too.
        """
        log_file = open(log, "ab")  # closed in stop()
        try:
            popen = subprocess.Popen(
                [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True, **as_user(user),
            )
        except BaseException:
            log_file.close()
            raise
        return cls(name, popen, log, log_file, extra_logs)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait for `ready`; on failure raise with the tail of the server's logs (the caller stops it)."""
        try:
            wait_until(ready, self.alive, self.name, timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise ServerStartError(f"{exc} (rc={self.popen.returncode})\n{self.logs()}") from exc

    def logs(self) -> str:
        """The tails of the server's output and of its own log files, labelled by path."""
        return "\n".join(f"--- {path}:\n{tail(path)}" for path in (self.log, *self.extra_logs))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Send `sig` to the whole group, wait, then SIGKILL whatever is left of the group."""
        pgid = self.popen.pid  # start_new_session made the child its group leader
        _killpg(pgid, sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(pgid, signal.SIGKILL)
            self.popen.wait(timeout)
        _killpg(pgid, signal.SIGKILL)
        self._log_file.close()


def _killpg(pgid: int, sig: int) -> None:
    """killpg that accepts a group which is already gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
