"""Stored consumer offsets: the source of truth for where each partition resumes.

The next offset to read per (group, topic, partition) lives in ``ingest.consumer_offsets`` and
moves only inside a flush transaction, by compare-and-set: the row must still hold the offset
this consumer started its batch from. If it does not, another consumer owns the partition now
(or owned it in between) and has written past us; the flush is abandoned with :class:`Fenced`
and the partition is re-read from the stored offset. Rows are updated in (topic, partition)
order so concurrent flushes of different replicas never deadlock on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ingest.db import Conn

TopicPartition = tuple[str, int]


class Fenced(Exception):
    """Stored offsets moved under this consumer: it no longer owns these partitions."""

    def __init__(self, partitions: list[TopicPartition]) -> None:
        super().__init__(f"stored offsets moved for {partitions}")
        self.partitions = partitions


async def load_offsets(
    conn: Conn, group_id: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """Stored next offsets of ``partitions`` (absent ones have none yet)."""
    parts = sorted(partitions)
    if not parts:
        return {}
    rows = await conn.fetch(
        """
        SELECT o.topic, o.partition, o.next_offset
        FROM ingest.consumer_offsets o
        JOIN unnest($2::text[], $3::int[]) AS u(topic, partition)
          ON u.topic = o.topic AND u.partition = o.partition
        WHERE o.group_id = $1
        """,
        group_id,
        [t for t, _ in parts],
        [p for _, p in parts],
    )
    return {(str(r["topic"]), int(r["partition"])): int(r["next_offset"]) for r in rows}


async def initialise_offsets(
    conn: Conn,
    group_id: str,
    starts: Mapping[TopicPartition, int],
    replica_id: str = "",
) -> dict[TopicPartition, int]:
    """Store a starting offset for partitions that have none; return what is stored now.

    A concurrent replica may store one first; its value wins and is returned.
    """
    parts = sorted(starts)
    if parts:
        await conn.execute(
            """
            INSERT INTO ingest.consumer_offsets (group_id, topic, partition, next_offset,
                                                 updated_by)
            SELECT $1, t, p, o, $5 FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, o)
            ORDER BY t, p
            ON CONFLICT (group_id, topic, partition) DO NOTHING
            """,
            group_id,
            [t for t, _ in parts],
            [p for _, p in parts],
            [starts[tp] for tp in parts],
            replica_id,
        )
    return await load_offsets(conn, group_id, parts)


async def advance_offsets(
    conn: Conn,
    group_id: str,
    expected: Mapping[TopicPartition, int],
    new: Mapping[TopicPartition, int],
    replica_id: str = "",
) -> None:
    """Compare-and-set every partition of ``new`` from ``expected``; raise :class:`Fenced`.

    Must run inside the flush transaction.
    """
    parts = sorted(new)
    if not parts:
        return
    missing = [tp for tp in parts if tp not in expected]
    if missing:
        raise Fenced(missing)
    # Lock the rows in a fixed order first: UPDATE ... FROM does not promise an order.
    await conn.execute(
        """
        SELECT 1 FROM ingest.consumer_offsets o
        JOIN unnest($2::text[], $3::int[]) AS u(topic, partition)
          ON u.topic = o.topic AND u.partition = o.partition
        WHERE o.group_id = $1
        ORDER BY o.topic, o.partition
        FOR UPDATE OF o
        """,
        group_id,
        [t for t, _ in parts],
        [p for _, p in parts],
    )
    rows = await conn.fetch(
        """
        UPDATE ingest.consumer_offsets o
        SET next_offset = u.new, updated_at = now(), updated_by = $5
        FROM (
            SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $6::bigint[])
                AS x(topic, partition, new, expected)
            ORDER BY topic, partition
        ) u
        WHERE o.group_id = $1 AND o.topic = u.topic AND o.partition = u.partition
          AND o.next_offset = u.expected
        RETURNING o.topic, o.partition
        """,
        group_id,
        [t for t, _ in parts],
        [p for _, p in parts],
        [new[tp] for tp in parts],
        replica_id,
        [expected[tp] for tp in parts],
    )
    moved = {(str(r["topic"]), int(r["partition"])) for r in rows}
    if len(moved) != len(parts):
        raise Fenced([tp for tp in parts if tp not in moved])
