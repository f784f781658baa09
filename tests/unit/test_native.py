"""The native metric lane (ingest._native) takes a metric record only with the Python lane's
row, byte for byte once encoded for COPY, and refuses everything it is not sure about.

The property pinned everywhere here: for any value, ``metric_rows`` either refuses it (the
Python lane and the general path decide, as before) or writes exactly the binary COPY tuple of
the row ``FastLane.rows`` makes of it, which test_lane.py holds to the general path.
"""

from __future__ import annotations

import json
import random
import struct
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_decode import EVENT_ID, NODE, NOW, NOW_MS
from test_lane import LANE_LIMITS, LIMITS, TAKEN, metric

from ingest.db import pg_micros
from ingest.decode import DecodeLimits
from ingest.events.common import WIRE_VERSION
from ingest.lane import FastLane, LaneLimits
from ingest.native import metric_rows as _metric_rows

if _metric_rows is None:  # pragma: no cover - the Makefile requires it wherever cargo is
    pytest.skip("ingest._native is not built (no Rust toolchain)", allow_module_level=True)
metric_rows = _metric_rows

_DROP = object()


def native(values: list[bytes | None], limits: LaneLimits = LANE_LIMITS) -> Any:
    return metric_rows(values, limits.latest, limits.oldest_metric, LIMITS.max_bytes, WIRE_VERSION)


def split_rows(data: bytes) -> list[bytes]:
    """Binary COPY tuples one by one (each: a field count, then length-prefixed fields)."""
    rows, i = [], 0
    while i < len(data):
        start = i
        (count,) = struct.unpack_from(">h", data, i)
        assert count == 7
        i += 2
        for _ in range(count):
            (n,) = struct.unpack_from(">i", data, i)
            i += 4 + max(n, 0)
        rows.append(data[start:i])
    assert i == len(data)
    return rows


def encode(row: tuple[Any, ...]) -> bytes:
    """The Python lane's ``metrics`` row as PostgreSQL's binary COPY tuple."""
    node, metric_type, metric_name, value, unit, tags, when = row
    out = [struct.pack(">h", 7)]

    def field(data: bytes | None) -> None:
        out.append(struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data)

    field(node.bytes)
    field(metric_type.encode())
    field(metric_name.encode())
    field(struct.pack(">d", value))
    field(None if unit is None else unit.encode())
    field(None if tags is None else b"\x01" + tags.encode())  # jsonb: version 1, then text
    field(struct.pack(">q", when))
    return b"".join(out)


def python_lane_row(value: bytes, limits: LaneLimits = LANE_LIMITS) -> bytes | None:
    fast = FastLane(LIMITS.max_bytes).rows(value, limits)
    if fast is None or len(fast) != 1 or len(fast[0]) != 3 or fast[0][0] is not None:
        return None
    return encode(fast[0][2])  # type: ignore[arg-type]


def assert_agrees(values: list[bytes | None], limits: LaneLimits = LANE_LIMITS) -> int:
    """Every value the native lane takes has the Python lane's row; returns how many."""
    data, refused, nodes, taken, first_ts, size = native(values, limits)
    rows = split_rows(data)
    assert taken == len(rows) == len(values) - len(refused)
    assert refused == sorted(set(refused))
    assert size == sum(len(v) for v in values if v is not None)
    taken_values = [v for i, v in enumerate(values) if i not in set(refused)]
    for value, row in zip(taken_values, rows, strict=True):
        assert value is not None
        expected = python_lane_row(value, limits)
        assert expected is not None, f"native took what the Python lane does not: {value!r}"
        assert row == expected, value
    if taken_values:
        assert first_ts == struct.unpack(">q", rows[0][-8:])[0]
        assert len(nodes) == len({r[6:22] for r in rows})
    else:
        assert first_ts is None
    return taken


def dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(
        {k: v for k, v in event.items() if v is not _DROP}, ensure_ascii=False
    ).encode()


