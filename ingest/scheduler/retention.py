"""The ``retention`` job: detach and drop partitions wholly older than each table's retention.

A partition is dropped only when all of these hold:

* it is attached to the table now, as a plain table (``relkind = 'r'``): a foreign table or
  anything else attached by hand is never touched;
* it is listed in ``ingest.managed_partitions`` (this project created it);
* its *actual* upper bound (read from the catalog, not the registry) is at or before the
  horizon ``now() - retention``, so no row inside retention can be in it;
* it does not contain now (never the current partition, whatever the settings say).

Each partition goes in its own short transaction with a lock timeout, retried with jitter:
``DETACH PARTITION`` (so the drop itself never locks the parent), ``DROP TABLE``, and its
registry row. A partition someone detached by hand is left alone: detaching is how one
archives a partition, and dropping it would destroy the archive. Registry rows whose table no
longer exists are removed once they are past the horizon.

The job also deletes ``ingest.job_runs`` older than ``INGEST_SCHEDULER_JOB_RUNS_RETENTION_DAYS``.
A dry run returns the plan and changes nothing.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ingest.db import Conn
from ingest.partitions import SCHEMA, existing_ranges
from ingest.scheduler.context import JobContext
from ingest.scheduler.partitions import db_now
from ingest.settings import PARTITIONED_TABLES, Settings

_LOCK_TIMEOUT = "2s"
_ATTEMPTS = 5


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _managed_plain(conn: Conn, parent: str) -> set[str]:
    """Names (without schema) of registered partitions of ``parent`` that are plain tables."""
    rows = await conn.fetch(
        """
        SELECT c.relname
        FROM ingest.managed_partitions m
        JOIN pg_class c ON c.oid = to_regclass(m.partition_table)
        WHERE m.parent_table = $1 AND c.relkind = 'r'
        """,
        parent,
    )
    return {str(r["relname"]) for r in rows}


async def plan_table(
    conn: Conn, table: str, now: datetime, retention_days: int
) -> list[dict[str, Any]]:
    """The partitions of ``network.<table>`` retention would drop, oldest first."""
    horizon = now - timedelta(days=retention_days)
    managed = await _managed_plain(conn, f"{SCHEMA}.{table}")
    plan: list[dict[str, Any]] = []
    for name, low, high in await existing_ranges(conn, table):
        if name not in managed or low is None or high is None:
            continue
        if high <= horizon and not (low <= now < high):
            plan.append(
                {
                    "table": table,
                    "partition": f"{SCHEMA}.{name}",
                    "range_from": low,
                    "range_to": high,
                }
            )
    return sorted(plan, key=lambda p: p["range_from"])


async def _drop_one(conn: Conn, table: str, partition: str) -> None:
    name = partition.split(".", 1)[1]
    parent = f"{_ident(SCHEMA)}.{_ident(table)}"
    child = f"{_ident(SCHEMA)}.{_ident(name)}"
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
                await conn.execute(f"ALTER TABLE {parent} DETACH PARTITION {child}")
                await conn.execute(f"DROP TABLE {child}")
                await conn.execute(
                    "DELETE FROM ingest.managed_partitions WHERE partition_table = $1", partition
                )
            return
        except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
            if attempt == _ATTEMPTS:
                raise
            await asyncio.sleep(random.uniform(0.05, 0.25) * attempt)


async def _forget_missing(conn: Conn, settings: Settings, now: datetime) -> int:
    """Registry rows of partitions that no longer exist (dropped by hand), past the horizon."""
    deleted = 0
    for table in PARTITIONED_TABLES:
        horizon = now - timedelta(days=settings.partitions.retention_days(table))
        status = await conn.execute(
            "DELETE FROM ingest.managed_partitions WHERE parent_table = $1 "
            "AND range_to <= $2 AND to_regclass(partition_table) IS NULL",
            f"{SCHEMA}.{table}",
            horizon,
        )
        deleted += int(status.split()[-1])
    return deleted


async def run(ctx: JobContext) -> dict[str, Any]:
    settings = ctx.settings
    async with ctx.pool.acquire() as conn:
        now = await db_now(conn)
        plan: list[dict[str, Any]] = []
        for table in PARTITIONED_TABLES:
            plan += await plan_table(conn, table, now, settings.partitions.retention_days(table))
        runs_horizon = now - timedelta(days=settings.scheduler.job_runs_retention_days)
        if ctx.dry_run:
            old_runs = await conn.fetchval(
                "SELECT count(*) FROM ingest.job_runs WHERE started_at < $1", runs_horizon
            )
            return {"dry_run": True, "plan": plan, "job_runs_to_delete": int(old_runs)}
        dropped: list[str] = []
        for step in plan:
            await ctx.check_lease(conn)
            await _drop_one(conn, step["table"], step["partition"])
            dropped.append(step["partition"])
        forgotten = await _forget_missing(conn, settings, now)
        status = await conn.execute(
            "DELETE FROM ingest.job_runs WHERE started_at < $1", runs_horizon
        )
        return {
            "dropped": dropped,
            "registry_rows_forgotten": forgotten,
            "job_runs_deleted": int(status.split()[-1]),
        }
