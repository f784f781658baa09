"""``run_simulation``: pace the generator against the wall clock and publish it with aiokafka."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from ingest.settings import Settings
from ingest.simulate.generator import Simulator
from ingest.simulate.options import SimRecord, SimulationOptions
from ingest.source import security_kwargs

_LARGE_RECORD: Final = 900 * 1024
"""Values above this go through the compressing producer (see ``_Publisher``)."""
_AHEAD_S: Final = 0.005
"""Sleep only when this far ahead of schedule: finer sleeps cost more than they smooth."""
_YIELD_EVERY: Final = 256


class _Publisher:
    """Two producers: a fast one for ordinary records, and a gzip one for the deliberately
    oversized records, which a broker with the default ``message.max.bytes`` (about 1 MiB)
    would refuse uncompressed; compressed they pass, so the worker gets to dead-letter them.
    Keyed by node id, so the default partitioner keeps each node's records in order."""

    def __init__(self, settings: Settings) -> None:
        k = settings.kafka
        self._common: dict[str, Any] = {
            "bootstrap_servers": k.bootstrap_servers,
            "client_id": f"{k.client_id}-simulator",
            **security_kwargs(k),
        }
        # linger and large batches: throughput over per-record latency, like a node's agent.
        self._fast = AIOKafkaProducer(
            **self._common, acks=1, linger_ms=20, max_batch_size=512 * 1024
        )
        self._large: AIOKafkaProducer | None = None
        self.prefix = settings.topic_prefix
        self.records: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.events_by_topic: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.bytes = 0
        self.failed = 0
        self.first_error: str | None = None
        self._partitions: dict[tuple[str, bytes], int] = {}
        self._partition_counts: dict[str, int] = {}

    async def start(self) -> None:
        await self._fast.start()

    async def send(self, record: SimRecord) -> None:
        topic = self.prefix + record.topic
        producer = self._fast
        if len(record.value) > _LARGE_RECORD:
            if self._large is None:
                self._large = AIOKafkaProducer(
                    **self._common,
                    acks=1,
                    compression_type="gzip",
                    max_request_size=8 * 1024 * 1024,
                )
                await self._large.start()
            producer = self._large
        partition = self._partitions.get((topic, record.key))
        if partition is None:
            partition = await self._partition(producer, topic, record.key)
        future = await producer.send(topic, record.value, key=record.key, partition=partition)
        future.add_done_callback(lambda f: self._done(f, record, topic))

    async def _partition(self, producer: AIOKafkaProducer, topic: str, key: bytes) -> int:
        """The default partitioner's choice (murmur2 of the key, as the Java client), cached:
        hashing in pure Python was the producer's largest cost, and there are only as many
        keys as nodes."""
        count = self._partition_counts.get(topic)
        if count is None:
            count = self._partition_counts[topic] = len(await producer.partitions_for(topic))
        partition: int = (murmur2(key) & 0x7FFFFFFF) % count
        if len(self._partitions) > 1_000_000:
            self._partitions.clear()
        self._partitions[(topic, key)] = partition
        return partition

    def _done(self, future: asyncio.Future[Any], record: SimRecord, topic: str) -> None:
        # Counted on acknowledgement, so the report says what the broker holds.
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = repr(error) if error else "cancelled"
            return
        self.records[topic] += 1
        self.bytes += len(record.value)
        for kind in record.kinds:
            self.events[kind] += 1
        self.events_by_topic[topic] += len(record.kinds)
        if record.intended_reason is not None:
            self.malformed[record.intended_reason] += 1

    async def close(self) -> None:
        for producer in (self._fast, self._large):
            if producer is not None:
                with contextlib.suppress(Exception):
                    await producer.flush()
                await producer.stop()


async def run_simulation(
    settings: Settings,
    opts: SimulationOptions,
    *,
    stop: asyncio.Event | None = None,
    progress: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Publish until ``opts.count`` events, ``opts.duration_s`` seconds, or ``stop`` is set.

    Pacing: the generator's simulated clock starts now and runs at ``opts.rate``; a record is
    sent no earlier than its simulated time, so event times never lead the wall clock (with
    ``rate`` 0 the pace is the generator's nominal flat-out clock, beyond what one producer
    reaches). When publishing falls behind, records go out as fast as the producer takes them.
    On a stop, partial arrays are flushed; the one record not yet due is not sent.

    The report counts what the broker acknowledged: ``records_per_topic`` (full topic names),
    ``events_per_kind`` and ``events_per_topic`` (the events a worker will store, i.e. without
    damaged elements), ``malformed_per_reason`` (records built to be dead letters), and
    ``events_generated`` (everything the generator made, including damaged and unsent ones).
    ``progress["sent"]``, when given, counts the records handed to the producer as they go
    (for live figures).
    """
    started_at = datetime.now(UTC)
    sim = Simulator(opts, started_at)
    publisher = _Publisher(settings)
    t0 = time.monotonic()
    deadline = None if opts.duration_s is None else t0 + opts.duration_s
    stopped_by = "count" if opts.count is not None else "duration"
    await publisher.start()
    try:
        for sent, record in enumerate(sim.records(), 1):
            if stop is not None and stop.is_set():
                stopped_by = "stop"
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                stopped_by = "duration"
                break
            ahead = (record.at_us - sim.start_us) / 1e6 - (now - t0)
            if ahead > _AHEAD_S:
                if deadline is not None:
                    ahead = min(ahead, deadline - now)
                if await _pause(ahead, stop):
                    stopped_by = "stop"
                    break
            await publisher.send(record)
            if progress is not None:
                progress["sent"] = sent
            if sent % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the producer's sender task run
        # Whatever partial arrays the nodes hold go out too, as on a node's shutdown.
        for record in sim.drain():
            await publisher.send(record)
            if progress is not None:
                progress["sent"] = sent
    finally:
        await publisher.close()
    elapsed = time.monotonic() - t0
    events = sum(publisher.events.values())
    records = sum(publisher.records.values())
    return {
        "started_at": started_at.isoformat(),
        "simulated_until": sim.now.isoformat(),
        "elapsed_s": round(elapsed, 3),
        "stopped_by": stopped_by,
        "options": {
            "nodes": opts.nodes,
            "rate": opts.rate,
            "duration_s": opts.duration_s,
            "count": opts.count,
            "batch": opts.batch,
            "malformed": opts.malformed,
            "skew_s": opts.skew_s,
            "seed": opts.seed,
            "topologies": opts.topologies,
        },
        "events_generated": sim.events,
        "events": events,
        "records": records,
        "bytes": publisher.bytes,
        "events_per_kind": dict(sorted(publisher.events.items())),
        "events_per_topic": dict(sorted(publisher.events_by_topic.items())),
        "records_per_topic": dict(sorted(publisher.records.items())),
        "malformed_per_reason": dict(sorted(publisher.malformed.items())),
        "malformed_records": sum(publisher.malformed.values()),
        "failed_records": publisher.failed,
        "first_error": publisher.first_error,
        "achieved_events_per_s": round(events / elapsed, 1) if elapsed > 0 else None,
        "achieved_records_per_s": round(records / elapsed, 1) if elapsed > 0 else None,
    }


async def _pause(seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep, waking early when ``stop`` is set; True if it was."""
    if seconds <= 0:
        return stop is not None and stop.is_set()
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
