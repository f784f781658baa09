"""Real PostgreSQL and Kafka started from nothing on this machine, for tests and `ingest demo`.

Nothing here is for production: trust auth, no fsync by default, throwaway data. Every child
is stopped by close(), the context managers, an atexit hook, and (should this process be
SIGKILLed) a parent-death signal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.devservices._process import ServiceError, ServiceUnavailable, free_ports
from ingest.devservices.jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars
from ingest.devservices.kafka import BROKER_SETTINGS, LocalKafka, kafka_answers, wait_for_kafka
from ingest.devservices.postgres import LocalPostgres, find_postgres_bin_dir

__all__ = [
    "BROKER_SETTINGS",
    "DEFAULT_KAFKA_VERSION",
    "LocalKafka",
    "LocalPostgres",
    "LocalServices",
    "ServiceError",
    "ServiceUnavailable",
    "ensure_kafka_jars",
    "find_postgres_bin_dir",
    "free_ports",
    "kafka_answers",
    "start_local_services",
    "wait_for_kafka",
]


@dataclass(frozen=True)
class LocalServices:
    postgres: LocalPostgres
    kafka: LocalKafka

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap


@contextlib.contextmanager
def start_local_services(
    *,
    kafka_version: str | None = None,
    postgres_data_dir: Path | str | None = None,
    kafka_log_dir: Path | str | None = None,
    fsync: bool = False,
) -> Iterator[LocalServices]:
    """Both services, running until the block exits; Postgres starts while the JVM warms up."""
    with contextlib.ExitStack() as stack:
        kafka = LocalKafka(kafka_version, log_dir=kafka_log_dir)
        stack.callback(kafka.close)
        kafka.start(wait=False)
        postgres = LocalPostgres(postgres_data_dir, fsync=fsync)
        stack.callback(postgres.close)
        postgres.start()
        kafka.wait_ready()
        yield LocalServices(postgres=postgres, kafka=kafka)
