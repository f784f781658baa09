"""Fixtures for tests against real PostgreSQL and Kafka.

How tests find services: each kind on its own, first match wins, started only when a test
asks for it (unit tests start nothing), once per session.

1. Environment. ``INGEST_TEST_DATABASE_URL``: admin URL of a PostgreSQL server (13+) on which
   the tests may create and drop databases. ``INGEST_TEST_KAFKA_BOOTSTRAP``: bootstrap servers
   of a broker that allows topic auto-creation.
2. Docker. If a Docker engine answers a ping within 3 s, testcontainers starts ``postgres:15``
   and ``apache/kafka:4.1.1`` (KRaft). ``INGEST_TEST_DOCKER=0`` skips this step.
3. This machine. ``LocalPostgres`` runs the PostgreSQL server binaries found in
   /usr/lib/postgresql/*/bin or next to ``pg_ctl``; ``LocalKafka`` runs Kafka with ``java``
   from jars that Maven fetches once into ~/.cache/mesh-ingest (``INGEST_DEV_KAFKA_VERSION``
   picks another version). Both are stopped at the end of the session, also when it fails.

Tests never share state: every test gets its own database and its own topic prefix, so test
runs can share one server and one broker with each other and with other sessions.

Helpers for tests live in ``harness.py`` beside this file (``from harness import ...``).
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from harness import (
    ServiceHub,
    create_database,
    drop_database,
    mark_template,
    planned_origins,
    unique_name,
)

from ingest.devservices import (
    LocalKafka,
    LocalPostgres,
    ServiceUnavailable,
    ensure_kafka_jars,
    find_postgres_bin_dir,
)


def pytest_report_header() -> str:
    postgres, kafka = planned_origins()
    return f"mesh-ingest test services: postgres from {postgres}, kafka from {kafka}"


@pytest.fixture(scope="session")
def service_hub() -> Iterator[ServiceHub]:
    hub = ServiceHub()
    try:
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="session")
def pg_admin_url(service_hub: ServiceHub) -> str:
    """Admin URL of the session's server; create your own database rather than use this one."""
    return service_hub.postgres().address


def _uncaptured(request: pytest.FixtureRequest) -> contextlib.AbstractContextManager[None]:
    """Lets the one-time jar download show its progress on the terminal under pytest."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        return contextlib.nullcontext()
    return capture.global_and_fixture_disabled()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def kafka_bootstrap(service_hub: ServiceHub, request: pytest.FixtureRequest) -> str:
    with _uncaptured(request):
        return service_hub.kafka().address


@pytest.fixture
async def database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    name = unique_name("t_")
    url = await create_database(pg_admin_url, name)
    yield url
    await drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
async def migrated_template(pg_admin_url: str) -> AsyncIterator[str]:
    """Name of a database migrated once per session, frozen as a template for cheap clones."""
    from ingest.migrate import apply_migrations

    name = unique_name("tpl_")
    url = await create_database(pg_admin_url, name)
    try:
        await apply_migrations(url)
        await mark_template(pg_admin_url, name)
        yield name
    finally:
        await drop_database(pg_admin_url, name)


@pytest.fixture
async def migrated_database_url(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh database with every migration applied (a copy of the session's template)."""
    name = unique_name("t_")
    url = await create_database(pg_admin_url, name, template=migrated_template)
    yield url
    await drop_database(pg_admin_url, name)


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix of this test's own, e.g. ``t1a2b3c4d.`` (then ``t1a2b3c4d.metrics``)."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def local_postgres_factory() -> Iterator[Callable[..., LocalPostgres]]:
    """Starts private servers (LocalPostgres keyword arguments) that the test may stop and
    restart; all are closed at teardown. Needs the PostgreSQL server binaries here."""
    try:
        find_postgres_bin_dir()
    except ServiceUnavailable as exc:
        pytest.skip(f"a private database to stop and restart needs local server binaries: {exc}")
    started: list[LocalPostgres] = []

    def start(**kwargs: Any) -> LocalPostgres:
        server = LocalPostgres(**kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.close()


@pytest.fixture
def local_kafka_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalKafka]]:
    """Starts private brokers (LocalKafka keyword arguments) that the test may stop and
    restart; all are closed at teardown. Needs java, and Maven unless the jars are cached."""
    try:
        if shutil.which("java") is None:
            raise ServiceUnavailable("no java on PATH")
        with _uncaptured(request):
            ensure_kafka_jars()
    except ServiceUnavailable as exc:
        pytest.skip(f"a private broker to stop and restart needs Kafka on this machine: {exc}")
    started: list[LocalKafka] = []

    def start(**kwargs: Any) -> LocalKafka:
        broker = LocalKafka(**kwargs)
        started.append(broker)
        return broker.start()

    yield start
    for broker in reversed(started):
        broker.close()
