"""Worker._put and _resync: fetched records into the buffer, and positions after a fence.

No Kafka and no database: the records are plain objects with the three fields _put reads,
the resync's offsets come from a coroutine standing in for the database read, its seeks are
only recorded, and the worker is never started. What is pinned is the bookkeeping a flush
relies on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from test_decode import NODE
from test_decode import metric as decode_metric

from ingest import native
from ingest.observability import Metrics
from ingest.settings import load_settings
from ingest.worker import Worker

TOPIC = "mesh.metrics"
NEEDS_NATIVE = pytest.mark.skipif(native.metric_rows is None, reason="ingest._native not built")


@dataclass
class Rec:
    offset: int
    value: bytes | None
    key: bytes | None = b"node-key"


def worker(native_lane: bool = True) -> Worker:
    settings = load_settings(
        {
            "INGEST_DATABASE_URL": "postgresql://u@127.0.0.1:1/db",
            "INGEST_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "INGEST_NATIVE_LANE": str(native_lane).lower(),
        }
    )
    w = Worker(settings, None, Metrics(CollectorRegistry()), stop=asyncio.Event())  # type: ignore[arg-type]
    w.stored[(TOPIC, 0)] = 5
    w.position[(TOPIC, 0)] = 5
    return w


def metric(value: float) -> bytes:
    recent = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    return orjson.dumps(decode_metric(ts=recent, metric_value=value))


def event_record() -> bytes:
    return orjson.dumps(
        {
            "kind": "event",
            "node_id": NODE,
            "ts": datetime.now(UTC).isoformat(),
            "event_type": "link",
            "event_name": "link_up",
        }
    )


@pytest.mark.parametrize(
    "native_lane",
    [
        pytest.param(True, marks=NEEDS_NATIVE, id="native lane"),
        pytest.param(False, id="python lane"),
    ],
)
def test_put_moves_each_partitions_position_past_its_last_record_and_counts_every_record(
    native_lane: bool,
) -> None:
    w = worker(native_lane)
    tp = TopicPartition(TOPIC, 0)
    first = [Rec(5, metric(1.0)), Rec(6, metric(2.0)), Rec(8, event_record()), Rec(9, b"nope")]
    w._put({tp: first})  # type: ignore[dict-item]
    # Only the partition's own key is touched (no stray keys from record keys).
    assert w.position == {(TOPIC, 0): 10}
    assert w.buffer.records == 4
    batch_next = w.buffer._next
    assert batch_next == {(TOPIC, 0): 10}

    # A refetch that overlaps what is buffered adds only what is new.
    again = [Rec(8, event_record()), Rec(9, b"nope"), Rec(10, metric(3.0)), Rec(11, None)]
    w._put({tp: again})  # type: ignore[dict-item]
    assert w.position == {(TOPIC, 0): 12}
    batch = w.buffer.take()
    assert batch.records == 6
    assert w._decoded_kinds == {"metric": 3, "event": 1}
    # The native lane's metrics are encoded chunks until a repair asks for their rows: then
    # they are the Python lane's rows and origins.
    assert sum(c.count for c in batch.chunks) == (3 if native_lane else 0)
    assert w._expand(batch) == []
    assert batch.chunks == []
    assert sorted(row[3] for row in batch.targets["metrics"].rows) == [1.0, 2.0, 3.0]
    assert len(batch.targets["events"].rows) == 1
    assert len(batch.targets["node_refs"].rows) == 4
    assert sorted((d.reason, d.origin.offset) for d in batch.dead) == [
        ("invalid_json", 9),
        ("invalid_json", 11),
    ]
    assert sorted((o.kind, o.offset) for o in batch.origins) == [
        ("event", 8), ("metric", 5), ("metric", 6), ("metric", 10)
    ]  # fmt: skip
    metrics = batch.targets["metrics"]
    assert sorted(batch.origins[o].offset for o in metrics.origins) == [5, 6, 10]


def test_put_ignores_partitions_this_worker_does_not_hold() -> None:
    w = worker()
    w._put({TopicPartition(TOPIC, 1): [Rec(0, metric(1.0))]})  # type: ignore[dict-item]
    assert w.buffer.records == 0 and w.position == {(TOPIC, 0): 5}


class SeekLog:
    """Records seeks: the one call a resync makes of the consumer once the offsets are read."""

    def __init__(self) -> None:
        self.seeks: list[tuple[tuple[str, int], int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(((tp.topic, tp.partition), offset))


def test_a_resync_drops_what_the_loop_buffered_while_the_stored_offsets_were_read() -> None:
    w = worker()
    w.assigned = {(TOPIC, 0)}
    seeks = SeekLog()
    w.consumer = seeks  # type: ignore[assignment]
    tp = TopicPartition(TOPIC, 0)

    async def stored_positions(consumer: object, parts: object) -> dict[tuple[str, int], int]:
        # The database takes a round trip; meanwhile the loop goes on from the old position.
        w._put({tp: [Rec(5, metric(5.0)), Rec(6, metric(6.0))]})  # type: ignore[dict-item]
        await asyncio.sleep(0)
        return {(TOPIC, 0): 3}

    w._stored_positions = stored_positions  # type: ignore[method-assign,assignment]
    asyncio.run(w._resync())
    assert w.buffer.records == 0
    assert w.stored == w.position == {(TOPIC, 0): 3}
    assert seeks.seeks == [((TOPIC, 0), 3)]

    # The refetch from the stored offset is buffered once: nothing of the above rides along.
    refetch = [Rec(o, metric(float(o))) for o in (3, 4, 5, 6)]
    w._put({tp: refetch})  # type: ignore[dict-item]
    batch = w.buffer.take()
    assert batch.records == 4
    w._expand(batch)
    assert sorted(row[3] for row in batch.targets["metrics"].rows) == [3.0, 4.0, 5.0, 6.0]
