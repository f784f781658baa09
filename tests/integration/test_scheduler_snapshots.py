"""The snapshots job against a real PostgreSQL: one row per topology, the graph's figures."""

from __future__ import annotations

import uuid

import asyncpg
from prometheus_client import CollectorRegistry

from ingest.app import create_pool
from ingest.graph import compute_metrics
from ingest.observability import Metrics
from ingest.scheduler.runner import Scheduler
from ingest.settings import load_settings

COLUMNS = (
    "total_nodes",
    "total_links",
    "average_latency",
    "network_diameter",
    "clustering_coefficient",
    "connectivity_ratio",
    "fault_tolerance_score",
    "load_balance_index",
    "partition_resilience",
    "quantum_coherence",
)


async def _topology(conn: asyncpg.Connection) -> uuid.UUID:
    tid = uuid.uuid4()
    await conn.execute("INSERT INTO network.mesh_topologies (topology_id) VALUES ($1)", tid)
    return tid


async def _link(
    conn: asyncpg.Connection,
    tid: uuid.UUID,
    a: uuid.UUID,
    b: uuid.UUID,
    latency: float | None,
    state: str = "active",
    terminated: bool = False,
) -> None:
    await conn.execute(
        "INSERT INTO network.nodes (node_id) VALUES ($1), ($2) ON CONFLICT DO NOTHING", a, b
    )
    await conn.execute(
        """
        INSERT INTO network.mesh_links (topology_id, local_node_id, remote_node_id, link_state,
            latency_ms, last_probe, established_at, terminated_at)
        VALUES ($1, $2, $3, $4, $5, now(), now(), CASE WHEN $6 THEN now() END)
        """,
        tid,
        a,
        b,
        state,
        latency,
        terminated,
    )


async def test_one_snapshot_per_topology_with_active_links_matching_the_graph_metrics(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    hub, l1, l2, l3, l4, cut_off, gone = (uuid.uuid4() for _ in range(7))
    star = await _topology(conn)
    for leaf, latency in ((l1, 10.0), (l2, 20.0), (l3, 30.0), (l4, 40.0)):
        await _link(conn, star, hub, leaf, latency)
    # A member whose only link is failing counts as a node; a terminated link does not.
    await _link(conn, star, l1, cut_off, 5.0, state="failing")
    await _link(conn, star, l2, gone, 5.0, terminated=True)

    a, b, c = (uuid.uuid4() for _ in range(3))
    triangle = await _topology(conn)
    await _link(conn, triangle, a, b, None)
    await _link(conn, triangle, b, c, 2.0, state="degraded")
    await _link(conn, triangle, c, a, 4.0, state="congested")

    dormant = await _topology(conn)
    await _link(conn, dormant, uuid.uuid4(), uuid.uuid4(), 1.0, state="dormant")

    settings = load_settings(
        {"INGEST_DATABASE_URL": migrated_database_url, "INGEST_HTTP_ENABLED": "false"}
    )
    pool = await create_pool(settings)
    try:
        result = await Scheduler(settings, pool, Metrics(CollectorRegistry())).run_once("snapshots")
    finally:
        await pool.close()

    assert result["outcome"] == "ok", result
    rows = {
        r["topology_id"]: dict(r)
        for r in await conn.fetch("SELECT * FROM network.performance_snapshots")
    }
    assert set(rows) == {star, triangle}

    star_row = {k: rows[star][k] for k in COLUMNS}
    assert star_row == {
        "total_nodes": 6,
        "total_links": 4,
        "average_latency": 25.0,
        "network_diameter": 2,
        "clustering_coefficient": 0.0,
        "connectivity_ratio": 5 / 6,
        "fault_tolerance_score": 5 / 6,  # only the hub is an articulation point
        "load_balance_index": 64 / 120,  # degrees 4,1,1,1,1,0
        "partition_resilience": 0.0,  # a tree: every link is a bridge
        "quantum_coherence": None,
    }
    expected = compute_metrics(
        [(hub, leaf, lat) for leaf, lat in ((l1, 10.0), (l2, 20.0), (l3, 30.0), (l4, 40.0))],
        [cut_off],
    ).as_dict()
    assert star_row == expected

    triangle_row = {k: rows[triangle][k] for k in COLUMNS}
    assert triangle_row == {
        "total_nodes": 3,
        "total_links": 3,
        "average_latency": 3.0,
        "network_diameter": 1,
        "clustering_coefficient": 1.0,
        "connectivity_ratio": 1.0,
        "fault_tolerance_score": 1.0,
        "load_balance_index": 1.0,
        "partition_resilience": 1.0,
        "quantum_coherence": None,
    }
    assert rows[star]["snapshot_time"] == rows[triangle]["snapshot_time"]
    assert result["details"]["snapshots"] == 2
