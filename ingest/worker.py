"""The consume loop: records -> decode -> route -> buffer -> flush, with exactly-once offsets.

Life cycle, in the manner of a Kafka Connect sink task:

* **assigned** — read the stored offsets of the new partitions (storing the reset position for
  partitions never seen) and seek there. The database, not Kafka, says where to resume.
* **put** — decode and route every record into the buffer.
* **flush** — when the buffer is due, one transaction writes it and advances the stored
  offsets by compare-and-set; then the same offsets are committed to Kafka for lag tools. At
  most one flush is in flight while the next buffer fills; when the next one is full too,
  fetching pauses (memory stays bounded whatever the backlog).
* **revoked** — flush what is buffered, within a deadline; if that cannot finish, drop it (the
  stored offsets did not move, so the successor re-reads exactly those records).
* **fenced** — a flush found its stored offsets moved by another consumer: drop the buffer,
  re-read the stored offsets and seek to them.
* **stop** — stop fetching, flush, commit, leave the group, within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from ingest import errors
from ingest import native as native_lane
from ingest.buffer import Batch, Buffer, DeadLetterRow, FlushPolicy, Origin
from ingest.db import pg_micros, unix_seconds
from ingest.decode import DecodeLimits, decode
from ingest.events.common import WIRE_VERSION
from ingest.lane import FastLane, LaneLimits
from ingest.native import NativeChunk
from ingest.observability import Metrics
from ingest.offsets import Fenced, initialise_offsets, load_offsets
from ingest.route import route
from ingest.settings import Settings
from ingest.sink import FlushResult, Sink, StopRequested
from ingest.source import RebalanceListener, Record, build_consumer, build_producer
from ingest.tables import KIND_TIME_SERIES

log = structlog.get_logger("ingest.worker")

TP = tuple[str, int]
_LATENCY_SAMPLES = 500
_REVOKE_FLUSH_DEADLINE_S = 15.0
#: Dead letters logged per flush; the rest are counted (the table has them all).
_DEAD_LETTERS_LOGGED = 20
#: Poll timeout while a flush is in flight and rows wait for the next one.
_BUSY_POLL_MS = 20.0
#: Seconds between refreshes of the buffer and lag gauges.
_GAUGE_INTERVAL_S = 0.25
#: Flushes between explicit garbage collections.
_FLUSHES_PER_GC = 20
#: Longest time between explicit garbage collections, however few the flushes.
_GC_INTERVAL_S = 10.0


class Worker:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        metrics: Metrics,
        *,
        stop: asyncio.Event,
        burst: bool = False,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.stop = stop
        self.burst = burst
        b = settings.batch
        self.buffer = Buffer(FlushPolicy(b.max_rows, b.max_bytes, b.max_age_ms, b.min_age_ms))
        self.lane = FastLane(settings.decode.max_message_bytes)
        self._native = native_lane.metric_rows if settings.decode.native_lane else None
        self.sink = Sink(
            pool,
            group_id=settings.group_id,
            partitions=settings.partitions,
            backoff_initial_s=settings.database.retry_initial_backoff_ms / 1000.0,
            backoff_max_s=settings.database.retry_max_backoff_ms / 1000.0,
            replica_id=settings.replica_id,
            on_retry=lambda e: metrics.flush_retries.labels(error=e).inc(),
            expand=self._expand,
        )
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        #: Stored next offset per assigned partition, as of the last commit we know of.
        self.stored: dict[TP, int] = {}
        #: Next offset expected from Kafka per partition (stored offset + what is buffered).
        self.position: dict[TP, int] = {}
        self.assigned: set[TP] = set()
        self._inflight: asyncio.Task[None] | None = None
        self._inflight_bytes = 0
        self._paused = False
        self._decoded_kinds: dict[str, int] = {}
        self._gauges_due = 0.0
        self._collected_at = time.monotonic()
        self._consumed_counters: dict[str, Any] = {}
        self.last_flush_at: float | None = None
        self.flushes = 0
        self.fatal: BaseException | None = None

    # -- readiness -----------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = bool(self.assigned) and self.sink.database_up and self.fatal is None
        return ready, {
            "assigned_partitions": len(self.assigned),
            "database_up": self.sink.database_up,
        }

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        consumer = build_consumer(self.settings)
        self.consumer = consumer
        consumer.subscribe(
            self.settings.topics,
            listener=RebalanceListener(self._on_revoked, self._on_assigned),
        )
        if self.settings.kafka.dead_letter_publish:
            self.producer = build_producer(self.settings)
            await self.producer.start()
        await consumer.start()
        log.info("worker_started", topics=self.settings.topics, group=self.settings.group_id)
        try:
            await self._loop(consumer)
        finally:
            await self._drain(consumer)

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        max_records = self.settings.kafka.max_poll_records
        while not self.stop.is_set():
            self._raise_if_flush_failed()
            await self._apply_backpressure(consumer)
            idle = self._flush_idle()
            wait_ms = self.buffer.time_to_due_ms(ripe=idle)
            if not idle and self.buffer.records:
                # The in-flight flush may end any moment, and a ripe buffer should follow it
                # at once: look again soon.
                wait_ms = min(wait_ms, _BUSY_POLL_MS)
            timeout_ms = int(min(200.0, max(1.0, wait_ms)))
            batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            if batch:
                self._put(batch)
                # getmany returns without suspending when records are already fetched, so a
                # busy loop would starve the in-flight flush (and the fetcher) of the event
                # loop until it blocks on that flush: the two stages would run in turn
                # instead of side by side. One yield per poll lets each advance a step.
                await asyncio.sleep(0)
            if self.buffer.due() or (self.buffer.ripe() and self._flush_idle()):
                await self._start_flush()
            elif not batch and self.burst and await self._caught_up(consumer):
                log.info("burst_caught_up")
                return
            now = time.monotonic()
            if now >= self._gauges_due:
                # Every poll would be 50+ label look-ups per 500 records; scrapes come
                # seconds apart.
                self._gauges_due = now + _GAUGE_INTERVAL_S
                self._update_gauges()
                if now - self._collected_at >= _GC_INTERVAL_S:
                    # Few flushes (a quiet stream): cyclic garbage is still collected.
                    self._collect()

    def _collect(self) -> None:
        gc.collect()
        self._collected_at = time.monotonic()

    def _flush_idle(self) -> bool:
        return self._inflight is None or self._inflight.done()

    def _put(self, batch: dict[TopicPartition, list[Record]]) -> None:
        now = datetime.now(UTC)
        limits = self._limits(now)
        # The fast lane's clock limits, the same ones decode applies (see ingest.lane).
        lane_limits = LaneLimits.at(limits, now)
        native = self._native
        buffer = self.buffer
        kinds = self._decoded_kinds
        consumed = 0
        position = self.position
        for tp, records in batch.items():
            topic, partition = tp.topic, tp.partition
            tp_key = (topic, partition)
            if tp_key not in self.stored:
                continue  # not (or no longer) ours: a late fetch after a revocation
            counter = self._consumed_counters.get(topic)
            if counter is None:
                counter = self._consumed_counters[topic] = self.metrics.records_consumed.labels(
                    topic=topic
                )
            counter.inc(len(records))
            expected = position[tp_key]
            if records and records[0].offset < expected:
                # Already buffered or stored: a record seen twice must never be written
                # twice. Offsets only grow within a fetch, so the repeats are a prefix.
                # (Gaps are normal: transaction markers take offsets.)
                records = [r for r in records if r.offset >= expected]
            if not records:
                continue
            if native is not None:
                size = self._put_native(
                    buffer, topic, partition, records, now, limits, lane_limits, kinds
                )
            else:
                size = 0
                for rec in records:
                    size += self._take(
                        buffer, topic, partition, rec, now, limits, lane_limits, kinds
                    )
            expected = records[-1].offset + 1
            buffer.note_records(topic, partition, len(records), size, expected)
            consumed += size
            position[tp_key] = expected
        self.metrics.consumed_bytes.inc(consumed)

    def _put_native(
        self,
        buffer: Buffer,
        topic: str,
        partition: int,
        records: list[Record],
        now: datetime,
        limits: DecodeLimits,
        lane_limits: LaneLimits,
        kinds: dict[str, int],
    ) -> int:
        """One fetched chunk through the native lane, what it refuses through ``_take``;
        returns the chunk's value bytes."""
        assert self._native is not None
        rows, refused, nodes, taken, first_ts, size = self._native(
            [r.value for r in records],
            lane_limits.latest,
            lane_limits.oldest_metric,
            self.lane.max_bytes,
            WIRE_VERSION,
        )
        if taken:
            assert first_ts is not None
            buffer.add_native(
                NativeChunk(
                    topic,
                    partition,
                    records,
                    refused,
                    rows,
                    taken,
                    [self.lane.node_id(n) for n in nodes],
                    first_ts,
                    now,
                    limits,
                    lane_limits,
                )
            )
            kinds["metric"] = kinds.get("metric", 0) + taken
        for index in refused:
            self._take(buffer, topic, partition, records[index], now, limits, lane_limits, kinds)
        return size

    def _take(
        self,
        buffer: Buffer,
        topic: str,
        partition: int,
        rec: Record,
        now: datetime,
        limits: DecodeLimits,
        lane_limits: LaneLimits,
        kinds: dict[str, int],
    ) -> int:
        """One record into ``buffer`` by the Python lane or the general path; returns its
        value's length."""
        offset = rec.offset
        value = rec.value
        size = 0 if value is None else len(value)
        fast = self.lane.rows(value, lane_limits)
        if fast is not None:
            rec_key = rec.key
            for taken in fast:
                if len(taken) == 3:  # a metric: its row alone (see Buffer.add_metric)
                    index, lane_eid, row = taken
                    buffer.add_metric(
                        topic, partition, offset, index, value, rec_key, lane_eid, row
                    )
                    kinds["metric"] = kinds.get("metric", 0) + 1
                else:
                    index, kind, lane_eid, ts, routed = taken
                    origin = Origin(
                        topic, partition, offset, index, value, rec_key, kind, lane_eid, ts
                    )
                    buffer.add_rows(origin, routed)
                    kinds[kind] = kinds.get(kind, 0) + 1
            return size
        decoded = decode(value, now, limits)
        for index, event in decoded.events:
            eid = event.event_id
            origin = Origin(
                topic,
                partition,
                offset,
                index,
                value,
                rec.key,
                event.kind,
                None if eid is None else str(eid),
                pg_micros(event.ts),
            )
            buffer.add_rows(origin, route(event))
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
        if decoded.dead:
            base = Origin(topic, partition, offset, None, value, rec.key, None, None)
            buffer.add_dead_letters(base, decoded.dead)
        return size

    def _expand(self, batch: Batch) -> list[DeadLetterRow]:
        """Turn ``batch``'s native chunks into ordinary rows with origins, judged as they
        were when read (the repair paths work row by row); returns new dead letters, which a
        correct native lane never causes."""
        sub = Buffer(self.buffer.policy)
        for chunk in batch.chunks:
            for rec in chunk.taken():
                self._take(
                    sub,
                    chunk.topic,
                    chunk.partition,
                    rec,
                    chunk.now,
                    chunk.limits,
                    chunk.lane_limits,
                    {},
                )
        batch.chunks = []
        expanded = sub.take()
        batch.merge(expanded)
        return expanded.dead

    def _limits(self, now: datetime) -> DecodeLimits:
        p = self.settings.partitions
        oldest = {
            kind: now - timedelta(days=p.retention_days(table))
            for kind, table in KIND_TIME_SERIES.items()
        }
        return DecodeLimits(
            max_bytes=self.settings.decode.max_message_bytes,
            max_future_skew_s=self.settings.decode.max_clock_skew_s,
            oldest_allowed=oldest,
        )

    # -- flushing ------------------------------------------------------------------------------

    async def _start_flush(self) -> None:
        """Hand the buffer to a background flush; wait first if one is still running."""
        if self._inflight is not None:
            await self._wait_inflight()
        if self.buffer.records == 0:
            return
        batch = self.buffer.take()
        expected = {tp: self.stored[tp] for tp in batch.next_offsets if tp in self.stored}
        self._inflight_bytes = batch.value_bytes
        self._inflight = asyncio.create_task(self._flush(batch, expected))

    async def _wait_inflight(self) -> None:
        task = self._inflight
        if task is None:
            return
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight = None
                self._inflight_bytes = 0
        self._raise_if_flush_failed(task)

    def _raise_if_flush_failed(self, task: asyncio.Task[None] | None = None) -> None:
        if self.fatal is not None:
            raise self.fatal
        task = task or self._inflight
        if task is not None and task.done():
            self._inflight = None
            exc = task.exception()
            if exc is not None:
                self.fatal = exc
                raise exc

    async def _flush(self, batch: Batch, expected: dict[TP, int]) -> None:
        try:
            result = await self.sink.flush(batch, expected, self.stop_for_flush())
        except Fenced as exc:
            self.metrics.fenced.inc()
            log.warning("flush_fenced", partitions=[f"{t}[{p}]" for t, p in exc.partitions])
            await self._resync()
            return
        except StopRequested:
            log.warning("flush_abandoned_on_stop", records=batch.records)
            return
        except Exception as exc:
            self.metrics.flush_failures.labels(kind=errors.classify(exc).value).inc()
            log.error("flush_failed", error=errors.describe(exc), records=batch.records)
            raise
        for tp, offset in batch.next_offsets.items():
            if tp in self.stored:
                self.stored[tp] = offset
        self._record(batch, result)
        await self._commit_kafka(batch.next_offsets)
        await self._publish_dead(batch)

    def stop_for_flush(self) -> asyncio.Event | None:
        # A flush waiting on a dead database gives up when the worker stops; before that it
        # waits for as long as it takes.
        return self.stop

    def _record(self, batch: Batch, result: FlushResult) -> None:
        m = self.metrics
        self.flushes += 1
        self.last_flush_at = time.time()
        m.flushes.inc()
        m.flush_duration.observe(result.duration_s)
        m.flush_rows.observe(sum(result.rows_per_table.values()))
        m.flush_bytes.observe(batch.value_bytes)
        m.last_flush.set(self.last_flush_at)
        m.database_up.set(1)
        for table, n in result.rows_per_table.items():
            m.rows_written.labels(table=table).inc(n)
        for reason, n in result.dead_per_reason.items():
            m.dead_letters.labels(reason=reason).inc(n)
        for table_name in result.partitions_created:
            m.partitions_created.labels(table=table_name.split(".")[-1].rsplit("_p", 1)[0]).inc()
        if self.flushes % _FLUSHES_PER_GC == 0:
            # Right after a batch is let go: few objects are alive, so a full pass is cheap
            # (automatic collection is off, see ingest.app.tune_gc).
            self._collect()
        for kind, n in self._decoded_kinds.items():
            m.events_decoded.labels(kind=kind).inc(n)
        self._decoded_kinds = {}
        origins = batch.origins
        now = time.time()
        if origins:
            step = max(1, len(origins) // _LATENCY_SAMPLES)
            for origin in origins[::step]:
                if origin.ts is not None:
                    m.end_to_end_latency.observe(max(0.0, now - unix_seconds(origin.ts)))
        for chunk in batch.chunks[:: max(1, len(batch.chunks) // _LATENCY_SAMPLES)]:
            m.end_to_end_latency.observe(max(0.0, now - unix_seconds(chunk.first_ts)))
        for d in batch.dead[:_DEAD_LETTERS_LOGGED]:
            # Positions and reasons only: payloads never go to logs.
            log.info(
                "dead_letter",
                topic=d.origin.topic,
                partition=d.origin.partition,
                offset=d.origin.offset,
                element_index=d.origin.element_index,
                reason=d.reason,
                detail=d.detail[:200],
            )
        if len(batch.dead) > _DEAD_LETTERS_LOGGED:
            log.info("dead_letters_not_logged", count=len(batch.dead) - _DEAD_LETTERS_LOGGED)
        log.debug(
            "flushed",
            partitions={f"{t}[{p}]": o for (t, p), o in sorted(batch.next_offsets.items())},
            records=batch.records,
            rows=result.rows_per_table,
            dead=result.dead_per_reason,
            seconds=round(result.duration_s, 4),
        )

    async def _commit_kafka(self, offsets: dict[TP, int]) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        owned = {
            TopicPartition(t, p): OffsetAndMetadata(o, "")
            for (t, p), o in offsets.items()
            if (t, p) in self.assigned
        }
        if not owned:
            return
        try:
            await consumer.commit(owned)
        except (CommitFailedError, KafkaError) as exc:
            # Informational only: the database holds the truth.
            log.info("kafka_commit_skipped", error=str(exc))

    async def _publish_dead(self, batch: Batch) -> None:
        if self.producer is None or not batch.dead:
            return
        topic = self.settings.dead_letter_topic
        for d in batch.dead:
            headers = [
                ("reason", d.reason.encode()),
                ("source", f"{d.origin.topic}:{d.origin.partition}:{d.origin.offset}".encode()),
            ]
            try:
                await self.producer.send(topic, d.origin.payload, key=d.origin.key, headers=headers)
            except KafkaError as exc:
                log.warning("dead_letter_publish_failed", error=str(exc))
                return

    # -- rebalance -----------------------------------------------------------------------------

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        log.info(
            "partitions_revoked", partitions=sorted(f"{t.topic}[{t.partition}]" for t in revoked)
        )
        try:
            await asyncio.wait_for(self._flush_everything(), timeout=_REVOKE_FLUSH_DEADLINE_S)
        except Exception as exc:
            log.warning("revoke_flush_dropped", error=errors.describe(exc))
            self._cancel_inflight()
            self.buffer.clear()
        gone = {(t.topic, t.partition) for t in revoked}
        self.assigned -= gone
        for tp in gone:
            self.stored.pop(tp, None)
            self.position.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp[0], str(tp[1]))
        self.metrics.assigned_partitions.set(len(self.assigned))

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.metrics.rebalances.inc()
        consumer = self.consumer
        assert consumer is not None
        new = {(t.topic, t.partition) for t in assigned}
        positions = await self._stored_positions(consumer, assigned)
        self.assigned = set(new) | self.assigned
        for tp in assigned:
            offset = positions[(tp.topic, tp.partition)]
            self.stored[(tp.topic, tp.partition)] = offset
            self.position[(tp.topic, tp.partition)] = offset
            consumer.seek(tp, offset)
        self.metrics.assigned_partitions.set(len(self.assigned))
        log.info(
            "partitions_assigned",
            partitions={f"{t}[{p}]": positions[(t, p)] for t, p in sorted(new)},
        )

    async def _stored_positions(
        self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]
    ) -> dict[TP, int]:
        """Stored offsets, initialising never-seen partitions from the reset policy."""
        parts = sorted(partitions)
        keys = [(t.topic, t.partition) for t in parts]
        backoff = self.sink.backoff_initial_s
        while True:
            try:
                async with self.pool.acquire() as conn:
                    stored = await load_offsets(conn, self.settings.group_id, keys)
                    missing = [t for t in parts if (t.topic, t.partition) not in stored]
                    if missing:
                        starts = await self._reset_positions(consumer, missing)
                        stored = await initialise_offsets(
                            conn, self.settings.group_id, starts, self.settings.replica_id
                        )
                return stored
            except Exception as exc:
                if errors.classify(exc) is not errors.Failure.RETRYABLE or self.stop.is_set():
                    raise
                log.warning("offsets_load_retry", error=errors.describe(exc))
                await asyncio.sleep(backoff)
                backoff = min(self.sink.backoff_max_s, backoff * 2)

    async def _reset_positions(
        self, consumer: AIOKafkaConsumer, parts: list[TopicPartition]
    ) -> dict[TP, int]:
        if self.settings.kafka.auto_offset_reset == "earliest":
            found = await consumer.beginning_offsets(parts)
        else:
            found = await consumer.end_offsets(parts)
        return {(t.topic, t.partition): int(o) for t, o in found.items()}

    async def _resync(self) -> None:
        """After being fenced: forget the buffer and resume every partition from the DB."""
        consumer = self.consumer
        parts = [TopicPartition(t, p) for t, p in sorted(self.assigned)]
        if consumer is None or not parts:
            self.buffer.clear()
            return
        positions = await self._stored_positions(consumer, parts)
        # The loop went on buffering while the offsets were read, from positions that are
        # about to be reset: clearing the buffer only now, with no await until every
        # partition is sought, lets none of that reach a flush beside its own refetch.
        self.buffer.clear()
        for tp in parts:
            if (tp.topic, tp.partition) not in self.assigned:
                continue
            offset = positions[(tp.topic, tp.partition)]
            self.stored[(tp.topic, tp.partition)] = offset
            self.position[(tp.topic, tp.partition)] = offset
            consumer.seek(tp, offset)

    async def _flush_everything(self) -> None:
        await self._wait_inflight()
        await self._start_flush()
        await self._wait_inflight()

    def _cancel_inflight(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
        self._inflight = None

    # -- backpressure, gauges, burst -----------------------------------------------------------

    async def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        """Pause fetching while a flush is in flight and the next buffer is already full."""
        # Everything read and not yet committed: the buffer filling now and the batch in flight.
        pending = self.buffer.value_bytes + self._inflight_bytes
        limit = self.settings.batch.max_pending_bytes
        must_wait = self.buffer.full() or pending >= limit
        if must_wait and self._inflight is not None:
            if not self._paused:
                consumer.pause(*consumer.assignment())
                self._paused = True
                self.metrics.fetch_paused.set(1)
            await self._wait_inflight()
        if self.buffer.full():
            await self._start_flush()
        if self._paused and (self._inflight is None or not self.buffer.full()):
            consumer.resume(*consumer.assignment())
            self._paused = False
            self.metrics.fetch_paused.set(0)

    def _update_gauges(self) -> None:
        fill = self.buffer.fill()
        self.metrics.buffer_fill.labels(limit="rows").set(fill["rows"])
        self.metrics.buffer_fill.labels(limit="bytes").set(fill["bytes"])
        self.metrics.buffer_rows.set(self.buffer.rows)
        consumer = self.consumer
        if consumer is None:
            return
        for (topic, partition), stored in self.stored.items():
            high = consumer.highwater(TopicPartition(topic, partition))
            if high is not None:
                self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(
                    max(0, high - stored)
                )

    async def _caught_up(self, consumer: AIOKafkaConsumer) -> bool:
        if self.buffer.records or self._inflight is not None or not self.assigned:
            return False
        parts = [TopicPartition(t, p) for t, p in self.assigned]
        ends = await consumer.end_offsets(parts)
        return all(self.stored.get((t.topic, t.partition), -1) >= o for t, o in ends.items())

    # -- shutdown ------------------------------------------------------------------------------

    async def _drain(self, consumer: AIOKafkaConsumer) -> None:
        """Flush and commit what is buffered, then leave the group."""
        if self.fatal is None:
            try:
                await self._flush_everything()
            except Exception as exc:
                log.warning("drain_flush_failed", error=errors.describe(exc))
        self._cancel_inflight()
        try:
            await consumer.stop()
        except Exception as exc:
            log.warning("consumer_stop_failed", error=str(exc))
        if self.producer is not None:
            try:
                await self.producer.stop()
            except Exception as exc:
                log.warning("producer_stop_failed", error=str(exc))
        log.info("worker_stopped", flushes=self.flushes)
