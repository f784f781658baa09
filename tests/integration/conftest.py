"""Fixtures shared by the integration tests (services come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest


@pytest.fixture
async def conn(migrated_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's own migrated database, in UTC."""
    c = await asyncpg.connect(migrated_database_url)
    await c.execute("SET TIME ZONE 'UTC'")
    try:
        yield c
    finally:
        await c.close()
