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
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from ingest.settings import KafkaSettings, Settings


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
