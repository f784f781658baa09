"""The benchmark's events, and "the same rows" the raw COPY contender loads.

The generator is our own rather than ``ingest simulate``'s: a benchmark needs a mix it can
state in one line (mostly ``metric``, like real telemetry) and millions of records cheaply,
and it must not change when the simulator's realism is tuned. Every event is SPEC §2 valid.

The raw COPY rows are computed with the worker's own pure stages (decode, route, collapse) over
the *whole* backlog, then turned into the final state of every table: append rows as they are,
latest-state rows collapsed to one per key, placeholders for referenced parents. Loading them
with COPY therefore produces the same table contents the worker ends with, and that is checked
(row counts per table) after both have run.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ingest.decode import DecodeLimits, decode
from ingest.route import Row, route
from ingest.tables import BY_NAME, TARGETS
from ingest.writers import collapse

#: Kind -> share of the records. Mostly metrics, like real mesh telemetry.
MIX: dict[str, float] = {
    "metric": 0.85,
    "event": 0.04,
    "node.heartbeat": 0.03,
    "link.probe": 0.025,
    "route.advert": 0.025,
    "compression.stats": 0.015,
    "batch.stats": 0.015,
}

#: Conventional topic (without the prefix) of each kind, as nodes publish them (SPEC §2).
KIND_TOPIC: dict[str, str] = {
    "metric": "metrics",
    "event": "events",
    "node.heartbeat": "nodes",
    "link.probe": "links",
    "route.advert": "routing",
    "compression.stats": "compression",
    "batch.stats": "batching",
}

_METRIC_NAMES = (
    ("cpu", "usage_percent", "%"),
    ("memory", "rss_bytes", "bytes"),
    ("network", "rx_bytes", "bytes"),
    ("network", "tx_bytes", "bytes"),
    ("queue", "depth", None),
    ("latency", "rtt_ms", "ms"),
)


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record of the backlog."""

    topic: str  # suffix after the prefix, e.g. "metrics"
    key: bytes
    value: bytes


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Workload:
    """Deterministic (per seed) stream of spec-valid events from a mesh of ``nodes`` nodes."""

    def __init__(self, seed: int = 1, nodes: int = 200) -> None:
        self.rng = random.Random(seed)
        self.nodes = [_uuid(self.rng) for _ in range(nodes)]
        self.topology = _uuid(self.rng)
        self.configs = [_uuid(self.rng) for _ in range(8)]
        self.links = [tuple(self.rng.sample(range(nodes), 2)) for _ in range(nodes * 3)]
        self.seq = 0
        kinds = list(MIX)
        weights = [MIX[k] for k in kinds]
        # One draw table per run instead of rng.choices per event: cheaper by half.
        self._kinds = self.rng.choices(kinds, weights=weights, k=4096)

    def event(self, i: int, ts_ms: int) -> dict[str, Any]:
        rng = self.rng
        kind = self._kinds[i % len(self._kinds)] if i % 7 else rng.choice(self._kinds)
        node = self.nodes[rng.randrange(len(self.nodes))]
        # Publishers mix both timestamp forms (SPEC §2); a third send RFC 3339 strings.
        ts: Any = ts_ms
        if i % 3 == 0:
            ts = datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")
        e: dict[str, Any] = {"kind": kind, "node_id": node, "ts": ts}
        if kind == "metric":
            mtype, name, unit = _METRIC_NAMES[rng.randrange(len(_METRIC_NAMES))]
            e |= {"metric_type": mtype, "metric_name": name, "metric_value": rng.random() * 100}
            if unit:
                e["unit"] = unit
            if i % 5 == 0:
                e["tags"] = {"region": "eu-west", "rack": rng.randrange(8)}
        elif kind == "event":
            e |= {
                "event_type": "link",
                "event_name": rng.choice(("link_up", "link_down", "peer_joined")),
                "severity": rng.choice(("info", "info", "warning", "error")),
                "description": "synthetic event",
                "metadata": {"attempt": rng.randrange(5)},
            }
        elif kind == "node.heartbeat":
            if i % 4 == 0:
                e["status"] = "active"
        elif kind == "link.probe":
            a, b = self.links[rng.randrange(len(self.links))]
            e |= {
                "node_id": self.nodes[a],
                "topology_id": self.topology,
                "remote_node_id": self.nodes[b],
                "quality": round(rng.random(), 3),
                "latency_ms": rng.random() * 80,
                "bandwidth_mbps": rng.random() * 1000,
                "packet_loss": rng.random() * 0.05,
                "jitter_ms": rng.random() * 5,
            }
        elif kind == "route.advert":
            a, b = self.links[rng.randrange(len(self.links))]
            self.seq += 1
            hop = None if i % 3 == 0 else self.nodes[rng.randrange(len(self.nodes))]
            if hop in (self.nodes[a], self.nodes[b]):
                hop = None
            e |= {
                "node_id": self.nodes[a],
                "destination_id": self.nodes[b],
                "next_hop_id": hop,
                "sequence_number": self.seq,
                "quality": round(rng.random(), 3),
                "hop_count": 1 if hop is None else rng.randrange(2, 6),
                "metrics": {"latency": rng.random() * 50, "packet_loss": rng.random() * 0.02},
            }
        elif kind == "compression.stats":
            start = datetime.fromtimestamp(ts_ms / 1000 - 60, UTC).isoformat()
            end = datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat()
            original = rng.randrange(10_000, 1_000_000)
            e |= {
                "algorithm": rng.choice(("gzip", "lz4", "zstd")),
                "messages_compressed": rng.randrange(1, 500),
                "original_bytes": original,
                "compressed_bytes": original // rng.randrange(2, 6),
                "compression_time_ms": rng.randrange(100),
                "period_start": start,
                "period_end": end,
            }
        elif kind == "batch.stats":
            start = datetime.fromtimestamp(ts_ms / 1000 - 60, UTC).isoformat()
            end = datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat()
            e |= {
                "config_id": self.configs[rng.randrange(len(self.configs))],
                "total_batches": rng.randrange(1, 100),
                "total_messages": rng.randrange(100, 10_000),
                "average_batch_size": rng.random() * 100,
                "period_start": start,
                "period_end": end,
            }
        return e

    def records(self, count: int, *, start_ms: int, step_ms: float) -> Iterator[Record]:
        """``count`` records; event ``i`` was observed at ``start_ms + i * step_ms``."""
        for i in range(count):
            e = self.event(i, int(start_ms + i * step_ms))
            yield Record(KIND_TOPIC[e["kind"]], e["node_id"].encode(), orjson.dumps(e))


