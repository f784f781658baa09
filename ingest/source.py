"""The Kafka side: consumer construction, TLS/SASL, and the rebalance listener.

The consumer never auto-commits: the database holds the offsets (see :mod:`ingest.offsets`).
Offsets are committed to Kafka only after the database commit, so that standard lag tooling
shows the truth. The rebalance listener hands partition changes to the worker, which flushes
(or drops) what it buffered before partitions go and seeks to the stored offsets when they
come.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.consumer import fetcher as _fetcher

from ingest.settings import KafkaSettings, Settings


class Record(NamedTuple):
    """What the worker reads of a fetched record: a tuple, where aiokafka builds a
    ``ConsumerRecord`` dataclass of eleven fields per record (~0.6 µs of a ~4 µs record)."""

    offset: int
    key: bytes | None
    value: bytes | None


class _RawValues:
    """The worker consumer's value deserializer: none, and a mark asking for :class:`Record`s.

    aiokafka builds its records in ``PartitionRecords._consumer_record``, handed the
    deserializers; consumers with this one get the tuple, every other consumer (tests, tools)
    aiokafka's own record.
    """

    def __call__(self, value: bytes | None) -> bytes | None:
        return value


RAW_VALUES = _RawValues()
_new_tuple: Any = tuple.__new__
_build_record = getattr(_fetcher.PartitionRecords, "_consumer_record", None)


def _consumer_record(self: Any, tp: TopicPartition, record: Any) -> Any:
    if self._value_deserializer is RAW_VALUES and self._key_deserializer is None:
        return _new_tuple(Record, (record.offset, record.key, record.value))
    return _build_record(self, tp, record)  # type: ignore[misc]


if _build_record is not None:
    # Without the method (another aiokafka), records stay aiokafka's: the worker reads only
    # offset, key and value, which both have. tests/integration/test_source.py pins which.
    _fetcher.PartitionRecords._consumer_record = _consumer_record


def security_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured security protocol."""
    out: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=kafka.ssl_cafile)
        if kafka.ssl_certfile:
            context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile)
        out["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL"):
        out["sasl_mechanism"] = kafka.sasl_mechanism
        out["sasl_plain_username"] = kafka.sasl_username
        out["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return out


def build_consumer(settings: Settings) -> AIOKafkaConsumer:
    k = settings.kafka
    return AIOKafkaConsumer(
        bootstrap_servers=k.bootstrap_servers,
        client_id=f"{k.client_id}-{settings.replica_id}",
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset=k.auto_offset_reset,
        fetch_max_bytes=k.fetch_max_bytes,
        max_partition_fetch_bytes=k.max_partition_fetch_bytes,
        max_poll_records=k.max_poll_records,
        session_timeout_ms=k.session_timeout_ms,
        heartbeat_interval_ms=k.heartbeat_interval_ms,
        max_poll_interval_ms=k.max_poll_interval_ms,
        # Only committed records of transactional producers; plain producers are unaffected.
        isolation_level="read_committed",
        value_deserializer=RAW_VALUES,
        **security_kwargs(k),
    )


def build_producer(settings: Settings) -> AIOKafkaProducer:
    k = settings.kafka
    return AIOKafkaProducer(
        bootstrap_servers=k.bootstrap_servers,
        client_id=f"{k.client_id}-{settings.replica_id}-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        **security_kwargs(k),
    )


PartitionsCallback = Callable[[set[TopicPartition]], Awaitable[None]]


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards aiokafka's rebalance callbacks; aiokafka awaits them before moving on."""

    def __init__(self, on_revoked: PartitionsCallback, on_assigned: PartitionsCallback) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._on_assigned(set(assigned))


async def end_offsets(kafka: KafkaSettings, topics: list[str]) -> dict[tuple[str, int], int]:
    """End offset of every partition of ``topics`` (a topic that does not exist has none)."""
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=kafka.bootstrap_servers, **security_kwargs(kafka))
    await client.bootstrap()
    try:
        # A consumer's own metadata knows only what it subscribed to; ask for everything.
        cluster = await client.fetch_all_metadata()
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(cluster.partitions_for_topic(t) or ())
        ]
    finally:
        await client.close()
    if not parts:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        **security_kwargs(kafka),
    )
    await consumer.start()
    # aiokafka's group-less coordinator task must take its first step before stop(), or
    # stop() raises CancelledError.
    await asyncio.sleep(0.01)
    try:
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): int(o) for tp, o in ends.items()}


async def create_topics(
    kafka: KafkaSettings, names: list[str], partitions: int = 3, timeout_s: float = 30.0
) -> None:
    """Create ``names`` (existing ones are fine) and wait until every partition has a leader.

    Producing right after creation otherwise meets partitions without a leader for a while.
    """
    from aiokafka import AIOKafkaClient
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, **security_kwargs(kafka))
    await admin.start()
    try:
        response: Any = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
        for topic_error in response.topic_errors:
            topic, code = topic_error[0], topic_error[1]
            if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS
                raise RuntimeError(f"creating topic {topic} failed with Kafka error {code}")
    finally:
        await admin.close()

    client = AIOKafkaClient(bootstrap_servers=kafka.bootstrap_servers, **security_kwargs(kafka))
    await client.bootstrap()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            metadata = await client.fetch_all_metadata()
            ready = all(
                (ids := metadata.partitions_for_topic(name))
                and all(
                    metadata.leader_for_partition(TopicPartition(name, i)) not in (None, -1)
                    for i in ids
                )
                for name in names
            )
            if ready:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {names} have no leaders after {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await client.close()
