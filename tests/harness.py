"""Where the test services come from, and small helpers tests share (see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import uuid
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ingest.devservices import (
    BROKER_SETTINGS,
    LocalKafka,
    LocalPostgres,
    free_ports,
    wait_for_kafka,
)

Origin = Literal["env", "docker", "local"]

POSTGRES_IMAGE = "postgres:15"
KAFKA_IMAGE = "apache/kafka:4.1.1"


def unique_name(prefix: str) -> str:
    """A database or group name no other test, session or machine sharing a server will pick."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def url_for_database(url: str, dbname: str) -> str:
    """`url` (any server URL) pointed at another database, keeping credentials and options."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, parts.fragment))


@functools.cache
def docker_available() -> bool:
    """A Docker engine answers within 3 s (never hangs a test run that has none)."""
    if os.environ.get("INGEST_TEST_DOCKER", "1") == "0":
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def planned_origins() -> tuple[Origin, Origin]:
    """Where Postgres and Kafka will come from, by the rules in conftest.py."""
    fallback: Origin = "docker" if docker_available() else "local"
    postgres: Origin = "env" if os.environ.get("INGEST_TEST_DATABASE_URL") else fallback
    kafka: Origin = "env" if os.environ.get("INGEST_TEST_KAFKA_BOOTSTRAP") else fallback
    return postgres, kafka


@dataclass
class Service:
    origin: Origin
    address: str  # admin URL for Postgres, bootstrap servers for Kafka


class ServiceHub:
    """Finds or starts each service once per test session, and stops what it started."""

    def __init__(self) -> None:
        self._postgres: Service | None = None
        self._kafka: Service | None = None
        self._stack = contextlib.ExitStack()

    def postgres(self) -> Service:
        if self._postgres is None:
            self._postgres = self._find_postgres()
        return self._postgres

    def kafka(self) -> Service:
        if self._kafka is None:
            self._kafka = self._find_kafka()
        return self._kafka

    def _find_postgres(self) -> Service:
        url = os.environ.get("INGEST_TEST_DATABASE_URL")
        if url:
            return Service("env", url)
        if docker_available():
            try:
                from testcontainers.community.postgres import PostgresContainer
            except ImportError:  # testcontainers before the community/ split
                from testcontainers.postgres import PostgresContainer

            container = PostgresContainer(POSTGRES_IMAGE, driver=None).with_command(
                "postgres -c fsync=off -c full_page_writes=off -c max_connections=200"
            )
            self._stack.enter_context(container)
            return Service("docker", container.get_connection_url())
        local = LocalPostgres()
        self._stack.callback(local.close)
        local.start()
        return Service("local", local.url)

    def _find_kafka(self) -> Service:
        bootstrap = os.environ.get("INGEST_TEST_KAFKA_BOOTSTRAP")
        if bootstrap:
            return Service("env", bootstrap)
        if docker_available():
            return Service("docker", self._start_kafka_container())
        local = LocalKafka()
        self._stack.callback(local.close)
        local.start()
        return Service("local", local.bootstrap)

    def _start_kafka_container(self) -> str:
        # testcontainers' KafkaContainer drives Confluent's image scripts, not apache/kafka's,
        # so configure the official image through its KAFKA_* variables. The advertised
        # address must be the one clients dial, hence a host port fixed before start.
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.docker_client import DockerClient

        host, port = DockerClient().host(), free_ports(1)[0]
        settings = {
            **BROKER_SETTINGS,
            "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.quorum.voters": "1@localhost:9093",
        }
        container = DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, port)
        for key, value in settings.items():
            # The image maps KAFKA_A_B to a.b, "__" to "_" and "___" to "-".
            name = key.replace("_", "__").replace("-", "___").replace(".", "_").upper()
            container.with_env(f"KAFKA_{name}", value)
        container.with_env("CLUSTER_ID", "bWVzaC1pbmdlc3QtdGVzdA")
        self._stack.enter_context(container)
        bootstrap = f"{host}:{port}"
        if not wait_for_kafka(bootstrap, timeout_s=90):
            raise TimeoutError(f"Kafka container at {bootstrap} did not answer within 90 s")
        return bootstrap

    def close(self) -> None:
        self._stack.close()


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE `name` (optionally a copy of `template`); return its URL."""
    sql = f'CREATE DATABASE "{name}"'
    if template is not None:
        sql += f' TEMPLATE "{template}"'
    conn = await asyncpg.connect(admin_url)
    try:
        for attempt in range(50):
            try:
                await conn.execute(sql)
                break
            except asyncpg.ObjectInUseError:
                # A template still has a session closing (e.g. the migrator's); it goes soon.
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return url_for_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except asyncpg.InvalidCatalogNameError:
        pass
    finally:
        await conn.close()


async def mark_template(admin_url: str, name: str) -> None:
    """Freeze a database as a template: no one may connect, so clones never wait."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    finally:
        await conn.close()


async def create_topics(bootstrap: str, names: list[str], partitions: int = 3) -> None:
    """Create topics (existing ones are fine) and wait until every partition has a leader."""
    from ingest.settings import KafkaSettings
    from ingest.source import create_topics as create

    await create(KafkaSettings(bootstrap_servers=bootstrap), names, partitions)
