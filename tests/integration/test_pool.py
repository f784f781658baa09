"""The worker's pool keeps its session settings on every use, not only the first: asyncpg's
reset on release (``RESET ALL``) returns a connection to its connect-time settings."""

from __future__ import annotations

import asyncpg
import pytest
from pipeline import make_settings

from ingest.app import create_pool


async def test_statement_timeout_and_utc_hold_on_every_use_of_a_pooled_connection(
    migrated_database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    admin = await asyncpg.connect(migrated_database_url)
    try:
        # A server whose default zone is not UTC: a session that fell back to it would show.
        dbname = await admin.fetchval("SELECT current_database()")
        await admin.execute(f"ALTER DATABASE \"{dbname}\" SET timezone = 'America/New_York'")
    finally:
        await admin.close()
    settings = make_settings(
        migrated_database_url,
        kafka_bootstrap,
        topic_prefix,
        INGEST_DATABASE_STATEMENT_TIMEOUT_MS="300",
        INGEST_DATABASE_POOL_MIN_SIZE="1",
        INGEST_DATABASE_POOL_MAX_SIZE="1",
    )
    pool = await create_pool(settings)
    try:
        for _ in range(3):  # one connection, released and reset in between
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW statement_timeout") == "300ms"
                assert await conn.fetchval("SHOW TimeZone") == "UTC"
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.QueryCanceledError):
                await conn.execute("SELECT pg_sleep(2)")
    finally:
        await pool.close()
