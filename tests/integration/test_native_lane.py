"""The native metric lane end to end: the same rows as the Python lane in the database, and a
flush it encoded still isolates what the database refuses, record by record."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from harness import unique_name
from pipeline import drain, make_settings, metric, new_id, prepare_topics, produce, ts

from ingest import native
from ingest.settings import Settings

pytestmark = pytest.mark.skipif(
    native.metric_rows is None, reason="ingest._native is not built (no Rust toolchain)"
)

_ROWS = """
SELECT node_id, metric_type, metric_name, metric_value::text AS value, unit, tags::text AS tags,
       recorded_at
FROM network.metrics ORDER BY node_id, recorded_at, metric_name, metric_value, unit, tags::text
"""


async def _rows(url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(_ROWS)]
    finally:
        await conn.close()


def _varied_metrics(count: int) -> list[Any]:
    """Metric records in every shape publishers send, with a few the native lane leaves to
    the Python lane (arrays, offsets, floats in tags) among them."""
    rng = random.Random(11)
    nodes = [new_id() for _ in range(7)]
    now = datetime.now(UTC)
    out: list[Any] = []
    for i in range(count):
        at = now - timedelta(seconds=rng.randrange(3600), microseconds=rng.randrange(10**6))
        when: str | int = rng.choice(
            [
                int(at.timestamp() * 1000),
                at.isoformat(),
                at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "+00:00",
                at.astimezone(timezone(timedelta(hours=2))).isoformat(),
            ]
        )
        value = rng.choice([rng.random() * 10 ** rng.randrange(-8, 12), rng.randrange(-999, 999),
                            -0.0, 0.0, 5e-324, 1.7976931348623157e308])  # fmt: skip
        extra: dict[str, Any] = {}
        if rng.random() < 0.5:
            extra["unit"] = rng.choice(["ms", "%", "bytes", None, "", "µs"])
        if rng.random() < 0.5:
            extra["tags"] = rng.choice(
                [
                    {},
                    {"region": "eu-west", "rack": rng.randrange(9)},
                    {"a": True, "b": None},
                    {"名": "値", "n": -3},
                    {"f": 0.5},
                    {"nested": {"x": [1]}},
                ]
            )
        if rng.random() < 0.2:
            extra["event_id"] = new_id()
        record = metric(rng.choice(nodes), when, value, **extra)
        record["metric_name"] = f"m{i % 13}"
        out.append([record, metric(nodes[0], when, 1.0)] if rng.random() < 0.05 else record)
    return out


async def test_native_and_python_lanes_store_identical_rows(
    migrated_database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    on = make_settings(migrated_database_url, kafka_bootstrap, topic_prefix)
    await prepare_topics(on)
    records = _varied_metrics(3000)
    await produce(kafka_bootstrap, topic_prefix + "metrics", records)
    assert await drain(on) == 0
    native_rows = await _rows(migrated_database_url)
    conn = await asyncpg.connect(migrated_database_url)
    try:
        await conn.execute("TRUNCATE network.metrics")
    finally:
        await conn.close()
    # The same records again, by a group of its own (offsets are stored per group).
    off = make_settings(
        migrated_database_url,
        kafka_bootstrap,
        topic_prefix,
        INGEST_NATIVE_LANE="false",
        INGEST_GROUP_ID=unique_name("g-off-"),
    )
    assert await drain(off) == 0
    python_rows = await _rows(migrated_database_url)
    expected = sum(len(r) if isinstance(r, list) else 1 for r in records)
    assert len(native_rows) == expected
    assert native_rows == python_rows


async def test_a_record_the_native_lane_took_and_the_database_refuses_is_isolated(
    migrated_database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings: Settings = make_settings(migrated_database_url, kafka_bootstrap, topic_prefix)
    await prepare_topics(settings, partitions=1)
    conn = await asyncpg.connect(migrated_database_url)
    try:
        # A rule the database has and the lanes do not know about.
        await conn.execute(
            "ALTER TABLE network.metrics ADD CONSTRAINT no_poison CHECK (metric_name <> 'poison')"
        )
        node = new_id()
        good = [metric(node, ts(), float(i)) for i in range(40)]
        poison = {**metric(node, ts(), 99.0), "metric_name": "poison"}
        await produce(kafka_bootstrap, topic_prefix + "metrics", [*good[:20], poison, *good[20:]])
        assert await drain(settings) == 0
        assert await conn.fetchval("SELECT count(*) FROM network.metrics") == 40
        dead = await conn.fetch(
            'SELECT reason, detail, element_index, kind, payload, "offset" FROM ingest.dead_letters'
        )
        assert [(d["reason"], d["element_index"], d["kind"]) for d in dead] == [
            ("rejected_by_database", None, "metric")
        ]
        assert "no_poison" in dead[0]["detail"]
        assert json.loads(dead[0]["payload"]) == poison
        assert dead[0]["offset"] == 20
        assert await conn.fetchval("SELECT count(*) FROM network.nodes") == 1
    finally:
        await conn.close()
