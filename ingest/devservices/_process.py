"""Child-process plumbing shared by the local services.

Every service process is started in its own process group (so a Ctrl-C aimed at the test run
does not hit the database halfway through teardown) and with a parent-death signal (so a
SIGKILLed test run or CLI does not leave a broker or a postmaster running on the machine).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self


class ServiceError(RuntimeError):
    """A local service failed to install, start or stop."""


class ServiceUnavailable(ServiceError):
    """This machine cannot run the service at all (binaries or tools missing)."""


class _Closable(Protocol):
    def close(self) -> None: ...


_PR_SET_PDEATHSIG = 1
# Resolved in the parent: the child of a fork should do as little as possible before exec.
_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl


def _child_setup(parent_pid: int, death_signal: int) -> Callable[[], None]:
    def setup() -> None:
        # Runs after Popen has switched uid/gid: changing credentials clears the parent-death
        # signal, so it has to be set last. The signal follows the *thread* that forked, so
        # services must be started from a thread that lives as long as they should.
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return setup


def _credentials(user: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """uid, gid and supplementary groups for Popen; all None to keep our own."""
    if user is None:
        return None, None, None
    entry = pwd.getpwnam(user)
    # Popen(user=) alone would keep root's group and supplementary groups.
    return entry.pw_uid, entry.pw_gid, []


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    death_signal: int,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running service with stdout and stderr appended to `log_path`."""
    uid, gid, groups = _credentials(user)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            process_group=0,
            preexec_fn=_child_setup(os.getpid(), death_signal),
            user=uid,
            group=gid,
            extra_groups=groups,
        )


def run(
    argv: Sequence[str],
    *,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
) -> str:
    """Run a short set-up command (initdb, storage format); raise with its output on failure."""
    uid, gid, groups = _credentials(user)
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            timeout=timeout_s,
            process_group=0,
            preexec_fn=_child_setup(os.getpid(), signal.SIGKILL),
            check=False,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{argv[0]} did not finish within {timeout_s:.0f} s") from exc
    output = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        raise ServiceError(f"{' '.join(argv)} exited {done.returncode}:\n{output[-4000:]}")
    return output


def stop_process(
    proc: subprocess.Popen[bytes], first_signal: int, grace_s: float, name: str
) -> None:
    """Ask politely, then kill the whole process group (a postmaster's backends too)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(first_signal)
    try:
        proc.wait(timeout=grace_s)
        return
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop within {grace_s:.0f} s; killing it", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def free_ports(count: int) -> list[int]:
    """Ports free right now on 127.0.0.1, all distinct (sockets held open until all are picked)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def make_temp_root(prefix: str) -> Path:
    """A fresh temp dir marked with our pid; dirs of the same prefix whose owner died
    without cleaning up (SIGKILL, power cut) are removed on the way."""
    base = Path(tempfile.gettempdir())
    for stale in base.glob(f"{prefix}*"):
        try:
            owner = int((stale / _OWNER_FILE).read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (OSError, ValueError):
            pass  # not ours to judge: unreadable, or still being set up
    root = Path(tempfile.mkdtemp(prefix=prefix))
    (root / _OWNER_FILE).write_text(str(os.getpid()))
    return root


_OWNER_FILE = "owner.pid"


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# Services that are running, closed at interpreter exit if their owner forgot or crashed.
_live: dict[int, _Closable] = {}


def track(service: _Closable) -> None:
    _live[id(service)] = service


def untrack(service: _Closable) -> None:
    _live.pop(id(service), None)


@atexit.register
def _close_all() -> None:
    for service in list(_live.values()):
        with contextlib.suppress(Exception):
            service.close()


class ManagedService:
    """The life cycle both local services share: one child process, and a temp dir it may own.

    Subclasses set ``_proc`` in ``start()`` and say how their server wants to be stopped.
    """

    _service_name = "service"
    #: The signal of the server's clean shutdown.
    _stop_signal = signal.SIGTERM
    _proc: subprocess.Popen[bytes] | None
    _temp_root: Path | None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, grace_s: float = 30.0) -> None:
        if self._proc is not None:
            stop_process(self._proc, self._stop_signal, grace_s, self._service_name)
            self._proc = None

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, and delete the temp dir if this object created it."""
        self.stop()
        untrack(self)
        if self._temp_root is not None:
            shutil.rmtree(self._temp_root, ignore_errors=True)
            self._temp_root = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
