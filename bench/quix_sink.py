"""Quix Streams' PostgreSQLSink draining the metrics topic into a metrics-shaped table.

Runs under the interpreter of ``bench/.venv-quix`` (made by ``make bench-quix-venv`` or the
harness): quixstreams 3.x pins ``pydantic<2.14`` and ``pydantic-settings<2.16``, which would
downgrade the project's own environment, so it lives in a virtualenv of its own.

Configuration, following the Quix docs: ``PostgreSQLSink`` is a ``BatchingSink`` that writes
one ``execute_values`` INSERT per table per checkpoint, so its batch size is whatever arrives
between commits; we keep the default ``commit_interval`` (5 s: the biggest batches the docs'
defaults give), ``at-least-once`` processing (the faster guarantee), no metadata columns, no
schema auto-update (the table exists), and ``auto_offset_reset="earliest"`` for the backlog.

Prints one JSON line: records, the wall time of the first record and of the end of the last
flush (``app.run`` returns after the final checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from quixstreams import Application
from quixstreams.sinks.community.postgresql import PostgreSQLSink

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS public.quix_metrics (
    metric_id    bigint GENERATED ALWAYS AS IDENTITY,
    node_id      uuid NOT NULL,
    metric_type  varchar(100) NOT NULL,
    metric_name  varchar(255) NOT NULL,
    metric_value double precision NOT NULL,
    unit         varchar(50),
    tags         jsonb,
    recorded_at  timestamptz NOT NULL
)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)

    url = urlsplit(args.database_url)
    import psycopg2

    with psycopg2.connect(args.database_url) as conn, conn.cursor() as cur:
        cur.execute(TABLE_SQL)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        state_dir=args.state_dir,
    )
    topic = app.topic(args.topic, value_deserializer="json")
    sink = PostgreSQLSink(
        host=url.hostname or "localhost",
        port=url.port or 5432,
        dbname=url.path.lstrip("/"),
        user=url.username or "postgres",
        password=url.password or "",
        table_name="quix_metrics",
        schema_name="public",
        schema_auto_update=False,
        include_metadata=False,
    )
    first: list[float] = []
    seen = [0]

    def to_row(v: dict[str, Any]) -> dict[str, Any]:
        if not first:
            first.append(time.time())
        seen[0] += 1
        ts = v["ts"]
        if isinstance(ts, int):
            ts = datetime.fromtimestamp(ts / 1000, UTC)
        return {
            "node_id": v["node_id"],
            "metric_type": v["metric_type"],
            "metric_name": v["metric_name"],
            "metric_value": float(v["metric_value"]),
            "unit": v.get("unit"),
            "tags": v.get("tags"),
            "recorded_at": ts,
        }

    sdf = app.dataframe(topic)
    sdf = sdf.filter(lambda v: v.get("kind") == "metric").apply(to_row)
    sdf.sink(sink)
    app.run(count=args.count, timeout=args.timeout, collect=False)
    end = time.time()
    sys.stdout.write(
        json.dumps({"records": seen[0], "first": first[0] if first else end, "last": end}) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