def backlog_clock(count: int, now: datetime | None = None) -> tuple[int, float]:
    """(start_ms, step_ms) that put ``count`` events in the last ten minutes, all in the past
    (decode rejects events more than 5 minutes in the future) and inside the partitions the
    migration creates around now."""
    now = now or datetime.now(UTC)
    span_ms = 9 * 60 * 1000
    start = now - timedelta(minutes=10)
    return int(start.timestamp() * 1000), span_ms / max(count, 1)


#: Deliberately bad values, one per decode reason a publisher can cause.
_MALFORMED: tuple[bytes, ...] = (
    b'{"kind": "metric", "node_id": ',  # invalid_json
    b'[1, "x"]',  # invalid_envelope (two elements, two dead letters)
    b'{"kind": "metric.v9", "node_id": "00000000-0000-4000-8000-000000000001", "ts": 1}',
    b'{"kind": "metric", "v": 2, "node_id": "00000000-0000-4000-8000-000000000001", "ts": 1}',
    b'{"kind": "metric", "node_id": "not-a-uuid", "ts": 1700000000000,'
    b' "metric_type": "cpu", "metric_name": "x", "metric_value": "high"}',  # validation_failed
)


def with_malformed(records: Sequence[Record], fraction: float) -> list[Record]:
    """The same backlog with every ``1/fraction``-th record replaced by a bad one, so the
    malformed run has as many records (and Kafka bytes) as the clean one."""
    if fraction <= 0:
        return list(records)
    every = max(1, round(1 / fraction))
    out = list(records)
    for n, i in enumerate(range(every - 1, len(out), every)):
        out[i] = Record(out[i].topic, out[i].key, _MALFORMED[n % len(_MALFORMED)])
    return out


# -- the raw COPY side ----------------------------------------------------------------------


@dataclass
class TableLoad:
    """Rows for one ``\\copy``: a table, the columns given, and the rows in COPY text format."""

    table: str  # schema-qualified
    columns: tuple[str, ...]
    lines: list[str]


def _text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        inner = ",".join(
            "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in value
        )
        return _escape("{" + inner + "}")
    return _escape(str(value))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _line(values: Sequence[Any]) -> str:
    return "\t".join(_text(v) for v in values)


