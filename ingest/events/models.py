"""The union of every wire kind and the adapters that validate it.

``Event`` is the discriminated union on ``kind``; ``EVENT_ADAPTER`` validates one event of any
kind. Decode does not use the union: it looks the kind up in ``VALIDATORS`` and calls that
model's pydantic-core validator directly, which measured faster (see bench/bench_decode.py)
and lets it tell ``unknown_kind`` from ``validation_failed`` before validating.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import Field, TypeAdapter

from ingest.events.common import EventBase
from ingest.events.series import BatchStats, CompressionStats, MeshEvent, Metric
from ingest.events.state import (
    BatchConfig,
    ConnectionState,
    DnsRecord,
    LinkProbe,
    NodeAnnounce,
    NodeHeartbeat,
    OptimizationParams,
    PoolState,
    RouteAdvert,
    ServiceRegister,
    TopologyConfig,
)

Event = Annotated[
    NodeAnnounce
    | NodeHeartbeat
    | TopologyConfig
    | LinkProbe
    | RouteAdvert
    | PoolState
    | ConnectionState
    | CompressionStats
    | OptimizationParams
    | BatchConfig
    | BatchStats
    | Metric
    | MeshEvent
    | DnsRecord
    | ServiceRegister,
    Field(discriminator="kind"),
]
"""One wire event of any kind, discriminated on ``kind``."""

EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(Event)

_MODELS: tuple[type[EventBase], ...] = (
    NodeAnnounce,
    NodeHeartbeat,
    TopologyConfig,
    LinkProbe,
    RouteAdvert,
    PoolState,
    ConnectionState,
    CompressionStats,
    OptimizationParams,
    BatchConfig,
    BatchStats,
    Metric,
    MeshEvent,
    DnsRecord,
    ServiceRegister,
)


def _kind_of(model: type[EventBase]) -> str:
    default = model.model_fields["kind"].default
    assert isinstance(default, str)
    return default


MODEL_BY_KIND: Final[Mapping[str, type[EventBase]]] = MappingProxyType(
    {_kind_of(model): model for model in _MODELS}
)
"""Every kind of SPEC section 2, in the order of its table, mapped to its model."""

KINDS: Final[tuple[str, ...]] = tuple(MODEL_BY_KIND)

VALIDATORS: Final[Mapping[str, Callable[[Any], Event]]] = MappingProxyType(
    {kind: model.__pydantic_validator__.validate_python for kind, model in MODEL_BY_KIND.items()}
)
"""Per-kind validate functions (dict in, model out, ``ValidationError`` on failure).

These are the pydantic-core validators themselves, skipping ``model_validate``'s Python
wrapper; the returned object is always an instance of ``MODEL_BY_KIND[kind]``.
"""
