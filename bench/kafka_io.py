"""Topic creation and fast backlog production for the benchmark.

The backlog is produced with confluent-kafka (librdkafka) when it is installed: a Python loop
over ``Producer.produce`` reaches several hundred thousand records/s, where aiokafka manages a
few tens of thousands, and producing 5 M records must not dominate the run. aiokafka is the
fallback so the harness still works with only the project's own dependencies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.workload import Record
from ingest import source
from ingest.settings import KafkaSettings

#: Delivery callback: (topic, partition, offset, send time) of each acknowledged record.
OnDelivered = Callable[[str, int, int, float], None]


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create ``names`` with ``partitions`` partitions and wait until each has a leader."""
    await source.create_topics(KafkaSettings(bootstrap_servers=bootstrap), names, partitions)


def have_confluent() -> bool:
    try:
        import confluent_kafka  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def produce_fast(bootstrap: str, prefix: str, records: Iterable[Record]) -> int:
    """Produce ``records`` as fast as the broker takes them (acks=1, lingering batches)."""
    if not have_confluent():
        return asyncio.run(_produce_aiokafka(bootstrap, prefix, records))
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": 1,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 512 * 1024,
            "compression.type": "none",
        }
    )
    errors: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    n = 0
    for rec in records:
        while True:
            try:
                producer.produce(prefix + rec.topic, rec.value, rec.key, on_delivery=report)
                break
            except BufferError:  # local queue full: let librdkafka send some
                producer.poll(0.05)
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("backlog production did not finish within 120 s")
    if errors:
        raise RuntimeError(f"{len(errors)} records were not delivered, first: {errors[0]}")
    return n


async def _produce_aiokafka(bootstrap: str, prefix: str, records: Iterable[Record]) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=50, max_batch_size=1_000_000
    )
    await producer.start()
    n = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for rec in records:
            pending.append(await producer.send(prefix + rec.topic, rec.value, key=rec.key))
            n += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


class PacedProducer:
    """Produces at a steady rate for the latency run; event ``ts`` is the send time."""

    def __init__(self, bootstrap: str, on_delivered: OnDelivered) -> None:
        from confluent_kafka import Producer

        # A short linger: at half load latency matters more than producer batching.
        self._p = Producer(
            {"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5, "batch.size": 262_144}
        )
        self._on_delivered = on_delivered

    def send(self, topic: str, key: bytes, value: bytes, sent_at: float) -> None:
        def report(err: Any, msg: Any) -> None:
            if err is None:
                self._on_delivered(msg.topic(), msg.partition(), msg.offset(), sent_at)

        while True:
            try:
                self._p.produce(topic, value, key, on_delivery=report)
                return
            except BufferError:
                self._p.poll(0.01)

    def poll(self) -> None:
        self._p.poll(0)

    def flush(self) -> None:
        self._p.flush(30)
