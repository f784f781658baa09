"""The fast lane: plain records of the high-volume kinds straight to their rows. Pure: no I/O,
no clock.

The general path (orjson, the pydantic model, the router) costs 6-8 µs a record, and the
worker reads little else. This lane parses and checks a record in one msgspec call against
structs that state the same rules as the models of ``metric``, ``event``, ``node.heartbeat``,
``link.probe``, ``route.advert``, ``compression.stats`` and ``batch.stats`` (tagged by ``kind``,
so one call also picks the kind), and builds the rows ``route`` would build.

It is an optimisation, never a second contract: it takes a record only when it is sure the
general path would store exactly the same rows, and answers None for everything else
(another kind, any rule broken, an escape sequence, a timestamp outside the clock limits, a
value it cannot re-encode), which sends the record down the general path for its events or
its dead letter with the usual reason. ``tests/unit/test_lane.py`` (metrics) and
``tests/unit/test_kind_lane.py`` (the other kinds) hold it to that: for every record it takes,
the rows equal ``route(decode(record))``.

What it leaves to the general path, and why:

* any backslash: escapes are where JSON parsers differ (lone surrogates, ``\\u0000``, which
  PostgreSQL cannot store); telemetry rarely needs them;
* timestamps are parsed by the very functions the model uses (``parse_timestamp``), so both
  forms and every refusal behave alike;
* ids only in the canonical 8-4-4-4-12 form; ids repeat, so a bounded map from text to
  ``UUID`` spares the parse. The map holds asyncpg's own ``UUID`` (a ``uuid.UUID`` subclass,
  equal and hashing alike), which its COPY encoder writes without the pure-Python ``.bytes``
  (0.2 µs a row less, measured).

``metric`` (85 % of the volume; most of it takes the native lane, :mod:`ingest.native`, and
comes here only in the shapes that one leaves alone) has rows built here, by hand; its
timestamp is not a ``datetime`` but the value PostgreSQL stores, microseconds since 2000-01-01
UTC (:func:`ingest.db.pg_micros`), which the worker's ``timestamptz`` codec writes as it is:
epoch milliseconds become it with one multiplication, where building a datetime and encoding it
cost ~1 µs a record. Its clock limits are compared in the same unit. The other kinds' structs
are handed, ids and times converted as the model converts them, to the kind's own router
(their rows keep datetimes: the upserts compare them with the general path's rows when they
collapse a batch).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isfinite
from typing import Annotated, Any, Final

import msgspec
import orjson
from asyncpg.pgproto.pgproto import UUID as _PgUUID

from ingest.db import UNIX_EPOCH_PG_MICROS, pg_micros
from ingest.decode import DecodeLimits
from ingest.events.common import (
    INT64_MAX,
    INT64_MIN,
    WIRE_VERSION,
    CompressionAlgorithm,
    LinkState,
    NodeStatus,
    Severity,
    epoch_ms,
    parse_timestamp,
)
from ingest.route import Routed, Row, router_for

# A metric event: (array index or None, canonical event_id or None, the ``metrics`` row). The
# row's first value is the node id (its ``node_refs`` row) and its last the timestamp, as
# :func:`ingest.db.pg_micros`.
LaneEvent = tuple[int | None, str | None, Row]
# Any other kind's event: (array index or None, kind, canonical event_id or None, event time
# as pg_micros for its origin, the routed rows).
KindLaneEvent = tuple[int | None, str, str | None, int, Routed]

# The earliest moment a datetime holds: below it the general path refuses the timestamp.
_FIRST_PG_MICROS: Final = pg_micros(datetime.min.replace(tzinfo=UTC))

_UUID_TEXT: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch
_ID_CACHE_MAX: Final = 65_536
# An int needle: bytes.__contains__ tries the argument as an int first, and a bytes needle
# costs it a raised and cleared exception (0.37 vs 0.13 µs for a 190-byte record, measured).
_BACKSLASH: Final = ord("\\")


@dataclass(frozen=True, slots=True)
class LaneLimits:
    """Decode's clock limits at one moment, in the forms the lane compares them in."""

    #: The newest event time accepted (now + the clock skew), as pg_micros and as a datetime.
    latest: int
    latest_dt: datetime
    #: The retention horizon of ``metrics`` as pg_micros (the year 1 without one).
    oldest_metric: int
    oldest_allowed: Mapping[str, datetime]

    @classmethod
    def at(cls, limits: DecodeLimits, now: datetime) -> LaneLimits:
        latest = limits.latest(now)
        oldest = limits.oldest_allowed.get("metric")
        return cls(
            latest=pg_micros(latest),
            latest_dt=latest,
            oldest_metric=_FIRST_PG_MICROS if oldest is None else pg_micros(oldest),
            oldest_allowed=limits.oldest_allowed,
        )


