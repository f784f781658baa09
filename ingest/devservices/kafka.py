"""A throwaway single-node KRaft Kafka broker run from jars fetched once from Maven Central."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

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
from ingest.devservices.jars import ensure_kafka_jars, kafka_version

# Settings for a single combined broker+controller. Shared with the test harness, which
# gives the same ones to the apache/kafka container image.
BROKER_SETTINGS: Mapping[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "auto.create.topics.enable": "true",
    "num.partitions": "3",
    "default.replication.factor": "1",
    "offsets.topic.replication.factor": "1",
    # Fewer than the default 50: the first consumer group waits for all of them to be created.
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # Lets rebalance tests use short session timeouts (the broker default floor is 6 s).
    "group.min.session.timeout.ms": "1000",
}

_LOG4J2_CONFIG = """\
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""

T = TypeVar("T")


def _cluster_id() -> str:
    # Kafka's Uuid text form: url-safe base64 of 16 random bytes; one starting with "-"
    # would read as a command-line flag, so Kafka never generates those either.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from sync code, on a thread of its own: that works when an
    event loop is running here too, and leaves this thread's current loop alone (asyncio.run
    here would unset the one a pytest-asyncio session set)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def kafka_answers(bootstrap: str, timeout_ms: int = 3000) -> bool:
    """True once the broker answers metadata and lists itself (registered and unfenced)."""
    # aiokafka ships no type information; "unused-ignore" keeps this line valid once the
    # project configures that module's imports for mypy.
    from aiokafka import AIOKafkaClient  # type: ignore[import-untyped, unused-ignore]
    from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        return bool(metadata.brokers())
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await client.close()


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_kafka(
    bootstrap: str, timeout_s: float = 60.0, check: Callable[[], None] | None = None
) -> bool:
    """Poll until Kafka at `bootstrap` answers; False on timeout; `check` may raise to give up."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check is not None:
            check()
        # A cheap TCP check first keeps aiokafka from logging a connection error per try.
        if _port_open(host, int(port)) and _run_blocking(kafka_answers(bootstrap)):
            return True
        time.sleep(0.2)
    return False


class LocalKafka(ManagedService):
    """One KRaft broker+controller on 127.0.0.1; stop and start keep ports and data."""

    _service_name = "kafka"

    def __init__(
        self,
        version: str | None = None,
        *,
        log_dir: Path | str | None = None,
        heap: str = "512m",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.version = version or kafka_version()
        self._temp_root: Path | None = None
        if log_dir is None:
            self._temp_root = make_temp_root("mesh-ingest-kafka-")
            log_dir = self._temp_root
        self.home = Path(log_dir).absolute()
        self.log_path = self.home / "broker.log"
        self.port, self.controller_port = free_ports(2)
        self.heap = heap
        self._settings = {
            **BROKER_SETTINGS,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.home / "data"),
            **(settings or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None
        track(self)  # from here on there is a temp dir or a process to clean up at exit

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, wait: bool = True, timeout_s: float = 60.0) -> LocalKafka:
        """Start the broker; with wait=False return at once and call wait_ready() later."""
        if self.running:
            return self
        java = shutil.which("java")
        if java is None:
            raise ServiceUnavailable("a Java runtime (java on PATH, 17+) is needed for Kafka")
        libs = ensure_kafka_jars(self.version)
        self.home.mkdir(parents=True, exist_ok=True)
        config, log4j = self.home / "server.properties", self.home / "log4j2.properties"
        jvm = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
        ]
        if not (self.home / "data" / "meta.properties").exists():
            config.write_text("".join(f"{k}={v}\n" for k, v in self._settings.items()))
            log4j.write_text(_LOG4J2_CONFIG)
            # A one-shot tool: the client compiler and serial GC start it ~0.5 s sooner.
            quick = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
            run(
                [
                    jvm[0],
                    *quick,
                    *jvm[1:],
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    _cluster_id(),
                    "-c",
                    str(config),
                ]
            )
        # SIGKILL on our death: the broker's data is throwaway, a clean shutdown buys nothing.
        self._proc = spawn(
            [*jvm, "kafka.Kafka", str(config)], log_path=self.log_path, death_signal=signal.SIGKILL
        )
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        proc = self._proc
        if proc is None:
            raise ServiceError("LocalKafka.wait_ready() called before start()")

        def alive() -> None:
            if proc.poll() is not None:
                raise ServiceError(
                    f"Kafka exited with {proc.returncode} while starting on port {self.port}; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )

        if not wait_for_kafka(self.bootstrap, timeout_s, check=alive):
            self.stop()
            raise ServiceError(
                f"Kafka not ready after {timeout_s:.0f} s; log {self.log_path}:\n"
                f"{log_tail(self.log_path)}"
            )
