"""The worker's consumer hands over light records; every other consumer keeps aiokafka's."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pipeline import make_settings, prepare_topics, produce

from ingest.source import Record, build_consumer


async def _fetch_all(consumer: AIOKafkaConsumer, topic: str, count: int) -> list[Any]:
    """The first ``count`` records of partition 0, with ``consumer`` started and stopped."""
    tp = TopicPartition(topic, 0)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[Any] = []
        async with asyncio.timeout(30):
            while len(out) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(records)
        return out
    finally:
        await consumer.stop()


async def test_worker_consumer_yields_offset_key_value_tuples_and_others_consumer_records(
    migrated_database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = make_settings(migrated_database_url, kafka_bootstrap, topic_prefix)
    await prepare_topics(settings, partitions=1)
    topic = topic_prefix + "metrics"
    values = [b'{"n":%d}' % i for i in range(5)] + [b""]
    keys = [b"node-%d" % i for i in range(5)] + [None]
    await produce(kafka_bootstrap, topic, values, keys=keys)

    light = await _fetch_all(build_consumer(settings), topic, len(values))
    assert all(type(r) is Record for r in light)
    assert [r.value for r in light] == values
    assert [r.offset for r in light] == list(range(len(values)))
    assert [r.key for r in light] == keys

    plain = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    full = await _fetch_all(plain, topic, len(values))
    assert all(type(r) is ConsumerRecord for r in full)
    assert [(r.topic, r.offset, r.key, r.value) for r in full] == [
        (topic, r.offset, r.key, r.value) for r in light
    ]
    assert all(r.timestamp > 0 for r in full)
