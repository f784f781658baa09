"""Kafka record value -> validated events and dead letters. Pure: no I/O, no clock, no logging.

One record value is one event object or a JSON array of them (SPEC section 2). Every array
element stands alone: good elements become events, each bad one becomes its own dead letter
carrying its index, so one bad element never costs its neighbours. ``decode`` never raises;
whatever the bytes, the caller gets a ``Decoded`` it can route and store.

Decisions where the spec is silent:

* An empty array yields no events and no dead letters: there is nothing to store, and a node
  that flushes an empty batch has done nothing wrong.
* A record with no value (a tombstone) or an empty one is ``invalid_json``.
* ``v`` is checked before validation, so a version-2 event is ``unsupported_version`` even when
  it would also fail version-1 validation. A whole number other than 1 (``2``, ``2.0``, ``0``)
  is ``unsupported_version``; a ``v`` that is not a number at all (``"1"``, ``true``, ``null``)
  is ``validation_failed``, since the element is a version-1 envelope with a bad field.
* A string containing U+0000 in a stored field is ``validation_failed``: PostgreSQL text and
  jsonb cannot hold it, and refusing it here spares the sink a poison-row isolation round.
* The clock checks use the time the kind's table is partitioned by (``event_time()``:
  ``period_start`` for the stats kinds, ``ts`` otherwise): ``timestamp_too_old`` when it is older
  than ``oldest_allowed[kind]``, ``timestamp_in_future`` when it or ``ts`` lies beyond
  ``now + max_future_skew_s``.
* Should decode itself fail on some input (a bug), the element, or the whole record if the
  failure is outside any element, becomes ``validation_failed`` with a detail starting
  "internal decoder error", so the payload is kept for replay once the bug is fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import orjson
from pydantic import ValidationError

from ingest.events import MODEL_BY_KIND, VALIDATORS, WIRE_VERSION, Event

REASONS: Final = (
    "invalid_json",
    "invalid_envelope",
    "unknown_kind",
    "unsupported_version",
    "validation_failed",
    "timestamp_in_future",
    "timestamp_too_old",
    "too_large",
    "conflict",
    "rejected_by_database",
)
"""Every dead-letter reason code of SPEC section 2; decode emits the first eight."""

MAX_DETAIL_CHARS: Final = 1000
"""Upper bound on ``DeadLetter.detail``; the payload itself is stored beside it."""
_MAX_LISTED_ERRORS = 12
_BACKSLASH = ord("\\")
_MAX_ECHO_CHARS = 100


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """Why one value (``element_index`` None) or one array element could not be stored."""

    reason: str
    detail: str
    element_index: int | None
    kind: str | None = None
    event_id: str | None = None


@dataclass(slots=True)
class Decoded:
    """The outcome of one record value; ``events`` pairs each event with its array index
    (None when the value was a single object), in the order they appeared."""

    events: list[tuple[int | None, Event]]
    dead: list[DeadLetter]


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds applied while decoding.

    ``oldest_allowed`` maps a kind to the oldest event time still stored; the sink passes the
    retention horizon of the kind's time-series table. Kinds absent from it have no limit.
    """

    max_bytes: int = 1_048_576
    max_future_skew_s: float = 300.0
    oldest_allowed: Mapping[str, datetime] = field(default_factory=dict)
    # Built once here rather than per record: a timedelta costs as much as half a validation.
    _future_skew: timedelta = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_future_skew", timedelta(seconds=self.max_future_skew_s))

    def latest(self, now: datetime) -> datetime:
        """The newest event time accepted at ``now`` (aware): beyond it, timestamp_in_future."""
        return now + self._future_skew


# A plain dict: its .get is measurably cheaper than the read-only mapping's on the hot path.
_VALIDATORS: Final[dict[str, Callable[[Any], Event]]] = dict(VALIDATORS)
# Stored fields per kind: a NUL inside an ignored extra field is harmless, so only these are
# searched.
_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    kind: frozenset(model.model_fields) for kind, model in MODEL_BY_KIND.items()
}
_JSON_TYPE_NAMES: Final[Mapping[type, str]] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def decode(value: bytes | None, now: datetime, limits: DecodeLimits) -> Decoded:
    """Parse and validate one record value; never raises.

    ``now`` is the caller's clock (aware; a naive one is taken as UTC), kept out of this
    module so that decoding stays deterministic under test.
    """
    try:
        return _decode(value, now, limits)
    except Exception as exc:  # the contract is "never raise": a bug must not stall a partition
        return Decoded([], [_internal_error(exc, None, None)])


def _decode(value: bytes | None, now: datetime, limits: DecodeLimits) -> Decoded:
    if not value:
        detail = "no value (tombstone)" if value is None else "empty value"
        return Decoded([], [DeadLetter("invalid_json", detail, None)])
    if len(value) > limits.max_bytes:
        detail = f"value is {len(value)} bytes, more than the limit of {limits.max_bytes}"
        return Decoded([], [DeadLetter("too_large", detail, None)])
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Decoded([], [DeadLetter("invalid_json", _bounded(str(exc)), None)])

    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    latest = limits.latest(now)
    oldest_allowed = limits.oldest_allowed
    # JSON can only spell NUL as an escape, so one byte search rules it out for almost every
    # record; the per-element walk runs only when this hits.
    # (The int test first: bytes.__contains__ tries its argument as an int before searching,
    # which costs a bytes needle a raised and cleared exception.)
    may_hold_nul = _BACKSLASH in value and b"\\u0000" in value

    # Single objects are the common record shape, so they skip the list machinery.
    if type(document) is dict:
        outcome = _guarded(document, None, latest, oldest_allowed, may_hold_nul)
        if isinstance(outcome, DeadLetter):
            return Decoded([], [outcome])
        return Decoded([(None, outcome)], [])
    if type(document) is not list:
        detail = (
            f"top-level value is {_json_type(document)}, "
            "expected an event object or an array of them"
        )
        return Decoded([], [DeadLetter("invalid_envelope", detail, None)])
    events: list[tuple[int | None, Event]] = []
    dead: list[DeadLetter] = []
    for index, item in enumerate(document):
        outcome = _guarded(item, index, latest, oldest_allowed, may_hold_nul)
        if isinstance(outcome, DeadLetter):
            dead.append(outcome)
        else:
            events.append((index, outcome))
    return Decoded(events, dead)


