"""Create the range partitions of the time-series tables for a given span of time.

Used by ``ingest migrate`` (the partitions around now), by the scheduler's partitions job (keep
them ahead), and by the sink when a flush meets a missing partition.

Partition bounds are aligned in UTC: a day starts at midnight, a week on Monday, a month on the
1st. A partition is named ``<table>_p<YYYYMMDD>`` after its lower bound whatever the interval.

Each partition is made in its own short transaction: create a plain table shaped like the
parent, then ``ATTACH PARTITION``. Creating it directly with ``PARTITION OF`` would take an
ACCESS EXCLUSIVE lock on the parent and stall every COPY behind it; ATTACH takes only SHARE
UPDATE EXCLUSIVE, which writers do not conflict with. A lock timeout keeps a busy parent from
queueing all writers behind the DDL; the attempt is retried with jitter.

Ranges that overlap an existing partition (for instance after the interval setting changed)
are skipped, never forced.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from ingest.db import Conn
from ingest.settings import PARTITIONED_TABLES, PartitionInterval, PartitionSettings

SCHEMA = "network"
_LOCK_TIMEOUT = "2s"
_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class PartitionRange:
    table: str
    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        return f"{self.table}_p{self.start:%Y%m%d}"


def floor_to_interval(moment: datetime, interval: PartitionInterval) -> datetime:
    """The start of the interval that contains ``moment`` (UTC)."""
    moment = moment.astimezone(UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_boundary(start: datetime, interval: PartitionInterval) -> datetime:
    """The start of the interval after the one that starts at ``start``."""
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def ranges_for(
    table: str, start: datetime, end: datetime, interval: PartitionInterval
) -> list[PartitionRange]:
    """The aligned partitions of ``table`` that together cover ``[start, end)``."""
    if end <= start:
        return []
    out: list[PartitionRange] = []
    low = floor_to_interval(start, interval)
    while low < end:
        high = next_boundary(low, interval)
        out.append(PartitionRange(table, low, high))
        low = high
    return out


_BOUND_RE = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


async def existing_ranges(
    conn: Conn, table: str
) -> list[tuple[str, datetime | None, datetime | None]]:
    """Attached partitions of ``network.<table>``: (name, from, to); None for open bounds."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = $1 AND p.relname = $2
        """,
        SCHEMA,
        table,
    )
    out: list[tuple[str, datetime | None, datetime | None]] = []
    for row in rows:
        bound = str(row["bound"])
        match = _BOUND_RE.search(bound)
        if match is None:
            # DEFAULT or MINVALUE/MAXVALUE bounds: treat as covering everything.
            out.append((str(row["name"]), None, None))
            continue
        low = await conn.fetchval("SELECT $1::text::timestamptz", match.group(1))
        high = await conn.fetchval("SELECT $1::text::timestamptz", match.group(2))
        out.append((str(row["name"]), low, high))
    return out


def _overlaps(
    wanted: PartitionRange, existing: list[tuple[str, datetime | None, datetime | None]]
) -> bool:
    for _, low, high in existing:
        if low is None or high is None:
            return True
        if wanted.start < high and low < wanted.end:
            return True
    return False


async def _create_one(conn: Conn, part: PartitionRange) -> bool:
    """Create and attach one partition; False when it (or an overlapping one) exists."""
    parent = f"{SCHEMA}.{part.table}"
    child = f"{SCHEMA}.{part.name}"
    key = PARTITIONED_TABLES[part.table]
    low = part.start.isoformat()
    high = part.end.isoformat()
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        # Serialise creators of the same parent (several replicas, the sink and the job).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", parent)
        if _overlaps(part, await existing_ranges(conn, part.table)):
            return False
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {child} "
            f"(LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        # A matching CHECK lets ATTACH skip its validation scan; dropped once attached.
        await conn.execute(
            f"ALTER TABLE {child} ADD CONSTRAINT {part.name}_bound "
            f"CHECK ({key} IS NOT NULL AND {key} >= '{low}' AND {key} < '{high}')"
        )
        await conn.execute(
            f"ALTER TABLE {parent} ATTACH PARTITION {child} FOR VALUES FROM ('{low}') TO ('{high}')"
        )
        await conn.execute(f"ALTER TABLE {child} DROP CONSTRAINT {part.name}_bound")
        await conn.execute(
            "INSERT INTO ingest.managed_partitions "
            "(parent_table, partition_table, range_from, range_to) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (partition_table) DO NOTHING",
            parent,
            child,
            part.start,
            part.end,
        )
    return True


async def ensure_partitions(
    conn: Conn,
    table: str,
    start: datetime,
    end: datetime,
    interval: PartitionInterval,
) -> list[str]:
    """Make sure partitions of ``table`` cover ``[start, end)``; return the ones created."""
    if table not in PARTITIONED_TABLES:
        raise ValueError(f"{table} is not a partitioned table")
    created: list[str] = []
    for part in ranges_for(table, start, end, interval):
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                if await _create_one(conn, part):
                    created.append(f"{SCHEMA}.{part.name}")
                break
            except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
                if attempt == _ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0.05, 0.25) * attempt)
    return created


async def ensure_partitions_around(
    conn: Conn,
    settings: PartitionSettings,
    *,
    premake: int = 3,
    now: datetime | None = None,
    back: int = 0,
) -> list[str]:
    """For every partitioned table: the current interval, ``premake`` ahead, ``back`` behind."""
    now = now or datetime.now(UTC)
    created: list[str] = []
    for table in PARTITIONED_TABLES:
        interval = settings.interval(table)
        start = floor_to_interval(now, interval)
        for _ in range(back):
            start = floor_to_interval(start - timedelta(days=1), interval)
        end = floor_to_interval(now, interval)
        for _ in range(premake + 1):
            end = next_boundary(end, interval)
        created += await ensure_partitions(conn, table, start, end, interval)
    return created


async def ensure_partitions_for_times(
    conn: Conn,
    table: str,
    times: list[datetime],
    settings: PartitionSettings,
) -> list[str]:
    """Create whatever partitions the given row times need (the sink's repair path)."""
    if not times:
        return []
    interval = settings.interval(table)
    created: list[str] = []
    for start in sorted({floor_to_interval(t, interval) for t in times}):
        created += await ensure_partitions(
            conn, table, start, next_boundary(start, interval), interval
        )
    return created
