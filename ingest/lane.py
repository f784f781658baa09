"""The fast lane: plain ``metric`` records straight to their rows. Pure: no I/O, no clock.

``metric`` is most of the volume, and the general path (orjson, the pydantic model, the
router) costs 6-7 µs per metric record, most of the worker's CPU. This lane parses and checks
a record in one msgspec call against a struct that states the same rules as
:class:`ingest.events.Metric` and builds the rows ``route`` would build: about 3 µs in all
for the benchmark's records, of which the msgspec call is about 1.

It is an optimisation, never a second contract: it takes a record only when it is sure the
general path would store exactly the same rows, and answers None for everything else
(another kind, any rule broken, an escape sequence, a timestamp outside the clock limits, a
value it cannot re-encode), which sends the record down the general path for its events or
its dead letter with the usual reason. ``tests/unit/test_lane.py`` holds it to that: for every
record it takes, the rows equal ``route(decode(record))``.

What it leaves to the general path, and why:

* any backslash: escapes are where JSON parsers differ (lone surrogates, ``\\u0000``, which
  PostgreSQL cannot store); telemetry rarely needs them;
* timestamps are parsed by the very functions the model uses (``parse_timestamp``), so both
  forms and every refusal behave alike;
* ``node_id`` and ``event_id`` only in the canonical 8-4-4-4-12 form; node ids repeat, so a
  bounded map from text to ``UUID`` spares the parse. The map holds asyncpg's own ``UUID``
  (a ``uuid.UUID`` subclass, equal and hashing alike), which its COPY encoder writes
  without the pure-Python ``.bytes`` (0.2 µs a row less, measured).

The row's timestamp is not a ``datetime`` but the value PostgreSQL stores, microseconds since
2000-01-01 UTC (:func:`ingest.db.pg_micros`), which the worker's ``timestamptz`` codec writes
as it is: epoch milliseconds become it with one multiplication, where building a datetime and
encoding it cost ~1 µs a record. The clock limits are compared in the same unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isfinite
from typing import Annotated, Any, Final, Literal, cast
from uuid import UUID

import msgspec
import orjson
from asyncpg.pgproto.pgproto import UUID as _PgUUID

from ingest.db import pg_micros
from ingest.events.common import (
    INT64_MAX,
    INT64_MIN,
    WIRE_VERSION,
    CompressionAlgorithm,
    LinkState,
    NodeStatus,
    Severity,
    parse_timestamp,
)
from ingest.route import Routed, Row, router_for

# What the lane returns per event: (array index or None, canonical event_id or None, the
# ``metrics`` row). The row's first value is the node id (its ``node_refs`` row) and its last
# the timestamp, as :func:`ingest.db.pg_micros`.
LaneEvent = tuple[int | None, str | None, Row]

# Epoch milliseconds -> pg_micros: ms * 1000 + this.
_UNIX_EPOCH_PG_MICROS: Final = pg_micros(datetime(1970, 1, 1, tzinfo=UTC))
# The earliest moment a datetime holds: below it the general path refuses the timestamp.
_FIRST_PG_MICROS: Final = pg_micros(datetime.min.replace(tzinfo=UTC))

_UUID_TEXT: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
_NODE_CACHE_MAX: Final = 65_536
# An int needle: bytes.__contains__ tries the argument as an int first, and a bytes needle
# costs it a raised and cleared exception (0.37 vs 0.13 µs for a 190-byte record, measured).
_BACKSLASH: Final = ord("\\")


class _Metric(msgspec.Struct, forbid_unknown_fields=False):
    """The ``metric`` rules of :class:`ingest.events.Metric` (unknown fields are ignored)."""

    kind: Literal["metric"]
    node_id: str
    ts: int | str
    metric_type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    metric_name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    metric_value: float
    unit: Annotated[str, msgspec.Meta(max_length=50)] | None = None
    tags: dict[str, Any] | None = None
    v: int = WIRE_VERSION
    event_id: str | None = None


class MetricLane:
    """Decode-and-route for plain metric records; one per worker (it keeps a node-id map)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._decode = msgspec.json.Decoder(_Metric | list[_Metric]).decode
        self._nodes: dict[str, UUID] = {}

    def rows(self, value: bytes | None, latest: int, oldest: int | None) -> list[LaneEvent] | None:
        """The events of ``value`` as rows, or None when the general path must decide.

        ``latest`` is the newest timestamp accepted (now + the clock skew) and ``oldest`` the
        retention horizon of ``metrics``, as in :func:`ingest.decode.decode`, both as
        :func:`ingest.db.pg_micros`.
        """
        # Other kinds cost a failed struct decode, which stops at the first field that does not
        # fit (``kind`` comes first from most publishers): cheaper in all than a substring
        # search of every metric record for "metric".
        if not value or len(value) > self.max_bytes or _BACKSLASH in value:
            return None
        if oldest is None:
            oldest = _FIRST_PG_MICROS
        try:
            parsed = self._decode(value)
            if type(parsed) is _Metric:
                event = self._event(parsed, None, latest, oldest)
                return None if event is None else [event]
            out: list[LaneEvent] = []
            for index, item in enumerate(cast(list[_Metric], parsed)):
                event = self._event(item, index, latest, oldest)
                if event is None:
                    return None
                out.append(event)
            return out
        except Exception:  # refused by the struct, or anything unexpected: not ours to judge
            return None

    def _event(self, m: _Metric, index: int | None, latest: int, oldest: int) -> LaneEvent | None:
        node = self._nodes.get(m.node_id)
        if node is None:
            node = self._new_node(m.node_id)
            if node is None:
                return None
        ts = m.ts
        # Epoch milliseconds by arithmetic: the limits refuse whatever a datetime could not
        # hold (the general path's range error); strings through the model's own parser.
        when = (
            ts * 1000 + _UNIX_EPOCH_PG_MICROS if type(ts) is int else pg_micros(parse_timestamp(ts))
        )
        if when > latest or when < oldest:
            return None
        value = m.metric_value
        if m.v != WIRE_VERSION or not isfinite(value):
            return None
        event_id = m.event_id
        if event_id is not None:
            if _UUID_TEXT(event_id) is None:
                return None
            event_id = event_id.lower()
        tags = m.tags
        # orjson refuses integers beyond 64 bits, which the general path reads as floats:
        # the raise sends such a record there.
        tags_text = None if tags is None else orjson.dumps(tags).decode()
        row = (node, m.metric_type, m.metric_name, value, m.unit, tags_text, when)
        return (index, event_id, row)

    def _new_node(self, text: str) -> UUID | None:
        if _UUID_TEXT(text) is None:
            return None
        if len(self._nodes) >= _NODE_CACHE_MAX:
            self._nodes.clear()
        node = self._nodes[text] = _PgUUID(text)
        return node


