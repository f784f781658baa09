"""The ``routes`` job: recompute ``is_best_route`` for the pairs that need it, set-based.

Best route of a (node, destination) pair: among its entries seen within
``INGEST_SCHEDULER_ROUTE_TTL_S``, the highest ``quality``; ties go to fewer ``hop_count``, then
the newer ``last_seen``, then the lower ``entry_id`` (so the choice is deterministic). A pair
with no fresh entry has no best route.

Which pairs a run looks at:

* the pairs the pipeline marked (``ingest.route_marks``) since the last run;
* pairs whose current best route went stale (it must be replaced or withdrawn even when no
  advert arrives);
* pairs that lose entries to the purge (entries older than ``INGEST_SCHEDULER_ROUTE_PURGE_S``);
* every pair, on a sweep: when no successful sweep ran within
  ``INGEST_SCHEDULER_ROUTES_SWEEP_INTERVAL_S``. A sweep repairs anything marks missed
  (entries edited by hand, marks of a run that failed and was never retried).

Marks are first moved to ``ingest.route_pending`` in a statement of their own (see
schema/0004_scheduler.sql for why); the recompute then runs in one transaction fenced by the
job's lease. The flag is set by two set-based UPDATEs in that transaction, clear then set:
the partial unique index "one best per pair" cannot be deferred and PostgreSQL checks it row
by row, so one UPDATE that moves the flag from one entry to another would fail whenever it
reached the new best before the old one. Before changing them, the rows are locked in the
sink's key order (node_id, destination_id, next_hop_id) so a concurrent flush cannot deadlock
with the job.

Each run that looked at any pair (and every sweep) is recorded in
``network.topology_optimizations``; changes are announced (see :mod:`announce`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ingest import errors
from ingest.db import Conn
from ingest.scheduler.announce import RouteChange, change_from_row, notify_payload
from ingest.scheduler.context import JobContext
from ingest.scheduler.leases import LeaseLost

MOVE_MARKS_SQL = """
WITH moved AS (DELETE FROM ingest.route_marks RETURNING node_id, destination_id)
INSERT INTO ingest.route_pending (node_id, destination_id)
SELECT node_id, destination_id FROM moved ORDER BY node_id, destination_id
ON CONFLICT (node_id, destination_id) DO NOTHING
"""

_TEMP_SQL = """
CREATE TEMP TABLE _route_pairs (
    node_id uuid, destination_id uuid, PRIMARY KEY (node_id, destination_id)
) ON COMMIT DROP;
CREATE TEMP TABLE _route_old (
    node_id uuid, destination_id uuid, entry_id uuid, next_hop_id uuid,
    quality double precision, hop_count integer
) ON COMMIT DROP;
CREATE TEMP TABLE _route_new (
    node_id uuid, destination_id uuid, entry_id uuid PRIMARY KEY, next_hop_id uuid,
    quality double precision, hop_count integer, sequence_number bigint, last_seen timestamptz
) ON COMMIT DROP;
"""

# $1 route TTL (s), $2 purge age (s), $3 sweep.
_PAIRS_SQL = """
INSERT INTO _route_pairs (node_id, destination_id)
SELECT node_id, destination_id FROM ingest.route_pending
UNION
SELECT node_id, destination_id FROM network.routing_entries
WHERE is_best_route AND last_seen < now() - make_interval(secs => $1)
UNION
SELECT node_id, destination_id FROM network.routing_entries
WHERE last_seen < now() - make_interval(secs => $2)
UNION
SELECT node_id, destination_id FROM network.routing_entries WHERE $3
"""

_TAKE_PENDING_SQL = """
DELETE FROM ingest.route_pending p USING _route_pairs r
WHERE p.node_id = r.node_id AND p.destination_id = r.destination_id
"""

_OLD_SQL = """
INSERT INTO _route_old
SELECT e.node_id, e.destination_id, e.entry_id, e.next_hop_id, e.quality, e.hop_count
FROM network.routing_entries e JOIN _route_pairs USING (node_id, destination_id)
WHERE e.is_best_route
"""

_PURGE_SQL = """
DELETE FROM network.routing_entries
WHERE entry_id IN (
    SELECT entry_id FROM network.routing_entries
    WHERE last_seen < now() - make_interval(secs => $1)
    ORDER BY node_id, destination_id, next_hop_id
    FOR UPDATE
)
"""

_NEW_SQL = """
INSERT INTO _route_new
SELECT DISTINCT ON (e.node_id, e.destination_id)
       e.node_id, e.destination_id, e.entry_id, e.next_hop_id, e.quality, e.hop_count,
       e.sequence_number, e.last_seen
