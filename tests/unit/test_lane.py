"""The fast lane takes plain metric records with the general path's rows (the other laned
kinds: test_kind_lane.py, which shares the helpers here).

The property pinned everywhere here: for any record, ``FastLane.rows`` is either None (the
general path decides) or exactly what ``decode`` + ``route`` make of the same bytes.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import orjson
import pytest
from test_decode import EVENT_ID, NODE, NOW, NOW_MS
from test_decode import metric as decode_metric

from ingest.db import pg_micros
from ingest.decode import DecodeLimits, decode
from ingest.events import Event
from ingest.lane import FastLane, KindLaneEvent, LaneEvent, LaneLimits
from ingest.route import route

OLDEST = NOW - timedelta(days=30)
LIMITS = DecodeLimits(max_bytes=4096, oldest_allowed={"metric": OLDEST})
LANE_LIMITS = LaneLimits.at(LIMITS, NOW)
_DROP = object()


def metric(**fields: Any) -> dict[str, Any]:
    """test_decode's metric, with ``_DROP`` to leave a field out."""
    return {k: v for k, v in decode_metric(**fields).items() if v is not _DROP}


def dumps(value: Any) -> bytes:
    # The standard library's encoder, not orjson: it writes integers beyond 64 bits, which
    # publishers can send.
    return json.dumps(value, ensure_ascii=False).encode()


def lane_shaped(events: list[tuple[int | None, Event]]) -> list[LaneEvent | KindLaneEvent]:
    """The general path's events and rows, in the shapes the lane gives them."""
    out: list[LaneEvent | KindLaneEvent] = []
    for index, event in events:
        event_id = None if event.event_id is None else str(event.event_id)
        routed = route(event)
        if event.kind != "metric":
            out.append((index, event.kind, event_id, pg_micros(event.ts), routed))
            continue
        (refs, ref_row), (target, row) = routed
        assert (refs, target, ref_row) == ("node_refs", "metrics", (row[0],))
        # The same moment in the unit the lane hands to the timestamptz codec.
        out.append((index, event_id, (*row[:6], pg_micros(row[6]))))
    return out


def assert_rows_and_types_equal(
    fast: list[LaneEvent | KindLaneEvent], expected: list[LaneEvent | KindLaneEvent]
) -> None:
    assert fast == expected
    for got, want in zip(fast, expected, strict=True):
        pairs = [(got[2], want[2])] if len(got) == 3 else list(zip(got[4], want[4], strict=True))
        for got_row, want_row in pairs:
            # Equal is not enough for the COPY encoders and the collapse: the types must match
            # too (the lane's ids are asyncpg's UUID subclass).
            assert all(isinstance(g, type(w)) for g, w in zip(got_row, want_row, strict=True))


def general(value: bytes, limits: DecodeLimits = LIMITS) -> list[LaneEvent | KindLaneEvent] | None:
    """What the general path stores for ``value``, in the lane's shape; None when it stores
    a dead letter."""
    decoded = decode(value, NOW, limits)
    if decoded.dead or not decoded.events:
        return None
    return lane_shaped(decoded.events)


def lane_rows(
    value: bytes, limits: DecodeLimits = LIMITS
) -> list[LaneEvent | KindLaneEvent] | None:
    return FastLane(limits.max_bytes).rows(value, LaneLimits.at(limits, NOW))


def assert_same_as_general(
    value: bytes, limits: DecodeLimits = LIMITS
) -> list[LaneEvent | KindLaneEvent] | None:
    fast = lane_rows(value, limits)
    if fast is not None:
        expected = general(value, limits)
        assert expected is not None, f"lane stored what the general path refuses: {value!r}"
        assert_rows_and_types_equal(fast, expected)
    return fast


