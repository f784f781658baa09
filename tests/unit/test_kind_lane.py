"""The fast lane takes plain event, heartbeat, link, route and stats records with the general
path's rows, and leaves everything else to it.

As for metrics (test_lane.py), the property pinned here: for any record, ``FastLane.rows`` is
either None (the general path decides) or exactly what ``decode`` + ``route`` make of the same
bytes: the same events, origins and rows, values and types.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
import test_lane
from test_decode import EVENT_ID, NODE, NOW, NOW_MS, metric

from ingest.db import pg_micros
from ingest.decode import DecodeLimits, decode
from ingest.lane import FastLane, KindLaneEvent, LaneEvent, LaneLimits
from ingest.route import route
from ingest.tables import BY_NAME
from ingest.writers import collapse

OTHER = "9a3e1c2d-4b5f-4e6a-8c7d-1e2f3a4b5c6d"
TOPOLOGY = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
CONFIG = "7e8f9a0b-1c2d-4e3f-9a4b-5c6d7e8f9a0b"
OLDEST = NOW - timedelta(days=30)
LIMITS = DecodeLimits(
    max_bytes=4096,
    oldest_allowed={k: OLDEST for k in ("event", "compression.stats", "batch.stats")},
)
LANE_LIMITS = LaneLimits.at(LIMITS, NOW)
_DROP = object()


def _fields(base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**base, **fields}.items() if v is not _DROP}


def event(**fields: Any) -> dict[str, Any]:
    base = {"kind": "event", "node_id": NODE, "ts": NOW_MS, "event_type": "link",
            "event_name": "link.down", "severity": "warning"}  # fmt: skip
    return _fields(base, fields)


def heartbeat(**fields: Any) -> dict[str, Any]:
    return _fields({"kind": "node.heartbeat", "node_id": NODE, "ts": NOW_MS}, fields)


def probe(**fields: Any) -> dict[str, Any]:
    base = {"kind": "link.probe", "node_id": NODE, "ts": NOW_MS, "topology_id": TOPOLOGY,
            "remote_node_id": OTHER, "quality": 0.9, "latency_ms": 12.5}  # fmt: skip
    return _fields(base, fields)


def advert(**fields: Any) -> dict[str, Any]:
    base = {"kind": "route.advert", "node_id": NODE, "ts": NOW_MS, "destination_id": OTHER,
            "sequence_number": 7, "quality": 0.5}  # fmt: skip
    return _fields(base, fields)


def compression(**fields: Any) -> dict[str, Any]:
    base = {"kind": "compression.stats", "node_id": NODE, "ts": NOW_MS, "algorithm": "zstd",
            "period_start": NOW_MS - 60_000, "period_end": NOW_MS}  # fmt: skip
    return _fields(base, fields)


def batch(**fields: Any) -> dict[str, Any]:
    base = {"kind": "batch.stats", "node_id": NODE, "ts": NOW_MS, "config_id": CONFIG,
            "period_start": NOW_MS - 60_000, "period_end": NOW_MS}  # fmt: skip
    return _fields(base, fields)


BUILDERS = [event, heartbeat, probe, advert, compression, batch]


def dumps(value: Any) -> bytes:
    # The standard library's encoder: it writes integers beyond 64 bits, which publishers can.
    return json.dumps(value, ensure_ascii=False).encode()


def lane_rows(value: bytes) -> list[LaneEvent | KindLaneEvent] | None:
    return test_lane.lane_rows(value, LIMITS)


def assert_same_as_general(value: bytes) -> list[LaneEvent | KindLaneEvent] | None:
    """test_lane's check, under this module's limits (horizons for the time-series kinds)."""
    return test_lane.assert_same_as_general(value, LIMITS)


TAKEN = [
    event(),
    event(severity=_DROP, description="it went down", metadata={"peer": OTHER, "n": [1, 2.5]}),
    event(description=None, metadata=None, ts="2025-06-01T11:59:00.123456Z"),
    event(event_type="ü", event_name="名前", extra={"ignored": True}),
    heartbeat(),
    heartbeat(status="quarantined", ts="2025-06-01T13:59:00+02:00"),
    heartbeat(status=None, v=1),
    probe(),
    probe(
        link_state="congested",
        quality=0,
        packet_loss=1,
        jitter_ms=0,
        weight=-3.5,
        bandwidth_mbps=10**6,
        metadata={"radio": "5GHz"},
    ),
    probe(quality=None, latency_ms=None, metadata=None),
    probe(quality=1, latency_ms=7),
    advert(),
    advert(next_hop_id=TOPOLOGY, hop_count=3, flags=-1, event_id=EVENT_ID.upper()),
    advert(
        next_hop_id=None,
        metrics={"latency": 1.5, "packet_loss": 0.01, "jitter": 0, "bandwidth": 100, "other": "x"},
    ),
    advert(metrics={}, sequence_number=0, quality=1),
    advert(metrics=None, sequence_number=2**63 - 1),
    compression(),
    compression(
        messages_compressed=10,
        original_bytes=2**40,
        compressed_bytes=0,
        compression_time_ms=3,
        decompression_time_ms=None,
    ),
    compression(period_start=NOW_MS, period_end=NOW_MS),
    compression(period_start="2025-06-01T11:59:00Z", period_end="2025-06-01T12:00:00.5Z"),
    batch(),
    batch(
        total_batches=4,
        total_messages=400,
        priority_bypasses=0,
        queue_overflows=1,
        average_batch_size=100,
    ),
    batch(average_batch_size=12.25, event_id=EVENT_ID),
]


@pytest.mark.parametrize("value", TAKEN, ids=lambda e: dumps(e).decode()[:70])
def test_each_laned_kind_takes_the_lane_with_the_general_paths_rows(value: dict[str, Any]) -> None:
    assert assert_same_as_general(dumps(value)) is not None


def test_an_array_of_laned_kinds_takes_the_lane_with_element_indexes() -> None:
    value = orjson.dumps([b() for b in BUILDERS])
    fast = assert_same_as_general(value)
    assert fast is not None
    assert [(taken[0], taken[1]) for taken in fast] == [
        (0, "event"),
        (1, "node.heartbeat"),
        (2, "link.probe"),
        (3, "route.advert"),
        (4, "compression.stats"),
        (5, "batch.stats"),
    ]


def test_an_array_mixing_metrics_and_other_kinds_takes_the_lane_element_by_element() -> None:
    value = orjson.dumps([metric(), event(), metric(metric_value=1), heartbeat()])
    fast = assert_same_as_general(value)
    assert fast is not None
    assert [len(taken) for taken in fast] == [3, 5, 3, 5]


REFUSED: list[bytes] = [
    dumps(e)
    for e in [
        event(v=2),
        event(v=1.0),
        event(severity="fatal"),
        event(severity=None),
        event(event_type=""),
        event(event_name=_DROP),
        event(metadata=[1]),
        event(metadata={"huge": 2**64}),
        event(node_id=NODE.replace("-", "")),
        event(event_id="nope"),
        event(ts=NOW_MS + 3_600_000),
        event(ts=int(OLDEST.timestamp() * 1000) - 1),
        event(ts="2025-06-01T11:59:00"),
        event(ts=True),
        event(ts=-(2**63)),
        heartbeat(status="gone"),
        heartbeat(ts=1.5),
        heartbeat(node_id=5),
        probe(remote_node_id=NODE),
        probe(remote_node_id=NODE.upper()),
        probe(quality=1.5),
        probe(packet_loss=-0.1),
        probe(latency_ms=-1),
        probe(quality=True),
        probe(weight="1"),
        probe(link_state="up"),
        probe(topology_id=_DROP),
        advert(sequence_number=-1),
        advert(sequence_number=2**63),
        advert(sequence_number=1.0),
        advert(quality=_DROP),
        advert(hop_count=None),
        advert(flags=2**63),
        advert(metrics={"latency": -1}),
        advert(metrics={"packet_loss": 2}),
        advert(metrics=[1]),
        advert(next_hop_id="x"),
        compression(algorithm="rar"),
        compression(period_end=NOW_MS - 120_000),
        compression(period_start=_DROP),
        compression(period_start=NOW_MS + 3_600_000, period_end=NOW_MS + 3_600_000),
        compression(original_bytes=-1),
        batch(config_id=_DROP),
        batch(average_batch_size=-0.5),
        batch(period_start=int(OLDEST.timestamp() * 1000) - 1),
        [event(), {"kind": "metric"}],
        [metric(), event(event_name="")],
        [event(), heartbeat(v=2)],
        {"kind": "node.announce", "node_id": NODE, "ts": NOW_MS},
        {"kind": "metric", "node_id": NODE, "ts": NOW_MS},
        {"kind": "nope"},
        5,
        None,
    ]
] + [
    b"",
    b"not json",
    b'{"kind": "event", "kind": "node.heartbeat", "node_id": "' + NODE.encode() + b'"}',
    orjson.dumps(event()).replace(b"link.down", b"link\\u0000down"),
    orjson.dumps(event()) + b" trailing",
    orjson.dumps(probe()).replace(b"12.5", b"1e400"),
    orjson.dumps(probe()).replace(b"12.5", b"NaN"),
    orjson.dumps(advert(metrics={"jitter": 12.5})).replace(b"12.5", b"1e400"),
    orjson.dumps(event(description="x" * 5000)),
]


@pytest.mark.parametrize("value", REFUSED, ids=lambda v: v[:60].decode("utf-8", "replace"))
def test_what_the_kind_lane_leaves_goes_to_the_general_path(value: bytes) -> None:
    assert lane_rows(value) is None
    assert assert_same_as_general(value) is None


def test_duplicate_keys_read_as_the_general_path_reads_them() -> None:
    value = orjson.dumps(probe())[:-1] + b', "quality": 0.25, "metadata": {"a": 1, "a": 2}}'
    fast = assert_same_as_general(value)
    assert fast is not None
    links = [row for target, row in fast[0][4] if target == "mesh_links"]
    assert links[0][4] == 0.25 and links[0][12] == '{"a":2}'


def test_random_mutations_never_make_the_kind_lane_disagree_with_the_general_path() -> None:
    rng = random.Random(20261203)
    values: list[Any] = [
        None, True, False, 0, 1, -1, 0.5, 1.5, 1e300, -1e-300, 2**63, 2**64, "", "x", "\x00",
        "2025-06-01T11:59:00Z", "2025-06-01T12:00:00+01:00", NOW_MS, NOW_MS - 10**12, NODE,
        OTHER, EVENT_ID, "active", "info", "zstd", [], {}, {"k": "v"}, [1, "a"],
        {"latency": 1}, {"jitter": -1},
    ]  # fmt: skip
    fields = ["kind", "node_id", "ts", "v", "event_id", "event_type", "event_name", "severity",
              "description", "metadata", "status", "topology_id", "remote_node_id",
              "link_state", "quality", "latency_ms", "weight", "destination_id", "next_hop_id",
              "sequence_number", "hop_count", "flags", "metrics", "algorithm",
              "original_bytes", "period_start", "period_end", "config_id",
              "average_batch_size", "other"]  # fmt: skip
    taken = 0
    for _ in range(4000):
        build = rng.choice(BUILDERS)
        value = build(ts=rng.choice([NOW_MS - rng.randrange(10**9), "2025-06-01T11:59:00Z"]))
        for _ in range(rng.randrange(3)):
            name = rng.choice(fields)
            if rng.random() < 0.2:
                value.pop(name, None)
            else:
                value[name] = rng.choice(values)
        shape: Any = value if rng.random() < 0.8 else [value, rng.choice([*BUILDERS, metric])()]
        if assert_same_as_general(dumps(shape)) is not None:
            taken += 1
    # The mutations leave a fair share valid; a lane refusing everything proves nothing.
    assert taken > 1000


def test_ids_repeat_as_uuid_objects_and_the_map_is_bounded() -> None:
    lane = FastLane(4096)
    for _ in range(2):
        fast = lane.rows(orjson.dumps(probe()), LANE_LIMITS)
        assert fast is not None
    assert set(lane._ids) == {NODE, OTHER, TOPOLOGY}


def test_a_struct_is_handed_to_its_router_once_converted() -> None:
    # The router reads attributes: the ones it reads must be the model's types.
    fast = lane_rows(orjson.dumps(advert(next_hop_id=TOPOLOGY)))
    assert fast is not None
    _, _, _, ts, routed = fast[0]  # type: ignore[misc]
    entry = next(row for target, row in routed if target == "routing_entries")
    assert type(entry[7]) is datetime and pg_micros(entry[7]) == ts


def test_lane_rows_and_general_path_rows_of_one_link_collapse_to_the_newest() -> None:
    # A batch can hold both: ids in a form the lane leaves (no hyphens) go the general path.
    older = lane_rows(orjson.dumps(probe(quality=0.1, ts=NOW_MS - 1000)))
    newer = decode(orjson.dumps(probe(quality=0.7, node_id=NODE.replace("-", ""))), NOW, LIMITS)
    assert older is not None and not newer.dead
    rows = [row for target, row in older[0][4] if target == "mesh_links"]  # type: ignore[misc]
    rows += [row for target, row in route(newer.events[0][1]) if target == "mesh_links"]
    kept, origins = collapse(BY_NAME["mesh_links"], rows, [0, 1])
    assert origins == [1] and kept[0][4] == 0.7
    # ... and the link keeps the earliest time either path saw as established_at.
    assert kept[0][11] == rows[0][11]
