"""The stale-node sweep and the DNS cleanup change exactly the rows they should."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson
from prometheus_client import CollectorRegistry

from ingest.app import create_pool
from ingest.observability import Metrics
from ingest.scheduler.runner import Scheduler
from ingest.settings import load_settings

TIMEOUT_S = 300


async def _run(db_url: str, job: str, *, dry_run: bool = False) -> dict[str, Any]:
    settings = load_settings(
        {
            "INGEST_DATABASE_URL": db_url,
            "INGEST_HTTP_ENABLED": "false",
            "INGEST_SCHEDULER_STALE_NODE_TIMEOUT_S": str(TIMEOUT_S),
        }
    )
    pool = await create_pool(settings)
    try:
        return await Scheduler(settings, pool, Metrics(CollectorRegistry())).run_once(
            job, dry_run=dry_run
        )
    finally:
        await pool.close()


async def _node(
    conn: asyncpg.Connection, status: str, age_s: float | None, *, announced: bool = False
) -> uuid.UUID:
    node = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO network.nodes (node_id, node_name, address, port, status, last_seen,
                                   announced_at, status_at)
        VALUES ($1, $2, $3, $4, $5, now() - make_interval(secs => $6),
                CASE WHEN $7 THEN now() - interval '1 day' END, now() - interval '1 day')
        """,
        node,
        str(node) if announced else None,
        "10.0.0.1" if announced else None,
        4000 if announced else None,
        status,
        age_s,
        announced,
    )
    return node


async def _statuses(conn: asyncpg.Connection) -> dict[uuid.UUID, str]:
    return {r["node_id"]: r["status"] for r in await conn.fetch("SELECT * FROM network.nodes")}


async def test_nodes_not_seen_within_the_timeout_become_disconnected_with_an_event(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    stale = await _node(conn, "active", TIMEOUT_S + 60, announced=True)
    stale_inactive = await _node(conn, "inactive", TIMEOUT_S + 60, announced=True)
    seen_placeholder = await _node(conn, "connecting", TIMEOUT_S + 60)
    fresh = await _node(conn, "active", TIMEOUT_S - 60, announced=True)
    already = await _node(conn, "disconnected", TIMEOUT_S + 60, announced=True)
    quarantined = await _node(conn, "quarantined", TIMEOUT_S + 60, announced=True)
    never_seen = await _node(conn, "connecting", None)
    before = await _statuses(conn)

    result = await _run(migrated_database_url, "stale_nodes")

    assert result["outcome"] == "ok", result
    changed = {stale, stale_inactive, seen_placeholder}
    assert await _statuses(conn) == {
        **before,
        **{node: "disconnected" for node in changed},
    }
    assert {fresh, already, quarantined, never_seen}.isdisjoint(changed)
    # status_at is the last sighting, so anything the node sent after it still applies.
    for node in changed:
        row = await conn.fetchrow(
            "SELECT status_at, last_seen FROM network.nodes WHERE node_id = $1", node
        )
        assert row["status_at"] == row["last_seen"]
    events = await conn.fetch("SELECT * FROM network.events ORDER BY node_id")
    assert {e["node_id"] for e in events} == changed
    assert len(events) == 3
    for e in events:
        assert (e["event_type"], e["event_name"], e["severity"]) == (
            "node",
            "stale_disconnected",
            "warning",
        )
        assert orjson.loads(e["metadata"])["previous_status"] == before[e["node_id"]]
    assert result["details"]["disconnected"] == 3

    again = await _run(migrated_database_url, "stale_nodes")
    assert again["details"]["disconnected"] == 0
    assert await conn.fetchval("SELECT count(*) FROM network.events") == 3


async def test_the_stale_node_dry_run_reports_and_changes_nothing(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    await _node(conn, "active", TIMEOUT_S + 60, announced=True)
    result = await _run(migrated_database_url, "stale_nodes", dry_run=True)
    assert result["details"]["disconnected"] == 1
    assert result["details"]["dry_run"] is True
    assert set((await _statuses(conn)).values()) == {"active"}
    assert await conn.fetchval("SELECT count(*) FROM network.events") == 0


async def test_dns_cleanup_deletes_exactly_the_expired_rows(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        """
        INSERT INTO network.dns_cache (hostname, ip_addresses, record_type, ttl, cached_at,
                                       expires_at)
        VALUES ('old.example', ARRAY['10.0.0.1'::inet], 'A', 60, now() - interval '2 min',
                now() - interval '1 min'),
               ('old.example', ARRAY['::1'::inet], 'AAAA', 60, now() - interval '2 min',
                now() - interval '1 second'),
               ('live.example', ARRAY['10.0.0.2'::inet], 'A', 600, now(),
                now() + interval '10 min'),
               ('live.example', ARRAY['::2'::inet], 'AAAA', 600, now(),
                now() + interval '1 min')
        """
    )

    result = await _run(migrated_database_url, "dns_cleanup")

    assert result["outcome"] == "ok", result
    left = await conn.fetch(
        "SELECT hostname, record_type FROM network.dns_cache ORDER BY hostname, record_type"
    )
    assert [(r["hostname"], r["record_type"]) for r in left] == [
        ("live.example", "A"),
        ("live.example", "AAAA"),
    ]
    assert result["details"]["deleted"] == 2
    assert result["details"]["names"] == ["old.example/A", "old.example/AAAA"]
