"""The ``dns_cleanup`` job: delete ``dns_cache`` rows whose ``expires_at`` has passed.

Rows are locked in (hostname, record_type) order first, the order the sink's upserts take,
so a cleanup and a flush refreshing the same names cannot deadlock; a row refreshed meanwhile
is re-checked against the new ``expires_at`` and kept.
"""

from __future__ import annotations

from typing import Any

from ingest.scheduler.context import JobContext

_SQL = """
DELETE FROM network.dns_cache
WHERE cache_id IN (
    SELECT cache_id FROM network.dns_cache
    WHERE expires_at < now()
    ORDER BY hostname, record_type
    FOR UPDATE
)
RETURNING hostname, record_type
"""

_DETAILS_NAMES = 50


async def run(ctx: JobContext) -> dict[str, Any]:
    async with ctx.transaction() as conn:
        rows = await conn.fetch(_SQL)
    names = sorted(f"{r['hostname']}/{r['record_type']}" for r in rows)
    out: dict[str, Any] = {"deleted": len(rows), "names": names[:_DETAILS_NAMES]}
    if ctx.dry_run:
        out["dry_run"] = True
    return out