FROM network.routing_entries e JOIN _route_pairs USING (node_id, destination_id)
WHERE e.last_seen >= now() - make_interval(secs => $1)
ORDER BY e.node_id, e.destination_id, e.quality DESC, e.hop_count ASC, e.last_seen DESC,
         e.entry_id
"""

_LOCK_SQL = """
SELECT e.entry_id
FROM network.routing_entries e
JOIN _route_pairs p USING (node_id, destination_id)
LEFT JOIN _route_new n ON n.entry_id = e.entry_id
WHERE e.is_best_route <> (n.entry_id IS NOT NULL)
ORDER BY e.node_id, e.destination_id, e.next_hop_id
FOR UPDATE OF e
"""

_CLEAR_SQL = """
UPDATE network.routing_entries e SET is_best_route = false
FROM _route_pairs p
WHERE e.node_id = p.node_id AND e.destination_id = p.destination_id AND e.is_best_route
  AND NOT EXISTS (SELECT 1 FROM _route_new n WHERE n.entry_id = e.entry_id)
"""

_SET_SQL = """
UPDATE network.routing_entries e SET is_best_route = true
FROM _route_new n
WHERE e.entry_id = n.entry_id AND NOT e.is_best_route
"""

_CHANGES_SQL = """
SELECT node_id, destination_id,
       n.entry_id, n.next_hop_id, n.quality, n.hop_count, n.sequence_number, n.last_seen,
       o.entry_id AS prev_entry_id, o.next_hop_id AS prev_next_hop_id,
       o.quality AS prev_quality, o.hop_count AS prev_hop_count
FROM _route_new n FULL JOIN _route_old o USING (node_id, destination_id)
WHERE n.entry_id IS DISTINCT FROM o.entry_id
ORDER BY node_id, destination_id
"""

_STATS_SQL = """
SELECT (SELECT count(*) FROM _route_pairs) AS pairs,
       (SELECT count(*) FROM _route_old) AS best_before,
       (SELECT avg(quality) FROM _route_old) AS quality_before,
       (SELECT avg(hop_count)::float8 FROM _route_old) AS hops_before,
       (SELECT count(*) FROM _route_new) AS best_after,
       (SELECT avg(quality) FROM _route_new) AS quality_after,
       (SELECT avg(hop_count)::float8 FROM _route_new) AS hops_after
"""

_SWEEP_DUE_SQL = """
SELECT NOT EXISTS (
    SELECT 1 FROM ingest.job_runs
    WHERE job = $1 AND started_at > now() - make_interval(secs => $2)
      AND outcome = 'ok' AND details->>'mode' = 'sweep'
)
"""

_RECORD_SQL = """
INSERT INTO network.topology_optimizations
    (topology_id, optimization_type, algorithm_used, metrics_before, metrics_after,
     improvement_percentage, execution_time_ms, success, error_message)
VALUES (NULL, $1, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8)
"""


@dataclass
class Recompute:
    """What one recompute did, over the pairs it looked at."""

    mode: str
    pairs: int
    purged: int
    changes: list[RouteChange]
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def improvement_percentage(self) -> float | None:
        old, new = self.before["mean_best_quality"], self.after["mean_best_quality"]
        if old is None or new is None or old == 0:
            return None
        return float((new - old) / old * 100.0)


def _count(status: str) -> int:
    return int(status.split()[-1])


def algorithm(ttl_s: float) -> str:
    return (
        "best_route_v1: highest quality among entries seen within "
        f"{ttl_s:g}s; ties: fewer hops, newer last_seen, lower entry_id"
    )


async def move_marks(conn: Conn) -> int:
    return _count(await conn.execute(MOVE_MARKS_SQL))


async def recompute(conn: Conn, mode: str, ttl_s: float, purge_s: float) -> Recompute:
    """Every statement of the recompute, in the caller's transaction."""
    await conn.execute(_TEMP_SQL)
    await conn.execute(_PAIRS_SQL, ttl_s, purge_s, mode == "sweep")
    await conn.execute(_TAKE_PENDING_SQL)
    await conn.execute(_OLD_SQL)
    purged = _count(await conn.execute(_PURGE_SQL, purge_s))
    await conn.execute(_NEW_SQL, ttl_s)
    await conn.execute(_LOCK_SQL)
    await conn.execute(_CLEAR_SQL)
    await conn.execute(_SET_SQL)
    changes = [change_from_row(r) for r in await conn.fetch(_CHANGES_SQL)]
    s = await conn.fetchrow(_STATS_SQL)
    assert s is not None
    before = {
        "best_routes": s["best_before"],
        "mean_best_quality": s["quality_before"],
        "mean_best_hops": s["hops_before"],
    }
    after = {
        "best_routes": s["best_after"],
        "mean_best_quality": s["quality_after"],
        "mean_best_hops": s["hops_after"],
        "changed": len(changes),
        "purged": purged,
    }
    return Recompute(mode, int(s["pairs"]), purged, changes, before, after)


async def _record(
    conn: Conn,
    mode: str,
    ttl_s: float,
    elapsed_ms: float,
    result: Recompute | None,
    error: str | None = None,
) -> None:
    before = {"pairs": result.pairs, **result.before} if result else {}
    after = {"pairs": result.pairs, **result.after} if result else {}
    await conn.execute(
        _RECORD_SQL,
        "scheduled" if mode == "sweep" else "triggered",
        algorithm(ttl_s),
        orjson.dumps(before).decode(),
        orjson.dumps(after).decode(),
        result.improvement_percentage if result else None,
        elapsed_ms,
        error is None,
        error,
    )


async def _sweep_due(ctx: JobContext) -> bool:
    async with ctx.pool.acquire() as conn:
        due: bool = await conn.fetchval(
            _SWEEP_DUE_SQL, ctx.job, float(ctx.settings.scheduler.routes_sweep_interval_s)
        )
    return due


async def run(ctx: JobContext) -> dict[str, Any]:
    s = ctx.settings.scheduler
    started = time.monotonic()
    mode = "sweep" if await _sweep_due(ctx) else "triggered"
    moved = 0
    if not ctx.dry_run:
        async with ctx.pool.acquire() as conn:
            moved = await move_marks(conn)
    try:
        async with ctx.transaction() as conn:
            if ctx.dry_run:
                moved = await move_marks(conn)  # rolled back with the rest
            result = await recompute(conn, mode, s.route_ttl_s, s.route_purge_s)
            changed_at: datetime = await conn.fetchval("SELECT now()")
            payload, truncated = notify_payload(
                result.changes, run_id=ctx.run_id, mode=mode, changed_at=changed_at
            )
            if result.changes:
                await conn.execute("SELECT pg_notify($1, $2)", s.route_updates_channel, payload)
            if result.pairs or mode == "sweep":
                elapsed_ms = (time.monotonic() - started) * 1000.0
                await _record(conn, mode, s.route_ttl_s, elapsed_ms, result)
    except LeaseLost:
        raise
    except Exception as exc:
        if not ctx.dry_run:
            async with ctx.pool.acquire() as conn:
                elapsed_ms = (time.monotonic() - started) * 1000.0
                await _record(conn, mode, s.route_ttl_s, elapsed_ms, None, errors.describe(exc))
        raise
    details: dict[str, Any] = {
        "mode": mode,
        "marks": moved,
        "pairs": result.pairs,
        "changed": len(result.changes),
        "purged": result.purged,
        "best_before": result.before["best_routes"],
        "best_after": result.after["best_routes"],
        "notify_truncated": bool(result.changes) and truncated,
    }
    if ctx.dry_run:
        details["dry_run"] = True
        details["changes"] = [c.as_dict() for c in result.changes[:50]]
        return details
    ctx.metrics.route_changes.inc(len(result.changes))
    # Committed: if publishing fails, the run record still tells what was done.
    ctx.extra.update(details)
    if s.route_updates_kafka and ctx.announcer is not None:
        details["published"] = await ctx.announcer.publish(
            result.changes, run_id=ctx.run_id, changed_at=changed_at
        )
    return details
