"""Deliberate damage: turn a clean record into one that decode dead-letters for a chosen reason.

Each function mirrors a fault seen in the field (a torn write, an old or newer firmware, a
node whose clock jumped, a debug dump left switched on), so the dead letters a demo shows look
like the ones operators meet.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Final

import orjson

from ingest.tables import KIND_TIME_SERIES

#: Decode's own reason codes (the eight it can emit), in the order the simulator cycles them.
REASON_CYCLE: Final = (
    "invalid_json",
    "invalid_envelope",
    "unknown_kind",
    "unsupported_version",
    "validation_failed",
    "timestamp_in_future",
    "timestamp_too_old",
    "too_large",
)
#: Kinds whose time is bounded by a table's retention; only they can be ``timestamp_too_old``.
RETAINED_KINDS: Final = frozenset(KIND_TIME_SERIES)
#: Kinds never damaged: a lost announcement leaves a node or topology a placeholder for the rest
#: of the run, which hides every other effect a malformed-records run is meant to show.
PROTECTED_KINDS: Final = frozenset({"node.announce", "topology.config"})
#: Whole-value reasons: the damage is to the record, so no element survives.
RECORD_REASONS: Final = frozenset({"invalid_json", "too_large"})

TOO_LARGE_BYTES: Final = 1_048_576 + 4096
"""Just past decode's default limit, so the record still fits a producer's compressed batch."""
FUTURE_US: Final = 86_400 * 1_000_000
"""A node clock a day ahead: far beyond any sensible skew allowance."""
PAST_US: Final = 3650 * 86_400 * 1_000_000
"""Ten years back: older than any table's retention."""
_UNKNOWN_KINDS: Final = ("node.reboot", "route.withdraw", "metric.histogram", "link.teardown")
_PADDING: Final = "0" * TOO_LARGE_BYTES

Formatter = Callable[[int], Any]
"""Formats an epoch-microsecond time the way the reporting node writes timestamps."""


def eligible_index(reason: str, elements: list[dict[str, Any]], rng: random.Random) -> int | None:
    """Which element to damage for ``reason`` (-1: the whole value), or None if this record
    cannot carry the reason."""
    if any(e["kind"] in PROTECTED_KINDS for e in elements):
        return None
    if reason in RECORD_REASONS:
        return -1
    if reason == "timestamp_too_old":
        retained = [i for i, e in enumerate(elements) if e["kind"] in RETAINED_KINDS]
        return rng.choice(retained) if retained else None
    return rng.randrange(len(elements))


def damage(
    reason: str,
    elements: list[dict[str, Any]],
    index: int,
    as_array: bool,
    rng: random.Random,
    at_us: int,
    fmt: Formatter,
) -> bytes:
    """The record value carrying ``reason`` (elements are modified in place)."""
    if reason == "invalid_json":
        clean = orjson.dumps(elements if as_array else elements[0])
        # A torn write: the value stops mid-way, so the outer bracket is never closed.
        return clean[: max(1, len(clean) // 2)]
    if reason == "too_large":
        # A debug dump left on: an ignored extra field, but the size check comes first.
        first = {**elements[0], "debug_dump": _PADDING}
        body: Any = [first, *elements[1:]] if as_array else first
        return orjson.dumps(body)
    element = elements[index]
    if reason == "invalid_envelope":
        del element["kind"]
    elif reason == "unknown_kind":
        element["kind"] = rng.choice(_UNKNOWN_KINDS)  # a newer firmware's kind
    elif reason == "unsupported_version":
        element["v"] = 2
    elif reason == "validation_failed":
        _invalidate(element, rng)
    elif reason == "timestamp_in_future":
        element["ts"] = fmt(at_us + FUTURE_US)
    elif reason == "timestamp_too_old":
        _age(element, fmt)
    else:  # pragma: no cover - REASON_CYCLE is closed
        raise ValueError(f"unknown reason {reason!r}")
    return orjson.dumps(elements if as_array else element)


def _invalidate(element: dict[str, Any], rng: random.Random) -> None:
    kind = element["kind"]
    choice = rng.randrange(3)
    if kind == "metric" and choice == 0:
        element["metric_value"] = "n/a"  # a sensor read that failed, sent as text
    elif kind == "metric" and choice == 1:
        element["metric_name"] = ""
    elif kind == "link.probe" and choice == 0:
        element["quality"] = 1.5  # a percentage scaled wrongly
    elif kind == "route.advert" and choice == 0:
        element["sequence_number"] = -1
    else:
        element["node_id"] = "node-" + element["node_id"][:8]  # a name where a UUID belongs


def _age(element: dict[str, Any], fmt: Formatter) -> None:
    """Shift every time of the element ten years back (a node whose RTC battery died)."""
    for name in ("ts", "period_start", "period_end"):
        value = element.get(name)
        if value is not None:
            element[name] = fmt(_parse_us(value) - PAST_US)


def _parse_us(value: Any) -> int:
    if isinstance(value, int):
        return value * 1000
    from ingest.events import parse_timestamp

    moment = parse_timestamp(value)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond
