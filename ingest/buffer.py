"""Per-target row buffers and the flush policy. No I/O.

Everything read from Kafka since the last flush lives here until one flush transaction writes
it: rows per target, dead letters from decoding, and the next offset of every partition the
rows came from. Each row remembers its *origin* (the record and array element it came from),
so that a row the database refuses can be traced back and dead-lettered on its own, taking
every other row of the same element with it and nothing else.

A flush is due when the buffer holds ``max_rows`` rows, ``max_bytes`` of record values, or its
oldest row is ``max_age_ms`` old. It is *ripe* once its oldest row is ``min_age_ms`` old: the
worker flushes a ripe buffer whenever no other flush is in flight (group commit), so that
latency is about one flush when the database keeps up, and batches grow towards the limits
by themselves when it does not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from ingest.decode import DeadLetter
from ingest.route import Routed, Row
from ingest.tables import BY_NAME, Target

if TYPE_CHECKING:
    from ingest.native import NativeChunk

TopicPartition = tuple[str, int]


class Origin(NamedTuple):
    """Where one event (or one array element) came from.

    A named tuple rather than a dataclass: one is built per event, and a tuple is the
    cheapest object Python builds (``add_metric`` skips even the generated ``__new__``).
    """

    topic: str
    partition: int
    offset: int
    element_index: int | None
    payload: bytes | None
    key: bytes | None
    kind: str | None
    event_id: str | None
    #: Event time as :func:`ingest.db.pg_micros`, for the end-to-end latency histogram.
    ts: int | None = None


# Origin(*fields) without the generated __new__'s argument handling, for the hot path.
_tuple_new: Any = tuple.__new__


@dataclass(slots=True)
class DeadLetterRow:
    origin: Origin
    reason: str
    detail: str


@dataclass(slots=True)
class TargetRows:
    target: Target
    rows: list[Row] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Batch:
    """What one flush writes: taken from the buffer whole."""

    targets: dict[str, TargetRows]
    origins: list[Origin]
    dead: list[DeadLetterRow]
    #: Offset to store per partition after this batch (last offset + 1).
    next_offsets: dict[TopicPartition, int]
    records: int
    value_bytes: int
    records_per_topic: dict[str, int]
    first_added: float
    #: Metric rows the native lane encoded already (see ingest.native); each also has a
    #: ``node_refs`` row per distinct node.
    chunks: list[NativeChunk] = field(default_factory=list)

    def rows(self) -> int:
        return sum(len(t.rows) for t in self.targets.values()) + sum(
            2 * c.count for c in self.chunks
        )

    def merge(self, other: Batch) -> None:
        """Add ``other``'s rows, origins and dead letters (not its offsets or counts: the
        records were counted once already)."""
        base = len(self.origins)
        self.origins.extend(other.origins)
        for name, tr in other.targets.items():
            mine = self.targets.get(name)
            if mine is None:
                mine = self.targets[name] = TargetRows(tr.target)
            mine.rows.extend(tr.rows)
            mine.origins.extend(o + base for o in tr.origins)
        self.dead.extend(other.dead)

    def drop_origins(self, bad: set[int]) -> None:
        """Remove every row that came from one of the ``bad`` origins."""
        for tr in self.targets.values():
            if not any(o in bad for o in tr.origins):
                continue
            keep = [i for i, o in enumerate(tr.origins) if o not in bad]
            tr.rows = [tr.rows[i] for i in keep]
            tr.origins = [tr.origins[i] for i in keep]


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    max_rows: int = 100_000
    max_bytes: int = 16 * 1024 * 1024
    max_age_ms: int = 500
    min_age_ms: int = 100


def _array_elements(payload: bytes | None) -> list[Any] | None:
    if payload is None:
        return None
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


class Buffer:
    def __init__(self, policy: FlushPolicy) -> None:
        self.policy = policy
        self._reset()

    def _reset(self) -> None:
        self._targets: dict[str, TargetRows] = {}
        self._origins: list[Origin] = []
        self._dead: list[DeadLetterRow] = []
        self._next: dict[TopicPartition, int] = {}
        self._records = 0
        self._bytes = 0
        self._rows = 0
        self._per_topic: dict[str, int] = {}
        self._first_added = 0.0
        self._chunks: list[NativeChunk] = []

    # -- filling -------------------------------------------------------------------------------

    def note_records(
        self, topic: str, partition: int, count: int, size: int, next_offset: int
    ) -> None:
        """Count ``count`` consumed records of ``size`` bytes in all, the last of them just
        before ``next_offset``; once per fetched chunk rather than per record."""
        if count == 0:
            return
        if self._records == 0:
            self._first_added = time.monotonic()
        self._records += count
        self._bytes += size
        self._per_topic[topic] = self._per_topic.get(topic, 0) + count
        self._next[(topic, partition)] = next_offset

    def add_rows(self, origin: Origin, routed: Routed) -> None:
        index = len(self._origins)
        self._origins.append(origin)
        targets = self._targets
        for name, row in routed:
            tr = targets.get(name)
            if tr is None:
                tr = targets[name] = TargetRows(BY_NAME[name])
            tr.rows.append(row)
            tr.origins.append(index)
        self._rows += len(routed)

    def add_metric(
        self,
        topic: str,
        partition: int,
        offset: int,
        element_index: int | None,
        payload: bytes | None,
        key: bytes | None,
        event_id: str | None,
        row: Row,
    ) -> None:
        """``add_rows`` for the fast lane's event: its ``metrics`` row and the node reference
        (``row[0]``) that ``route`` would emit, and its origin built here from its fields
        (``row[6]`` is the event time): one call per event, no pairs, no keywords."""
        origins = self._origins
        index = len(origins)
        origins.append(
            _tuple_new(
                Origin,
                (topic, partition, offset, element_index, payload, key, "metric", event_id, row[6]),
            )
        )
        targets = self._targets
        metrics = targets.get("metrics")
        if metrics is None:
            metrics = targets["metrics"] = TargetRows(BY_NAME["metrics"])
        refs = targets.get("node_refs")
        if refs is None:
            refs = targets["node_refs"] = TargetRows(BY_NAME["node_refs"])
        metrics.rows.append(row)
        metrics.origins.append(index)
        refs.rows.append((row[0],))
        refs.origins.append(index)
        self._rows += 2

    def add_native(self, chunk: NativeChunk) -> None:
        """A chunk of rows the native lane encoded; its records are counted by
        ``note_records`` like any others."""
        self._chunks.append(chunk)
        self._rows += 2 * chunk.count

    def add_dead_letters(self, origin_base: Origin, dead: Sequence[DeadLetter]) -> None:
        elements = (
            _array_elements(origin_base.payload)
            if any(d.element_index is not None for d in dead)
            else None
        )
        for d in dead:
            payload = origin_base.payload
            if d.element_index is not None and elements is not None:
                # The element's own bytes, not the whole array: an array of many bad elements
                # would otherwise store the whole value once per element.
                payload = orjson.dumps(elements[d.element_index])
            origin = Origin(
                origin_base.topic,
                origin_base.partition,
                origin_base.offset,
                d.element_index,
                payload,
                origin_base.key,
                d.kind,
                d.event_id,
            )
            self._dead.append(DeadLetterRow(origin, d.reason, d.detail))
            self._rows += 1

    # -- policy --------------------------------------------------------------------------------

    @property
    def records(self) -> int:
        return self._records

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def value_bytes(self) -> int:
        return self._bytes

    def age_ms(self, now: float | None = None) -> float:
        if self._records == 0:
            return 0.0
        return ((now if now is not None else time.monotonic()) - self._first_added) * 1000.0

    def full(self) -> bool:
        return self._rows >= self.policy.max_rows or self._bytes >= self.policy.max_bytes

    def due(self, now: float | None = None) -> bool:
        if self._records == 0:
            return False
        return self.full() or self.age_ms(now) >= self.policy.max_age_ms

    def ripe(self, now: float | None = None) -> bool:
        return self._records > 0 and self.age_ms(now) >= self.policy.min_age_ms

    def time_to_due_ms(self, now: float | None = None, *, ripe: bool = False) -> float:
        """How long until the age limit makes a flush due (for the poll timeout); with
        ``ripe``, until the buffer is ripe."""
        limit = self.policy.min_age_ms if ripe else self.policy.max_age_ms
        if self._records == 0:
            return float(limit)
        return max(0.0, limit - self.age_ms(now))

    def fill(self) -> dict[str, Any]:
        """Buffer fill per limit, 0..1+, for the buffer-fill gauge."""
        return {
            "rows": self._rows / self.policy.max_rows,
            "bytes": self._bytes / self.policy.max_bytes,
        }

    # -- draining ------------------------------------------------------------------------------

    def take(self) -> Batch:
        """Hand everything over as one batch and start empty."""
        batch = Batch(
            targets=self._targets,
            origins=self._origins,
            dead=self._dead,
            next_offsets=self._next,
            records=self._records,
            value_bytes=self._bytes,
            records_per_topic=self._per_topic,
            first_added=self._first_added,
            chunks=self._chunks,
        )
        self._reset()
        return batch

    def clear(self) -> None:
        """Drop everything (the partitions were lost; the successor re-reads them)."""
        self._reset()
