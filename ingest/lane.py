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
from datetime import UTC, datetime
from math import isfinite
from typing import Annotated, Any, Final, Literal, cast
from uuid import UUID

import msgspec
import orjson
from asyncpg.pgproto.pgproto import UUID as _PgUUID

from ingest.db import pg_micros
from ingest.events.common import WIRE_VERSION, parse_timestamp
from ingest.route import Row

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
