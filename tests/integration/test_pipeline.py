"""Kafka -> worker -> PostgreSQL, end to end, against the real services."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from pipeline import (
    announce,
    drain,
    make_settings,
    metric,
    new_id,
    prepare_topics,
    produce,
    ts,
)

from ingest.settings import Settings


@pytest.fixture
async def settings(migrated_database_url: str, kafka_bootstrap: str, topic_prefix: str) -> Settings:
    s = make_settings(migrated_database_url, kafka_bootstrap, topic_prefix)
    await prepare_topics(s)
    return s


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated_database_url)
    await conn.execute("SET TIME ZONE 'UTC'")
    try:
        yield conn
    finally:
        await conn.close()


def topic(settings: Settings, name: str) -> str:
    return settings.topic_prefix + name


async def send(settings: Settings, name: str, *values: Any) -> None:
    await produce(settings.kafka.bootstrap_servers, topic(settings, name), values)


async def ingest(settings: Settings, name: str, *values: Any) -> None:
    await send(settings, name, *values)
    assert await drain(settings) == 0


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_every_kind_lands_with_its_values_in_the_right_columns(
    settings: Settings, db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    at = now.isoformat()
    node, peer, topo, pool, conn_id, config, service = (new_id() for _ in range(7))
    events = [
        announce(
            node,
            "alpha",
            at,
            node_type="relay",
            role="super_peer",
            public_key="pk",
            capabilities={"relay": True},
            metadata={"rack": 3},
            status="active",
        ),
        announce(peer, "beta", at),
        {"kind": "node.heartbeat", "node_id": peer, "ts": ts(now, seconds=5), "status": "inactive"},
        {
            "kind": "topology.config",
            "node_id": node,
            "ts": at,
            "topology_id": topo,
            "mesh_name": "m1",
            "topology_type": "small_world",
            "configuration": {"k": 4},
            "optimization_enabled": False,
            "learning_rate": 0.01,
            "connectivity_threshold": 0.4,
            "max_connections_per_node": 8,
            "status": "active",
        },
        {
            "kind": "link.probe",
            "node_id": node,
            "ts": at,
            "topology_id": topo,
            "remote_node_id": peer,
            "link_state": "degraded",
            "quality": 0.8,
            "latency_ms": 12.5,
            "bandwidth_mbps": 100,
            "packet_loss": 0.01,
            "jitter_ms": 1.5,
            "weight": 2,
            "metadata": {"medium": "wifi"},
        },
        {
            "kind": "route.advert",
            "node_id": node,
            "ts": at,
            "destination_id": peer,
            "next_hop_id": None,
            "sequence_number": 7,
            "quality": 0.9,
            "hop_count": 1,
            "flags": 3,
            "metrics": {"latency": 12.5, "jitter": 1.0},
        },
        {
            "kind": "pool.state",
            "node_id": node,
            "ts": at,
            "pool_id": pool,
            "pool_name": "p",
            "min_connections": 1,
            "max_connections": 10,
            "current_connections": 4,
            "in_use_connections": 2,
            "keepalive_timeout": 30,
            "enable_http2": True,
            "status": "draining",
        },
        {
            "kind": "connection.state",
            "node_id": node,
            "ts": at,
            "connection_id": conn_id,
            "pool_id": pool,
            "endpoint": "10.0.0.2:443",
            "protocol": "http/2",
            "state": "active",
            "requests_handled": 5,
            "bytes_sent": 100,
            "bytes_received": 200,
            "errors_count": 1,
            "last_used_at": at,
        },
        {
            "kind": "compression.stats",
            "node_id": node,
            "ts": at,
            "algorithm": "zstd",
            "messages_compressed": 10,
            "original_bytes": 1000,
            "compressed_bytes": 400,
            "compression_time_ms": 3,
            "decompression_time_ms": 1,
            "period_start": ts(now, seconds=-60),
            "period_end": at,
        },
        {
            "kind": "optimization.params",
            "node_id": node,
            "ts": at,
            "param_set_name": "default",
            "batch_size": 64,
            "compression_algorithm": "lz4",
            "connection_pool_size": 8,
            "retry_strategy": "exponential",
            "max_retries": 5,
            "circuit_breaker_threshold": 0.5,
            "adaptive_learning_enabled": True,
            "metadata": {"v": 2},
            "active_since": at,
        },
        {
            "kind": "batch.config",
            "node_id": node,
            "ts": at,
            "config_id": config,
            "max_batch_size": 500,
            "max_wait_time_ms": 50,
            "priority_threshold": 0.7,
            "adaptive_sizing": True,
        },
        {
            "kind": "batch.stats",
            "node_id": node,
            "ts": at,
            "config_id": config,
            "total_batches": 9,
            "total_messages": 900,
            "average_batch_size": 100.0,
            "priority_bypasses": 2,
            "queue_overflows": 0,
            "period_start": ts(now, seconds=-60),
            "period_end": at,
        },
        metric(node, at, 0.75, unit="ratio", tags={"core": 1}),
        {
            "kind": "event",
            "node_id": node,
            "ts": at,
            "event_type": "link",
            "event_name": "up",
            "severity": "warning",
            "description": "link came up",
            "metadata": {"peer": peer},
        },
        {
            "kind": "dns.record",
            "node_id": node,
            "ts": at,
            "hostname": "svc.mesh",
            "ip_addresses": ["10.0.0.5", "fd00::1"],
            "record_type": "AAAA",
            "ttl": 60,
        },
        {
            "kind": "service.register",
            "node_id": node,
            "ts": at,
            "service_id": service,
            "service_name": "api",
            "service_type": "http",
            "endpoints": ["http://a:80"],
            "health_check_url": "http://a:80/health",
            "metadata": {"tier": 1},
            "health_status": "healthy",
        },
    ]
    await ingest(settings, "events", *events)

    n = await db.fetchrow("SELECT * FROM network.nodes WHERE node_id = $1", uuid.UUID(node))
    assert (n["node_name"], n["node_type"], n["role"], n["address"], n["port"]) == (
        "alpha",
        "relay",
        "super_peer",
        "10.0.0.1",
        4000,
    )
    assert json.loads(n["capabilities"]) == {"relay": True}
    assert json.loads(n["metadata"]) == {"rack": 3}
    assert (n["status"], n["last_seen"], n["public_key"]) == ("active", now, "pk")
    b = await db.fetchrow("SELECT * FROM network.nodes WHERE node_id = $1", uuid.UUID(peer))
    assert (b["status"], b["last_seen"]) == ("inactive", now + timedelta(seconds=5))

    t = await db.fetchrow("SELECT * FROM network.mesh_topologies")
    assert (
        t["mesh_name"],
        t["topology_type"],
        t["optimization_enabled"],
        t["learning_rate"],
        t["connectivity_threshold"],
        t["max_connections_per_node"],
    ) == ("m1", "small_world", False, 0.01, 0.4, 8)
    assert json.loads(t["configuration"]) == {"k": 4}

    link = await db.fetchrow("SELECT * FROM network.mesh_links")
    assert (
        str(link["local_node_id"]),
        str(link["remote_node_id"]),
        link["link_state"],
        link["quality"],
        link["latency_ms"],
        link["bandwidth_mbps"],
        link["packet_loss"],
        link["jitter_ms"],
        link["weight"],
        link["last_probe"],
        link["established_at"],
    ) == (node, peer, "degraded", 0.8, 12.5, 100.0, 0.01, 1.5, 2.0, now, now)

    route = await db.fetchrow("SELECT * FROM network.routing_entries")
    assert (
        route["next_hop_id"],
        route["sequence_number"],
        route["quality"],
        route["hop_count"],
        route["flags"],
        route["last_seen"],
    ) == (None, 7, 0.9, 1, 3, now)
    rm = await db.fetch(
        "SELECT metric_type, metric_value, recorded_at, entry_id FROM network.routing_metrics"
    )
    assert {(r["metric_type"], r["metric_value"]) for r in rm} == {
        ("quality", 0.9),
        ("hop_count", 1.0),
        ("latency", 12.5),
        ("jitter", 1.0),
    }
    assert {r["entry_id"] for r in rm} == {route["entry_id"]}
    assert {r["recorded_at"] for r in rm} == {now}
    marks = await db.fetch("SELECT node_id, destination_id FROM ingest.route_marks")
    assert [(str(m["node_id"]), str(m["destination_id"])) for m in marks] == [(node, peer)]

    p = await db.fetchrow("SELECT * FROM network.connection_pools")
    assert (
        str(p["node_id"]),
        p["pool_name"],
        p["min_connections"],
        p["max_connections"],
        p["current_connections"],
        p["in_use_connections"],
        p["keepalive_timeout"],
        p["enable_http2"],
        p["status"],
    ) == (node, "p", 1, 10, 4, 2, 30, True, "draining")
    c = await db.fetchrow("SELECT * FROM network.connections")
    assert (
        str(c["pool_id"]),
        c["endpoint"],
        c["protocol"],
        c["state"],
        c["requests_handled"],
        c["bytes_sent"],
        c["bytes_received"],
        c["errors_count"],
        c["last_used_at"],
    ) == (pool, "10.0.0.2:443", "http/2", "active", 5, 100, 200, 1, now)
    cs = await db.fetchrow("SELECT * FROM network.compression_stats")
    assert (
        cs["algorithm"],
        cs["messages_compressed"],
        cs["original_bytes"],
        cs["compressed_bytes"],
        cs["period_start"],
        cs["period_end"],
    ) == ("zstd", 10, 1000, 400, now - timedelta(seconds=60), now)
    op = await db.fetchrow("SELECT * FROM network.optimization_params")
    assert (
        op["param_set_name"],
        op["batch_size"],
        op["compression_algorithm"],
        op["retry_strategy"],
        op["max_retries"],
        op["circuit_breaker_threshold"],
        op["adaptive_learning_enabled"],
        op["active_since"],
    ) == ("default", 64, "lz4", "exponential", 5, 0.5, True, now)
    bc = await db.fetchrow("SELECT * FROM network.batch_configs")
    assert (
        str(bc["node_id"]),
        bc["max_batch_size"],
        bc["max_wait_time_ms"],
        bc["priority_threshold"],
        bc["adaptive_sizing"],
    ) == (node, 500, 50, 0.7, True)
    bm = await db.fetchrow("SELECT * FROM network.batch_metrics")
    assert (
        str(bm["config_id"]),
        bm["total_batches"],
        bm["total_messages"],
        bm["average_batch_size"],
        bm["priority_bypasses"],
    ) == (config, 9, 900, 100.0, 2)
    m = await db.fetchrow("SELECT * FROM network.metrics")
    assert (
        m["metric_type"],
        m["metric_name"],
        m["metric_value"],
        m["unit"],
        json.loads(m["tags"]),
        m["recorded_at"],
    ) == ("cpu", "load", 0.75, "ratio", {"core": 1}, now)
    e = await db.fetchrow("SELECT * FROM network.events")
    assert (
        e["event_type"],
        e["event_name"],
        e["severity"],
        e["description"],
        e["occurred_at"],
    ) == ("link", "up", "warning", "link came up", now)
    dns = await db.fetchrow(
        "SELECT hostname, ARRAY(SELECT host(x) FROM unnest(ip_addresses) x) "
        "AS ips, "
        "record_type, ttl, "
        "cached_at, expires_at FROM network.dns_cache"
    )
    assert (
        dns["hostname"],
        dns["ips"],
        dns["record_type"],
        dns["ttl"],
        dns["cached_at"],
        dns["expires_at"],
    ) == ("svc.mesh", ["10.0.0.5", "fd00::1"], "AAAA", 60, now, now + timedelta(seconds=60))
    sr = await db.fetchrow("SELECT * FROM network.service_registry")
    assert (
        sr["service_name"],
        sr["service_type"],
        sr["endpoints"],
        sr["health_check_url"],
        sr["health_status"],
        sr["last_health_check"],
    ) == ("api", "http", ["http://a:80"], "http://a:80/health", "healthy", now)
    assert await db.fetchval("SELECT count(*) FROM ingest.dead_letters") == 0


async def test_arrays_and_both_timestamp_forms_are_stored(
    settings: Settings, db: asyncpg.Connection
) -> None:
    node = new_id()
    now = datetime.now(UTC).replace(microsecond=0)
    epoch_ms = int(now.timestamp() * 1000)
    offset_form = now.astimezone(__import__("datetime").timezone(timedelta(hours=2))).isoformat()
    await ingest(
        settings,
        "metrics",
        [metric(node, epoch_ms, 1.0), metric(node, offset_form, 2.0)],
        metric(node, epoch_ms + 1000, 3.0),
    )
    rows = await db.fetch("SELECT metric_value, recorded_at FROM network.metrics ORDER BY 1")
    assert [(r["metric_value"], r["recorded_at"]) for r in rows] == [
        (1.0, now),
        (2.0, now),
        (3.0, now + timedelta(seconds=1)),
    ]


async def test_a_good_element_next_to_a_bad_one_is_stored_and_the_bad_one_dead_lettered(
    settings: Settings, db: asyncpg.Connection
) -> None:
    node = new_id()
    bad = metric(node, ts(), 1.0)
    bad["metric_value"] = "high"
    await ingest(settings, "metrics", [metric(node, ts(), 5.0), bad, {"kind": "nope"}])
    assert await db.fetchval("SELECT count(*) FROM network.metrics") == 1
    dead = await db.fetch(
        'SELECT reason, element_index, "offset", topic FROM ingest.dead_letters '
        "ORDER BY element_index"
    )
    assert [(d["reason"], d["element_index"]) for d in dead] == [
        ("validation_failed", 1),
        ("unknown_kind", 2),
    ]
    assert {d["topic"] for d in dead} == {topic(settings, "metrics")}


def _dead_letter_cases() -> list[tuple[str, bytes | Any]]:
    node = new_id()
    far_future = ts(seconds=3600)
    too_old = ts(seconds=-400 * 86400)
    wrong_version = metric(node, ts())
    wrong_version["v"] = 2
    bad_port = announce(node, "x", ts())
    bad_port["port"] = 70000
    return [
        ("invalid_json", b"{not json"),
        ("invalid_envelope", b'"a bare string"'),
        ("invalid_envelope", {"node_id": node, "ts": ts()}),
        ("unknown_kind", {"kind": "node.explode", "node_id": node, "ts": ts()}),
        ("unsupported_version", wrong_version),
        ("validation_failed", bad_port),
        ("timestamp_in_future", metric(node, far_future)),
        ("timestamp_too_old", metric(node, too_old)),
        ("too_large", metric(node, ts(), tags={"pad": "x" * 10_000})),
    ]


@pytest.mark.parametrize(
    ("reason", "value"),
    _dead_letter_cases(),
    ids=[c[0] + str(i) for i, c in enumerate(_dead_letter_cases())],
)
async def test_each_dead_letter_reason_is_recorded_once_and_neighbours_are_stored(
    settings: Settings, db: asyncpg.Connection, reason: str, value: Any
) -> None:
    settings = settings.model_copy(
        update={"decode": settings.decode.model_copy(update={"max_message_bytes": 8192})}
    )
    node = new_id()
    await ingest(settings, "metrics", metric(node, ts(), 1.0), value, metric(node, ts(), 2.0))
    dead = await db.fetch(
        'SELECT reason, detail, payload, "offset", partition FROM ingest.dead_letters'
    )
    assert [d["reason"] for d in dead] == [reason]
    assert dead[0]["detail"]
    expected_payload = value if isinstance(value, bytes) else None
    if expected_payload is not None:
        assert dead[0]["payload"] == expected_payload
    assert await db.fetchval("SELECT count(*) FROM network.metrics") == 2


async def test_a_node_name_held_by_another_node_is_a_conflict(
    settings: Settings, db: asyncpg.Connection
) -> None:
    first, second = new_id(), new_id()
    await ingest(settings, "nodes", announce(first, "shared", ts()))
    await ingest(
        settings, "nodes", announce(second, "shared", ts()), announce(new_id(), "own", ts())
    )
    dead = await db.fetch("SELECT reason, detail FROM ingest.dead_letters")
    assert [d["reason"] for d in dead] == ["conflict"]
    holder = await db.fetchval("SELECT node_id FROM network.nodes WHERE node_name = 'shared'")
    assert str(holder) == first
    assert await db.fetchval("SELECT count(*) FROM network.nodes WHERE node_name = 'own'") == 1


async def test_a_row_the_database_refuses_is_isolated_and_its_neighbours_stored(
    settings: Settings, db: asyncpg.Connection
) -> None:
    # A rule the database has and the decoder does not know about.
    await db.execute(
        "ALTER TABLE network.metrics ADD CONSTRAINT no_poison CHECK (metric_name <> 'poison')"
    )
    node = new_id()
    good = [metric(node, ts(), float(i)) for i in range(50)]
    poison = metric(node, ts(), 99.0)
    poison["metric_name"] = "poison"
    await ingest(settings, "metrics", *good[:25], [metric(node, ts(), 7.0), poison], *good[25:])
    assert await db.fetchval("SELECT count(*) FROM network.metrics") == 51
    dead = await db.fetch("SELECT reason, detail, element_index FROM ingest.dead_letters")
    assert [(d["reason"], d["element_index"]) for d in dead] == [("rejected_by_database", 1)]
    assert "no_poison" in dead[0]["detail"]


async def test_an_older_state_arriving_after_a_newer_one_changes_nothing(
    settings: Settings, db: asyncpg.Connection
) -> None:
    node, peer, topo, pool = new_id(), new_id(), new_id(), new_id()
    new, old = ts(), ts(seconds=-60)

    def probe(at: str, quality: float) -> dict[str, Any]:
        return {
            "kind": "link.probe",
            "node_id": node,
            "ts": at,
            "topology_id": topo,
            "remote_node_id": peer,
            "quality": quality,
        }

    def pool_state(at: str, name: str) -> dict[str, Any]:
        return {"kind": "pool.state", "node_id": node, "ts": at, "pool_id": pool, "pool_name": name}

    def advert(seq: int, quality: float, at: str) -> dict[str, Any]:
        return {
            "kind": "route.advert",
            "node_id": node,
            "ts": at,
            "destination_id": peer,
            "next_hop_id": None,
            "sequence_number": seq,
            "quality": quality,
        }

    await ingest(
        settings,
        "events",
        announce(node, "new-name", new),
        probe(new, 0.9),
        pool_state(new, "new-pool"),
        advert(10, 0.9, old),
    )
    await ingest(
        settings,
        "events",
        announce(node, "old-name", old),
        probe(old, 0.1),
        pool_state(old, "old-pool"),
        advert(9, 0.1, new),
    )
    assert (
        await db.fetchval("SELECT node_name FROM network.nodes WHERE node_id = $1", uuid.UUID(node))
        == "new-name"
    )
    link = await db.fetchrow("SELECT quality, last_probe, established_at FROM network.mesh_links")
    assert link["quality"] == 0.9
    # The first time the link was seen is the older probe's, whatever the order.
    assert link["established_at"] == dt(old)
    assert await db.fetchval("SELECT pool_name FROM network.connection_pools") == "new-pool"
    route = await db.fetchrow("SELECT sequence_number, quality FROM network.routing_entries")
    assert (route["sequence_number"], route["quality"]) == (10, 0.9)
    # Equal sequence numbers: the later ts wins.
    await ingest(settings, "routing", advert(10, 0.5, new))
    assert await db.fetchval("SELECT quality FROM network.routing_entries") == 0.5


async def test_route_metrics_attach_to_their_own_route_direct_or_via_a_next_hop(
    settings: Settings, db: asyncpg.Connection
) -> None:
    node, peer, hop_a, hop_b = new_id(), new_id(), new_id(), new_id()
    at = ts()

    def advert(next_hop: str | None, latency: float) -> dict[str, Any]:
        return {
            "kind": "route.advert",
            "node_id": node,
            "ts": at,
            "destination_id": peer,
            "next_hop_id": next_hop,
            "sequence_number": 1,
            "quality": 0.5,
            "metrics": {"latency": latency},
        }

    # One (node, destination), three routes: direct and via two next hops, in one flush.
    await ingest(settings, "routing", advert(None, 1.0), advert(hop_a, 2.0), advert(hop_b, 3.0))
    rows = await db.fetch(
        "SELECT e.next_hop_id, m.metric_value FROM network.routing_metrics m "
        "JOIN network.routing_entries e USING (entry_id) WHERE m.metric_type = 'latency'"
    )
    by_hop = {("direct" if r[0] is None else str(r[0])): r[1] for r in rows}
    assert len(rows) == 3
    assert by_hop == {"direct": 1.0, hop_a: 2.0, hop_b: 3.0}


async def test_same_key_events_in_one_batch_collapse_to_the_newest(
    settings: Settings, db: asyncpg.Connection
) -> None:
    node = new_id()
    base = datetime.now(UTC)
    values = [announce(node, f"name-{i}", ts(base, seconds=i)) for i in (3, 1, 5, 2, 4)]
    await ingest(settings, "nodes", values)
    row = await db.fetchrow("SELECT node_name, last_seen FROM network.nodes")
    assert row["node_name"] == "name-5"
    assert row["last_seen"] == base + timedelta(seconds=5)
    assert await db.fetchval("SELECT count(*) FROM ingest.dead_letters") == 0


async def test_unknown_parents_become_placeholders_filled_by_their_announcement(
    settings: Settings, db: asyncpg.Connection
) -> None:
    node, peer, topo, pool, config = (new_id() for _ in range(5))
    await ingest(
        settings,
        "events",
        metric(node, ts()),
        {
            "kind": "link.probe",
            "node_id": node,
            "ts": ts(),
            "topology_id": topo,
            "remote_node_id": peer,
        },
        {
            "kind": "connection.state",
            "node_id": node,
            "ts": ts(),
            "connection_id": new_id(),
            "pool_id": pool,
            "endpoint": "e",
        },
        {
            "kind": "batch.stats",
            "node_id": node,
            "ts": ts(),
            "config_id": config,
            "period_start": ts(),
            "period_end": ts(),
        },
    )
    placeholders = await db.fetch(
        "SELECT node_id, node_name, status FROM network.nodes ORDER BY node_id"
    )
    assert {str(p["node_id"]) for p in placeholders} == {node, peer}
    assert {p["node_name"] for p in placeholders} == {None}
    assert await db.fetchval("SELECT mesh_name FROM network.mesh_topologies") is None
    assert await db.fetchval("SELECT pool_name FROM network.connection_pools") is None
    assert str(await db.fetchval("SELECT node_id FROM network.batch_configs")) == node
    assert await db.fetchval("SELECT count(*) FROM network.connections") == 1
    assert await db.fetchval("SELECT count(*) FROM network.batch_metrics") == 1
    assert await db.fetchval("SELECT placeholder_nodes FROM network.network_health") == 2

    await ingest(
        settings,
        "events",
        announce(node, "filled", ts()),
        {
            "kind": "topology.config",
            "node_id": node,
            "ts": ts(),
            "topology_id": topo,
            "mesh_name": "mesh",
        },
        {"kind": "pool.state", "node_id": node, "ts": ts(), "pool_id": pool, "pool_name": "p1"},
        {
            "kind": "batch.config",
            "node_id": node,
            "ts": ts(),
            "config_id": config,
            "max_batch_size": 10,
        },
    )
    assert (
        await db.fetchval("SELECT node_name FROM network.nodes WHERE node_id = $1", uuid.UUID(node))
        == "filled"
    )
    assert await db.fetchval("SELECT mesh_name FROM network.mesh_topologies") == "mesh"
    assert await db.fetchval("SELECT pool_name FROM network.connection_pools") == "p1"
    assert await db.fetchval("SELECT max_batch_size FROM network.batch_configs") == 10
    assert await db.fetchval("SELECT placeholder_nodes FROM network.network_health") == 1


async def test_stored_offsets_equal_the_end_offsets_after_a_drain(
    settings: Settings, db: asyncpg.Connection
) -> None:
    node = new_id()
    await send(settings, "metrics", *[metric(node, ts(), float(i)) for i in range(30)])
    await ingest(settings, "nodes", announce(node, "n", ts()))
    stored = await db.fetch(
        "SELECT topic, sum(next_offset) AS n FROM ingest.consumer_offsets GROUP BY topic"
    )
    by_topic = {r["topic"]: int(r["n"]) for r in stored}
    assert by_topic[topic(settings, "metrics")] == 30
    assert by_topic[topic(settings, "nodes")] == 1
    # A second drain reads nothing again.
    assert await drain(settings) == 0
    assert await db.fetchval("SELECT count(*) FROM network.metrics") == 30


async def test_offsets_are_also_committed_to_kafka_for_lag_tools(
    settings: Settings, db: asyncpg.Connection
) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    node = new_id()
    await ingest(settings, "metrics", *[metric(node, ts(), float(i)) for i in range(12)])
    stored = {
        (r["topic"], r["partition"]): r["next_offset"]
        for r in await db.fetch("SELECT topic, partition, next_offset FROM ingest.consumer_offsets")
    }
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=settings.group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        for p in range(3):
            tp = TopicPartition(topic(settings, "metrics"), p)
            committed = await consumer.committed(tp)
            assert (committed or 0) == stored[(tp.topic, p)]
    finally:
        await consumer.stop()


async def test_status_reports_stored_and_end_offsets_and_lag(
    settings: Settings, db: asyncpg.Connection
) -> None:
    from ingest.status import collect_status

    node = new_id()
    await ingest(settings, "metrics", *[metric(node, ts(), float(i)) for i in range(9)])
    await send(settings, "metrics", metric(node, ts(), 100.0))
    status = await collect_status(settings)
    rows = [p for p in status["partitions"] if p["topic"] == topic(settings, "metrics")]
    assert sum(p["end"] for p in rows) == 10
    assert sum(p["stored"] for p in rows) == 9
    assert status["total_lag"] == 1
    assert status["partitions_ahead"]["network.metrics"]["ahead"] >= 3


async def test_dead_letter_replay_stores_what_is_now_valid_and_keeps_the_rest(
    settings: Settings, db: asyncpg.Connection
) -> None:
    from ingest.app import create_pool
    from ingest.dlq import list_dead_letters, replay

    node = new_id()
    early = metric(node, ts(seconds=1200), 42.0)  # 20 minutes ahead: beyond the 5-minute skew
    broken = metric(node, ts(), 1.0)
    broken["metric_value"] = "n/a"
    await ingest(settings, "metrics", [early, broken])
    listed = await list_dead_letters(db)
    assert sorted(d["reason"] for d in listed) == ["timestamp_in_future", "validation_failed"]

    relaxed = settings.model_copy(
        update={"decode": settings.decode.model_copy(update={"max_clock_skew_s": 3600.0})}
    )
    pool = await create_pool(relaxed)
    try:
        outcomes = await replay(relaxed, pool)
        again = await replay(relaxed, pool)
    finally:
        await pool.close()
    assert sorted(o.replayed for o in outcomes) == [False, True]
    assert [o.replayed for o in again] == [False]
    assert await db.fetchval("SELECT metric_value FROM network.metrics") == 42.0
    kept = await db.fetch(
        "SELECT reason, replay_attempts, last_replay_error FROM ingest.dead_letters"
    )
    assert [(k["reason"], k["replay_attempts"]) for k in kept] == [("validation_failed", 2)]
    assert "metric_value" in kept[0]["last_replay_error"]