NATIVE_TAKEN = [
    metric(),
    metric(ts="2025-06-01T11:59:00Z"),
    metric(ts="2025-06-01T11:59:00+00:00"),
    metric(ts="2025-06-01T11:59:00.1Z"),
    metric(ts="2025-06-01T11:59:00.12+00:00"),
    metric(ts="2025-06-01T11:59:00.123+00:00"),
    metric(ts="2025-06-01T11:59:00.1234Z"),
    metric(ts="2025-06-01T11:59:00.12345Z"),
    metric(ts="2025-06-01T11:59:00.123456Z"),
    metric(ts="2025-05-31T23:59:59.999999Z"),
    metric(ts=NOW_MS - 86_400_000),
    metric(ts=NOW_MS + 299_000),
    metric(node_id=NODE.upper()),
    metric(event_id=EVENT_ID),
    metric(event_id=EVENT_ID.upper()),
    metric(event_id=None),
    metric(v=1),
    metric(unit="%"),
    metric(unit=None),
    metric(unit="u" * 50),
    metric(unit="é" * 50),
    metric(unit=""),
    metric(tags=None),
    metric(tags={}),
    metric(tags={"region": "eu-west", "rack": 3}),
    metric(tags={"a": True, "b": False, "c": None, "d": -12, "e": "", "ü": "名前"}),
    metric(tags={"big": 999_999_999_999_999, "neg": -999_999_999_999_999}),
    metric(metric_value=0),
    metric(metric_value=-0.0),
    metric(metric_value=0.0),
    metric(metric_value=7),
    metric(metric_value=-123456789012345),
    metric(metric_value=0.1),
    metric(metric_value=0.13784966643798358),
    metric(metric_value=1.7976931348623157e308),
    metric(metric_value=5e-324),
    metric(metric_value=2.2250738585072014e-308),
    metric(metric_value=1e22),
    metric(metric_value=123456.789e-3),
    metric(metric_type="t" * 100, metric_name="n" * 255),
    metric(metric_type="ü" * 100, metric_name="名" * 255),
    metric(metric_type="a\u2028b\x7f", metric_name="</script>"),
]


@pytest.mark.parametrize("event", NATIVE_TAKEN, ids=lambda e: dumps(e).decode()[:60])
def test_plain_metric_is_taken_with_the_python_lanes_row(event: dict[str, Any]) -> None:
    assert assert_agrees([dumps(event)]) == 1


def test_whitespace_and_field_order_do_not_matter() -> None:
    event = metric(tags={"region": "eu", "rack": 1}, unit="ms", event_id=EVENT_ID)
    compact = orjson.dumps(event)
    spaced = json.dumps(event, indent=2).encode()
    reordered = orjson.dumps(dict(reversed(list(event.items()))))
    padded = b" \t\r\n" + json.dumps(event, separators=(" , ", " : ")).encode() + b"\n "
    values: list[bytes | None] = [compact, spaced, reordered, padded]
    assert assert_agrees(values) == 4
    assert len(set(split_rows(native(values)[0]))) == 1


