"""Kinds appended as one row per event to a time-series (partitioned) table."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from ingest.events.common import (
    CompressionAlgorithm,
    EventBase,
    JsonObject,
    NonEmptyStr,
    NonNegInt,
    NonNegNumber,
    Number,
    Severity,
    Timestamp,
)


def _period_end_not_before_start(value: datetime, info: ValidationInfo) -> datetime:
    # Located on period_end; skipped when period_start already failed on its own.
    start = info.data.get("period_start")
    if start is not None and value < start:
        raise PydanticCustomError("period_order", "Should not be before period_start")
    return value


class CompressionStats(EventBase):
    """Compression counters over [period_start, period_end]; rows live by ``period_start``."""

    kind: Literal["compression.stats"] = "compression.stats"
    algorithm: CompressionAlgorithm
    messages_compressed: NonNegInt | None = None
    original_bytes: NonNegInt | None = None
    compressed_bytes: NonNegInt | None = None
    compression_time_ms: NonNegInt | None = None
    decompression_time_ms: NonNegInt | None = None
    period_start: Timestamp
    period_end: Timestamp = Field(description="Not before period_start.")

    _check_period = field_validator("period_end")(_period_end_not_before_start)

    def event_time(self) -> datetime:
        return self.period_start


class BatchStats(EventBase):
    """Batching counters over [period_start, period_end]; rows live by ``period_start``.

    The spec states ``end >= start`` only for compression.stats; it is enforced here too,
    because a period that ends before it starts is equally meaningless for batches.
    """

    kind: Literal["batch.stats"] = "batch.stats"
    config_id: UUID
    total_batches: NonNegInt | None = None
    total_messages: NonNegInt | None = None
    priority_bypasses: NonNegInt | None = None
    queue_overflows: NonNegInt | None = None
    average_batch_size: NonNegNumber | None = None
    period_start: Timestamp
    period_end: Timestamp = Field(description="Not before period_start.")

    _check_period = field_validator("period_end")(_period_end_not_before_start)

    def event_time(self) -> datetime:
        return self.period_start


class Metric(EventBase):
    """One sample of a named metric; stored with ``recorded_at`` = ts."""

    # The most frequent kind by far: every rule here is a native pydantic-core constraint.

    kind: Literal["metric"] = "metric"
    metric_type: str = Field(min_length=1, max_length=100)
    metric_name: str = Field(min_length=1, max_length=255)
    metric_value: Number
    unit: str | None = Field(default=None, max_length=50)
    tags: JsonObject | None = None


class MeshEvent(EventBase):
    """A discrete occurrence on a node (kind ``event``); ``occurred_at`` = ts."""

    kind: Literal["event"] = "event"
    event_type: NonEmptyStr
    event_name: NonEmptyStr
    severity: Severity = "info"
    description: str | None = None
    metadata: JsonObject | None = None


__all__ = ["BatchStats", "CompressionStats", "MeshEvent", "Metric"]
