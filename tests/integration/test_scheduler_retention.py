"""The retention job against a real PostgreSQL: exactly the right partitions go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from pipeline import scheduler_settings
from prometheus_client import CollectorRegistry

from ingest.app import create_pool
from ingest.observability import Metrics
from ingest.partitions import ensure_partitions, existing_ranges, floor_to_interval
from ingest.scheduler.runner import Scheduler


async def _retention(db_url: str, *, dry_run: bool = False, **extra: str) -> dict[str, object]:
    settings = scheduler_settings(db_url, **extra)
    pool = await create_pool(settings)
    try:
        return await Scheduler(settings, pool, Metrics(CollectorRegistry())).run_once(
            "retention", dry_run=dry_run
        )
    finally:
        await pool.close()


async def _names(conn: asyncpg.Connection, table: str) -> set[str]:
    return {name for name, _, _ in await existing_ranges(conn, table)}


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def _old_metrics_partitions(conn: asyncpg.Connection) -> None:
    """2020-01..2020-03 made by the project; 2019 ones attached by hand, one of them foreign."""
    await ensure_partitions(conn, "metrics", _utc(2020, 1, 1), _utc(2020, 4, 1), "month")
    await conn.execute(
        "CREATE TABLE network.metrics_by_hand "
        "(LIKE network.metrics INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    await conn.execute(
        "ALTER TABLE network.metrics ATTACH PARTITION network.metrics_by_hand "
        "FOR VALUES FROM ('2019-06-01') TO ('2019-07-01')"
    )


async def _foreign_partition(conn: asyncpg.Connection) -> bool:
    """A postgres_fdw foreign table as a partition, wrongly listed in the registry too."""
    available = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgres_fdw'"
    )
    if not available:
        return False
    await conn.execute("CREATE EXTENSION postgres_fdw")
    await conn.execute(
        "CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw "
        "OPTIONS (host 'localhost', dbname 'nowhere')"
    )
    await conn.execute(
        "CREATE FOREIGN TABLE network.metrics_remote PARTITION OF network.metrics "
        "FOR VALUES FROM ('2019-01-01') TO ('2019-02-01') SERVER elsewhere"
    )
    await conn.execute(
        "INSERT INTO ingest.managed_partitions (parent_table, partition_table, range_from, "
        "range_to) VALUES ('network.metrics', 'network.metrics_remote', '2019-01-01', "
        "'2019-02-01')"
    )
    return True


async def test_retention_drops_exactly_the_managed_partitions_older_than_the_horizon(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    await _old_metrics_partitions(conn)
    foreign = await _foreign_partition(conn)
    before = await _names(conn, "metrics")

    result = await _retention(migrated_database_url)

    assert result["outcome"] == "ok", result
    old = {"metrics_p20200101", "metrics_p20200201", "metrics_p20200301"}
    assert await _names(conn, "metrics") == before - old
    assert "metrics_by_hand" in await _names(conn, "metrics")
    if foreign:
        assert "metrics_remote" in await _names(conn, "metrics")
    details = result["details"]
    assert isinstance(details, dict)
    assert sorted(details["dropped"]) == sorted(f"network.{n}" for n in old)
    for name in old:
        assert await conn.fetchval("SELECT to_regclass($1)", f"network.{name}") is None
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM ingest.managed_partitions WHERE partition_table LIKE "
            "'network.metrics_p2020%'"
        )
        == 0
    )


async def test_a_partition_detached_by_hand_is_left_alone(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    await ensure_partitions(conn, "events", _utc(2020, 1, 1), _utc(2020, 2, 1), "month")
    await conn.execute("ALTER TABLE network.events DETACH PARTITION network.events_p20200101")

    result = await _retention(migrated_database_url)

    assert result["outcome"] == "ok"
    assert await conn.fetchval("SELECT to_regclass('network.events_p20200101')") is not None


async def test_the_dry_run_returns_the_plan_and_changes_nothing(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    await _old_metrics_partitions(conn)
    before = {t: await _names(conn, t) for t in ("metrics", "events")}
    registry = await conn.fetchval("SELECT count(*) FROM ingest.managed_partitions")

    result = await _retention(migrated_database_url, dry_run=True)

    assert result["outcome"] == "ok"
    details = result["details"]
    assert isinstance(details, dict)
    assert details["dry_run"] is True
    assert [p["partition"] for p in details["plan"]] == [
        "network.metrics_p20200101",
        "network.metrics_p20200201",
        "network.metrics_p20200301",
    ]
    assert {t: await _names(conn, t) for t in ("metrics", "events")} == before
    assert await conn.fetchval("SELECT count(*) FROM ingest.managed_partitions") == registry


async def test_the_current_partition_and_the_one_holding_the_horizon_are_kept(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    # routing_metrics by day with one day of retention: made fresh for the test.
    for name, _, _ in await existing_ranges(conn, "routing_metrics"):
        await conn.execute(f"ALTER TABLE network.routing_metrics DETACH PARTITION network.{name}")
        await conn.execute(f"DROP TABLE network.{name}")
    await conn.execute(
        "DELETE FROM ingest.managed_partitions WHERE parent_table = 'network.routing_metrics'"
    )
    now = await conn.fetchval("SELECT now()")
    today = floor_to_interval(now, "day")
    await ensure_partitions(
        conn, "routing_metrics", today - timedelta(days=4), today + timedelta(days=2), "day"
    )

    result = await _retention(
        migrated_database_url,
        INGEST_PARTITION_ROUTING_METRICS_INTERVAL="day",
        INGEST_PARTITION_ROUTING_METRICS_RETENTION_DAYS="1",
    )

    assert result["outcome"] == "ok", result
    # The horizon (now - 1 day) lies inside yesterday's partition: yesterday stays.
    kept = [today + timedelta(days=d) for d in (-1, 0, 1)]
    assert await _names(conn, "routing_metrics") == {
        f"routing_metrics_p{day:%Y%m%d}" for day in kept
    }