TAKEN = [
    metric(),
    metric(ts="2025-06-01T11:59:00Z"),
    metric(ts="2025-06-01T11:59:00.123456Z"),
    metric(ts="2025-06-01T11:59:00.1234567Z"),
    metric(ts="2025-06-01t11:59:00z"),
    metric(ts="2025-06-01T13:59:00+02:00"),
    metric(ts="2025-06-01 11:59:00+00:00"),
    metric(ts=NOW_MS - 86_400_000),
    metric(node_id=NODE.upper()),
    metric(event_id=EVENT_ID),
    metric(event_id=EVENT_ID.upper()),
    metric(v=1),
    metric(unit="%"),
    metric(unit=None),
    metric(unit="u" * 50),
    metric(tags=None),
    metric(tags={}),
    metric(tags={"region": "eu-west", "rack": 3, "nested": {"a": [1, 2.5, None, True]}}),
    metric(tags={"big": 18446744073709551615}),
    metric(metric_value=0),
    metric(metric_value=-0.0),
    metric(metric_value=7),
    metric(metric_value=1.7976931348623157e308),
    metric(metric_value=5e-324),
    metric(metric_value=123456789012345678901234567890),
    metric(metric_type="t" * 100, metric_name="n" * 255),
    metric(metric_type="ü", metric_name="名前"),
    metric(extra_field={"ignored": True}, another=[1, 2]),
]


@pytest.mark.parametrize("event", TAKEN, ids=lambda e: dumps(e).decode()[:60])
def test_plain_metric_takes_the_lane_with_the_general_paths_rows(event: dict[str, Any]) -> None:
    value = dumps(event)
    assert assert_same_as_general(value) is not None


def test_array_of_metrics_takes_the_lane_with_element_indexes() -> None:
    value = orjson.dumps([metric(metric_value=i, event_id=EVENT_ID) for i in range(5)])
    fast = assert_same_as_general(value)
    assert fast is not None
    assert [index for index, _, _ in fast] == [0, 1, 2, 3, 4]


def test_empty_array_stores_nothing_on_either_path() -> None:
    assert lane_rows(b"[]") == []
    assert decode(b"[]", NOW, LIMITS).events == []
    assert decode(b"[]", NOW, LIMITS).dead == []


def test_whitespace_and_duplicate_keys_read_as_the_general_path_reads_them() -> None:
    spaced = b'{ "kind" : "metric" ,\n "node_id": "%s", "ts": %d, "metric_type": "a",' % (
        NODE.encode(),
        NOW_MS,
    )
    spaced += b' "metric_name": "b", "metric_value": 1, "metric_value": 2 }'
    fast = assert_same_as_general(spaced)
    assert fast is not None and fast[0][2][3] == 2.0


REFUSED: list[bytes] = (
    [
        dumps(e)
        for e in [
            metric(kind="event"),
            metric(v=2),
            metric(v=1.0),
            metric(v="1"),
            metric(v=True),
            metric(node_id="not-a-uuid"),
            metric(node_id=NODE.replace("-", "")),
            metric(node_id="{" + NODE + "}"),
            metric(node_id=5),
            metric(node_id=_DROP),
            metric(ts=_DROP),
            metric(ts=True),
            metric(ts=1.5),
            metric(ts=float(NOW_MS)),
            metric(ts="2025-06-01T11:59:00"),
            metric(ts="2025-06-01"),
            metric(ts="1717243140000"),
            metric(ts=NOW_MS + 3_600_000),
            metric(ts=int(OLDEST.timestamp() * 1000) - 1),
            metric(ts=-(2**63)),
            metric(ts=2**63 - 1),
            metric(metric_type=""),
            metric(metric_type="t" * 101),
            metric(metric_name="n" * 256),
            metric(metric_type=_DROP),
            metric(metric_value="12"),
            metric(metric_value=True),
            metric(metric_value=None),
            metric(metric_value=_DROP),
            metric(unit="u" * 51),
            metric(unit=5),
            metric(tags=[1, 2]),
            metric(tags="x"),
            metric(tags={"huge": -(2**63) - 1}),
            metric(event_id="nope"),
            metric(event_id=5),
            metric(metric_name="a\x00b"),
            metric(tags={"a\x00": 1}),
            metric(metric_name='quote"d'),
            [metric(), metric(kind="event", event_type="x")],
            [metric(), metric(v=2)],
            [metric(), 5],
            5,
            "metric",
            None,
        ]
    ]
    + [
        b"",
        b"not json",
        b'{"kind": "metric", "node_id": ',
        b'{"kind":"metric","metric_value":1e400}',
        b'{"kind":"metric","metric_name":"\\ud800"}',
        b'{"kind":"metric","metric_name":"\xff"}',
        b"\xef\xbb\xbf" + orjson.dumps(metric()),
        orjson.dumps(metric()) + b" trailing",
        orjson.dumps(metric(unit="x" * 5000)),
    ]
    + [
        # Raw control bytes inside a string and non-JSON number literals, in an otherwise valid
        # record: both parsers must refuse them.
        orjson.dumps(metric()).replace(b'"cpu.usage"', b'"cpu' + raw + b'usage"')
        for raw in (b"\t", b"\n", b"\x00", b"\x1f")
    ]
    + [
        orjson.dumps(metric()).replace(b"12.5", literal)
        for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"0x10", b"+1", b".5")
    ]
)


