"""The pure stages between decode and the database: buffer policy and per-key collapse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest.buffer import Buffer, FlushPolicy, Origin
from ingest.db import pg_micros
from ingest.decode import DeadLetter
from ingest.tables import BY_NAME
from ingest.writers import collapse

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
# Origins and lane rows hold event times as pg_micros.
T0_PG = pg_micros(T0)


def origin(offset: int, index: int | None = None, payload: bytes = b"{}") -> Origin:
    return Origin("mesh.metrics", 0, offset, index, payload, None, "metric", None, T0_PG)


def metric_row(value: float) -> tuple[object, ...]:
    return (uuid.uuid4(), "cpu", "load", value, None, None, T0_PG)


def test_a_flush_is_due_by_rows_by_bytes_or_by_age() -> None:
    by_rows = Buffer(FlushPolicy(max_rows=2, max_bytes=10**9, max_age_ms=10**6))
    by_rows.note_records("t", 0, 1, 10, 1)
    by_rows.add_rows(origin(0), [("metrics", metric_row(1.0))])
    assert not by_rows.due()
    by_rows.add_rows(origin(0), [("metrics", metric_row(2.0))])
    assert by_rows.due() and by_rows.full()

    by_bytes = Buffer(FlushPolicy(max_rows=10**6, max_bytes=1024, max_age_ms=10**6))
    by_bytes.note_records("t", 0, 1, 2048, 1)
    assert by_bytes.due()

    by_age = Buffer(FlushPolicy(max_rows=10**6, max_bytes=10**9, max_age_ms=50))
    by_age.note_records("t", 0, 1, 10, 1)
    assert not by_age.due(now=by_age._first_added + 0.01)
    assert by_age.due(now=by_age._first_added + 0.06)
    assert Buffer(FlushPolicy()).due() is False  # an empty buffer is never due


def test_a_buffer_is_ripe_at_the_minimum_age_and_the_poll_timeout_follows_it() -> None:
    buffer = Buffer(FlushPolicy(max_rows=10**6, max_bytes=10**9, max_age_ms=500, min_age_ms=100))
    assert not buffer.ripe()  # empty: nothing to write
    assert buffer.time_to_due_ms(ripe=True) == 100.0
    buffer.note_records("t", 0, 1, 10, 1)
    start = buffer._first_added
    assert not buffer.ripe(now=start + 0.05)
    # Either side of 100 ms, not on it: (start + 0.1 - start) * 1000 lands on 99.999… or
    # 100.000… depending on the clock's value (this failed once in CI).
    assert not buffer.ripe(now=start + 0.099)
    assert buffer.ripe(now=start + 0.101) and not buffer.due(now=start + 0.101)
    assert buffer.time_to_due_ms(start + 0.04, ripe=True) == pytest.approx(60.0)
    assert buffer.time_to_due_ms(start + 0.04) == pytest.approx(460.0)
    assert not buffer.due(now=start + 0.499)
    assert buffer.due(now=start + 0.501)


def test_records_counted_per_chunk_move_the_next_offset_past_the_last() -> None:
    buffer = Buffer(FlushPolicy())
    buffer.note_records("t", 0, 0, 0, 5)  # an empty chunk counts nothing
    assert buffer.records == 0 and buffer.take().next_offsets == {}
    buffer.note_records("t", 0, 3, 300, 12)  # offsets 9..11, or with gaps: the next is 12
    buffer.note_records("u", 1, 1, 50, 4)
    batch = buffer.take()
    assert (batch.records, batch.value_bytes) == (4, 350)
    assert batch.next_offsets == {("t", 0): 12, ("u", 1): 4}
    assert batch.records_per_topic == {"t": 3, "u": 1}


def test_a_lane_metric_is_buffered_exactly_as_its_routed_pairs_would_be() -> None:
    row = metric_row(3.5)
    by_lane = Buffer(FlushPolicy())
    by_lane.add_metric("mesh.metrics", 0, 7, 2, b"[...]", b"k", "e-1", row)
    by_pairs = Buffer(FlushPolicy())
    routed = [("node_refs", (row[0],)), ("metrics", row)]
    by_pairs.add_rows(
        Origin("mesh.metrics", 0, 7, 2, b"[...]", b"k", "metric", "e-1", T0_PG), routed
    )
    lane, pairs = by_lane.take(), by_pairs.take()
    assert lane.origins == pairs.origins
    assert type(lane.origins[0]) is Origin and lane.origins[0].ts == T0_PG
    assert {n: (t.rows, t.origins) for n, t in lane.targets.items()} == {
        n: (t.rows, t.origins) for n, t in pairs.targets.items()
    }
    assert by_lane.rows == by_pairs.rows == 0 and lane.rows() == pairs.rows() == 2


def test_take_hands_over_everything_with_the_next_offsets_and_starts_empty() -> None:
    buf = Buffer(FlushPolicy())
    for offset in (5, 6, 7):
        buf.note_records("mesh.metrics", 2, 1, 100, offset + 1)
        buf.add_rows(origin(offset), [("metrics", metric_row(float(offset)))])
    batch = buf.take()
    assert batch.next_offsets == {("mesh.metrics", 2): 8}
    assert batch.records == 3 and batch.rows() == 3 and batch.value_bytes == 300
    assert buf.records == 0 and buf.rows == 0 and not buf.due()


def test_dropping_an_origin_removes_its_rows_from_every_target_and_nothing_else() -> None:
    buf = Buffer(FlushPolicy())
    node = uuid.uuid4()
    buf.add_rows(origin(1), [("node_refs", (node,)), ("metrics", metric_row(1.0))])
    buf.add_rows(origin(2), [("node_refs", (node,)), ("metrics", metric_row(2.0))])
    batch = buf.take()
    batch.drop_origins({0})
    assert [r[3] for r in batch.targets["metrics"].rows] == [2.0]
    assert batch.targets["node_refs"].origins == [1]


def test_a_bad_array_element_keeps_its_own_bytes_not_the_whole_array() -> None:
    payload = orjson.dumps([{"kind": "metric"}, {"kind": "nope", "x": 1}])
    buf = Buffer(FlushPolicy())
    buf.add_dead_letters(origin(9, payload=payload), [DeadLetter("unknown_kind", "?", 1)])
    whole = Buffer(FlushPolicy())
    whole.add_dead_letters(origin(9, payload=b"{bad"), [DeadLetter("invalid_json", "?", None)])
    assert orjson.loads(buf.take().dead[0].origin.payload or b"") == {"kind": "nope", "x": 1}
    assert whole.take().dead[0].origin.payload == b"{bad"


def test_collapse_keeps_the_newest_state_per_key_and_later_arrival_on_ties() -> None:
    target = BY_NAME["connection_pools"]
    pool = uuid.uuid4()

    def row(name: str, at: datetime) -> tuple[object, ...]:
        return (pool, uuid.uuid4(), name, 1, 2, 0, 0, 30, False, "active", at)

    rows = [row("b", T0 + timedelta(seconds=5)), row("c", T0), row("d", T0 + timedelta(seconds=5))]
    kept, origins = collapse(target, rows, [10, 11, 12])
    assert [r[2] for r in kept] == ["d"] and origins == [12]


def test_routes_collapse_on_sequence_number_before_time() -> None:
    target = BY_NAME["routing_entries"]
    node, dest = uuid.uuid4(), uuid.uuid4()
    newer_time_lower_seq = (node, dest, None, 4, 0.9, 1, 0, T0 + timedelta(minutes=1))
    higher_seq = (node, dest, None, 5, 0.2, 1, 0, T0)
    kept, _ = collapse(target, [higher_seq, newer_time_lower_seq], [0, 1])
    assert kept == [higher_seq]
    # A direct route (no next hop) and a route via a neighbour are different keys.
    via = (node, dest, uuid.uuid4(), 1, 0.5, 2, 0, T0)
    kept, _ = collapse(target, [higher_seq, via], [0, 1])
    assert len(kept) == 2


def test_a_link_keeps_its_newest_probe_and_its_first_established_time() -> None:
    target = BY_NAME["mesh_links"]
    topo, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def probe(quality: float, at: datetime) -> tuple[object, ...]:
        return (topo, a, b, "active", quality, 1.0, 10.0, 0.0, 0.1, 1.0, at, at, "{}")

    later, earliest = T0 + timedelta(seconds=30), T0 - timedelta(seconds=30)
    kept, _ = collapse(target, [probe(0.5, T0), probe(0.9, later), probe(0.1, earliest)], [0, 1, 2])
    (row,) = kept
    assert row[target.index("quality")] == 0.9
    assert row[target.index("last_probe")] == later
    assert row[target.index("established_at")] == earliest


def test_heartbeats_merge_to_the_latest_time_and_the_newest_status_given() -> None:
    target = BY_NAME["node_heartbeats"]
    node = uuid.uuid4()
    rows = [
        (node, "active", T0),
        (node, None, T0 + timedelta(seconds=20)),
        (node, "inactive", T0 + timedelta(seconds=10)),
    ]
    kept, _ = collapse(target, rows, [0, 1, 2])
    assert kept == [(node, "inactive", T0 + timedelta(seconds=20), T0 + timedelta(seconds=10))]


def test_references_collapse_to_one_row_per_parent() -> None:
    node = uuid.uuid4()
    kept, _ = collapse(BY_NAME["node_refs"], [(node,), (node,), (uuid.uuid4(),)], [0, 1, 2])
    assert len(kept) == 2 and (node,) in kept
