"""Kinds that report the latest state of something (upserted by key, newest wins).

Optional fields without a spec default are ``None`` when absent (an explicit JSON ``null`` means
the same), so routing can tell "not reported" from a value. Fields with a spec default refuse
``null``: the default is what the publisher gets by leaving the field out.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from ingest.events.common import (
    CompressionAlgorithm,
    ConnectionProtocol,
    ConnectionStateName,
    DnsRecordType,
    EventBase,
    HealthStatus,
    Int,
    IpAddress,
    JsonObject,
    LinkState,
    NodeRole,
    NodeStatus,
    NodeType,
    NonEmptyStr,
    NonNegInt,
    NonNegNumber,
    Number,
    PoolStatus,
    Port,
    PositiveInt,
    RetryStrategy,
    Timestamp,
    TopologyType,
    Ttl,
    UnitInterval,
)


class NodeAnnounce(EventBase):
    """A node describes itself; upserts ``nodes`` by ``node_id``."""

    kind: Literal["node.announce"] = "node.announce"
    node_name: str = Field(min_length=1, max_length=255)
    node_type: NodeType = "peer"
    role: NodeRole = "peer"
    address: NonEmptyStr
    port: Port
    public_key: str | None = None
    capabilities: JsonObject | None = None
    metadata: JsonObject | None = None
    status: NodeStatus = "active"


class NodeHeartbeat(EventBase):
    """A node is alive; ``status`` changes the stored status only when given."""

    kind: Literal["node.heartbeat"] = "node.heartbeat"
    status: NodeStatus | None = None


class TopologyConfig(EventBase):
    """The configuration of a mesh topology; upserts ``mesh_topologies`` by ``topology_id``."""

    kind: Literal["topology.config"] = "topology.config"
    topology_id: UUID
    mesh_name: NonEmptyStr
    topology_type: TopologyType = "adaptive_hybrid"
    configuration: JsonObject | None = None
    optimization_enabled: StrictBool | None = None
    learning_rate: Number | None = None
    connectivity_threshold: UnitInterval | None = None
    max_connections_per_node: PositiveInt | None = None
    status: str | None = None


class LinkProbe(EventBase):
    """A measurement of the link from ``node_id`` to ``remote_node_id`` in one topology."""

    kind: Literal["link.probe"] = "link.probe"
    topology_id: UUID
    remote_node_id: UUID = Field(description="The far end of the link; differs from node_id.")
    link_state: LinkState = "active"
    quality: UnitInterval | None = None
    latency_ms: NonNegNumber | None = None
    bandwidth_mbps: NonNegNumber | None = None
    packet_loss: UnitInterval | None = None
    jitter_ms: NonNegNumber | None = None
    weight: Number | None = None
    metadata: JsonObject | None = None

    @field_validator("remote_node_id")
    @classmethod
    def _not_a_self_link(cls, value: UUID, info: ValidationInfo) -> UUID:
        # A field validator (not a model validator) so the error is located on remote_node_id.
        # node_id is declared first, so it is in info.data unless it failed on its own.
        if value == info.data.get("node_id"):
            raise PydanticCustomError("self_link", "Should differ from node_id")
        return value


class RouteMetrics(BaseModel):
    """Optional measurements attached to a route advert; each present key is one
    ``routing_metrics`` row. Ranges follow the matching ``link.probe`` fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    latency: NonNegNumber | None = None
    bandwidth: NonNegNumber | None = None
    packet_loss: UnitInterval | None = None
    jitter: NonNegNumber | None = None


class RouteAdvert(EventBase):
    """A routing table entry of ``node_id``; higher ``sequence_number`` wins."""

    kind: Literal["route.advert"] = "route.advert"
    destination_id: UUID
    next_hop_id: UUID | None = Field(default=None, description="null or absent: direct route")
    sequence_number: NonNegInt
    quality: UnitInterval
    hop_count: NonNegInt = 1
    flags: Int = 0
    metrics: RouteMetrics | None = None


class PoolState(EventBase):
    """The state of one connection pool of the reporting node."""

    kind: Literal["pool.state"] = "pool.state"
    pool_id: UUID
    pool_name: NonEmptyStr
    min_connections: NonNegInt | None = None
    max_connections: PositiveInt | None = None
    current_connections: NonNegInt | None = None
    in_use_connections: NonNegInt | None = None
    keepalive_timeout: NonNegInt | None = None
    enable_http2: StrictBool | None = None
    status: PoolStatus = "active"


class ConnectionState(EventBase):
    """The state of one pooled connection; upserts ``connections`` by ``connection_id``."""

    kind: Literal["connection.state"] = "connection.state"
    connection_id: UUID
    pool_id: UUID
    endpoint: NonEmptyStr
    protocol: ConnectionProtocol = "http/1.1"
    state: ConnectionStateName = "idle"
    requests_handled: NonNegInt | None = None
    bytes_sent: NonNegInt | None = None
    bytes_received: NonNegInt | None = None
    errors_count: NonNegInt | None = None
    last_used_at: Timestamp | None = None
    closed_at: Timestamp | None = None


class OptimizationParams(EventBase):
    """A named parameter set of the reporting node; upserts by (node_id, param_set_name)."""

    kind: Literal["optimization.params"] = "optimization.params"
    param_set_name: NonEmptyStr
    batch_size: PositiveInt | None = None
    compression_algorithm: CompressionAlgorithm | None = None
    connection_pool_size: PositiveInt | None = None
    retry_strategy: RetryStrategy | None = None
    max_retries: NonNegInt | None = None
    circuit_breaker_threshold: UnitInterval | None = None
    adaptive_learning_enabled: StrictBool | None = None
    metadata: JsonObject | None = None
    active_since: Timestamp | None = None


class BatchConfig(EventBase):
    """A batching configuration; upserts ``batch_configs`` by ``config_id``."""

    kind: Literal["batch.config"] = "batch.config"
    config_id: UUID
    max_batch_size: PositiveInt | None = None
    max_wait_time_ms: NonNegInt | None = None
    priority_threshold: UnitInterval | None = None
    adaptive_sizing: StrictBool | None = None


class DnsRecord(EventBase):
    """A resolved name; upserts ``dns_cache`` by (hostname, record_type), expiring at ts + ttl.

    The address family is not checked against ``record_type``: the spec allows any address
    list for any record type, and the cache stores what the node resolved.
    """

    kind: Literal["dns.record"] = "dns.record"
    hostname: NonEmptyStr
    ip_addresses: list[IpAddress] = Field(min_length=1)
    record_type: DnsRecordType = "A"
    ttl: Ttl = 300


class ServiceRegister(EventBase):
    """A service offered by the node; upserts ``service_registry`` by ``service_id``."""

    kind: Literal["service.register"] = "service.register"
    service_id: UUID
    service_name: NonEmptyStr
    service_type: NonEmptyStr
    endpoints: list[NonEmptyStr] = Field(min_length=1)
    health_check_url: str | None = None
    metadata: JsonObject | None = None
    health_status: HealthStatus = "unknown"


__all__ = [
    "BatchConfig",
    "ConnectionState",
    "DnsRecord",
    "LinkProbe",
    "NodeAnnounce",
    "NodeHeartbeat",
    "OptimizationParams",
    "PoolState",
    "RouteAdvert",
    "RouteMetrics",
    "ServiceRegister",
    "TopologyConfig",
]