@pytest.mark.parametrize("value", REFUSED, ids=lambda v: v[:50].decode("utf-8", "replace"))
def test_what_the_lane_leaves_goes_to_the_general_path(value: bytes) -> None:
    assert lane_rows(value) is None
    assert assert_same_as_general(value) is None


def test_tombstone_goes_to_the_general_path() -> None:
    assert FastLane(4096).rows(None, LANE_LIMITS) is None


def test_without_a_retention_horizon_epoch_ms_a_datetime_cannot_hold_goes_to_the_general_path() -> (
    None
):
    # The lane's timestamps are integers, so the range a datetime holds is its own check.
    lane = FastLane(4096)
    first_ms = -62_135_596_800_000  # 0001-01-01T00:00:00Z
    unbounded = DecodeLimits(max_bytes=4096)
    at_now = LaneLimits.at(unbounded, NOW)
    assert lane.rows(dumps(metric(ts=first_ms - 1)), at_now) is None
    assert decode(dumps(metric(ts=first_ms - 1)), NOW, unbounded).dead
    fast = lane.rows(dumps(metric(ts=first_ms)), at_now)
    assert fast is not None
    assert fast == lane_shaped(decode(dumps(metric(ts=first_ms)), NOW, unbounded).events)


def test_random_mutations_never_make_the_lane_disagree_with_the_general_path() -> None:
    rng = random.Random(20261203)
    values: list[Any] = [
        None, True, False, 0, 1, -1, 0.5, 1e300, -1e-300, 2**64, "", "x", "\x00", "\u00e9",
        "2025-06-01T11:59:00Z", NOW_MS, NODE, EVENT_ID, [], {}, {"k": "v"}, [1, "a"],
    ]  # fmt: skip
    fields = ["kind", "node_id", "ts", "metric_type", "metric_name", "metric_value", "unit",
              "tags", "v", "event_id", "other"]  # fmt: skip
    taken = 0
    for _ in range(3000):
        iso = f"2025-06-01T11:{rng.randrange(60):02d}:00Z"
        number = rng.random() * 10 ** rng.randrange(-20, 20)
        event = metric(
            ts=rng.choice([NOW_MS - rng.randrange(10**9), iso]),
            metric_value=rng.choice([number, rng.randrange(-(10**6), 10**6)]),
        )
        for _ in range(rng.randrange(3)):
            name = rng.choice(fields)
            if rng.random() < 0.2:
                event.pop(name, None)
            else:
                event[name] = rng.choice(values)
        shape: Any = event if rng.random() < 0.8 else [event, metric()]
        if assert_same_as_general(dumps(shape)) is not None:
            taken += 1
    # The mutations leave a fair share valid; a lane refusing everything proves nothing.
    assert taken > 500


def test_node_ids_are_uuid_objects_equal_to_the_general_paths_and_the_map_is_bounded() -> None:
    lane = FastLane(4096)
    for i in range(3):
        node = f"00000000-0000-4000-8000-{i:012d}"
        fast = lane.rows(orjson.dumps(metric(node_id=node)), LANE_LIMITS)
        assert fast is not None
        assert fast[0][2][0] == general(orjson.dumps(metric(node_id=node)))[0][2][0]  # type: ignore[index]
    assert len(lane._ids) == 3
