"""The ``partitions`` job: every partitioned table covered from its retention horizon to
``premake`` intervals ahead of now.

"Now" is the database's clock (one clock for every replica, and the same one retention uses),
never the newest row: a quiet table still gets its partitions before data arrives. The range
that contains the horizon is kept, so the partitions job and the retention job never undo each
other's work. Creation itself is :func:`ingest.partitions.ensure_partitions`: each partition
in its own short transaction with a lock timeout, retried with jitter, serialised per parent,
and recorded in ``ingest.managed_partitions``.

Only the ranges missing from the catalog are handed to ``ensure_partitions``, because it
re-reads the parent's partitions for every range it is given.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ingest.db import Conn
from ingest.partitions import (
    SCHEMA,
    PartitionRange,
    ensure_partitions,
    existing_ranges,
    floor_to_interval,
    next_boundary,
    ranges_for,
)
from ingest.scheduler.context import JobContext
from ingest.settings import PARTITIONED_TABLES, PartitionInterval

Existing = list[tuple[str, datetime | None, datetime | None]]

#: How far past ``premake`` the partitions-ahead gauge looks.
_AHEAD_LOOKOUT = 12


def wanted_ranges(
    table: str, now: datetime, interval: PartitionInterval, retention_days: int, premake: int
) -> list[PartitionRange]:
    """From the interval containing the retention horizon to ``premake`` intervals past now."""
    end = floor_to_interval(now, interval)
    for _ in range(premake + 1):
        end = next_boundary(end, interval)
    return ranges_for(table, now - timedelta(days=retention_days), end, interval)


def _overlaps(part: PartitionRange, existing: Existing) -> bool:
    for _, low, high in existing:
        if low is None or high is None or (part.start < high and low < part.end):
            return True
    return False


def _covered(part: PartitionRange, existing: Existing) -> bool:
    for _, low, high in existing:
        if low is None or high is None or (low <= part.start and part.end <= high):
            return True
    return False


def intervals_ahead(
    table: str, now: datetime, interval: PartitionInterval, existing: Existing
) -> int:
    """Whole intervals after the current one that are covered, counted without a gap."""
    start = next_boundary(floor_to_interval(now, interval), interval)
    end = start
    for _ in range(_AHEAD_LOOKOUT + 60):
        end = next_boundary(end, interval)
    count = 0
    for part in ranges_for(table, start, end, interval):
        if not _covered(part, existing):
            break
        count += 1
    return count


async def db_now(conn: Conn) -> datetime:
    value: datetime = await conn.fetchval("SELECT now()")
    return value


async def keep_ahead(ctx: JobContext, conn: Conn) -> dict[str, Any]:
    """Create what is missing (or, in a dry run, list it); set the partitions-ahead gauge."""
    settings = ctx.settings
    now = await db_now(conn)
    created: list[str] = []
    planned: list[str] = []
    ahead: dict[str, int] = {}
    for table in PARTITIONED_TABLES:
        interval = settings.partitions.interval(table)
        existing = await existing_ranges(conn, table)
        wanted = wanted_ranges(
            table,
            now,
            interval,
            settings.partitions.retention_days(table),
            settings.scheduler.premake,
        )
        missing = [p for p in wanted if not _overlaps(p, existing)]
        if ctx.dry_run:
            planned += [f"{SCHEMA}.{p.name}" for p in missing]
            ahead[table] = intervals_ahead(table, now, interval, existing)
            continue
        for part in missing:
            await ctx.check_lease(conn)
            made = await ensure_partitions(conn, table, part.start, part.end, interval)
            ctx.metrics.partitions_created.labels(table).inc(len(made))
            created += made
        if missing:
            existing = await existing_ranges(conn, table)
        ahead[table] = intervals_ahead(table, now, interval, existing)
        ctx.metrics.partitions_ahead.labels(table).set(ahead[table])
    if ctx.dry_run:
        return {"dry_run": True, "plan": planned, "ahead": ahead}
    return {"created": created, "ahead": ahead}


async def run(ctx: JobContext) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        return await keep_ahead(ctx, conn)
