"""The worker's timestamptz codec stores and reads exactly what asyncpg's own codec does.

Every pool connection of the worker uses it (``ingest.app.create_pool``), so a difference
here would be a wrong timestamp in every table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from ingest.db import install_codecs, pg_micros, unix_seconds

MOMENTS = [
    datetime(2026, 12, 3, 13, 20, 1, 123456, tzinfo=UTC),
    datetime(2026, 12, 3, 15, 20, 1, 123456, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 12, 3, 8, 50, 1, 123456, tzinfo=timezone(timedelta(hours=-4, minutes=-30))),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
]


@pytest.fixture
async def pair(migrated_database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, ...]]:
    """Two connections to one database: asyncpg's own codec, and the worker's."""
    plain = await asyncpg.connect(migrated_database_url)
    coded = await asyncpg.connect(migrated_database_url)
    for c in (plain, coded):
        await c.execute("SET TIME ZONE 'UTC'")
        await c.execute("CREATE TEMP TABLE t (i int, ts timestamptz)")
    await install_codecs(coded)
    try:
        yield plain, coded
    finally:
        await plain.close()
        await coded.close()


async def _stored_text(conn: asyncpg.Connection) -> list[str]:
    return [r[0] for r in await conn.fetch("SELECT ts::text FROM t ORDER BY i")]


async def test_copy_and_parameters_store_what_asyncpgs_codec_stores(
    pair: tuple[asyncpg.Connection, ...],
) -> None:
    plain, coded = pair
    rows = list(enumerate(MOMENTS))
    await plain.copy_records_to_table("t", records=rows)
    await coded.copy_records_to_table("t", records=rows)
    assert await _stored_text(coded) == await _stored_text(plain)
    await plain.execute("TRUNCATE t")
    await coded.execute("TRUNCATE t")
    for i, moment in rows:
        await plain.execute("INSERT INTO t VALUES ($1, $2)", i, moment)
        await coded.execute("INSERT INTO t VALUES ($1, $2)", i, moment)
    assert await _stored_text(coded) == await _stored_text(plain)


async def test_the_binary_form_stores_the_same_moment_as_the_datetime(
    pair: tuple[asyncpg.Connection, ...],
) -> None:
    _, coded = pair
    await coded.copy_records_to_table(
        "t", records=[(i, pg_micros(m)) for i, m in enumerate(MOMENTS)]
    )
    assert [r[0] for r in await coded.fetch("SELECT ts FROM t ORDER BY i")] == MOMENTS
    assert unix_seconds(pg_micros(MOMENTS[0])) == MOMENTS[0].timestamp()


async def test_reads_give_asyncpgs_values_including_the_infinities(
    pair: tuple[asyncpg.Connection, ...],
) -> None:
    plain, coded = pair
    query = (
        "SELECT x FROM unnest(ARRAY['infinity', '-infinity', '2026-12-03 13:20:01.123456+00',"
        " '0001-01-01 00:00:00+00', '1969-07-20 20:17:40.5+00']::timestamptz[]) AS x"
    )
    got = [r[0] for r in await coded.fetch(query)]
    assert got == [r[0] for r in await plain.fetch(query)]
    assert all(type(g) is datetime for g in got)
    assert got[2].tzinfo is UTC


async def test_a_naive_datetime_is_refused_rather_than_taken_as_local_time(
    pair: tuple[asyncpg.Connection, ...],
) -> None:
    _, coded = pair
    naive = datetime(2026, 12, 3, 13, 20)
    # asyncpg reports an encoder's TypeError as a DataError for query arguments.
    with pytest.raises(asyncpg.DataError, match="aware datetime"):
        await coded.execute("INSERT INTO t VALUES (1, $1)", naive)
    with pytest.raises(TypeError, match="aware datetime"):
        await coded.copy_records_to_table("t", records=[(1, naive)])
    assert await coded.fetchval("SELECT count(*) FROM t") == 0


async def test_arrays_of_timestamps_go_both_ways_as_with_asyncpgs_codec(
    pair: tuple[asyncpg.Connection, ...],
) -> None:
    # The sink's node-name conflict check sends a timestamptz[] parameter.
    plain, coded = pair
    query = "SELECT $1::timestamptz[] AS a, array_to_string($1::timestamptz[], ',') AS t"
    got, want = await coded.fetchrow(query, MOMENTS), await plain.fetchrow(query, MOMENTS)
    assert got["t"] == want["t"]
    assert got["a"] == want["a"] == [m.astimezone(UTC) for m in MOMENTS]
    mixed = [pg_micros(MOMENTS[0]), MOMENTS[1]]
    assert (await coded.fetchrow(query, mixed))["a"] == [MOMENTS[0], MOMENTS[1]]
