"""The baseline a user would write first: for each Kafka message, INSERT its rows and commit.

Run as its own process by the harness (so its RSS is its own)::

    python -m bench.naive --bootstrap HOST:PORT --prefix P. --database-url URL \\
        --group G --limit N [--time-limit S]

It validates with the project's decode and route (so it stores the same rows and the
comparison is about the write path, not about skipping validation), then writes each message
in its own transaction with one parameterised INSERT per row (asyncpg caches the prepared
statements, which is already kinder than most hand-written consumers). Offsets go to Kafka by
auto-commit, as aiokafka does by default; there is no exactly-once here. It prints one JSON
line: records, rows, and the times of its first and last committed message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer

from ingest.decode import DecodeLimits, decode
from ingest.route import route
from ingest.settings import TOPIC_NAMES
from ingest.tables import BY_NAME, TARGETS, Target

#: Parents before children, as the worker writes them (a route's next hop is a node row).
_ORDER = {t.name: i for i, t in enumerate(TARGETS)}


def _upsert(target: Target) -> str:
    cols = ", ".join(target.columns)
    params = ", ".join(f"${i + 1}" for i in range(len(target.columns)))
    key = ", ".join(target.key)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in target.columns if c not in target.key)
    newer = target.newer[0]
    return (
        f"INSERT INTO network.{target.table} AS t ({cols}) VALUES ({params}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {sets} "
        f"WHERE t.{newer} IS NULL OR EXCLUDED.{newer} >= t.{newer}"
    )


def statements() -> dict[str, str]:
    """One INSERT per target, the straightforward way."""
    sql: dict[str, str] = {
        "node_refs": "INSERT INTO network.nodes (node_id) VALUES ($1) ON CONFLICT DO NOTHING",
        "topology_refs": "INSERT INTO network.mesh_topologies (topology_id) VALUES ($1) "
        "ON CONFLICT DO NOTHING",
        "pool_refs": "INSERT INTO network.connection_pools (pool_id, node_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING",
        "config_refs": "INSERT INTO network.batch_configs (config_id, node_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING",
        "route_marks": "INSERT INTO ingest.route_marks (node_id, destination_id) "
        "VALUES ($1, $2) ON CONFLICT DO NOTHING",
        "node_heartbeats": "UPDATE network.nodes SET last_seen = GREATEST(last_seen, $3), "
        "status = COALESCE($2::text, status) WHERE node_id = $1",
        "routing_metrics": "INSERT INTO network.routing_metrics "
        "(entry_id, metric_type, metric_value, recorded_at) "
        "SELECT entry_id, $4, $5, $6 FROM network.routing_entries "
        "WHERE node_id = $1 AND destination_id = $2 AND next_hop_id IS NOT DISTINCT FROM $3",
    }
    for name, target in BY_NAME.items():
        if name in sql:
            continue
        if target.policy == "append":
            cols = ", ".join(target.columns)
            params = ", ".join(f"${i + 1}" for i in range(len(target.columns)))
            sql[name] = f"INSERT INTO network.{target.table} ({cols}) VALUES ({params})"
        elif target.policy == "upsert":
            sql[name] = _upsert(target)
    return sql


async def consume(args: argparse.Namespace) -> dict[str, Any]:
    sql = statements()
    conn = await asyncpg.connect(args.database_url)
    consumer = AIOKafkaConsumer(
        *[args.prefix + t for t in TOPIC_NAMES],
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    await consumer.start()
    limits = DecodeLimits()
    records = rows = 0
    first = last = 0.0
    deadline = time.monotonic() + args.time_limit
    try:
        while records < args.limit and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            for messages in batch.values():
                for msg in messages:
                    decoded = decode(msg.value, datetime.now(UTC), limits)
                    async with conn.transaction():
                        for _, event in decoded.events:
                            for target, row in sorted(route(event), key=lambda tr: _ORDER[tr[0]]):
                                await conn.execute(sql[target], *row)
                                rows += 1
                    records += 1
                    last = time.time()
                    if records == 1:
                        first = last
                    if records >= args.limit:
                        break
    finally:
        await consumer.stop()
        await conn.close()
    return {"records": records, "rows": rows, "first": first, "last": last}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args(argv)
    result = asyncio.run(consume(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
