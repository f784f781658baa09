"""asyncpg sink: one transaction per flush, fenced offsets, poison isolation, retry.

A flush writes a :class:`~ingest.buffer.Batch` in one transaction:

1. advance the stored offset of every partition it covers with a compare-and-set (the stored
   value must still be the one this consumer expects, else :class:`Fenced`);
2. run the steps of :mod:`ingest.writers` (placeholders, upserts, COPYs), and COPY the metric
   rows the native lane encoded already (:mod:`ingest.native`) in binary;
3. COPY the dead letters;
4. commit.

Failures are classified in :mod:`ingest.errors`. A failed flush first has its native chunks
expanded into ordinary rows with origins (``expand``), because the repairs work row by row:

* a missing partition: create it and run the flush again;
* rows the database refuses: find them by bisection under savepoints, dead-letter each one's
  element with ``rejected_by_database`` and the database's message, run the flush again without
  them;
* a lost or refused connection: wait with capped exponential backoff and run it again, for as
  long as it takes (the offsets did not move, nothing is lost), unless told to stop.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from ingest import errors
from ingest.buffer import Batch, DeadLetterRow, TopicPartition
from ingest.db import Conn, as_datetime
from ingest.native import copy_data
from ingest.offsets import Fenced, advance_offsets
from ingest.partitions import ensure_partitions_for_times
from ingest.route import Row
from ingest.settings import PartitionSettings
from ingest.tables import BY_NAME, METRICS, NODE_REFS, NODES, TARGETS
from ingest.writers import STEP_TABLE, STEPS, collapse

log = structlog.get_logger("ingest.sink")

_DEAD_LETTER_COLUMNS = [
    "group_id",
    "topic",
    "partition",
    "offset",
    "element_index",
    "reason",
    "detail",
    "kind",
    "event_id",
    "key",
    "payload",
]
_MAX_DETAIL = 2000
assert METRICS.table is not None
_METRICS_TABLE: str = METRICS.table
_MAX_REPAIRS = 20


@dataclass(slots=True)
class FlushResult:
    rows_per_table: dict[str, int] = field(default_factory=dict)
    dead_per_reason: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    partitions_created: list[str] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass(slots=True)
class _Plan:
    """The collapsed rows of every step, and the dead letters found while writing."""

    steps: list[tuple[str, list[Row], list[int]]]
    extra_dead: list[DeadLetterRow] = field(default_factory=list)
    #: The native lane's encoded metric rows (binary COPY tuples) and their count.
    native_rows: list[bytes] = field(default_factory=list)
    native_count: int = 0


class StopRequested(Exception):
    """The flush was abandoned because the worker is stopping (nothing was written)."""


class Sink:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        group_id: str,
        partitions: PartitionSettings,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        replica_id: str = "",
        on_retry: Callable[[str], None] | None = None,
        expand: Callable[[Batch], list[DeadLetterRow]] | None = None,
    ) -> None:
        self.pool = pool
        #: Turns a batch's native chunks into ordinary rows (the worker's; see ingest.native).
        self.expand = expand
        self.group_id = group_id
        self.partitions = partitions
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.replica_id = replica_id
        self.on_retry = on_retry
        self.database_up = True

    # -- public --------------------------------------------------------------------------------

    async def flush(
        self,
        batch: Batch,
        expected: dict[TopicPartition, int],
        stop: asyncio.Event | None = None,
        in_transaction: Callable[[Conn], Awaitable[None]] | None = None,
    ) -> FlushResult:
        """Write ``batch`` once and advance the offsets from ``expected`` to its next offsets.

        Raises :class:`Fenced` when another consumer moved a stored offset, and
        :class:`StopRequested` when ``stop`` is set while waiting for the database.
        ``in_transaction`` runs last inside the flush transaction (dead-letter replay uses it to
        delete the replayed rows atomically with their data).
        """
        started = time.monotonic()
        result = FlushResult()
        dead = list(batch.dead)
        backoff = self.backoff_initial_s
        repairs = 0
        while True:
            plan = self._plan(batch)
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    await advance_offsets(
                        conn, self.group_id, expected, batch.next_offsets, self.replica_id
                    )
                    rows = await self._run_steps(conn, batch, plan)
                    await self._write_dead(conn, batch, dead + plan.extra_dead)
                    if in_transaction is not None:
                        await in_transaction(conn)
                self.database_up = True
                result.rows_per_table = rows
                for d in dead + plan.extra_dead:
                    result.dead_per_reason[d.reason] = result.dead_per_reason.get(d.reason, 0) + 1
                result.duration_s = time.monotonic() - started
                return result
            except Fenced:
                raise
            except Exception as exc:  # classified below; anything unknown is re-raised
                kind = errors.classify(exc)
                if batch.chunks and kind is not errors.Failure.RETRYABLE:
                    if self.expand is None:
                        raise
                    # The repairs below find rows by their origins, which encoded chunks
                    # have not got: the same rows again, as ordinary ones.
                    dead += self.expand(batch)
                try:
                    if kind is errors.Failure.MISSING_PARTITION and repairs < _MAX_REPAIRS:
                        repairs += 1
                        result.retries += 1
                        result.partitions_created += await self._repair_partitions(batch)
                        continue
                    if kind is errors.Failure.REJECTED and repairs < _MAX_REPAIRS:
                        repairs += 1
                        result.retries += 1
                        found = await self._isolate(batch)
                        if not found:
                            raise
                        dead += [DeadLetterRow(batch.origins[i], r, m) for i, r, m in found]
                        batch.drop_origins({i for i, _, _ in found})
                        continue
                except Exception as repair_exc:
                    # The database going away in the middle of a repair is an outage like
                    # any other: wait and run the flush again, never give up the batch.
                    if errors.classify(repair_exc) is not errors.Failure.RETRYABLE:
                        raise
                    exc, kind = repair_exc, errors.Failure.RETRYABLE
                if kind is errors.Failure.RETRYABLE:
                    self.database_up = False
                    result.retries += 1
                    if self.on_retry is not None:
                        self.on_retry(type(exc).__name__)
                    log.warning(
                        "flush_retry",
                        error=errors.describe(exc),
                        backoff_s=round(backoff, 3),
                        records=batch.records,
                    )
                    await _sleep_or_stop(backoff, stop)
                    backoff = min(self.backoff_max_s, backoff * 2) * random.uniform(0.8, 1.2)
                    continue
                raise

    # -- planning and writing ------------------------------------------------------------------

    def _plan(self, batch: Batch) -> _Plan:
        steps: list[tuple[str, list[Row], list[int]]] = []
        chunks = batch.chunks
        for target in TARGETS:
            tr = batch.targets.get(target.name)
            rows: list[Row] = [] if tr is None else tr.rows
            origins: list[int] = [] if tr is None else tr.origins
            if chunks and target is NODE_REFS:
                # The chunks' nodes need their placeholders like any metric's. No origin: a
                # flush that fails expands the chunks before anything looks one up.
                refs = [(node,) for c in chunks for node in c.nodes]
                rows, origins = rows + refs, origins + [-1] * len(refs)
            if not rows and not (chunks and target is METRICS):
                continue
            rows, origins = collapse(target, rows, origins)
            steps.append((target.name, rows, origins))
        return _Plan(
            steps, native_rows=[c.rows for c in chunks], native_count=sum(c.count for c in chunks)
        )

    async def _run_steps(self, conn: Conn, batch: Batch, plan: _Plan) -> dict[str, int]:
        written: dict[str, int] = {}
        for i, (name, rows, origins) in enumerate(plan.steps):
            if name == NODES.name:
                rows, origins, conflicts = await _drop_name_conflicts(conn, rows, origins)
                plan.steps[i] = (name, rows, origins)
                plan.extra_dead += [
                    DeadLetterRow(batch.origins[o], "conflict", detail) for o, detail in conflicts
                ]
                if not rows:
                    continue
            n = await STEPS[name](conn, rows) if rows else 0
            if name == METRICS.name and plan.native_rows:
                await conn.copy_to_table(
                    _METRICS_TABLE,
                    schema_name="network",
                    source=copy_data(plan.native_rows),
                    columns=list(METRICS.columns),
                    format="binary",
                )
                n += plan.native_count
            table = STEP_TABLE[name]
            if table is not None and n:
                written[table] = written.get(table, 0) + n
        return written

    async def _write_dead(self, conn: Conn, batch: Batch, dead: Sequence[DeadLetterRow]) -> None:
        if not dead:
            return
        records = [
            (
                self.group_id,
                d.origin.topic,
                d.origin.partition,
                d.origin.offset,
                d.origin.element_index,
                d.reason,
                d.detail[:_MAX_DETAIL],
                d.origin.kind,
                d.origin.event_id,
                d.origin.key,
                d.origin.payload,
            )
            for d in dead
        ]
        await conn.copy_records_to_table(
            "dead_letters", schema_name="ingest", records=records, columns=_DEAD_LETTER_COLUMNS
        )

    # -- repair paths --------------------------------------------------------------------------

    async def _repair_partitions(self, batch: Batch) -> list[str]:
        created: list[str] = []
        async with self.pool.acquire() as conn:
            for name, tr in batch.targets.items():
                target = BY_NAME[name]
                if target.time_column is None or not tr.rows:
                    continue
                col = target.index(target.time_column)
                # The fast lane's rows hold pg_micros, the general path's datetimes.
                times = [as_datetime(row[col]) for row in tr.rows]
                assert target.table is not None
                created += await ensure_partitions_for_times(
                    conn, target.table, times, self.partitions
                )
        log.info("partitions_created_for_flush", partitions=created)
        return created

    async def _isolate(self, batch: Batch) -> list[tuple[int, str, str]]:
        """Find the rows the database refuses: (origin index, reason, database message)."""
        plan = self._plan(batch)
        bad: dict[int, str] = {}
        async with self.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                for name, rows, origins in plan.steps:
                    if name == NODES.name:
                        rows, origins, _ = await _drop_name_conflicts(conn, rows, origins)
                        if not rows:
                            continue
                    await _bisect(conn, STEPS[name], rows, origins, bad)
                    good = [r for r, o in zip(rows, origins, strict=True) if o not in bad]
                    if good:
                        # Later steps may need these rows (foreign keys); they stay until the
                        # final rollback.
                        await STEPS[name](conn, good)
            finally:
                await tx.rollback()
        found = [
            (
                index,
                "conflict" if "nodes_node_name_key" in message else "rejected_by_database",
                message,
            )
            for index, message in bad.items()
        ]
        if found:
            log.warning("rows_rejected_by_database", count=len(found), first=found[0][2])
        return found


async def _bisect(
    conn: Conn,
    step: Callable[[Conn, Sequence[Row]], Any],
    rows: list[Row],
    origins: list[int],
    bad: dict[int, str],
) -> None:
    """Record in ``bad`` the origins of the rows of ``rows`` that ``step`` cannot write."""
    pending: list[tuple[list[Row], list[int]]] = [(rows, origins)]
    while pending:
        chunk, chunk_origins = pending.pop()
        live = [(r, o) for r, o in zip(chunk, chunk_origins, strict=True) if o not in bad]
        if not live:
            continue
        try:
            async with conn.transaction():  # a savepoint inside the outer transaction
                await step(conn, [r for r, _ in live])
                raise _Probe
        except _Probe:
            continue
        except Exception as exc:
            kind = errors.classify(exc)
            if kind is not errors.Failure.REJECTED:
                raise
            if len(live) == 1:
                bad[live[0][1]] = errors.describe(exc)
                continue
            mid = len(live) // 2
            pending.append(([r for r, _ in live[mid:]], [o for _, o in live[mid:]]))
            pending.append(([r for r, _ in live[:mid]], [o for _, o in live[:mid]]))


class _Probe(Exception):
    """Raised to roll a successful probe back to its savepoint."""


async def _drop_name_conflicts(
    conn: Conn, rows: list[Row], origins: list[int]
) -> tuple[list[Row], list[int], list[tuple[int, str]]]:
    """Announces whose ``node_name`` another node holds become ``conflict`` dead letters.

    Within one batch the earliest announce of a name wins. Against the table, only announces
    that would replace the stored state are checked (an older one changes nothing anyway).
    """
    name_i = NODES.index("node_name")
    ts_i = NODES.index("announced_at")
    claimant: dict[str, tuple[Any, Any]] = {}
    losers: set[int] = set()
    for pos in sorted(range(len(rows)), key=lambda p: rows[p][ts_i]):
        row = rows[pos]
        held = claimant.get(row[name_i])
        if held is None:
            claimant[row[name_i]] = (row[0], row[ts_i])
        elif held[0] != row[0]:
            losers.add(pos)
    candidates = [p for p in range(len(rows)) if p not in losers]
    taken = await conn.fetch(
        """
        SELECT u.pos
        FROM unnest($1::int[], $2::uuid[], $3::text[], $4::timestamptz[]) AS u(pos, id, name, ts)
        JOIN network.nodes other ON other.node_name = u.name AND other.node_id <> u.id
        LEFT JOIN network.nodes self ON self.node_id = u.id
        WHERE self.announced_at IS NULL OR u.ts >= self.announced_at
        """,
        candidates,
        [rows[p][0] for p in candidates],
        [rows[p][name_i] for p in candidates],
        [rows[p][ts_i] for p in candidates],
    )
    losers.update(int(r["pos"]) for r in taken)
    if not losers:
        return rows, origins, []
    conflicts = [
        (origins[p], f"node_name {rows[p][name_i]!r} is held by another node")
        for p in sorted(losers)
    ]
    keep = [p for p in range(len(rows)) if p not in losers]
    return [rows[p] for p in keep], [origins[p] for p in keep], conflicts


async def _sleep_or_stop(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
    raise StopRequested


def utcnow() -> datetime:
    return datetime.now(UTC)
