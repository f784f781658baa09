"""What a simulation is asked to do (``SimulationOptions``) and what it produces (``SimRecord``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

#: Conventional topic (without the configurable prefix) of every kind, as nodes publish them.
KIND_TOPIC: Final[dict[str, str]] = {
    "node.announce": "nodes",
    "node.heartbeat": "nodes",
    "topology.config": "links",
    "link.probe": "links",
    "route.advert": "routing",
    "pool.state": "pools",
    "connection.state": "pools",
    "compression.stats": "compression",
    "batch.config": "batching",
    "batch.stats": "batching",
    "optimization.params": "batching",
    "metric": "metrics",
    "event": "events",
    "dns.record": "discovery",
    "service.register": "discovery",
}

#: The simulated clock's pace when ``rate`` is 0 (flat out). The generator cannot know how fast
#: its consumer will go, so it assumes a pace no Python publisher reaches; ``run_simulation``
#: never lets the simulated clock run ahead of the wall clock, so timestamps stay truthful.
FLAT_OUT_CLOCK_RATE: Final = 100_000.0

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SimulationOptions:
    """Knobs of ``ingest simulate``; the field names are the CLI's option names."""

    nodes: int = 50
    rate: float = 1000.0
    """Target events per second; 0 = flat out."""
    duration_s: float | None = None
    count: int | None = None
    """Stop after this many events (good and deliberately bad ones alike)."""
    batch: int = 1
    """Events per JSON array; 1 publishes single objects."""
    malformed: float = 0.0
    """Fraction of records deliberately bad, cycling through decode's reason codes."""
    skew_s: float = 0.0
    """Clock skew added to every time the nodes report (negative: nodes lag)."""
    seed: int = 1
    topologies: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.nodes < 2:
            problems.append("nodes must be at least 2 (a mesh needs links)")
        if not math.isfinite(self.rate) or self.rate < 0:
            problems.append("rate must be a finite number >= 0")
        if self.duration_s is not None and not (self.duration_s > 0):
            problems.append("duration_s must be > 0")
        if self.count is not None and self.count < 0:
            problems.append("count must be >= 0")
        if self.batch < 1:
            problems.append("batch must be >= 1")
        if not 0.0 <= self.malformed <= 1.0:
            problems.append("malformed must be a fraction in [0, 1]")
        if not math.isfinite(self.skew_s):
            problems.append("skew_s must be finite")
        if self.topologies < 1:
            problems.append("topologies must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def clock_rate(self) -> float:
        """Events per simulated second."""
        return self.rate if self.rate > 0 else FLAT_OUT_CLOCK_RATE


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One Kafka record the simulator wants published.

    ``kinds`` lists the events a correct worker stores from it, in order; ``intended_reason`` is
    the dead-letter reason it was built to produce (None for a clean record), with
    ``bad_index`` the array index of the damaged element (None for a single object or when the
    whole value is bad). ``at_us`` is the simulated publication time, never before any time
    inside the record, so decoding at ``at`` is the strictest fair clock check.
    """

    topic: str
    key: bytes
    value: bytes
    kinds: tuple[str, ...]
    intended_reason: str | None
    at_us: int
    bad_index: int | None = None

    @property
    def at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.at_us)