# --------------------------------------------------------------------------------------------
# The other high-volume kinds


_I64 = msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)
_Int = Annotated[int, _I64]
_NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_NonNegNumber = Annotated[float, msgspec.Meta(ge=0)]
_UnitInterval = Annotated[float, msgspec.Meta(ge=0, le=1)]
_NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]


class _Base(msgspec.Struct, tag_field="kind", kw_only=True):
    """:class:`ingest.events.common.EventBase`'s fields, ids and times still as sent."""

    node_id: str
    ts: int | str
    v: int = WIRE_VERSION
    event_id: str | None = None


class _MeshEvent(_Base, tag="event", kw_only=True):
    event_type: _NonEmptyStr
    event_name: _NonEmptyStr
    severity: Severity = "info"
    description: str | None = None
    metadata: dict[str, Any] | None = None


class _NodeHeartbeat(_Base, tag="node.heartbeat", kw_only=True):
    status: NodeStatus | None = None


class _LinkProbe(_Base, tag="link.probe", kw_only=True):
    topology_id: str
    remote_node_id: str
    link_state: LinkState = "active"
    quality: _UnitInterval | None = None
    latency_ms: _NonNegNumber | None = None
    bandwidth_mbps: _NonNegNumber | None = None
    packet_loss: _UnitInterval | None = None
    jitter_ms: _NonNegNumber | None = None
    weight: float | None = None
    metadata: dict[str, Any] | None = None


class _RouteMetrics(msgspec.Struct):
    latency: _NonNegNumber | None = None
    bandwidth: _NonNegNumber | None = None
    packet_loss: _UnitInterval | None = None
    jitter: _NonNegNumber | None = None


class _RouteAdvert(_Base, tag="route.advert", kw_only=True):
    destination_id: str
    next_hop_id: str | None = None
    sequence_number: _NonNegInt
    quality: _UnitInterval
    hop_count: _NonNegInt = 1
    flags: _Int = 0
    metrics: _RouteMetrics | None = None


class _CompressionStats(_Base, tag="compression.stats", kw_only=True):
    algorithm: CompressionAlgorithm
    messages_compressed: _NonNegInt | None = None
    original_bytes: _NonNegInt | None = None
    compressed_bytes: _NonNegInt | None = None
    compression_time_ms: _NonNegInt | None = None
    decompression_time_ms: _NonNegInt | None = None
    period_start: int | str
    period_end: int | str


class _BatchStats(_Base, tag="batch.stats", kw_only=True):
    config_id: str
    total_batches: _NonNegInt | None = None
    total_messages: _NonNegInt | None = None
    priority_bypasses: _NonNegInt | None = None
    queue_overflows: _NonNegInt | None = None
    average_batch_size: _NonNegNumber | None = None
    period_start: int | str
    period_end: int | str


