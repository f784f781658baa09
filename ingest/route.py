"""Event -> rows for its target(s). Pure: no I/O, no clock.

Each router returns ``(target name, row)`` pairs, the row's values in the order of the target's
``columns`` (see :mod:`ingest.tables`). References to parents (the reporting node, a link's
topology, a connection's pool, a batch statistic's config) are emitted as rows of the ``*_refs``
targets; the sink turns those into placeholder rows, so a child never waits for its parent.

JSON objects are encoded to text here, once, because that is what the COPY of a ``jsonb``
column takes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson

from ingest.events import (
    BatchConfig,
    BatchStats,
    CompressionStats,
    ConnectionState,
    DnsRecord,
    Event,
    LinkProbe,
    MeshEvent,
    Metric,
    NodeAnnounce,
    NodeHeartbeat,
    OptimizationParams,
    PoolState,
    RouteAdvert,
    ServiceRegister,
    TopologyConfig,
)

Row = tuple[Any, ...]
Routed = list[tuple[str, Row]]

_ROUTE_METRIC_KEYS = ("latency", "bandwidth", "packet_loss", "jitter")


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _json_or_empty(value: dict[str, Any] | None) -> str:
    return "{}" if value is None else orjson.dumps(value).decode()


def _node_announce(e: NodeAnnounce) -> Routed:
    return [
        (
            "nodes",
            (
                e.node_id,
                e.node_name,
                e.node_type,
                e.role,
                e.address,
                e.port,
                e.public_key,
                _json_or_empty(e.capabilities),
                _json_or_empty(e.metadata),
                e.status,
                e.ts,
            ),
        )
    ]


def _node_heartbeat(e: NodeHeartbeat) -> Routed:
    return [("node_refs", (e.node_id,)), ("node_heartbeats", (e.node_id, e.status, e.ts))]


def _topology_config(e: TopologyConfig) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "mesh_topologies",
            (
                e.topology_id,
                e.mesh_name,
                e.topology_type,
                _json_or_empty(e.configuration),
                True if e.optimization_enabled is None else e.optimization_enabled,
                e.learning_rate,
                e.connectivity_threshold,
                e.max_connections_per_node,
                e.status or "active",
                e.ts,
            ),
        ),
    ]


def _link_probe(e: LinkProbe) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        ("node_refs", (e.remote_node_id,)),
        ("topology_refs", (e.topology_id,)),
        (
            "mesh_links",
            (
                e.topology_id,
                e.node_id,
                e.remote_node_id,
                e.link_state,
                e.quality,
                e.latency_ms,
                e.bandwidth_mbps,
                e.packet_loss,
                e.jitter_ms,
                e.weight,
                e.ts,
                e.ts,
                _json_or_empty(e.metadata),
            ),
        ),
    ]


def _route_advert(e: RouteAdvert) -> Routed:
    node, dest, hop, ts = e.node_id, e.destination_id, e.next_hop_id, e.ts
    out: Routed = [
        ("node_refs", (node,)),
        ("node_refs", (dest,)),
        (
            "routing_entries",
            (node, dest, hop, e.sequence_number, e.quality, e.hop_count, e.flags, ts),
        ),
        ("routing_metrics", (node, dest, hop, "quality", float(e.quality), ts)),
        ("routing_metrics", (node, dest, hop, "hop_count", float(e.hop_count), ts)),
        ("route_marks", (node, dest)),
    ]
    if hop is not None:
        out.append(("node_refs", (hop,)))
    metrics = e.metrics
    if metrics is not None:
        for key in _ROUTE_METRIC_KEYS:
            value = getattr(metrics, key)
            if value is not None:
                out.append(("routing_metrics", (node, dest, hop, key, float(value), ts)))
    return out


def _pool_state(e: PoolState) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "connection_pools",
            (
                e.pool_id,
                e.node_id,
                e.pool_name,
                e.min_connections,
                e.max_connections,
                e.current_connections,
                e.in_use_connections,
                e.keepalive_timeout,
                e.enable_http2,
                e.status,
                e.ts,
            ),
        ),
    ]


def _connection_state(e: ConnectionState) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        ("pool_refs", (e.pool_id, e.node_id)),
        (
            "connections",
            (
                e.connection_id,
                e.pool_id,
                e.endpoint,
                e.protocol,
                e.state,
                e.requests_handled or 0,
                e.bytes_sent or 0,
                e.bytes_received or 0,
                e.errors_count or 0,
                e.last_used_at,
                e.closed_at,
                e.ts,
            ),
        ),
    ]


def _compression_stats(e: CompressionStats) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "compression_stats",
            (
                e.node_id,
                e.algorithm,
                e.messages_compressed,
                e.original_bytes,
                e.compressed_bytes,
                e.compression_time_ms,
                e.decompression_time_ms,
                e.period_start,
                e.period_end,
            ),
        ),
    ]


def _optimization_params(e: OptimizationParams) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "optimization_params",
            (
                e.node_id,
                e.param_set_name,
                e.batch_size,
                e.compression_algorithm,
                e.connection_pool_size,
                e.retry_strategy,
                e.max_retries,
                e.circuit_breaker_threshold,
                e.adaptive_learning_enabled,
                _json_or_empty(e.metadata),
                e.active_since,
                e.ts,
            ),
        ),
    ]


def _batch_config(e: BatchConfig) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "batch_configs",
            (
                e.config_id,
                e.node_id,
                e.max_batch_size,
                e.max_wait_time_ms,
                e.priority_threshold,
                e.adaptive_sizing,
                e.ts,
            ),
        ),
    ]


def _batch_stats(e: BatchStats) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        ("config_refs", (e.config_id, e.node_id)),
        (
            "batch_metrics",
            (
                e.config_id,
                e.total_batches,
                e.total_messages,
                e.average_batch_size,
                e.priority_bypasses,
                e.queue_overflows,
                e.period_start,
                e.period_end,
            ),
        ),
    ]


def _metric(e: Metric) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "metrics",
            (
                e.node_id,
                e.metric_type,
                e.metric_name,
                float(e.metric_value),
                e.unit,
                _json(e.tags),
                e.ts,
            ),
        ),
    ]


def _event(e: MeshEvent) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "events",
            (
                e.node_id,
                e.event_type,
                e.event_name,
                e.severity,
                e.description,
                _json(e.metadata),
                e.ts,
            ),
        ),
    ]


def _dns_record(e: DnsRecord) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "dns_cache",
            (
                e.hostname,
                [str(ip) for ip in e.ip_addresses],
                e.record_type,
                e.ttl,
                e.ts,
                e.ts + timedelta(seconds=e.ttl),
            ),
        ),
    ]


def _service_register(e: ServiceRegister) -> Routed:
    return [
        ("node_refs", (e.node_id,)),
        (
            "service_registry",
            (
                e.service_id,
                e.service_name,
                e.service_type,
                list(e.endpoints),
                e.health_check_url,
                _json_or_empty(e.metadata),
                e.ts,
                e.health_status,
            ),
        ),
    ]


_ROUTERS: dict[str, Callable[[Any], Routed]] = {
    "node.announce": _node_announce,
    "node.heartbeat": _node_heartbeat,
    "topology.config": _topology_config,
    "link.probe": _link_probe,
    "route.advert": _route_advert,
    "pool.state": _pool_state,
    "connection.state": _connection_state,
    "compression.stats": _compression_stats,
    "optimization.params": _optimization_params,
    "batch.config": _batch_config,
    "batch.stats": _batch_stats,
    "metric": _metric,
    "event": _event,
    "dns.record": _dns_record,
    "service.register": _service_register,
}


def router_for(kind: str) -> Callable[[Any], Routed]:
    """The router of one kind: it reads the event's attributes, nothing else (the fast lanes
    hand it their own structs, ids and times converted as the model converts them)."""
    return _ROUTERS[kind]


def route(event: Event) -> Routed:
    """The rows ``event`` writes, as ``(target name, row)`` pairs."""
    return _ROUTERS[event.kind](event)
