"""The migrated schema against a real PostgreSQL: shape, constraints, triggers, migrate runs."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from ingest.migrate import DEFAULT_MIGRATIONS_DIR, MigrationError, apply_migrations

SPEC_COLUMNS: dict[str, set[str]] = {
    "nodes": {
        "node_id",
        "node_name",
        "node_type",
        "role",
        "address",
        "port",
        "public_key",
        "capabilities",
        "metadata",
        "status",
        "last_seen",
        "created_at",
        "updated_at",
    },
    "mesh_topologies": {
        "topology_id",
        "mesh_name",
        "topology_type",
        "configuration",
        "optimization_enabled",
        "learning_rate",
        "connectivity_threshold",
        "max_connections_per_node",
        "status",
        "created_at",
        "updated_at",
    },
    "mesh_links": {
        "link_id",
        "topology_id",
        "local_node_id",
        "remote_node_id",
        "link_state",
        "quality",
        "latency_ms",
        "bandwidth_mbps",
        "packet_loss",
        "jitter_ms",
        "weight",
        "last_probe",
        "established_at",
        "terminated_at",
        "metadata",
    },
    "routing_entries": {
        "entry_id",
        "node_id",
        "destination_id",
        "next_hop_id",
        "sequence_number",
        "quality",
        "hop_count",
        "flags",
        "last_seen",
        "is_best_route",
    },
    "routing_metrics": {"metric_id", "entry_id", "metric_type", "metric_value", "recorded_at"},
    "connection_pools": {
        "pool_id",
        "node_id",
        "pool_name",
        "min_connections",
        "max_connections",
        "current_connections",
        "in_use_connections",
        "keepalive_timeout",
        "enable_http2",
        "status",
        "created_at",
    },
    "connections": {
        "connection_id",
        "pool_id",
        "endpoint",
        "protocol",
        "state",
        "requests_handled",
        "bytes_sent",
        "bytes_received",
        "errors_count",
        "created_at",
        "last_used_at",
        "closed_at",
    },
    "optimization_params": {
        "param_id",
        "node_id",
        "param_set_name",
        "batch_size",
        "compression_algorithm",
        "connection_pool_size",
        "retry_strategy",
        "max_retries",
        "circuit_breaker_threshold",
        "adaptive_learning_enabled",
        "metadata",
        "created_at",
        "active_since",
    },
    "compression_stats": {
        "stat_id",
        "node_id",
        "algorithm",
        "messages_compressed",
        "original_bytes",
        "compressed_bytes",
        "compression_time_ms",
        "decompression_time_ms",
        "period_start",
        "period_end",
    },
    "batch_configs": {
        "config_id",
        "node_id",
        "max_batch_size",
        "max_wait_time_ms",
        "priority_threshold",
        "adaptive_sizing",
        "created_at",
    },
    "batch_metrics": {
        "metric_id",
        "config_id",
        "total_batches",
        "total_messages",
        "average_batch_size",
        "priority_bypasses",
        "queue_overflows",
        "period_start",
        "period_end",
    },
    "metrics": {
        "metric_id",
        "node_id",
        "metric_type",
        "metric_name",
        "metric_value",
        "unit",
        "tags",
        "recorded_at",
    },
    "events": {
        "event_id",
        "node_id",
        "event_type",
        "event_name",
        "severity",
        "description",
        "metadata",
        "occurred_at",
    },
    "performance_snapshots": {
        "snapshot_id",
        "topology_id",
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
        "snapshot_time",
    },
    "dns_cache": {
        "cache_id",
        "hostname",
        "ip_addresses",
        "record_type",
        "ttl",
        "cached_at",
        "expires_at",
    },
    "service_registry": {
        "service_id",
        "service_name",
        "service_type",
        "endpoints",
        "health_check_url",
        "metadata",
        "registered_at",
        "last_health_check",
        "health_status",
    },
    "topology_optimizations": {
        "optimization_id",
        "topology_id",
        "optimization_type",
        "algorithm_used",
        "metrics_before",
        "metrics_after",
        "improvement_percentage",
        "execution_time_ms",
        "success",
        "error_message",
        "performed_at",
    },
}
PARTITIONED = {
    "metrics": "recorded_at",
    "events": "occurred_at",
    "routing_metrics": "recorded_at",
    "compression_stats": "period_start",
    "batch_metrics": "period_start",
    "performance_snapshots": "snapshot_time",
}
VIEWS = {"realtime_status", "active_connections", "network_health", "best_routes"}


async def test_migrating_an_empty_database_creates_every_table_and_column(
    database_url: str,
) -> None:
    applied = await apply_migrations(database_url)
    assert applied == [p.stem for p in sorted(DEFAULT_MIGRATIONS_DIR.glob("*.sql"))]
    c = await asyncpg.connect(database_url)
    try:
        rows = await c.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'network'"
        )
        found: dict[str, set[str]] = {}
        for r in rows:
            found.setdefault(r["table_name"], set()).add(r["column_name"])
        for table, columns in SPEC_COLUMNS.items():
            assert table in found, table
            assert columns <= found[table], (table, columns - found[table])
        assert len(SPEC_COLUMNS) == 17
    finally:
        await c.close()


async def test_time_series_tables_are_range_partitioned_on_their_time_column(
    conn: asyncpg.Connection,
) -> None:
    rows = await conn.fetch(
        """
        SELECT c.relname, pg_get_partkeydef(c.oid) AS key
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'network' AND c.relkind = 'p'
        """
    )
    assert {r["relname"]: r["key"] for r in rows} == {
        t: f"RANGE ({col})" for t, col in PARTITIONED.items()
    }
    # A first set of partitions covers now for every one of them.
    now = datetime.now(UTC)
    for table in PARTITIONED:
        covered = await conn.fetchval(
            "SELECT count(*) FROM ingest.managed_partitions "
            "WHERE parent_table = $1 AND range_from <= $2 AND range_to > $2",
            f"network.{table}",
            now,
        )
        assert covered == 1, table


async def test_the_four_views_exist_and_answer(conn: asyncpg.Connection) -> None:
    names = {
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'network'"
        )
    }
    assert names >= VIEWS
    for view in VIEWS:
        await conn.fetch(f"SELECT * FROM network.{view}")
    health = await conn.fetchrow("SELECT * FROM network.network_health")
    assert health is not None and health["total_nodes"] == 0


async def _node(conn: asyncpg.Connection, name: str | None = None) -> uuid.UUID:
    node_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO network.nodes (node_id, node_name, address, port) VALUES ($1, $2, 'h', 1)",
        node_id,
        name or f"n-{node_id.hex[:8]}",
    )
    return node_id


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        ("UPDATE network.nodes SET status = $1", "ACTIVE"),
        ("UPDATE network.nodes SET node_type = $1", "router"),
        ("UPDATE network.nodes SET role = $1", "leader"),
        ("UPDATE network.nodes SET port = $1::text::int", "70000"),
        ("UPDATE network.nodes SET port = $1::text::int", "0"),
    ],
)
async def test_bad_enumeration_values_and_ranges_are_refused_on_nodes(
    conn: asyncpg.Connection, sql: str, value: str
) -> None:
    await _node(conn)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(sql, value)


async def test_out_of_range_link_numbers_are_refused(conn: asyncpg.Connection) -> None:
    a, b = await _node(conn), await _node(conn)
    topo = uuid.uuid4()
    await conn.execute("INSERT INTO network.mesh_topologies (topology_id) VALUES ($1)", topo)
    insert = (
        "INSERT INTO network.mesh_links (topology_id, local_node_id, remote_node_id, {col}, "
        "last_probe, established_at) VALUES ($1, $2, $3, $4, now(), now())"
    )
    for col, bad in (("quality", 1.5), ("packet_loss", -0.1), ("latency_ms", -1.0)):
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert.format(col=col), topo, a, b, bad)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(insert.format(col="link_state"), topo, a, b, "up")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(insert.format(col="quality"), topo, a, a, 0.5)


@pytest.mark.parametrize(
    ("table", "column", "bad"),
    [
        ("metrics", "metric_value", float("nan")),
        ("events", "severity", "fatal"),
        ("compression_stats", "algorithm", "rar"),
        ("routing_metrics", "metric_type", "speed"),
    ],
)
async def test_time_series_constraints_refuse_bad_values(
    conn: asyncpg.Connection, table: str, column: str, bad: object
) -> None:
    now = datetime.now(UTC)
    base: dict[str, dict[str, object]] = {
        "metrics": {
            "node_id": uuid.uuid4(),
            "metric_type": "t",
            "metric_name": "n",
            "metric_value": 1.0,
            "recorded_at": now,
        },
        "events": {
            "node_id": uuid.uuid4(),
            "event_type": "t",
            "event_name": "n",
            "occurred_at": now,
        },
        "compression_stats": {
            "node_id": uuid.uuid4(),
            "algorithm": "gzip",
            "period_start": now,
            "period_end": now,
        },
        "routing_metrics": {
            "entry_id": uuid.uuid4(),
            "metric_type": "latency",
            "metric_value": 1.0,
            "recorded_at": now,
        },
    }
    row = dict(base[table])
    row[column] = bad
    cols = list(row)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            f"INSERT INTO network.{table} ({', '.join(cols)}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(cols)))})",
            *row.values(),
        )


async def _route(
    conn: asyncpg.Connection,
    node: uuid.UUID,
    dest: uuid.UUID,
    hop: uuid.UUID | None,
    best: bool = False,
) -> None:
    await conn.execute(
        "INSERT INTO network.routing_entries (node_id, destination_id, next_hop_id, "
        "sequence_number, quality, last_seen, is_best_route) "
        "VALUES ($1, $2, $3, 1, 0.5, now(), $4)",
        node,
        dest,
        hop,
        best,
    )


async def test_a_second_direct_route_for_the_same_pair_is_refused(
    conn: asyncpg.Connection,
) -> None:
    a, b = await _node(conn), await _node(conn)
    await _route(conn, a, b, None)
    with pytest.raises(asyncpg.UniqueViolationError):
        await _route(conn, a, b, None)


async def test_two_best_routes_for_one_pair_are_refused(conn: asyncpg.Connection) -> None:
    a, b, c, d = [await _node(conn) for _ in range(4)]
    await _route(conn, a, b, c, best=True)
    await _route(conn, a, b, d, best=False)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "UPDATE network.routing_entries SET is_best_route = true WHERE next_hop_id = $1", d
        )
    # A best route for another pair is fine.
    await _route(conn, a, c, None, best=True)


async def test_updated_at_moves_on_update(conn: asyncpg.Connection) -> None:
    node = await _node(conn)
    before = await conn.fetchval("SELECT updated_at FROM network.nodes WHERE node_id = $1", node)
    await asyncio.sleep(0.01)
    await conn.execute("UPDATE network.nodes SET status = 'inactive' WHERE node_id = $1", node)
    after = await conn.fetchval("SELECT updated_at FROM network.nodes WHERE node_id = $1", node)
    assert after > before
    topo = uuid.uuid4()
    await conn.execute("INSERT INTO network.mesh_topologies (topology_id) VALUES ($1)", topo)
    t0 = await conn.fetchval(
        "SELECT updated_at FROM network.mesh_topologies WHERE topology_id = $1", topo
    )
    await asyncio.sleep(0.01)
    await conn.execute(
        "UPDATE network.mesh_topologies SET mesh_name = 'm' WHERE topology_id = $1", topo
    )
    t1 = await conn.fetchval(
        "SELECT updated_at FROM network.mesh_topologies WHERE topology_id = $1", topo
    )
    assert t1 > t0


async def test_no_row_trigger_updates_routing_entries(conn: asyncpg.Connection) -> None:
    triggers = await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'network.routing_entries'::regclass "
        "AND NOT tgisinternal"
    )
    assert triggers == []


def _migrate_cmd(url: str, directory: Path | None = None) -> list[str]:
    code = (
        "import asyncio, sys; from pathlib import Path; from ingest.migrate import "
        "apply_migrations; d = sys.argv[2] if len(sys.argv) > 2 else None; "
        "print(asyncio.run(apply_migrations(sys.argv[1], Path(d) if d else None)))"
    )
    cmd = [sys.executable, "-c", code, url]
    if directory is not None:
        cmd.append(str(directory))
    return cmd


def test_two_migrate_processes_started_together_both_succeed(database_url: str) -> None:
    procs = [
        subprocess.Popen(
            _migrate_cmd(database_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    printed = [o[0].strip() for o in outs]
    # One of them applied everything; the other waited on the lock and found nothing to do.
    assert "[]" in printed
    assert any("0002_network_tables" in p for p in printed)
    third = subprocess.run(
        _migrate_cmd(database_url), capture_output=True, text=True, timeout=120, check=True
    )
    assert third.stdout.strip() == "[]"


async def test_an_edited_applied_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    copy = tmp_path / "schema"
    shutil.copytree(DEFAULT_MIGRATIONS_DIR, copy)
    await apply_migrations(database_url, copy)
    edited = copy / "0003_network_views.sql"
    edited.write_text(edited.read_text() + "\n-- an afterthought\n")
    with pytest.raises(MigrationError, match=r"0003_network_views\.sql was changed"):
        await apply_migrations(database_url, copy)


async def test_a_new_migration_applies_on_an_up_to_date_database(
    database_url: str, tmp_path: Path
) -> None:
    copy = tmp_path / "schema"
    shutil.copytree(DEFAULT_MIGRATIONS_DIR, copy)
    await apply_migrations(database_url, copy)
    (copy / "0999_extra.sql").write_text("CREATE TABLE ingest.extra (x int);")
    assert await apply_migrations(database_url, copy) == ["0999_extra"]
    assert await apply_migrations(database_url, copy) == []


def test_migrate_command_reports_an_up_to_date_database(migrated_database_url: str) -> None:
    env = {"INGEST_DATABASE_URL": migrated_database_url, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