REFUSED: list[bytes | None] = [
    None,
    b"",
    b"x" * (LIMITS.max_bytes + 1),
    orjson.dumps([metric()]),  # arrays: the Python lane's
    orjson.dumps({**metric(), "kind": "event"}),
    orjson.dumps({**metric(), "other": 1}),  # unknown fields: the Python lane ignores them
    orjson.dumps(metric())[:-1] + b',"metric_value":2}',  # a repeated field
    orjson.dumps(metric(tags={"a": 1}))[:-2] + b',"a":2}}',  # a repeated tag
    orjson.dumps(metric(tags={"a": 1.5})),
    orjson.dumps(metric(tags={"a": {"b": 1}})),
    orjson.dumps(metric(tags={"a": [1]})),
    orjson.dumps(metric(tags={"a": 10**15})),
    orjson.dumps(metric(tags={"a": 'x"y'})),  # an escape
    orjson.dumps(metric(metric_type="a\\b")),
    orjson.dumps(metric(ts="2025-06-01T13:59:00+02:00")),
    orjson.dumps(metric(ts="2025-06-01t11:59:00Z")),
    orjson.dumps(metric(ts="2025-06-01T11:59:00z")),
    orjson.dumps(metric(ts="2025-06-01 11:59:00Z")),
    orjson.dumps(metric(ts="2025-06-01T11:59:00.1234567Z")),
    orjson.dumps(metric(ts="2025-06-01T11:59:00.Z")),
    orjson.dumps(metric(ts="2025-06-01T11:59:60Z")),
    orjson.dumps(metric(ts="2025-02-29T11:59:00Z")),
    orjson.dumps(metric(ts="2025-06-01T24:00:00Z")),
    orjson.dumps(metric(ts="2025-06-01T11:59:00")),
    orjson.dumps(metric(ts="2025-06-01")),
    orjson.dumps(metric(ts=str(NOW_MS))),
    orjson.dumps(metric(ts=float(NOW_MS))),
    orjson.dumps(metric(ts=NOW_MS + 301_000)),  # beyond the clock skew
    orjson.dumps(metric(ts=NOW_MS - 31 * 86_400_000)),  # beyond retention
    orjson.dumps(metric(ts=True)),
    orjson.dumps(metric(ts=None)),
    orjson.dumps(metric(v=2)),
    orjson.dumps(metric(v=1.0)),
    orjson.dumps(metric(v=None)),
    orjson.dumps(metric(node_id=NODE.replace("-", ""))),
    orjson.dumps(metric(node_id="{" + NODE + "}")),
    orjson.dumps(metric(node_id=NODE[:-1] + "g")),
    orjson.dumps(metric(node_id=None)),
    orjson.dumps(metric(event_id="not-a-uuid")),
    orjson.dumps(metric(event_id=1)),
    orjson.dumps(metric(metric_type="")),
    orjson.dumps(metric(metric_type="t" * 101)),
    orjson.dumps(metric(metric_name="n" * 256)),
    orjson.dumps(metric(unit="u" * 51)),
    orjson.dumps(metric(unit=1)),
    orjson.dumps(metric(metric_value="1")),
    orjson.dumps(metric(metric_value=None)),
    orjson.dumps(metric(metric_value=True)),
    orjson.dumps(metric(metric_value=1234567890123456)),  # 16 digits: the Python lane's
    orjson.dumps(metric()).replace(b":12.5", b":0.123456789012345678"),  # 18 digits
    orjson.dumps(metric())[:-1] + b',"metric_value":1e400}',
    dumps(metric(metric_value=_DROP)),
    dumps(metric(kind=_DROP)),
    dumps(metric(node_id=_DROP)),
    dumps(metric(ts=_DROP)),
    dumps(metric(metric_type=_DROP)),
    dumps(metric(metric_name=_DROP)),
    orjson.dumps(metric()) + b"x",
    orjson.dumps(metric()) + b"{}",
    orjson.dumps(metric())[:-1] + b",}",
    orjson.dumps(metric())[:-1],
    b"{}",
    b"[]",
    b"null",
    orjson.dumps(metric()).replace(b'"cpu"', b'"\xff"'),  # not UTF-8
    orjson.dumps(metric()).replace(b'"cpu"', b'"c\x01u"'),  # a raw control character
    orjson.dumps(metric()).replace(b'"metric_value":', b'"metric_value":01'),
    orjson.dumps(metric()).replace(b'"metric_value":', b'"metric_value":-.'),
    orjson.dumps(metric()).replace(b'"metric_value":', b'"metric_value":+'),
]


@pytest.mark.parametrize("value", REFUSED, ids=lambda v: repr(v)[:70])
def test_anything_unsure_is_refused(value: bytes | None) -> None:
    _, refused, nodes, taken, first_ts, _ = native([value])
    assert (refused, nodes, taken, first_ts) == ([0], [], 0, None)


def test_refused_values_are_named_in_order_between_taken_ones() -> None:
    good = orjson.dumps(metric())
    values: list[bytes | None] = [good, None, good, orjson.dumps([metric()]), b"{", good]
    data, refused, nodes, taken, first_ts, _ = native(values)
    assert refused == [1, 3, 4]
    assert taken == 3 and len(split_rows(data)) == 3
    assert nodes == [struct.pack(">QQ", *divmod(int(NODE.replace("-", ""), 16), 1 << 64))]
    assert first_ts == pg_micros(NOW)
    assert assert_agrees(values) == 3


def test_node_ids_are_distinct_and_in_first_seen_order() -> None:
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in (3, 1, 3, 2, 1)]
    values: list[bytes | None] = [orjson.dumps(metric(node_id=n)) for n in ids]
    _, _, nodes, taken, _, _ = native(values)
    assert taken == 5
    assert [int.from_bytes(n) for n in nodes] == [
        int(ids[i].replace("-", ""), 16) for i in (0, 1, 3)
    ]


