"""Field types and the base model shared by every wire event (SPEC section 2).

The types here encode the spec's value rules as pydantic-core schemas so that validation stays
in Rust wherever the rule allows it; decode is where the worker spends its CPU. Only two rules
need Python: the timestamp forms (epoch milliseconds and UTC normalisation) and IP addresses.

Rules shared by every numeric field (the spec says "numbers are JSON numbers; ints must be
whole"): a JSON string such as ``"5"`` and a JSON boolean are refused, ``5.0`` is accepted where
an int is expected (it is whole) and ``5.5`` is not. NaN and infinities are refused for every
number, not only ``metric_value``: PostgreSQL ``numeric`` columns cannot hold them and no probe
result is meaningfully infinite.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

WIRE_VERSION = 1
"""The only major version of the wire format this worker understands (field ``v``)."""

# Bounds every int to what a PostgreSQL bigint holds; narrower columns are the schema's business.
# orjson turns integers beyond 64 bits into floats, so this also catches 1e19-style counters.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# --------------------------------------------------------------------------------------------
# Numbers


@dataclass(frozen=True, slots=True)
class _WholeNumber:
    """Annotation for an int field: a JSON integer, or a float with no fractional part.

    The gate (a strict int-or-float union) refuses strings and booleans, which pydantic's lax
    int would coerce; the lax int behind it turns a whole float into an int and applies the
    bounds, so a range error still reads "less than or equal to 65535". All of it is Rust.
    """

    ge: int = INT64_MIN
    le: int = INT64_MAX

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        gate = core_schema.union_schema(
            [core_schema.int_schema(strict=True), core_schema.float_schema(strict=True)],
            mode="left_to_right",
            custom_error_type="whole_number_type",
            custom_error_message="Input should be an integer JSON number",
        )
        return core_schema.chain_schema(
            [gate, core_schema.int_schema(ge=self.ge, le=self.le)],
            serialization=core_schema.simple_ser_schema("int"),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if self.ge == self.le:
            return {"type": "integer", "const": self.ge}
        # The int64 bounds are a storage guard, not part of the publishers' contract; spelling
        # out 9223372036854775807 would only invite precision loss in JavaScript tooling.
        bounded: dict[str, Any] = {"type": "integer"}
        if self.ge != INT64_MIN:
            bounded["minimum"] = self.ge
        if self.le != INT64_MAX:
            bounded["maximum"] = self.le
        return bounded


Int = Annotated[int, _WholeNumber()]
NonNegInt = Annotated[int, _WholeNumber(ge=0)]
PositiveInt = Annotated[int, _WholeNumber(ge=1)]
Port = Annotated[int, _WholeNumber(ge=1, le=65535)]
WireVersionField = Annotated[int, _WholeNumber(ge=WIRE_VERSION, le=WIRE_VERSION)]
# dns_cache.expires_at is ts + ttl; an int4-sized TTL (about 68 years) keeps that sum inside the
# datetime range and fits an integer column.
Ttl = Annotated[int, _WholeNumber(ge=0, le=2**31 - 1)]

# A strict float accepts ints (as floats) but neither strings nor booleans.
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
NonNegNumber = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
UnitInterval = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
"""A share or probability: ``[0, 1]``, both ends inclusive."""

# --------------------------------------------------------------------------------------------
# Timestamps

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_fromtimestamp = datetime.fromtimestamp
# Below 2^32 seconds (the year 2106) a double holds ms / 1000 to within half a microsecond, so
# fromtimestamp, which rounds to the microsecond, gives back the exact millisecond; it is about
# three times cheaper than timedelta arithmetic, which stays the path for everything else.
_MS_FLOAT_EXACT_BELOW = 2**32 * 1000
_TS_TYPE_ERROR = "Input should be an RFC 3339 date-time with offset or integer epoch milliseconds"


def epoch_ms(value: int) -> datetime:
    """Integer epoch milliseconds as an aware UTC datetime, or a pydantic error."""
    if 0 <= value < _MS_FLOAT_EXACT_BELOW:
        return _fromtimestamp(value / 1000, UTC)
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise PydanticCustomError(
            "timestamp_range", "Epoch milliseconds outside the years 1..9999"
        ) from None


def _rfc3339(value: str) -> datetime:
    # fromisoformat alone takes ISO 8601 forms publishers were never promised (a bare date,
    # "20240101T000000Z", week dates, no seconds); these position checks pin the RFC 3339
    # shape YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM) at a fraction of a regex's cost.
    if (
        len(value) < 19
        or value[4] != "-"
        or value[7] != "-"
        or value[10] not in "Tt "
        or value[13] != ":"
        or value[16] != ":"
    ):
        raise PydanticCustomError("timestamp_format", _TS_TYPE_ERROR)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        # RFC 3339 allows a lower-case "t" and "z", which fromisoformat does not; this is the
        # rare path, so the common one does not pay for the upper().
        try:
            parsed = datetime.fromisoformat(value.upper())
        except ValueError as exc:
            raise PydanticCustomError(
                "timestamp_value", "Invalid date-time: {reason}", {"reason": str(exc)}
            ) from None
    return _aware_utc(parsed)


def _aware_utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:
        # The common case ("Z" or "+00:00"): already what we want, skip the conversion.
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PydanticCustomError(
            "timestamp_naive", "Date-time should have a UTC offset (Z or +HH:MM)"
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "timestamp_range", "Date-time outside the years 1..9999 in UTC"
        ) from None


def parse_timestamp(value: Any) -> datetime:
    """Turn a wire timestamp into an aware UTC datetime, or raise a pydantic error.

    Accepted: an RFC 3339 string with ``Z`` or a numeric offset, or integer epoch milliseconds
    (a whole float too, by the spec's "ints must be whole" rule). Refused: booleans, numeric
    strings, naive strings, fractional milliseconds. Fractions of a second beyond microseconds
    are truncated, as PostgreSQL timestamps hold microseconds. An aware ``datetime`` is also
    taken, for events built in Python (tests, the simulator); JSON never produces one.
    """
    kind = type(value)
    if kind is int:
        return epoch_ms(value)
    if kind is str:
        return _rfc3339(value)
    if kind is float:
        if value.is_integer():
            return epoch_ms(int(value))
        raise PydanticCustomError(
            "timestamp_fraction", "Epoch milliseconds should be a whole number"
        )
    if isinstance(value, datetime):
        # Never from the wire (JSON has no datetime); this is Python code building an event.
        return _aware_utc(value)
    raise PydanticCustomError("timestamp_type", _TS_TYPE_ERROR)


@dataclass(frozen=True, slots=True)
class _WireTimestamp:
    """Annotation for a timestamp field: validated by ``parse_timestamp``, serialised by
    pydantic-core as the datetime it is (RFC 3339 in JSON)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # An explicit serialiser: PlainValidator's default one re-serialises the serialised
        # string and warns on every dump.
        return core_schema.no_info_plain_validator_function(
            parse_timestamp, serialization=core_schema.simple_ser_schema("datetime")
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "string", "format": "date-time", "description": "RFC 3339 with offset"},
                {"type": "integer", "description": "Unix epoch milliseconds"},
            ]
        }


