"""run_simulation against the real broker: what it reports is what the topics hold."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from harness import create_topics
from pipeline import make_settings

from ingest.decode import DecodeLimits, decode
from ingest.settings import Settings
from ingest.simulate import REASON_CYCLE, SimulationOptions, run_simulation

# The simulator never touches the database; settings just need a well-formed URL.
DB_URL = "postgresql://unused@localhost:5432/unused"


async def _settings(bootstrap: str, prefix: str) -> Settings:
    settings = make_settings(DB_URL, bootstrap, prefix)
    await create_topics(bootstrap, settings.topics, 3)
    return settings


async def consume_all(
    settings: Settings, expected: int, timeout_s: float = 60.0
) -> list[tuple[str, bytes]]:
    consumer = AIOKafkaConsumer(
        *settings.topics,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    got: list[tuple[str, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                got += [(tp.topic, m.value) for m in messages if m.value is not None]
        # Anything beyond what was reported would show up here.
        for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
            got += [(tp.topic, m.value) for m in messages if m.value is not None]
    finally:
        await consumer.stop()
    return got


def _reasons(values: list[bytes]) -> Counter[str]:
    now = datetime.now(UTC)
    limits = DecodeLimits(oldest_allowed={"metric": now.replace(year=now.year - 1)})
    return Counter(d.reason for v in values for d in decode(v, now, limits).dead)


async def test_every_reported_record_is_on_its_topic(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = await _settings(kafka_bootstrap, topic_prefix)
    opts = SimulationOptions(count=2_000, rate=0, nodes=20, malformed=0.04, seed=7)
    report = await run_simulation(settings, opts)

    assert report["stopped_by"] == "count"
    assert report["failed_records"] == 0, report["first_error"]
    assert report["events_generated"] == 2_000
    assert report["records"] == 2_000
    assert set(report["malformed_per_reason"]) == set(REASON_CYCLE)  # too_large got through
    records = await consume_all(settings, report["records"])
    assert dict(Counter(topic for topic, _ in records)) == report["records_per_topic"]
    assert set(report["records_per_topic"]) <= set(settings.topics)
    # What reaches the worker dead-letters exactly as the report says.
    assert _reasons([v for _, v in records]) == report["malformed_per_reason"]


async def test_batched_run_stopped_by_event_and_by_duration(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = await _settings(kafka_bootstrap, topic_prefix)
    stop = asyncio.Event()
    opts = SimulationOptions(rate=2_000, nodes=15, batch=20)
    task = asyncio.create_task(run_simulation(settings, opts, stop=stop))
    await asyncio.sleep(1.5)
    stop.set()
    report: dict[str, Any] = await asyncio.wait_for(task, 30)
    assert report["stopped_by"] == "stop"
    # Paced at the target: about 1.5 s worth of events. Partial arrays are flushed on stop;
    # only the record not yet due when the stop came is left unsent.
    assert 1_000 <= report["events"] <= 2_000 * 1.5 * 1.2
    assert 0 <= report["events_generated"] - report["events"] <= opts.batch
    assert report["records"] < report["events"] / 2

    timed = await run_simulation(
        settings, SimulationOptions(rate=1_000, nodes=15, duration_s=1.0, seed=3)
    )
    assert timed["stopped_by"] == "duration"
    assert 0.9 <= timed["elapsed_s"] < 3.0
    assert 700 <= timed["events"] <= 1_100

    expected = report["records"] + timed["records"]
    records = await consume_all(settings, expected)
    want = Counter(report["records_per_topic"]) + Counter(timed["records_per_topic"])
    assert Counter(topic for topic, _ in records) == want
