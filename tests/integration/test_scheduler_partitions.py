"""The partitions job (and the sink's missing-partition repair) against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from pipeline import (
    drain,
    make_settings,
    metric,
    new_id,
    prepare_topics,
    produce,
    scheduler_settings,
)
from prometheus_client import CollectorRegistry

from ingest.app import create_pool, run_worker
from ingest.observability import Metrics
from ingest.partitions import existing_ranges, floor_to_interval
from ingest.scheduler.partitions import wanted_ranges
from ingest.scheduler.runner import Scheduler
from ingest.settings import PARTITIONED_TABLES, Settings


async def _scheduler(settings: Settings) -> tuple[Scheduler, asyncpg.Pool]:
    pool = await create_pool(settings)
    return Scheduler(settings, pool, Metrics(CollectorRegistry())), pool


async def _names(conn: asyncpg.Connection, table: str) -> set[str]:
    return {name for name, _, _ in await existing_ranges(conn, table)}


async def test_startup_creates_partitions_from_the_retention_horizon_to_premake_ahead(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    settings = scheduler_settings(migrated_database_url)
    scheduler, pool = await _scheduler(settings)
    try:
        await scheduler.run_startup()
    finally:
        await pool.close()

    now = await conn.fetchval("SELECT now()")
    for table in PARTITIONED_TABLES:
        expected = {
            p.name
            for p in wanted_ranges(
                table,
                now,
                settings.partitions.interval(table),
                settings.partitions.retention_days(table),
                settings.scheduler.premake,
            )
        }
        assert await _names(conn, table) == expected, table
        assert scheduler.metrics.registry.get_sample_value(
            "ingest_partitions_ahead", {"table": table}
        ) == float(settings.scheduler.premake)
    # e.g. events: a year back (365 days of monthly partitions) plus the current and 3 ahead.
    assert len(await _names(conn, "events")) in (16, 17)
    run = await conn.fetchrow("SELECT outcome, details FROM ingest.job_runs")
    assert run["outcome"] == "ok"
    assert '"trigger": "startup"' in run["details"]


async def test_a_second_run_creates_nothing_and_a_dry_run_only_lists(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    settings = scheduler_settings(migrated_database_url)
    scheduler, pool = await _scheduler(settings)
    try:
        plan = await scheduler.run_once("partitions", dry_run=True)
        before = {t: await _names(conn, t) for t in PARTITIONED_TABLES}
        first = await scheduler.run_once("partitions")
        second = await scheduler.run_once("partitions")
    finally:
        await pool.close()
    assert plan["outcome"] == "ok"
    assert plan["details"]["dry_run"] is True
    # The dry run listed exactly what the real run then created, and created none of it.
    assert sorted(plan["details"]["plan"]) == sorted(first["details"]["created"])
    existed = {f"network.{name}" for names in before.values() for name in names}
    assert plan["details"]["plan"] and not existed & set(plan["details"]["plan"])
    assert second["details"]["created"] == []


async def test_rows_at_an_interval_boundary_land_in_their_own_partitions(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    settings = scheduler_settings(migrated_database_url)
    scheduler, pool = await _scheduler(settings)
    try:
        await scheduler.run_startup()
    finally:
        await pool.close()
    boundary = floor_to_interval(await conn.fetchval("SELECT now()"), "month")
    times = [boundary - timedelta(microseconds=1), boundary]
    for at in times:
        await conn.execute(
            "INSERT INTO network.metrics (node_id, metric_type, metric_name, metric_value, "
            "recorded_at) VALUES (gen_random_uuid(), 'cpu', 'load', 1, $1)",
            at,
        )
    rows = await conn.fetch(
        "SELECT tableoid::regclass::text AS part FROM network.metrics ORDER BY recorded_at"
    )
    before = floor_to_interval(boundary - timedelta(days=1), "month")
    assert [r["part"] for r in rows] == [
        f"network.metrics_p{before:%Y%m%d}",
        f"network.metrics_p{boundary:%Y%m%d}",
    ]


async def test_a_flush_into_a_missing_partition_creates_it_and_succeeds(
    migrated_database_url: str, conn: asyncpg.Connection, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = make_settings(migrated_database_url, kafka_bootstrap, topic_prefix)
    await prepare_topics(settings, partitions=1)
    now = await conn.fetchval("SELECT now()")
    # The last day of the previous month: inside retention, in a partition we drop first.
    at = floor_to_interval(now, "month") - timedelta(hours=12)
    gone = f"metrics_p{floor_to_interval(at, 'month'):%Y%m%d}"
    # The template database makes only the current month and ahead, so it may not exist.
    if gone in await _names(conn, "metrics"):
        await conn.execute(f"ALTER TABLE network.metrics DETACH PARTITION network.{gone}")
        await conn.execute(f"DROP TABLE network.{gone}")
        await conn.execute(
            "DELETE FROM ingest.managed_partitions WHERE partition_table = $1", f"network.{gone}"
        )
    assert gone not in await _names(conn, "metrics")

    node = new_id()
    await produce(
        kafka_bootstrap, settings.topic_prefix + "metrics", [metric(node, at.isoformat(), 7.5)]
    )
    assert await drain(settings) == 0

    row = await conn.fetchrow(
        "SELECT metric_value, tableoid::regclass::text AS part FROM network.metrics "
        "WHERE node_id = $1",
        node,
    )
    assert row is not None and row["metric_value"] == 7.5
    assert row["part"] == f"network.{gone}"
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM ingest.managed_partitions WHERE partition_table = $1",
            f"network.{gone}",
        )
        == 1
    )
    assert await conn.fetchval("SELECT count(*) FROM ingest.dead_letters") == 0


async def test_the_worker_runs_the_partitions_job_at_start_up_beside_the_consumers(
    migrated_database_url: str, conn: asyncpg.Connection, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = make_settings(
        migrated_database_url,
        kafka_bootstrap,
        topic_prefix,
        INGEST_SCHEDULER_ENABLED="true",
        INGEST_SCHEDULER_ROUTE_UPDATES_KAFKA="false",
    )
    await prepare_topics(settings, partitions=1)
    node = new_id()
    now = await conn.fetchval("SELECT now()")
    await produce(
        kafka_bootstrap, settings.topic_prefix + "metrics", [metric(node, now.isoformat())]
    )

    code = await asyncio.wait_for(
        run_worker(settings, burst=True, registry=CollectorRegistry()), timeout=90
    )

    assert code == 0
    assert await conn.fetchval("SELECT count(*) FROM network.metrics WHERE node_id = $1", node) == 1
    startup = await conn.fetch(
        "SELECT outcome FROM ingest.job_runs "
        "WHERE job = 'partitions' AND details->>'trigger' = 'startup'"
    )
    assert [r["outcome"] for r in startup] == ["ok"]
    # Start-up made the partitions back to the horizon, which the template does not have.
    assert len(await _names(conn, "events")) in (16, 17)