Timestamp = Annotated[datetime, _WireTimestamp()]
"""A wire timestamp, normalised to an aware datetime in UTC (``tzinfo is datetime.UTC``)."""

# --------------------------------------------------------------------------------------------
# Strings, objects, addresses

# Required free-text strings must be non-empty: an empty name, host or endpoint is always a
# publisher bug, and refusing it here beats a row nobody can join on.
NonEmptyStr = Annotated[str, Field(min_length=1)]
JsonObject = dict[str, Any]
"""A JSON object, stored as jsonb; its contents are the publisher's."""


def _normalise_ip(value: str) -> str:
    # A zone index ("fe80::1%eth0") is valid for Python but not for PostgreSQL inet.
    if "%" in value:
        raise PydanticCustomError("ip_address", "IPv6 zone indexes are not accepted")
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        raise PydanticCustomError("ip_address", "Input should be an IPv4 or IPv6 address") from None


IpAddress = Annotated[
    str,
    Strict(),
    AfterValidator(_normalise_ip),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]
"""An IPv4 or IPv6 address kept as text in its canonical form (``2001:db8::1``, no prefix)."""

# --------------------------------------------------------------------------------------------
# Enumerations (case-sensitive, as the spec lists them)

NodeStatus = Literal["active", "inactive", "connecting", "disconnected", "quarantined"]
NodeType = Literal["peer", "relay", "gateway", "bootstrap"]
NodeRole = Literal["peer", "super_peer", "relay", "gateway", "bootstrap", "coordinator", "witness"]
TopologyType = Literal[
    "full_mesh",
    "partial_mesh",
    "dynamic_partial",
    "hierarchical",
    "small_world",
    "scale_free",
    "quantum_inspired",
    "neural_mesh",
    "adaptive_hybrid",
]
LinkState = Literal[
    "establishing", "active", "degraded", "congested", "failing", "dormant", "quarantined"
]
PoolStatus = Literal["active", "draining", "stopped"]
ConnectionProtocol = Literal["http/1.1", "http/2", "http/3", "websocket"]
ConnectionStateName = Literal["idle", "active", "closing", "closed"]
CompressionAlgorithm = Literal["none", "gzip", "lz4", "brotli", "snappy", "zstd"]
RetryStrategy = Literal["exponential", "linear", "fixed", "adaptive"]
Severity = Literal["debug", "info", "warning", "error", "critical"]
DnsRecordType = Literal["A", "AAAA", "CNAME", "SRV"]
HealthStatus = Literal["healthy", "unhealthy", "degraded", "unknown"]

# --------------------------------------------------------------------------------------------
# The base event


def _publisher_schema(schema: dict[str, Any]) -> None:
    # ``kind`` carries a default so Python code can build events without repeating it, but on
    # the wire it is what identifies the event, so publishers must always send it; it is
    # listed first because it is the first thing a reader of the schema looks for.
    properties = schema.get("properties", {})
    if "kind" not in properties:
        return
    schema["properties"] = {"kind": properties.pop("kind"), **properties}
    required = schema.setdefault("required", [])
    if "kind" not in required:
        required.insert(0, "kind")


class EventBase(BaseModel):
    """Fields common to every kind. Unknown fields are ignored for forward compatibility."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_publisher_schema)

    node_id: UUID = Field(description="The reporting node.")
    ts: Timestamp = Field(description="When it was observed.")
    v: WireVersionField = Field(default=WIRE_VERSION, description="Wire format major version.")
    event_id: UUID | None = Field(default=None, description="For tracing only.")

    def event_time(self) -> datetime:
        """The time the kind's time-series table is partitioned and retained by.

        ``ts`` for every kind except the stats kinds, whose rows live by ``period_start``;
        decode compares it against the retention horizon (``timestamp_too_old``).
        """
        return self.ts
