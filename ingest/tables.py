"""What the sink writes: every target, its columns in write order, and how it is written.

A *target* is what the router fills and the sink drains. Most targets are a table of the
``network`` schema; a few are staging shapes that the sink turns into SQL of their own
(heartbeats update ``nodes``, routing metrics are joined to their entry, references become
placeholder rows).

Write policies:

* ``append`` — COPY straight into the (partitioned) table.
* ``upsert`` — latest state per key: the batch is collapsed to the newest row per key in
  Python, COPYed into a temporary table, then applied with one ``INSERT … SELECT … ORDER BY key
  ON CONFLICT (key) DO UPDATE … WHERE <incoming is newer>``. The ORDER BY makes every replica
  lock rows in the same order, so concurrent flushes never deadlock.
* ``special`` — a staging shape with its own statement in the sink.

``newer`` names the columns that order two states of one key: the row with the greater tuple
wins, and on a tie the one that arrived later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Policy = Literal["append", "upsert", "special"]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    columns: tuple[str, ...]
    policy: Policy
    key: tuple[str, ...] = ()
    newer: tuple[str, ...] = ()
    #: The ``network`` table written (None for pure staging shapes).
    table: str | None = None
    #: Partition key of an append table.
    time_column: str | None = None
    #: Column types of the staging temp table, for targets that do not mirror a table.
    staging_types: dict[str, str] = field(default_factory=dict)

    def index(self, column: str) -> int:
        return self.columns.index(column)


NODE_REFS = Target(
    "node_refs", ("node_id",), "special", key=("node_id",), staging_types={"node_id": "uuid"}
)
TOPOLOGY_REFS = Target(
    "topology_refs",
    ("topology_id",),
    "special",
    key=("topology_id",),
    staging_types={"topology_id": "uuid"},
)
POOL_REFS = Target(
    "pool_refs",
    ("pool_id", "node_id"),
    "special",
    key=("pool_id",),
    staging_types={"pool_id": "uuid", "node_id": "uuid"},
)
CONFIG_REFS = Target(
    "config_refs",
    ("config_id", "node_id"),
    "special",
    key=("config_id",),
    staging_types={"config_id": "uuid", "node_id": "uuid"},
)

NODES = Target(
    "nodes",
    (
        "node_id",
        "node_name",
        "node_type",
        "role",
        "address",
        "port",
        "public_key",
        "capabilities",
        "metadata",
        "status",
        "announced_at",
    ),
    "upsert",
    key=("node_id",),
    newer=("announced_at",),
    table="nodes",
)
HEARTBEATS = Target(
    "node_heartbeats",
    ("node_id", "status", "seen_at"),
    "special",
    key=("node_id",),
    newer=("seen_at",),
    staging_types={"node_id": "uuid", "status": "text", "seen_at": "timestamptz"},
)
TOPOLOGIES = Target(
    "mesh_topologies",
    (
        "topology_id",
        "mesh_name",
        "topology_type",
        "configuration",
        "optimization_enabled",
        "learning_rate",
        "connectivity_threshold",
        "max_connections_per_node",
        "status",
        "observed_at",
    ),
    "upsert",
    key=("topology_id",),
    newer=("observed_at",),
    table="mesh_topologies",
)
LINKS = Target(
    "mesh_links",
    (
        "topology_id",
        "local_node_id",
        "remote_node_id",
        "link_state",
        "quality",
        "latency_ms",
        "bandwidth_mbps",
        "packet_loss",
        "jitter_ms",
        "weight",
        "last_probe",
        "established_at",
        "metadata",
    ),
    "upsert",
    key=("topology_id", "local_node_id", "remote_node_id"),
    newer=("last_probe",),
    table="mesh_links",
)
ROUTES = Target(
    "routing_entries",
    (
        "node_id",
        "destination_id",
        "next_hop_id",
        "sequence_number",
        "quality",
        "hop_count",
        "flags",
        "last_seen",
    ),
    "upsert",
    key=("node_id", "destination_id", "next_hop_id"),
    newer=("sequence_number", "last_seen"),
    table="routing_entries",
)
ROUTE_METRICS = Target(
    "routing_metrics",
    ("node_id", "destination_id", "next_hop_id", "metric_type", "metric_value", "recorded_at"),
    "special",
    table="routing_metrics",
    time_column="recorded_at",
    staging_types={
        "node_id": "uuid",
        "destination_id": "uuid",
        "next_hop_id": "uuid",
        "metric_type": "text",
        "metric_value": "double precision",
        "recorded_at": "timestamptz",
    },
)
POOLS = Target(
    "connection_pools",
    (
        "pool_id",
        "node_id",
        "pool_name",
        "min_connections",
        "max_connections",
        "current_connections",
        "in_use_connections",
        "keepalive_timeout",
        "enable_http2",
        "status",
        "observed_at",
    ),
    "upsert",
    key=("pool_id",),
    newer=("observed_at",),
    table="connection_pools",
)
CONNECTIONS = Target(
    "connections",
    (
        "connection_id",
        "pool_id",
        "endpoint",
        "protocol",
        "state",
        "requests_handled",
        "bytes_sent",
        "bytes_received",
        "errors_count",
        "last_used_at",
        "closed_at",
        "observed_at",
    ),
    "upsert",
    key=("connection_id",),
    newer=("observed_at",),
    table="connections",
)
OPTIMIZATION = Target(
    "optimization_params",
    (
        "node_id",
        "param_set_name",
        "batch_size",
        "compression_algorithm",
        "connection_pool_size",
        "retry_strategy",
        "max_retries",
        "circuit_breaker_threshold",
        "adaptive_learning_enabled",
        "metadata",
        "active_since",
        "observed_at",
    ),
    "upsert",
    key=("node_id", "param_set_name"),
    newer=("observed_at",),
    table="optimization_params",
)
BATCH_CONFIGS = Target(
    "batch_configs",
    (
        "config_id",
        "node_id",
        "max_batch_size",
        "max_wait_time_ms",
        "priority_threshold",
        "adaptive_sizing",
        "observed_at",
    ),
    "upsert",
    key=("config_id",),
    newer=("observed_at",),
    table="batch_configs",
)
DNS = Target(
    "dns_cache",
    ("hostname", "ip_addresses", "record_type", "ttl", "cached_at", "expires_at"),
    "upsert",
    key=("hostname", "record_type"),
    newer=("cached_at",),
    table="dns_cache",
)
SERVICES = Target(
    "service_registry",
    (
        "service_id",
        "service_name",
        "service_type",
        "endpoints",
        "health_check_url",
        "metadata",
        "last_health_check",
        "health_status",
    ),
    "upsert",
    key=("service_id",),
    newer=("last_health_check",),
    table="service_registry",
)
METRICS = Target(
    "metrics",
    ("node_id", "metric_type", "metric_name", "metric_value", "unit", "tags", "recorded_at"),
    "append",
    table="metrics",
    time_column="recorded_at",
)
EVENTS = Target(
    "events",
    (
        "node_id",
        "event_type",
        "event_name",
        "severity",
        "description",
        "metadata",
        "occurred_at",
    ),
    "append",
    table="events",
    time_column="occurred_at",
)
COMPRESSION = Target(
    "compression_stats",
    (
        "node_id",
        "algorithm",
        "messages_compressed",
        "original_bytes",
        "compressed_bytes",
        "compression_time_ms",
        "decompression_time_ms",
        "period_start",
        "period_end",
    ),
    "append",
    table="compression_stats",
    time_column="period_start",
)
BATCH_METRICS = Target(
    "batch_metrics",
    (
        "config_id",
        "total_batches",
        "total_messages",
        "average_batch_size",
        "priority_bypasses",
        "queue_overflows",
        "period_start",
        "period_end",
    ),
    "append",
    table="batch_metrics",
    time_column="period_start",
)
ROUTE_MARKS = Target(
    "route_marks",
    ("node_id", "destination_id"),
    "special",
    key=("node_id", "destination_id"),
    staging_types={"node_id": "uuid", "destination_id": "uuid"},
)

#: Every target, in the order a flush writes them: parents before children.
TARGETS: tuple[Target, ...] = (
    NODE_REFS,
    NODES,
    HEARTBEATS,
    TOPOLOGY_REFS,
    TOPOLOGIES,
    LINKS,
    ROUTES,
    ROUTE_METRICS,
    ROUTE_MARKS,
    POOL_REFS,
    POOLS,
    CONNECTIONS,
    OPTIMIZATION,
    CONFIG_REFS,
    BATCH_CONFIGS,
    DNS,
    SERVICES,
    METRICS,
    EVENTS,
    COMPRESSION,
    BATCH_METRICS,
)
BY_NAME: dict[str, Target] = {t.name: t for t in TARGETS}

#: Which partitioned table's retention bounds the event time of each kind (for decode).
KIND_TIME_SERIES: dict[str, str] = {
    "metric": "metrics",
    "event": "events",
    "route.advert": "routing_metrics",
    "compression.stats": "compression_stats",
    "batch.stats": "batch_metrics",
}