def test_what_native_leaves_of_the_python_lanes_cases_the_python_lane_still_takes() -> None:
    # The native lane is narrower on purpose: of the Python lane's TAKEN cases it leaves some
    # (other offsets, lower case, nested tags, unknown fields), and those are still stored, by
    # the Python lane; the ones it takes have the Python lane's rows.
    values: list[bytes | None] = [dumps(event) for event in TAKEN]
    refused = native(values)[1]
    assert refused, "the native lane is meant to be narrower than the Python lane"
    assert assert_agrees(values) == len(values) - len(refused)
    for index in refused:
        value = values[index]
        assert value is not None
        assert FastLane(LIMITS.max_bytes).rows(value, LANE_LIMITS) is not None


def test_clock_limits_are_the_python_lanes() -> None:
    for offset_ms in (-31 * 86_400_000, -30 * 86_400_000, -1, 0, 300_000, 300_001):
        value = orjson.dumps(metric(ts=NOW_MS + offset_ms))
        took = native([value])[3] == 1
        assert took == (python_lane_row(value) is not None)
    # The retention horizon itself, sent as RFC 3339 rather than epoch milliseconds.
    at_oldest = orjson.dumps(metric(ts=(NOW - timedelta(days=30)).isoformat()))
    assert (native([at_oldest])[3] == 1) == (python_lane_row(at_oldest) is not None)
    no_retention = LaneLimits.at(DecodeLimits(max_bytes=4096), NOW)
    old = orjson.dumps(metric(ts="0001-01-01T00:00:00Z"))
    assert assert_agrees([old], no_retention) == 1


def test_random_floats_read_exactly_as_the_python_lane_reads_them() -> None:
    rng = random.Random(7)
    values: list[bytes | None] = []
    for _ in range(4000):
        number = struct.unpack(">d", rng.randbytes(8))[0]
        if number != number or number in (float("inf"), float("-inf")):
            continue
        values.append(orjson.dumps(metric(metric_value=number)))
    for _ in range(4000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 18)))
        point = rng.randrange(len(digits) + 1)
        text = (digits[:point] or "0") + ("." + digits[point:] if digits[point:] else "")
        text += rng.choice(["", f"e{rng.randrange(-330, 310)}", f"E+{rng.randrange(300)}"])
        values.append(orjson.dumps(metric()).replace(b":12.5", b":" + text.encode()))
    # Nearly all are taken (those of more than 17 digits or out of range are not).
    assert assert_agrees(values) > 7000


def test_random_mutations_never_make_native_disagree_with_the_python_lane() -> None:
    rng = random.Random(20261203)
    alphabet = b'{}[]",:.-+eE0123456789 tfnul\\\xc3\xa9Z T'
    base = [
        orjson.dumps(metric(tags={"region": "eu-west", "rack": 6}, unit="bytes")),
        orjson.dumps(metric(ts="2025-06-01T11:59:00.123+00:00", event_id=EVENT_ID)),
        orjson.dumps(metric(ts=NOW_MS - 5000, unit=None, tags={"a": True, "b": None})),
    ]
    values: list[bytes | None] = []
    for _ in range(6000):
        value = bytearray(rng.choice(base))
        for _ in range(rng.randrange(1, 3)):
            at = rng.randrange(len(value))
            op = rng.random()
            if op < 0.4:
                value[at] = rng.choice(alphabet)
            elif op < 0.7:
                del value[at]
            else:
                value.insert(at, rng.choice(alphabet))
        values.append(bytes(value))
    taken = assert_agrees(values)
    # Some mutations leave a valid record (a digit for a digit); refusing all proves nothing.
    assert taken > 300


def test_bench_workload_metrics_are_all_taken() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.workload import Workload

    start = NOW_MS - 3_600_000
    records = list(Workload(seed=3).records(5000, start_ms=start, step_ms=10))
    values: list[bytes | None] = [r.value for r in records]
    taken = assert_agrees(values)
    metrics = sum(1 for r in records if r.topic == "metrics" and r.value.startswith(b"{"))
    assert taken == metrics
