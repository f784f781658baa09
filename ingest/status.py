"""``ingest status``: what the group owns, how far behind it is, and what the jobs did.

Reads the stored offsets from the database and the end offsets and group membership from
Kafka; nothing here changes anything.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from ingest.settings import Settings
from ingest.source import end_offsets, security_kwargs


async def _group_assignment(settings: Settings) -> dict[str, list[str]]:
    """Member -> partitions, from the group coordinator (empty when nobody is consuming)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap_servers, **security_kwargs(settings.kafka)
    )
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([settings.group_id])
    finally:
        await admin.close()
    out: dict[str, list[str]] = {}
    for response in described:
        for group in getattr(response, "groups", []):
            members = group[5] if len(group) > 5 else []
            for member in members:
                member_id, client_host, assignment = str(member[0]), str(member[2]), member[4]
                parts: list[str] = []
                if assignment:
                    decoded = ConsumerProtocolMemberAssignment.decode(assignment)
                    for topic, partitions in decoded.assignment:
                        parts += [f"{topic}[{p}]" for p in sorted(partitions)]
                out[f"{member_id} ({client_host})"] = sorted(parts)
    return out


async def collect_status(settings: Settings) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.database.dsn)
    try:
        stored_rows = await conn.fetch(
            "SELECT topic, partition, next_offset, updated_at, updated_by "
            "FROM ingest.consumer_offsets WHERE group_id = $1 ORDER BY topic, partition",
            settings.group_id,
        )
        jobs = await conn.fetch(
            """
            SELECT DISTINCT ON (job) job, outcome, started_at, finished_at, details, error
            FROM ingest.job_runs ORDER BY job, started_at DESC
            """
        )
        ahead = await conn.fetch(
            """
            SELECT parent_table, count(*) FILTER (WHERE range_from > now()) AS ahead,
                   max(range_to) AS covered_until
            FROM ingest.managed_partitions GROUP BY parent_table ORDER BY parent_table
            """
        )
        dead = await conn.fetch(
            "SELECT reason, count(*) AS n FROM ingest.dead_letters GROUP BY reason ORDER BY 1"
        )
    finally:
        await conn.close()

    ends = await end_offsets(settings.kafka, settings.topics)
    try:
        members = await _group_assignment(settings)
    except Exception as exc:
        members = {"error": [str(exc)]}

    stored = {(str(r["topic"]), int(r["partition"])): r for r in stored_rows}
    partitions = []
    for (topic, partition), end in sorted(ends.items()):
        row = stored.get((topic, partition))
        next_offset = int(row["next_offset"]) if row is not None else None
        partitions.append(
            {
                "topic": topic,
                "partition": partition,
                "stored": next_offset,
                "end": end,
                "lag": None if next_offset is None else max(0, end - next_offset),
                "last_flush": None if row is None else row["updated_at"].isoformat(),
                "by": None if row is None else row["updated_by"],
            }
        )
    return {
        "group": settings.group_id,
        "members": members,
        "partitions": partitions,
        "total_lag": sum(p["lag"] or 0 for p in partitions),
        "partitions_ahead": {
            str(r["parent_table"]): {
                "ahead": int(r["ahead"]),
                "covered_until": r["covered_until"].isoformat(),
            }
            for r in ahead
        },
        "jobs": [
            {
                "job": r["job"],
                "outcome": r["outcome"],
                "started_at": r["started_at"].isoformat(),
                "finished_at": None if r["finished_at"] is None else r["finished_at"].isoformat(),
                "error": r["error"],
            }
            for r in jobs
        ],
        "dead_letters": {str(r["reason"]): int(r["n"]) for r in dead},
    }
