"""Listing and replaying dead letters.

Replay re-decodes a stored dead letter's original bytes with today's rules (an element of an
array is taken by its index). One that is now valid is written through the normal sink and its
dead-letter row deleted in the same transaction, so a replay is never half done and never
duplicates. One that is still invalid stays, with the attempt counted and the new reason kept
in ``last_replay_error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ingest.buffer import Buffer, FlushPolicy, Origin
from ingest.db import Conn, pg_micros
from ingest.decode import DecodeLimits, decode
from ingest.route import route
from ingest.settings import Settings
from ingest.sink import Sink


@dataclass(slots=True)
class ReplayOutcome:
    dead_letter_id: int
    replayed: bool
    detail: str


async def list_dead_letters(
    conn: Conn,
    *,
    reason: str | None = None,
    topic: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT dead_letter_id, topic, partition, "offset", element_index, reason, detail, kind,
               event_id, received_at, replay_attempts, last_replay_error,
               length(payload) AS payload_bytes
        FROM ingest.dead_letters
        WHERE ($1::text IS NULL OR reason = $1) AND ($2::text IS NULL OR topic = $2)
        ORDER BY dead_letter_id
        LIMIT $3
        """,
        reason,
        topic,
        limit,
    )
    return [dict(r) for r in rows]


async def count_dead_letters(conn: Conn) -> dict[str, int]:
    rows = await conn.fetch("SELECT reason, count(*) AS n FROM ingest.dead_letters GROUP BY 1")
    return {str(r["reason"]): int(r["n"]) for r in rows}


async def replay(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    ids: list[int] | None = None,
    reason: str | None = None,
    limit: int = 1000,
) -> list[ReplayOutcome]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT dead_letter_id, topic, partition, "offset", element_index, key, payload
            FROM ingest.dead_letters
            WHERE ($1::bigint[] IS NULL OR dead_letter_id = ANY($1))
              AND ($2::text IS NULL OR reason = $2)
            ORDER BY dead_letter_id
            LIMIT $3
            """,
            ids,
            reason,
            limit,
        )
    sink = Sink(pool, group_id=settings.group_id, partitions=settings.partitions)
    limits = DecodeLimits(
        max_bytes=settings.decode.max_message_bytes,
        max_future_skew_s=settings.decode.max_clock_skew_s,
    )
    outcomes: list[ReplayOutcome] = []
    for row in rows:
        dl_id = int(row["dead_letter_id"])
        # An array element's dead letter holds that element's own bytes (see Buffer).
        decoded = decode(row["payload"], datetime.now(UTC), limits)
        if decoded.dead or not decoded.events:
            why = decoded.dead[0] if decoded.dead else None
            detail = f"{why.reason}: {why.detail}" if why else "no events"
            async with pool.acquire() as conn:
                await conn.execute(
                    "UPDATE ingest.dead_letters SET replay_attempts = replay_attempts + 1, "
                    "last_replay_at = now(), last_replay_error = $2 WHERE dead_letter_id = $1",
                    dl_id,
                    detail[:2000],
                )
            outcomes.append(ReplayOutcome(dl_id, False, detail))
            continue
        buffer = Buffer(FlushPolicy())
        for index, event in decoded.events:
            origin = Origin(
                str(row["topic"]),
                int(row["partition"]),
                int(row["offset"]),
                row["element_index"] if index is None else index,
                row["payload"],
                row["key"],
                event.kind,
                None if event.event_id is None else str(event.event_id),
                pg_micros(event.ts),
            )
            buffer.add_rows(origin, route(event))
        batch = buffer.take()

        async def delete(conn: Conn, dl_id: int = dl_id) -> None:
            await conn.execute("DELETE FROM ingest.dead_letters WHERE dead_letter_id = $1", dl_id)

        result = await sink.flush(batch, {}, in_transaction=delete)
        if result.dead_per_reason:
            outcomes.append(
                ReplayOutcome(dl_id, False, f"stored again as {sorted(result.dead_per_reason)}")
            )
        else:
            outcomes.append(ReplayOutcome(dl_id, True, "stored"))
    return outcomes
