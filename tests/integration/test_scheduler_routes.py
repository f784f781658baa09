"""The routes job against a real PostgreSQL (and Kafka for the route-updates topic)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from harness import create_topics
from prometheus_client import CollectorRegistry

from ingest.app import create_pool
from ingest.observability import Metrics
from ingest.scheduler.runner import Scheduler
from ingest.settings import Settings, load_settings

TTL_S = 180
PURGE_S = 3600


def _settings(db_url: str, **extra: str) -> Settings:
    env = {
        "INGEST_DATABASE_URL": db_url,
        "INGEST_SCHEDULER_ROUTE_TTL_S": str(TTL_S),
        "INGEST_SCHEDULER_ROUTE_PURGE_S": str(PURGE_S),
        "INGEST_SCHEDULER_ROUTE_UPDATES_KAFKA": "false",
        "INGEST_HTTP_ENABLED": "false",
        **extra,
    }
    return load_settings(env)


@pytest.fixture
async def scheduler(migrated_database_url: str) -> AsyncIterator[Scheduler]:
    settings = _settings(migrated_database_url)
    pool = await create_pool(settings)
    s = Scheduler(settings, pool, Metrics(CollectorRegistry()))
    try:
        yield s
    finally:
        await s.close()
        await pool.close()


async def _nodes(conn: asyncpg.Connection, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    await conn.execute("INSERT INTO network.nodes (node_id) SELECT unnest($1::uuid[])", ids)
    return ids


async def _entry(
    conn: asyncpg.Connection,
    node: uuid.UUID,
    dest: uuid.UUID,
    hop: uuid.UUID | None,
    quality: float,
    *,
    hops: int = 1,
    age_s: float = 0.0,
    best: bool = False,
) -> uuid.UUID:
    entry_id: uuid.UUID = await conn.fetchval(
        """
        INSERT INTO network.routing_entries
            (node_id, destination_id, next_hop_id, sequence_number, quality, hop_count,
             last_seen, is_best_route)
        VALUES ($1, $2, $3, 1, $4, $5, now() - make_interval(secs => $6), $7)
        RETURNING entry_id
        """,
        node,
        dest,
        hop,
        quality,
        hops,
        float(age_s),
        best,
    )
    return entry_id


async def _bests(conn: asyncpg.Connection) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    rows = await conn.fetch(
        "SELECT node_id, destination_id, entry_id FROM network.routing_entries WHERE is_best_route"
    )
    return {(r["node_id"], r["destination_id"]): r["entry_id"] for r in rows}


async def _sweep_recently(conn: asyncpg.Connection) -> None:
    """Pretend a sweep just ran, so the next run only looks at marked / stale pairs."""
    await conn.execute(
        "INSERT INTO ingest.job_runs (job, outcome, details) "
        "VALUES ('routes', 'ok', '{\"mode\": \"sweep\"}')"
    )


async def test_best_route_is_highest_quality_then_fewer_hops_then_newer(
    conn: asyncpg.Connection, scheduler: Scheduler
) -> None:
    n, d1, d2, d3, h1, h2, h3 = await _nodes(conn, 7)
    # d1: quality decides.
    await _entry(conn, n, d1, h1, 0.5)
    q_best = await _entry(conn, n, d1, h2, 0.9, hops=5)
    # d2: equal quality, fewer hops wins.
    await _entry(conn, n, d2, h1, 0.8, hops=3)
    hops_best = await _entry(conn, n, d2, h2, 0.8, hops=2)
    # d3: equal quality and hops, the newer entry wins.
    await _entry(conn, n, d3, h1, 0.7, hops=2, age_s=60)
    newer_best = await _entry(conn, n, d3, h2, 0.7, hops=2, age_s=5)
    await _entry(conn, n, d3, h3, 0.7, hops=2, age_s=120)

    result = await scheduler.run_once("routes")

    assert result["outcome"] == "ok", result
    assert await _bests(conn) == {(n, d1): q_best, (n, d2): hops_best, (n, d3): newer_best}
    assert result["details"]["mode"] == "sweep"
    assert result["details"]["changed"] == 3


async def test_stale_entries_never_win_and_a_pair_with_no_fresh_entry_has_no_best(
    conn: asyncpg.Connection, scheduler: Scheduler
) -> None:
    n, d1, d2, h1, h2 = await _nodes(conn, 5)
    # d1: the stale entry is better but expired; the fresh, worse one wins.
    await _entry(conn, n, d1, h1, 0.99, age_s=TTL_S + 60, best=True)
    fresh = await _entry(conn, n, d1, h2, 0.2)
    # d2: its only entry (the current best) went stale: the pair loses its best route.
    await _entry(conn, n, d2, None, 0.9, age_s=TTL_S + 60, best=True)
    await _sweep_recently(conn)  # the stale bests alone must bring both pairs in

    result = await scheduler.run_once("routes")

    assert result["outcome"] == "ok", result
    assert result["details"]["mode"] == "triggered"
    assert await _bests(conn) == {(n, d1): fresh}
    assert result["details"]["changed"] == 2


async def test_exactly_one_best_per_pair_when_the_best_moves_to_another_entry(
    conn: asyncpg.Connection, scheduler: Scheduler
) -> None:
    # Many pairs, each with the flag on its worse entry; the new best is inserted before or
    # after the old one so that any single-UPDATE approach would meet the unique index.
    ids = await _nodes(conn, 42)
    node, hop_a, hop_b, dests = ids[0], ids[1], ids[2], ids[3:]
    expected = {}
    for i, dest in enumerate(dests):
        if i % 2:
            await _entry(conn, node, dest, hop_a, 0.3, best=True)
            expected[(node, dest)] = await _entry(conn, node, dest, hop_b, 0.6)
        else:
            expected[(node, dest)] = await _entry(conn, node, dest, hop_b, 0.6)
            await _entry(conn, node, dest, hop_a, 0.3, best=True)

    result = await scheduler.run_once("routes")

    assert result["outcome"] == "ok", result
    assert await _bests(conn) == expected
    per_pair = await conn.fetch(
        "SELECT count(*) FILTER (WHERE is_best_route) AS bests FROM network.routing_entries "
        "GROUP BY node_id, destination_id"
    )
    assert [r["bests"] for r in per_pair] == [1] * len(dests)
    # A second run changes nothing.
    again = await scheduler.run_once("routes")
    assert again["details"]["changed"] == 0


async def test_only_marked_pairs_are_recomputed_between_sweeps(
    conn: asyncpg.Connection, scheduler: Scheduler
) -> None:
    n, marked, unmarked, h1, h2 = await _nodes(conn, 5)
    await _entry(conn, n, marked, h1, 0.4, best=True)
    better = await _entry(conn, n, marked, h2, 0.8)
    old_best = await _entry(conn, n, unmarked, h1, 0.4, best=True)
    await _entry(conn, n, unmarked, h2, 0.8)
    await conn.execute(
        "INSERT INTO ingest.route_marks (node_id, destination_id) VALUES ($1, $2)", n, marked
    )
    await _sweep_recently(conn)

    result = await scheduler.run_once("routes")

    assert result["details"]["mode"] == "triggered"
    assert result["details"]["marks"] == 1
    assert await _bests(conn) == {(n, marked): better, (n, unmarked): old_best}
    assert await conn.fetchval("SELECT count(*) FROM ingest.route_marks") == 0
    assert await conn.fetchval("SELECT count(*) FROM ingest.route_pending") == 0


async def test_entries_older_than_the_purge_age_are_deleted(
    conn: asyncpg.Connection, scheduler: Scheduler
) -> None:
    n, d1, d2, h1, h2 = await _nodes(conn, 5)
    keep_stale = await _entry(conn, n, d1, h1, 0.5, age_s=PURGE_S - 60)
    await _entry(conn, n, d1, h2, 0.9, age_s=PURGE_S + 60, best=True)
    await _entry(conn, n, d2, h1, 0.9, age_s=PURGE_S + 5)
    fresh = await _entry(conn, n, d2, h2, 0.1)

    result = await scheduler.run_once("routes")

    remaining = {
        r["entry_id"] for r in await conn.fetch("SELECT entry_id FROM network.routing_entries")
    }
    assert remaining == {keep_stale, fresh}
    assert result["details"]["purged"] == 2
    assert await _bests(conn) == {(n, d2): fresh}


async def test_each_run_is_recorded_in_topology_optimizations(
    conn: asyncpg.Connection, scheduler: Scheduler
) -> None:
    n, d1, h1, h2 = await _nodes(conn, 4)
    await _entry(conn, n, d1, h1, 0.4, best=True)
    await _entry(conn, n, d1, h2, 0.8)

    sweep = await scheduler.run_once("routes")
    await conn.execute(
        "INSERT INTO ingest.route_marks (node_id, destination_id) VALUES ($1, $2)", n, d1
    )
    triggered = await scheduler.run_once("routes")
    empty = await scheduler.run_once("routes")  # nothing marked: no optimisation row

    assert [r["details"]["mode"] for r in (sweep, triggered, empty)] == [
        "sweep",
        "triggered",
        "triggered",
    ]
    rows = await conn.fetch(
        "SELECT * FROM network.topology_optimizations ORDER BY performed_at, optimization_type"
    )
    assert [r["optimization_type"] for r in rows] == ["scheduled", "triggered"]
    first = rows[0]
    assert first["success"] is True
    assert first["topology_id"] is None
    assert first["algorithm_used"].startswith("best_route_v1")
    assert first["execution_time_ms"] >= 0
    before = orjson.loads(first["metrics_before"])
    after = orjson.loads(first["metrics_after"])
    assert before == {"pairs": 1, "best_routes": 1, "mean_best_quality": 0.4, "mean_best_hops": 1.0}
    assert after == {
        "pairs": 1,
        "best_routes": 1,
        "mean_best_quality": 0.8,
        "mean_best_hops": 1.0,
        "changed": 1,
        "purged": 0,
    }
    assert first["improvement_percentage"] == pytest.approx(100.0)
    assert orjson.loads(rows[1]["metrics_after"])["changed"] == 0


async def test_a_listen_client_receives_the_changed_routes(
    migrated_database_url: str, conn: asyncpg.Connection, scheduler: Scheduler
) -> None:
    n, d1, d2, h1 = await _nodes(conn, 4)
    e1 = await _entry(conn, n, d1, h1, 0.7, hops=2)
    await _entry(conn, n, d2, None, 0.9, age_s=TTL_S + 10, best=True)
    got: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(migrated_database_url)
    try:
        await listener.add_listener("mesh_route_updates", lambda *args: got.put_nowait(args[3]))
        result = await scheduler.run_once("routes")
        payload = orjson.loads(await asyncio.wait_for(got.get(), timeout=10))
    finally:
        await listener.close()

    assert payload["v"] == 1
    assert payload["run_id"] == result["run_id"]
    assert payload["changed"] == 2
    assert payload["truncated"] is False
    routes = {r["destination_id"]: r for r in payload["routes"]}
    assert routes[str(d1)]["node_id"] == str(n)
    assert routes[str(d1)]["best"]["entry_id"] == str(e1)
    assert routes[str(d1)]["best"]["next_hop_id"] == str(h1)
    assert routes[str(d1)]["best"]["hop_count"] == 2
    assert routes[str(d1)]["previous"] is None
    assert routes[str(d2)]["best"] is None  # withdrawn
    assert routes[str(d2)]["previous"]["next_hop_id"] is None  # it was a direct route


async def test_the_notification_is_a_summary_when_the_changes_do_not_fit(
    migrated_database_url: str, conn: asyncpg.Connection, scheduler: Scheduler
) -> None:
    ids = await _nodes(conn, 102)
    for dest in ids[2:]:
        await _entry(conn, ids[0], dest, ids[1], 0.5)
    got: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(migrated_database_url)
    try:
        await listener.add_listener("mesh_route_updates", lambda *args: got.put_nowait(args[3]))
        result = await scheduler.run_once("routes")
        raw = await asyncio.wait_for(got.get(), timeout=10)
    finally:
        await listener.close()

    payload = orjson.loads(raw)
    assert len(raw.encode()) < 8000
    assert payload["changed"] == 100
    assert payload["truncated"] is True
    assert payload["routes"] == []
    assert result["details"]["notify_truncated"] is True


async def test_changed_routes_are_published_on_the_kafka_topic_keyed_by_node(
    migrated_database_url: str, conn: asyncpg.Connection, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = _settings(
        migrated_database_url,
        INGEST_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        INGEST_TOPIC_PREFIX=topic_prefix,
        INGEST_SCHEDULER_ROUTE_UPDATES_KAFKA="true",
    )
    topic = settings.route_updates_topic
    assert topic == f"{topic_prefix}route-updates"
    await create_topics(kafka_bootstrap, [topic], 1)
    n1, n2, d, h = await _nodes(conn, 4)
    e1 = await _entry(conn, n1, d, h, 0.6)
    e2 = await _entry(conn, n2, d, None, 0.8)

    pool = await create_pool(settings)
    scheduler = Scheduler(settings, pool, Metrics(CollectorRegistry()))
    try:
        result = await scheduler.run_once("routes")
    finally:
        await scheduler.close()
        await pool.close()
    assert result["outcome"] == "ok", result
    assert result["details"]["published"] == 2

    messages = await _consume(kafka_bootstrap, topic, 2)
    by_key = {m.key.decode(): orjson.loads(m.value) for m in messages}
    assert set(by_key) == {str(n1), str(n2)}
    assert by_key[str(n1)]["v"] == 1
    assert by_key[str(n1)]["destination_id"] == str(d)
    assert by_key[str(n1)]["best"]["entry_id"] == str(e1)
    assert by_key[str(n2)]["best"]["entry_id"] == str(e2)
    assert by_key[str(n2)]["best"]["next_hop_id"] is None
    assert by_key[str(n1)]["run_id"] == result["run_id"]


async def _consume(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(out) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    out += records
    finally:
        await consumer.stop()
    return out
