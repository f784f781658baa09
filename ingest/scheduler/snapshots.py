"""The ``snapshots`` job: one ``performance_snapshots`` row per topology with active links.

Metrics come from :func:`ingest.graph.compute_metrics` (formulas in docs/snapshot-metrics.md).

* Links: the topology's active links, by ``network.link_is_active`` (the definition the views
  use: not terminated, and ``active``, ``degraded`` or ``congested``).
* Nodes: every endpoint of a link of the topology that is not terminated, active or not. A
  node whose links are all failing or dormant is still part of the mesh, cut off, and should
  count in ``total_nodes`` and lower ``connectivity_ratio``; a terminated link means the node
  left, so it does not count.
* A topology without an active link gets no row (nothing to measure).

All rows of one run share one ``snapshot_time`` (the transaction's ``now()``). Large graphs
are computed in a worker thread so the event loop keeps serving the consumers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from ingest.graph import TopologyMetrics, compute_metrics
from ingest.partitions import ensure_partitions_for_times
from ingest.scheduler.context import JobContext

#: Above this many links a topology is computed off the event loop.
_THREAD_ABOVE_LINKS = 2000
_DETAILS_TOPOLOGIES = 20

#: The snapshot's metric columns: the fields of TopologyMetrics, named after them.
_COLUMNS = tuple(f.name for f in fields(TopologyMetrics))

_LINKS_SQL = """
SELECT topology_id, local_node_id, remote_node_id, latency_ms,
       network.link_is_active(link_state, terminated_at) AS active
FROM network.mesh_links
WHERE terminated_at IS NULL
"""

_INSERT_SQL = f"""
INSERT INTO network.performance_snapshots (topology_id, {", ".join(_COLUMNS)}, snapshot_time)
VALUES ($1, {", ".join(f"${i + 2}" for i in range(len(_COLUMNS)))}, now())
"""


@dataclass
class _Topology:
    links: list[tuple[uuid.UUID, uuid.UUID, float | None]] = field(default_factory=list)
    nodes: set[uuid.UUID] = field(default_factory=set)


def _group(rows: list[Any]) -> dict[uuid.UUID, _Topology]:
    out: dict[uuid.UUID, _Topology] = defaultdict(_Topology)
    for r in rows:
        topo = out[r["topology_id"]]
        topo.nodes.update((r["local_node_id"], r["remote_node_id"]))
        if r["active"]:
            topo.links.append((r["local_node_id"], r["remote_node_id"], r["latency_ms"]))
    return {tid: t for tid, t in out.items() if t.links}


async def _metrics_for(topo: _Topology) -> TopologyMetrics:
    if len(topo.links) > _THREAD_ABOVE_LINKS:
        return await asyncio.to_thread(compute_metrics, topo.links, topo.nodes)
    return compute_metrics(topo.links, topo.nodes)


async def run(ctx: JobContext) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        now: datetime = await conn.fetchval("SELECT now()")
        if not ctx.dry_run:
            # A snapshot never fails for want of its partition (normally made ahead).
            await ensure_partitions_for_times(
                conn, "performance_snapshots", [now], ctx.settings.partitions
            )
    async with ctx.transaction() as conn:
        topologies = _group(await conn.fetch(_LINKS_SQL))
        written: dict[str, dict[str, int | float | None]] = {}
        for topology_id in sorted(topologies):
            values = (await _metrics_for(topologies[topology_id])).as_dict()
            await conn.execute(_INSERT_SQL, topology_id, *(values[c] for c in _COLUMNS))
            written[str(topology_id)] = values
    # The run record shows the figures, bounded: it is for people, the table has them all.
    shown = dict(list(written.items())[:_DETAILS_TOPOLOGIES])
    out: dict[str, Any] = {"snapshots": len(written), "topologies": shown}
    if ctx.dry_run:
        out["dry_run"] = True
    return out