def _guarded(
    item: Any,
    index: int | None,
    latest: datetime,
    oldest_allowed: Mapping[str, datetime],
    may_hold_nul: bool,
) -> Event | DeadLetter:
    try:
        return _element(item, index, latest, oldest_allowed, may_hold_nul)
    except Exception as exc:  # see decode(): contain a decoder bug to its element
        return _internal_error(exc, index, item)


def _element(
    item: Any,
    index: int | None,
    latest: datetime,
    oldest_allowed: Mapping[str, datetime],
    may_hold_nul: bool,
) -> Event | DeadLetter:
    """One event object -> its event, or the dead letter that says why it is not one."""
    if type(item) is not dict:
        what = "value" if index is None else "element"
        return DeadLetter("invalid_envelope", f"{what} is {_json_type(item)}, not an object", index)
    kind = item.get("kind")
    if type(kind) is not str:
        detail = (
            "missing 'kind'"
            if kind is None
            else f"'kind' should be a string, not {_json_type(kind)}"
        )
        return _dead("invalid_envelope", detail, index, None, item)
    validate = _VALIDATORS.get(kind)
    if validate is None:
        echoed = kind[:_MAX_ECHO_CHARS]
        return _dead("unknown_kind", f"unknown kind {echoed!r}", index, echoed, item)
    version = item.get("v", WIRE_VERSION)
    if version != WIRE_VERSION and _is_whole_number(version):
        detail = f"v={version!r}; this worker reads version {WIRE_VERSION} only"
        return _dead("unsupported_version", detail, index, kind, item)
    try:
        event = validate(item)
    except ValidationError as exc:
        return _dead("validation_failed", _describe(exc), index, kind, item)
    if may_hold_nul:
        path = _nul_path(item, _FIELDS[kind])
        if path is not None:
            detail = _bounded(f"{path}: string contains U+0000, which PostgreSQL cannot store")
            return _dead("validation_failed", detail, index, kind, item)

    ts = event.ts
    when = event.event_time()
    if ts > latest or when > latest:
        name, late = ("ts", ts) if ts > latest else ("period_start", when)
        detail = (
            f"{name} {_iso(late)} is beyond the allowed clock skew (latest accepted {_iso(latest)})"
        )
        return _dead("timestamp_in_future", detail, index, kind, item)
    oldest = oldest_allowed.get(kind)
    if oldest is not None and when < oldest:
        name = "ts" if when is ts else "period_start"
        detail = f"{name} {_iso(when)} is older than the retention horizon {_iso(oldest)}"
        return _dead("timestamp_too_old", detail, index, kind, item)
    return event


def _dead(
    reason: str, detail: str, index: int | None, kind: str | None, item: dict[str, Any]
) -> DeadLetter:
    return DeadLetter(reason, detail, index, kind, _event_id(item))


def _is_whole_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and value.is_integer())


def _event_id(item: dict[str, Any]) -> str | None:
    """The publisher's event_id as sent, when it is a UUID; anything else is not echoed."""
    candidate = item.get("event_id")
    if type(candidate) is not str or len(candidate) > 45:
        return None
    try:
        UUID(candidate)
    except ValueError:
        return None
    return candidate


def _describe(exc: ValidationError) -> str:
    """``"port: Input should be ...; quality: ..."``, one entry per failing field."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    parts = []
    for error in errors[:_MAX_LISTED_ERRORS]:
        location = ".".join(str(part) for part in error["loc"])
        parts.append(f"{location}: {error['msg']}" if location else error["msg"])
    if len(errors) > _MAX_LISTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_LISTED_ERRORS} more")
    return _bounded("; ".join(parts))


def _nul_path(item: dict[str, Any], fields: frozenset[str]) -> str | None:
    """The dotted path of the first string holding U+0000 in a stored field, else None.

    Iterative, because orjson accepts nesting deeper than Python's recursion limit.
    """
    stack: list[tuple[str, Any]] = [(key, item[key]) for key in item if key in fields]
    while stack:
        path, node = stack.pop()
        kind = type(node)
        if kind is str:
            if "\x00" in node:
                return path
        elif kind is dict:
            for key, child in node.items():
                if "\x00" in key:
                    return f"{path} (a key)"
                stack.append((_child_path(path, key), child))
        elif kind is list:
            stack.extend(
                (_child_path(path, position), child) for position, child in enumerate(node)
            )
    return None


def _child_path(path: str, step: object) -> str:
    # Stop growing past a detail's worth of text: deep nesting would otherwise make every
    # pending path on the stack as long as the nesting is deep.
    return f"{path}.{step}" if len(path) < 200 else path


def _internal_error(exc: Exception, index: int | None, item: Any) -> DeadLetter:
    kind = item.get("kind") if type(item) is dict else None
    return DeadLetter(
        "validation_failed",
        _bounded(f"internal decoder error: {type(exc).__name__}: {exc}"),
        index,
        kind[:_MAX_ECHO_CHARS] if type(kind) is str else None,
        _event_id(item) if type(item) is dict else None,
    )


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _bounded(text: str) -> str:
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    return text[: MAX_DETAIL_CHARS - 1] + "…"