def final_rows(values: Sequence[bytes], now: datetime | None = None) -> list[TableLoad]:
    """What the tables hold after ingesting ``values`` in order, as COPY loads (parents first).

    Mirrors the worker's writers, but over the whole backlog at once: the result is the same
    final state, which is exactly what a bulk load of this data would have to produce.
    """
    now = now or datetime.now(UTC)
    limits = DecodeLimits()
    by_target: dict[str, list[Row]] = defaultdict(list)
    for value in values:
        for _, event in decode(value, now, limits).events:
            for name, row in route(event):
                by_target[name].append(row)
    rows: dict[str, list[Row]] = {}
    for target in TARGETS:
        got = by_target.get(target.name, [])
        rows[target.name] = collapse(target, got, list(range(len(got))))[0] if got else []

    loads: list[TableLoad] = []

    def add(table: str, columns: Sequence[str], items: Sequence[Sequence[Any]]) -> None:
        if items:
            loads.append(TableLoad(table, tuple(columns), [_line(r) for r in items]))

    # nodes: announced state, then heartbeats, then bare placeholders for the rest. Rows are
    # grouped by which columns they carry so the table's defaults fill the others, as the
    # worker's INSERTs leave them.
    nodes_cols = BY_NAME["nodes"].columns
    announced = {r[0]: dict(zip(nodes_cols, r, strict=True)) for r in rows["nodes"]}
    for state in announced.values():
        state["last_seen"] = state["status_at"] = state["announced_at"]
    beats = {r[0]: r for r in rows["node_heartbeats"]}  # (node_id, status, seen_at, status_at)
    for node_id, (_, status, seen_at, status_at) in beats.items():
        held = announced.get(node_id)
        if held is None:
            continue
        state = held
        state["last_seen"] = max(state["last_seen"], seen_at)
        if status_at is not None and status_at >= state["status_at"]:
            state["status"], state["status_at"] = status, status_at
    if announced:
        cols = (*nodes_cols, "last_seen", "status_at")
        add("network.nodes", cols, [[s[c] for c in cols] for s in announced.values()])
    beat_only = [b for n, b in beats.items() if n not in announced]
    add(
        "network.nodes",
        ("node_id", "status", "status_at", "last_seen"),
        [(n, s or "connecting", sa, seen) for n, s, seen, sa in beat_only],
    )
    have = set(announced) | set(beats)
    add("network.nodes", ("node_id",), [r for r in rows["node_refs"] if r[0] not in have])

    def with_placeholders(name: str, refs: str, ref_cols: Sequence[str]) -> None:
        target = BY_NAME[name]
        assert target.table is not None
        add(f"network.{target.table}", target.columns, rows[name])
        known = {r[0] for r in rows[name]}
        add(f"network.{target.table}", ref_cols, [r for r in rows[refs] if r[0] not in known])

    with_placeholders("mesh_topologies", "topology_refs", ("topology_id",))
    add("network.mesh_links", BY_NAME["mesh_links"].columns, rows["mesh_links"])

    # Routing entries get their ids here so that their metrics can reference them.
    routes = BY_NAME["routing_entries"]
    entry_ids = {r[:3]: str(uuid.uuid4()) for r in rows["routing_entries"]}
    add(
        "network.routing_entries",
        ("entry_id", *routes.columns),
        [(entry_ids[r[:3]], *r) for r in rows["routing_entries"]],
    )
    add(
        "network.routing_metrics",
        ("entry_id", "metric_type", "metric_value", "recorded_at"),
        [(entry_ids[r[:3]], *r[3:]) for r in rows["routing_metrics"] if r[:3] in entry_ids],
    )
    add("ingest.route_marks", ("node_id", "destination_id"), rows["route_marks"])
    with_placeholders("connection_pools", "pool_refs", ("pool_id", "node_id"))
    for name in ("connections", "optimization_params"):
        add(f"network.{name}", BY_NAME[name].columns, rows[name])
    with_placeholders("batch_configs", "config_refs", ("config_id", "node_id"))
    for name in ("dns_cache", "service_registry", "metrics", "events"):
        add(f"network.{name}", BY_NAME[name].columns, rows[name])
    add(
        "network.compression_stats", BY_NAME["compression_stats"].columns, rows["compression_stats"]
    )
    add("network.batch_metrics", BY_NAME["batch_metrics"].columns, rows["batch_metrics"])
    return loads


def write_copy_script(loads: Sequence[TableLoad], directory: Path) -> Path:
    """One data file per load and a psql script that ``\\copy``s them all in one transaction."""
    directory.mkdir(parents=True, exist_ok=True)
    script = ["\\set ON_ERROR_STOP on", "BEGIN;"]
    for n, load in enumerate(loads):
        path = directory / f"{n:02d}_{load.table}.tsv"
        path.write_text("\n".join(load.lines) + "\n", encoding="utf-8")
        cols = ", ".join(load.columns)
        script.append(f"\\copy {load.table} ({cols}) FROM '{path}' WITH (FORMAT text)")
    script.append("COMMIT;")
    out = directory / "load.sql"
    out.write_text("\n".join(script) + "\n", encoding="utf-8")
    return out


#: Tables whose row counts are compared between contenders (the ones the workload touches).
COUNTED_TABLES: tuple[str, ...] = (
    "network.nodes",
    "network.mesh_topologies",
    "network.mesh_links",
    "network.routing_entries",
    "network.routing_metrics",
    "network.batch_configs",
    "network.metrics",
    "network.events",
    "network.compression_stats",
    "network.batch_metrics",
)
