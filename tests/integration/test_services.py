"""The test services themselves: what every other integration test builds on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from harness import create_database, create_topics, drop_database, unique_name

from ingest.devservices import LocalPostgres


async def _user_tables(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT schemaname || '.' || tablename AS name FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        return [row["name"] for row in rows]
    finally:
        await conn.close()


async def test_produced_message_is_consumed_back_and_committed_by_a_group(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}nodes"
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b'{"kind":"metric"}', key=b"node-1")
    finally:
        await producer.stop()

    group = unique_name("g")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
        partition = TopicPartition(topic, message.partition)
        committed = await consumer.committed(partition)
    finally:
        await consumer.stop()

    assert (message.key, message.value) == (b"node-1", b'{"kind":"metric"}')
    assert (message.partition, message.offset) == (sent.partition, sent.offset)
    assert committed == message.offset + 1


async def test_each_test_database_starts_empty_and_is_isolated(
    database_url: str, pg_admin_url: str
) -> None:
    assert await _user_tables(database_url) == []
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE only_here (id int)")
    finally:
        await conn.close()

    other = unique_name("t_")
    other_url = await create_database(pg_admin_url, other)
    try:
        assert await _user_tables(other_url) == []
        assert await _user_tables(database_url) == ["public.only_here"]
    finally:
        await drop_database(pg_admin_url, other)


async def test_dropped_test_database_is_gone_even_with_open_sessions(pg_admin_url: str) -> None:
    name = unique_name("t_")
    url = await create_database(pg_admin_url, name)
    lingering = await asyncpg.connect(url)  # a test that forgot to close its pool
    await drop_database(pg_admin_url, name)
    assert lingering.is_closed() or not await _still_usable(lingering)

    admin = await asyncpg.connect(pg_admin_url)
    try:
        exists = await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
        assert exists == 0
    finally:
        await admin.close()


async def _still_usable(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        await conn.close()
    return True


async def test_migrated_databases_are_independent_copies_of_the_template(
    migrated_database_url: str, migrated_template: str, pg_admin_url: str
) -> None:
    tables = await _user_tables(migrated_database_url)
    assert "network.nodes" in tables
    conn = await asyncpg.connect(migrated_database_url)
    try:
        await conn.execute("CREATE TABLE network.scratch (id int)")
    finally:
        await conn.close()

    sibling = unique_name("t_")
    sibling_url = await create_database(pg_admin_url, sibling, template=migrated_template)
    try:
        assert await _user_tables(sibling_url) == tables
    finally:
        await drop_database(pg_admin_url, sibling)


async def test_local_postgres_keeps_port_and_data_across_stop_and_start(
    local_postgres_factory: Callable[..., LocalPostgres],
) -> None:
    server = local_postgres_factory()
    url, port = server.url, server.port
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE kept AS SELECT 42 AS answer")
    finally:
        await conn.close()

    server.stop()
    with pytest.raises(OSError):
        await asyncpg.connect(url, timeout=5)
    server.start()

    assert (server.url, server.port) == (url, port)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT answer FROM kept") == 42
    finally:
        await conn.close()
