"""The partition-creation function against a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ingest.partitions import ensure_partitions, existing_ranges, ranges_for


def test_monthly_ranges_are_aligned_to_the_first_of_the_month_in_utc() -> None:
    start = datetime(2030, 1, 15, 12, tzinfo=UTC)
    end = datetime(2030, 3, 1, tzinfo=UTC)
    got = [(r.name, r.start, r.end) for r in ranges_for("metrics", start, end, "month")]
    assert got == [
        ("metrics_p20300101", datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC)),
        ("metrics_p20300201", datetime(2030, 2, 1, tzinfo=UTC), datetime(2030, 3, 1, tzinfo=UTC)),
    ]


def test_weekly_ranges_start_on_monday_and_daily_at_midnight() -> None:
    wed = datetime(2030, 1, 16, 5, tzinfo=UTC)
    week = ranges_for("events", wed, wed + timedelta(hours=1), "week")
    assert [(r.start.weekday(), r.end - r.start) for r in week] == [(0, timedelta(days=7))]
    days = ranges_for("events", wed, wed + timedelta(days=2), "day")
    assert [r.start.hour for r in days] == [0, 0, 0]
    assert len(days) == 3


async def test_creates_exactly_the_expected_partitions_and_is_idempotent(
    conn: asyncpg.Connection,
) -> None:
    start = datetime(2031, 5, 1, tzinfo=UTC)
    end = datetime(2031, 8, 1, tzinfo=UTC)
    created = await ensure_partitions(conn, "metrics", start, end, "month")
    assert created == [
        "network.metrics_p20310501",
        "network.metrics_p20310601",
        "network.metrics_p20310701",
    ]
    assert await ensure_partitions(conn, "metrics", start, end, "month") == []
    names = {name for name, _, _ in await existing_ranges(conn, "metrics")}
    assert {"metrics_p20310501", "metrics_p20310601", "metrics_p20310701"} <= names
    assert "metrics_p20310801" not in names
    managed = await conn.fetchval(
        "SELECT count(*) FROM ingest.managed_partitions WHERE partition_table LIKE "
        "'network.metrics_p2031%'"
    )
    assert managed == 3


async def test_an_overlapping_range_of_another_interval_is_skipped(
    conn: asyncpg.Connection,
) -> None:
    await ensure_partitions(
        conn, "events", datetime(2032, 1, 1, tzinfo=UTC), datetime(2032, 2, 1, tzinfo=UTC), "month"
    )
    created = await ensure_partitions(
        conn, "events", datetime(2032, 1, 20, tzinfo=UTC), datetime(2032, 2, 2, tzinfo=UTC), "day"
    )
    # Days inside January overlap the monthly partition; only 1 February is new.
    assert created == ["network.events_p20320201"]


async def test_rows_copied_at_the_boundary_land_in_the_right_partition(
    conn: asyncpg.Connection,
) -> None:
    await ensure_partitions(
        conn,
        "metrics",
        datetime(2033, 1, 1, tzinfo=UTC),
        datetime(2033, 3, 1, tzinfo=UTC),
        "month",
    )
    boundary = datetime(2033, 2, 1, tzinfo=UTC)
    just_before = boundary - timedelta(microseconds=1)
    node = uuid.uuid4()
    await conn.copy_records_to_table(
        "metrics",
        schema_name="network",
        columns=["node_id", "metric_type", "metric_name", "metric_value", "recorded_at"],
        records=[(node, "t", "before", 1.0, just_before), (node, "t", "at", 2.0, boundary)],
    )
    rows = await conn.fetch(
        "SELECT tableoid::regclass::text AS part, metric_name FROM network.metrics "
        "WHERE node_id = $1 ORDER BY metric_name",
        node,
    )
    assert [(r["metric_name"], r["part"]) for r in rows] == [
        ("at", "network.metrics_p20330201"),
        ("before", "network.metrics_p20330101"),
    ]


async def test_a_row_without_a_partition_is_refused_until_one_is_created(
    conn: asyncpg.Connection,
) -> None:
    far = datetime(2040, 6, 15, tzinfo=UTC)
    cols = ["node_id", "metric_type", "metric_name", "metric_value", "recorded_at"]
    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await conn.copy_records_to_table(
            "metrics",
            schema_name="network",
            columns=cols,
            records=[(uuid.uuid4(), "t", "n", 1.0, far)],
        )
    await ensure_partitions(conn, "metrics", far, far + timedelta(seconds=1), "month")
    await conn.copy_records_to_table(
        "metrics", schema_name="network", columns=cols, records=[(uuid.uuid4(), "t", "n", 1.0, far)]
    )