# --------------------------------------------------------------------------------------------
# The structs: each states its model's rules (ingest.events); unknown fields are ignored.

_Int = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
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


class _Metric(_Base, tag="metric", kw_only=True):
    metric_type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    metric_name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    metric_value: float
    unit: Annotated[str, msgspec.Meta(max_length=50)] | None = None
    tags: dict[str, Any] | None = None


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


_Laned = (
    _Metric
    | _MeshEvent
    | _NodeHeartbeat
    | _LinkProbe
    | _RouteAdvert
    | _CompressionStats
    | _BatchStats
)


def _finite(*numbers: float | None) -> bool:
    """No infinity among ``numbers`` (JSON's ``1e400`` reads as one; the models refuse it)."""
    # A loop rather than all() over a generator, which costs as much again.
    for n in numbers:  # noqa: SIM110
        if n is not None and not isfinite(n):
            return False
    return True


def _moment(value: int | str) -> datetime:
    # Epoch milliseconds straight to the model's converter, skipping the type dispatch.
    return epoch_ms(value) if type(value) is int else parse_timestamp(value)


class FastLane:
    """Decode-and-route for plain records of the laned kinds; one per worker (it keeps an
    id map)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._decode = msgspec.json.Decoder(_Laned | list[_Laned]).decode
        self._ids: dict[str, _PgUUID] = {}
        self._raw_ids: dict[bytes, _PgUUID] = {}
        # Per kind (bar metric): its name, what converts the kind's own fields (returning the
        # event time decode checks, or None to refuse), and its router.
        self._kinds: dict[type, tuple[str, Callable[[Any], datetime | None] | None, Any]] = {
            _MeshEvent: ("event", None, router_for("event")),
            _NodeHeartbeat: ("node.heartbeat", None, router_for("node.heartbeat")),
            _LinkProbe: ("link.probe", self._link_probe, router_for("link.probe")),
            _RouteAdvert: ("route.advert", self._route_advert, router_for("route.advert")),
            _CompressionStats: ("compression.stats", self._stats, router_for("compression.stats")),
            _BatchStats: ("batch.stats", self._batch_stats, router_for("batch.stats")),
        }

    def rows(
        self, value: bytes | None, limits: LaneLimits
    ) -> list[LaneEvent | KindLaneEvent] | None:
        """The events of ``value`` with their rows, or None when the general path must decide.

        A metric event is a :data:`LaneEvent` (3 items), any other a :data:`KindLaneEvent`.
        """
        if not value or len(value) > self.max_bytes or _BACKSLASH in value:
            return None
        try:
            parsed = self._decode(value)
            if type(parsed) is _Metric:
                metric = self._metric(parsed, None, limits)
                return None if metric is None else [metric]
            if type(parsed) is not list:
                event = self._event(parsed, None, limits)
                return None if event is None else [event]
            out: list[LaneEvent | KindLaneEvent] = []
            for index, item in enumerate(parsed):
                taken = (
                    self._metric(item, index, limits)
                    if type(item) is _Metric
                    else self._event(item, index, limits)
                )
                if taken is None:
                    return None
                out.append(taken)
            return out
        except Exception:  # refused by a struct, or anything unexpected: not ours to judge
            return None

    def node_id(self, raw: bytes) -> _PgUUID:
        """A node id from its 16 bytes (the native lane's), from a bounded map like ``_id``."""
        found = self._raw_ids.get(raw)
        if found is None:
            if len(self._raw_ids) >= _ID_CACHE_MAX:
                self._raw_ids.clear()
            found = self._raw_ids[raw] = _PgUUID(raw)
        return found

    def _id(self, text: str) -> _PgUUID | None:
        found = self._ids.get(text)
        if found is not None:
            return found
        if _UUID_TEXT(text) is None:
            return None
        if len(self._ids) >= _ID_CACHE_MAX:
            self._ids.clear()
        found = self._ids[text] = _PgUUID(text)
        return found

    def _metric(self, m: _Metric, index: int | None, limits: LaneLimits) -> LaneEvent | None:
        # The map's hit inline (85 % of records come here); _id for a miss.
        node = self._ids.get(m.node_id)
        if node is None:
            node = self._id(m.node_id)
            if node is None:
                return None
        ts = m.ts
        # Epoch milliseconds by arithmetic: the limits refuse whatever a datetime could not
        # hold (the general path's range error); strings through the model's own parser.
        when = (
            ts * 1000 + UNIX_EPOCH_PG_MICROS if type(ts) is int else pg_micros(parse_timestamp(ts))
        )
        if when > limits.latest or when < limits.oldest_metric:
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

    def _event(self, s: Any, index: int | None, limits: LaneLimits) -> KindLaneEvent | None:
        """Any laned kind but metric: decode's checks, then the kind's router."""
        kind, convert, router = self._kinds[type(s)]
        if s.v != WIRE_VERSION:
            return None
        event_id = s.event_id
        if event_id is not None:
            if _UUID_TEXT(event_id) is None:
                return None
            event_id = event_id.lower()
        node = self._id(s.node_id)
        if node is None:
            return None
        s.node_id = node
        sent = s.ts
        ts = s.ts = _moment(sent)
        when = ts if convert is None else convert(s)
        if when is None:
            return None
        latest = limits.latest_dt
        if ts > latest or when > latest:
            return None
        oldest = limits.oldest_allowed.get(kind)
        if oldest is not None and when < oldest:
            return None
        at = sent * 1000 + UNIX_EPOCH_PG_MICROS if type(sent) is int else pg_micros(ts)
        return (index, kind, event_id, at, router(s))

    # What each kind converts beyond the common fields, with its model's own refusals.

    def _link_probe(self, s: _LinkProbe) -> datetime | None:
        topology, remote = self._id(s.topology_id), self._id(s.remote_node_id)
        if topology is None or remote is None or remote == s.node_id:  # a self-link
            return None
        if not _finite(
            s.quality, s.latency_ms, s.bandwidth_mbps, s.packet_loss, s.jitter_ms, s.weight
        ):
            return None
        s.topology_id, s.remote_node_id = topology, remote  # type: ignore[assignment]
        return s.ts  # type: ignore[return-value]

    def _route_advert(self, s: _RouteAdvert) -> datetime | None:
        destination = self._id(s.destination_id)
        if destination is None:
            return None
        if s.next_hop_id is not None:
            hop = self._id(s.next_hop_id)
            if hop is None:
                return None
            s.next_hop_id = hop  # type: ignore[assignment]
        m = s.metrics
        if m is not None and not _finite(m.latency, m.bandwidth, m.packet_loss, m.jitter):
            return None
        s.destination_id = destination  # type: ignore[assignment]
        return s.ts  # type: ignore[return-value]

    def _stats(self, s: _CompressionStats | _BatchStats) -> datetime | None:
        start, end = _moment(s.period_start), _moment(s.period_end)
        if end < start:  # the model's period-order error
            return None
        s.period_start, s.period_end = start, end  # type: ignore[assignment]
        return start

    def _batch_stats(self, s: _BatchStats) -> datetime | None:
        config = self._id(s.config_id)
        if config is None or not _finite(s.average_batch_size):
            return None
        s.config_id = config  # type: ignore[assignment]
        return self._stats(s)
