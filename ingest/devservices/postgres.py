"""A throwaway PostgreSQL server built from the machine's server binaries."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from ingest.devservices._process import (
    ManagedService,
    ServiceError,
    ServiceUnavailable,
    free_ports,
    log_tail,
    make_temp_root,
    run,
    spawn,
    track,
)

SERVICE_USER = "postgres"
# The unix socket path ("<dir>/.s.PGSQL.<port>") must fit in sockaddr_un (108 bytes).
_MAX_SOCKET_DIR = 90


def find_postgres_bin_dir() -> Path:
    """Newest /usr/lib/postgresql/N/bin, else the directory of `pg_ctl` on PATH."""

    def major(path: str) -> float:
        found = re.search(r"/postgresql/([\d.]+)/", path)
        return float(found.group(1)) if found else 0.0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        # Debian's /usr/bin/pg_ctl may be a symlink into the versioned directory.
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in candidates:
        bin_dir = Path(candidate)
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir
    raise ServiceUnavailable(
        "no PostgreSQL server binaries (initdb, postgres) found in /usr/lib/postgresql/*/bin "
        "or next to pg_ctl on PATH; install e.g. the postgresql-15 package"
    )


def _service_user() -> str | None:
    """The user the server runs as: postgres refuses to run as root, so root delegates."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        done = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            capture_output=True,
            check=False,
        )
        try:  # another process may have created it at the same moment
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise ServiceError(f"cannot create user {SERVICE_USER}: {done.stderr!r}") from None
    return SERVICE_USER


class LocalPostgres(ManagedService):
    """initdb + postgres on 127.0.0.1 with trust auth; stop and start keep port and data."""

    _service_name = "postgres"
    #: SIGINT is PostgreSQL's fast shutdown: roll back open transactions, checkpoint, exit.
    _stop_signal = signal.SIGINT

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        port: int | None = None,
        fsync: bool = False,
        max_connections: int = 200,
        shared_buffers: str = "128MB",
        settings: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.bin_dir = bin_dir or find_postgres_bin_dir()
        self._user = _service_user()
        self._temp_root: Path | None = None
        if data_dir is None:
            self._temp_root = make_temp_root("mesh-ingest-pg-")
            self.data_dir = self._temp_root / "data"
            self.log_path = self._temp_root / "postgres.log"
        else:
            self.data_dir = Path(data_dir).absolute()
            self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self.port = port or free_ports(1)[0]
        self.fsync = fsync
        self._settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": (
                str(self.data_dir) if len(str(self.data_dir)) <= _MAX_SOCKET_DIR else ""
            ),
            "max_connections": str(max_connections),
            "shared_buffers": shared_buffers,
            # fsync off only risks data on an OS crash; a killed postmaster still keeps every
            # commit it acknowledged. synchronous_commit stays on for that very reason: fault
            # tests kill the server and must not lose acknowledged transactions.
            "fsync": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            "logging_collector": "off",
            **(settings or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None
        track(self)  # from here on there is a temp dir or a process to clean up at exit

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 60.0) -> LocalPostgres:
        if self.running:
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in self._settings.items():
            argv += ["-c", f"{name}={value}"]
        # SIGQUIT is postgres' immediate shutdown: if we die, it goes down with us at once.
        self._proc = spawn(
            argv, log_path=self.log_path, death_signal=signal.SIGQUIT, user=self._user
        )
        self._wait_ready(self._proc, timeout_s)
        return self

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            owned = [self.data_dir] if self._temp_root is None else [self._temp_root, self.data_dir]
            for path in owned:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        argv = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        if not self.fsync:
            argv.append("--no-sync")
        try:
            run(argv, user=self._user)
        except ServiceError as exc:
            hint = f" (every parent of {self.data_dir} must be searchable by {self._user})"
            raise ServiceError(f"{exc}{hint if self._user else ''}") from None

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        # Line 8 of postmaster.pid turns "ready" once connections are accepted (PG >= 10);
        # reading it avoids a client library and a retry loop of failed logins.
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(
                    f"postgres exited with {proc.returncode} while starting on port "
                    f"{self.port}; log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(
            f"postgres not ready after {timeout_s:.0f} s; log {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )
