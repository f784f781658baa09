"""The ``stale_nodes`` job: nodes not seen within the timeout become ``disconnected``.

Which nodes: ``last_seen`` older than ``INGEST_SCHEDULER_STALE_NODE_TIMEOUT_S`` and status
neither ``disconnected`` (nothing to do) nor ``quarantined`` (a deliberate operator decision
that must survive silence). Placeholders that were never seen (``last_seen`` NULL) are left
as they are: there is no sighting to time out from. A placeholder that *was* seen (a heartbeat
from a node that never announced itself) times out like any other node.

``status_at`` becomes the node's ``last_seen``, not the wall clock: the sink applies a status
from an event only when the event's ``ts`` is not older than ``status_at``, so any event the
node sends after its last sighting (including a backlog the consumers are still catching up
on) can bring the status back. Setting ``now()`` would make such events lose against a
sweep that only guessed.

Each node changed gets one ``events`` row (``event_type`` ``node``, ``event_name``
``stale_disconnected``, severity ``warning``, metadata with the previous status, the last
sighting and the timeout), in the same statement as the update.

The rows are locked in ``node_id`` order first, the order the sink's upserts lock them, so
the sweep and a flush cannot deadlock; a node refreshed meanwhile is re-checked and skipped.
"""

from __future__ import annotations

from typing import Any

from ingest.partitions import ensure_partitions_for_times
from ingest.scheduler.context import JobContext

_SQL = """
WITH stale AS (
    SELECT node_id, status, last_seen, status_at
    FROM network.nodes
    WHERE last_seen < now() - make_interval(secs => $1)
      AND status NOT IN ('disconnected', 'quarantined')
    ORDER BY node_id
    FOR UPDATE
), changed AS (
    UPDATE network.nodes n
    SET status = 'disconnected',
        status_at = GREATEST(s.status_at, s.last_seen)
    FROM stale s
    WHERE n.node_id = s.node_id
    RETURNING n.node_id, n.node_name, s.status AS previous_status, s.last_seen
), logged AS (
    INSERT INTO network.events
        (node_id, event_type, event_name, severity, description, metadata, occurred_at)
    SELECT node_id, 'node', 'stale_disconnected', 'warning',
           format('not seen for more than %s s; last seen %s', $1, last_seen),
           jsonb_build_object('previous_status', previous_status, 'last_seen', last_seen,
                              'timeout_s', $1),
           now()
    FROM changed
)
SELECT node_id, node_name, previous_status, last_seen FROM changed ORDER BY node_id
"""

_DETAILS_NODES = 50


async def run(ctx: JobContext) -> dict[str, Any]:
    timeout_s = float(ctx.settings.scheduler.stale_node_timeout_s)
    if not ctx.dry_run:
        async with ctx.pool.acquire() as conn:
            now = await conn.fetchval("SELECT now()")
            await ensure_partitions_for_times(conn, "events", [now], ctx.settings.partitions)
    async with ctx.transaction() as conn:
        rows = await conn.fetch(_SQL, timeout_s)
    out: dict[str, Any] = {
        "disconnected": len(rows),
        "nodes": [
            {"node_id": r["node_id"], "previous_status": r["previous_status"]}
            for r in rows[:_DETAILS_NODES]
        ],
    }
    if ctx.dry_run:
        out["dry_run"] = True
    return out
