"""The native metric lane: a fetched chunk's plain metric records to COPY rows in one call.

The Python fast lane (:mod:`ingest.lane`) takes a metric record to its row in ~2 µs, and the
worker's bookkeeping and asyncpg's COPY encoding of the row cost as much again; metrics are
85 % of the records. ``ingest._native`` (Rust, ``native/``) does all of it for a whole chunk
in ~0.5 µs a record: it parses and checks the records it is sure about and writes their
``network.metrics`` rows in PostgreSQL's binary COPY format, and names the others, which the
worker hands to the Python lane and the general path one by one as before.

Its rows are the Python lane's rows, byte for byte once encoded (``tests/unit/test_native.py``
holds it to that). A chunk it took keeps its records, so that a flush the database refuses
can *expand* it back into ordinary rows with origins (``Worker._expand``), for the
missing-partition repair and the poison isolation, which work row by row.

The extension is optional: without it (no Rust toolchain where the package was installed)
:data:`metric_rows` is None and every record takes the Python lane.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ingest.decode import DecodeLimits
from ingest.lane import LaneLimits

MetricRows = Callable[
    [list[bytes | None], int, int, int, int],
    tuple[bytes, list[int], list[bytes], int, int | None, int],
]

#: ``(values, latest, oldest, max_bytes, wire_version) -> (rows, refused, nodes, taken,
#: first_ts, size)``, or None without the extension; see ``native/src/lib.rs``.
metric_rows: MetricRows | None
try:
    from ingest._native import metric_rows
except ImportError:  # pragma: no cover - exercised where the extension is not built
    metric_rows = None

# PostgreSQL's binary COPY framing: signature, flags, header extension length; the trailer is
# a tuple count of -1.
COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER: Final = b"\xff\xff"


@dataclass(slots=True)
class NativeChunk:
    """The metric rows the native lane took from one fetched chunk of one partition."""

    topic: str
    partition: int
    #: The chunk's records, all of them (``refused`` names those the lane did not take).
    records: Sequence[Any]
    refused: list[int]
    #: The taken records' rows, binary COPY tuples of ``network.metrics``.
    rows: bytes
    count: int
    #: Distinct node ids of the rows (their ``node_refs``), as asyncpg UUIDs.
    nodes: list[Any]
    #: The first row's event time as :func:`ingest.db.pg_micros`, for the latency histogram.
    first_ts: int
    #: The clock and limits the records were judged by, to judge them alike when expanded.
    now: datetime
    limits: DecodeLimits
    lane_limits: LaneLimits

    def taken(self) -> list[Any]:
        """The records whose rows this chunk holds."""
        if not self.refused:
            return list(self.records)
        refused = set(self.refused)
        return [r for i, r in enumerate(self.records) if i not in refused]


def copy_data(chunks: Sequence[bytes]) -> Any:
    """One binary COPY stream of the given row chunks, as ``copy_to_table``'s source.

    One buffer, sent as it is: an async iterable would cost asyncpg a wait per chunk, and a
    file object a thread hop per read. A memoryview, because asyncpg takes ``bytes`` for a
    path.
    """
    return memoryview(b"".join((COPY_HEADER, *chunks, COPY_TRAILER)))