_KindStruct = (
    _MeshEvent | _NodeHeartbeat | _LinkProbe | _RouteAdvert | _CompressionStats | _BatchStats
)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What turns one decoded struct into the attributes its router reads."""

    kind: str
    uuids: tuple[str, ...]  # required id fields (node_id first)
    optional_uuids: tuple[str, ...]
    times: tuple[str, ...]  # ts first; the stats kinds' period_start second
    floats: tuple[str, ...]  # must be finite (JSON's 1e400 reads as infinity)
    route: Callable[[Any], Routed]


_SHAPES: Final[dict[type, _Shape]] = {
    cls: _Shape(kind, uuids, optional, times, floats, router_for(kind))
    for cls, kind, uuids, optional, times, floats in [
        (_MeshEvent, "event", ("node_id",), (), ("ts",), ()),
        (_NodeHeartbeat, "node.heartbeat", ("node_id",), (), ("ts",), ()),
        (
            _LinkProbe,
            "link.probe",
            ("node_id", "topology_id", "remote_node_id"),
            (),
            ("ts",),
            ("quality", "latency_ms", "bandwidth_mbps", "packet_loss", "jitter_ms", "weight"),
        ),
        (
            _RouteAdvert,
            "route.advert",
            ("node_id", "destination_id"),
            ("next_hop_id",),
            ("ts",),
            ("quality",),
        ),
        (
            _CompressionStats,
            "compression.stats",
            ("node_id",),
            (),
            ("ts", "period_start", "period_end"),
            (),
        ),
        (
            _BatchStats,
            "batch.stats",
            ("node_id", "config_id"),
            (),
            ("ts", "period_start", "period_end"),
            ("average_batch_size",),
        ),
    ]
}
_ROUTE_METRIC_FIELDS: Final = ("latency", "bandwidth", "packet_loss", "jitter")

# What the kind lane returns per event: (array index or None, kind, canonical event_id or
# None, event time as pg_micros for the origin, the routed rows).
KindLaneEvent = tuple[int | None, str, str | None, int, Routed]


class KindLane:
    """Decode-and-route for ``event``, ``node.heartbeat``, ``link.probe``, ``route.advert``
    and the two stats kinds: the 15 % of records the metric lane leaves, which cost 5-11 µs
    each in the general path (pydantic's validation with a Python call per timestamp, and a
    ``uuid.UUID`` per id).

    The same contract as :class:`MetricLane`: one msgspec call against structs that state the
    rules of the pydantic models (tagged by ``kind``), the model's own timestamp parser, and
    decode's clock, version, self-link and period checks; anything else answers None. The rows
    are built by the kind's router itself (``ingest.route``), handed the struct with its ids
    and times converted, so they cannot drift from the general path's.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._decode = msgspec.json.Decoder(_KindStruct | list[_KindStruct]).decode
        self._ids: dict[str, UUID] = {}

    def rows(
        self,
        value: bytes | None,
        latest: datetime,
        oldest_allowed: Mapping[str, datetime],
    ) -> list[KindLaneEvent] | None:
        """The events of ``value`` with their rows, or None when the general path must decide.

        ``latest`` and ``oldest_allowed`` are decode's limits (:class:`ingest.decode.DecodeLimits`).
        """
        if not value or len(value) > self.max_bytes or _BACKSLASH in value:
            return None
        try:
            parsed = self._decode(value)
            if type(parsed) is not list:
                event = self._event(parsed, None, latest, oldest_allowed)
                return None if event is None else [event]
            out: list[KindLaneEvent] = []
            for index, item in enumerate(parsed):
                event = self._event(item, index, latest, oldest_allowed)
                if event is None:
                    return None
                out.append(event)
            return out
        except Exception:  # refused by a struct, or anything unexpected: not ours to judge
            return None

    def _event(
        self,
        s: Any,
        index: int | None,
        latest: datetime,
        oldest_allowed: Mapping[str, datetime],
    ) -> KindLaneEvent | None:
        shape = _SHAPES[type(s)]
        if s.v != WIRE_VERSION:
            return None
        for name in shape.floats:
            number = getattr(s, name)
            if number is not None and not isfinite(number):
                return None
        metrics = getattr(s, "metrics", None)
        if metrics is not None:
            for name in _ROUTE_METRIC_FIELDS:
                number = getattr(metrics, name)
                if number is not None and not isfinite(number):
                    return None
        event_id = s.event_id
        if event_id is not None:
            if _UUID_TEXT(event_id) is None:
                return None
            event_id = event_id.lower()
        ids = self._ids
        for name in shape.uuids:
            text = getattr(s, name)
            node = ids.get(text)
            if node is None:
                node = self._new_id(text)
                if node is None:
                    return None
            setattr(s, name, node)
        for name in shape.optional_uuids:
            text = getattr(s, name)
            if text is not None:
                node = ids.get(text)
                if node is None:
                    node = self._new_id(text)
                    if node is None:
                        return None
                setattr(s, name, node)
        if shape.kind == "link.probe" and s.remote_node_id == s.node_id:
            return None  # the model's self-link error
        for name in shape.times:
            setattr(s, name, parse_timestamp(getattr(s, name)))
        ts = s.ts
        when = ts if len(shape.times) == 1 else s.period_start
        if len(shape.times) == 3 and s.period_end < when:
            return None  # the model's period-order error
        if ts > latest or when > latest:
            return None
        oldest = oldest_allowed.get(shape.kind)
        if oldest is not None and when < oldest:
            return None
        return (index, shape.kind, event_id, pg_micros(ts), shape.route(s))

    def _new_id(self, text: str) -> UUID | None:
        if _UUID_TEXT(text) is None:
            return None
        if len(self._ids) >= _NODE_CACHE_MAX:
            self._ids.clear()
        node = self._ids[text] = _PgUUID(text)
        return node
