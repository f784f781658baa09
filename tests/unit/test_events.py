"""The wire contract of SPEC section 2: one model per kind, its defaults and its value rules."""

from __future__ import annotations

import json
import random
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import orjson
import pytest
from pydantic import ValidationError

from ingest.events import (
    EVENT_ADAPTER,
    KINDS,
    MODEL_BY_KIND,
    VALIDATORS,
    EventBase,
    Metric,
    parse_timestamp,
)
from ingest.events.jsonschema import SCHEMA_PATH, export_json_schema, render_json_schema

NODE = "5f0c6a4e-8a43-4c1b-9d59-0d2f8e1c7a01"
OTHER = "0b8f7c55-3d0e-4a53-8c1a-7a4b2d9e6f10"
THIRD = "c2a1d3e4-5b6f-4789-8a0b-1c2d3e4f5a6b"
TS = "2025-06-01T12:00:00Z"
TS_UTC = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

SPEC_KINDS = (
    "node.announce",
    "node.heartbeat",
    "topology.config",
    "link.probe",
    "route.advert",
    "pool.state",
    "connection.state",
    "compression.stats",
    "optimization.params",
    "batch.config",
    "batch.stats",
    "metric",
    "event",
    "dns.record",
    "service.register",
)

# Required fields only, beyond kind/node_id/ts.
MINIMAL: dict[str, dict[str, Any]] = {
    "node.announce": {"node_name": "alpha", "address": "10.0.0.1", "port": 7946},
    "node.heartbeat": {},
    "topology.config": {"topology_id": OTHER, "mesh_name": "mesh-a"},
    "link.probe": {"topology_id": THIRD, "remote_node_id": OTHER},
    "route.advert": {"destination_id": OTHER, "sequence_number": 7, "quality": 0.9},
    "pool.state": {"pool_id": OTHER, "pool_name": "upstream"},
    "connection.state": {"connection_id": OTHER, "pool_id": THIRD, "endpoint": "10.0.0.2:443"},
    "compression.stats": {
        "algorithm": "zstd",
        "period_start": "2025-06-01T11:59:00Z",
        "period_end": TS,
    },
    "optimization.params": {"param_set_name": "default"},
    "batch.config": {"config_id": OTHER},
    "batch.stats": {
        "config_id": OTHER,
        "period_start": "2025-06-01T11:59:00Z",
        "period_end": TS,
    },
    "metric": {"metric_type": "cpu", "metric_name": "cpu.usage", "metric_value": 42.5},
    "event": {"event_type": "link", "event_name": "link.up"},
    "dns.record": {"hostname": "svc.mesh.local", "ip_addresses": ["10.0.0.7"]},
    "service.register": {
        "service_id": OTHER,
        "service_name": "api",
        "service_type": "http",
        "endpoints": ["http://10.0.0.7:8080"],
    },
}

# What the spec says a field is when the publisher leaves it out.
DEFAULTS: dict[str, dict[str, Any]] = {
    "node.announce": {
        "node_type": "peer",
        "role": "peer",
        "status": "active",
        "public_key": None,
        "capabilities": None,
        "metadata": None,
    },
    "node.heartbeat": {"status": None},
    "topology.config": {"topology_type": "adaptive_hybrid", "configuration": None},
    "link.probe": {"link_state": "active", "quality": None, "metadata": None},
    "route.advert": {"next_hop_id": None, "hop_count": 1, "flags": 0, "metrics": None},
    "pool.state": {"status": "active", "max_connections": None},
    "connection.state": {"protocol": "http/1.1", "state": "idle", "last_used_at": None},
    "compression.stats": {"messages_compressed": None},
    "optimization.params": {"compression_algorithm": None, "active_since": None},
    "batch.config": {"max_batch_size": None, "adaptive_sizing": None},
    "batch.stats": {"total_batches": None, "average_batch_size": None},
    "metric": {"unit": None, "tags": None},
    "event": {"severity": "info", "description": None, "metadata": None},
    "dns.record": {"record_type": "A", "ttl": 300},
    "service.register": {"health_status": "unknown", "health_check_url": None},
}

# Every field of every kind set to a non-default value.
FULL: dict[str, dict[str, Any]] = {
    "node.announce": {
        "node_name": "alpha",
        "node_type": "gateway",
        "role": "coordinator",
        "address": "alpha.mesh.local",
        "port": 65535,
        "public_key": "ed25519:AAAA",
        "capabilities": {"relay": True},
        "metadata": {"rack": "r1"},
        "status": "quarantined",
    },
    "node.heartbeat": {"status": "connecting"},
    "topology.config": {
        "topology_id": OTHER,
        "mesh_name": "mesh-a",
        "topology_type": "small_world",
        "configuration": {"k": 4},
        "optimization_enabled": True,
        "learning_rate": 0.01,
        "connectivity_threshold": 1,
        "max_connections_per_node": 8,
        "status": "active",
    },
    "link.probe": {
        "topology_id": THIRD,
        "remote_node_id": OTHER,
        "link_state": "degraded",
        "quality": 0,
        "latency_ms": 12.5,
        "bandwidth_mbps": 940,
        "packet_loss": 1,
        "jitter_ms": 0,
        "weight": -2.5,
        "metadata": {"iface": "wg0"},
    },
    "route.advert": {
        "destination_id": OTHER,
        "next_hop_id": THIRD,
        "sequence_number": 0,
        "quality": 1.0,
        "hop_count": 3,
        "flags": -1,
        "metrics": {"latency": 10, "bandwidth": 100.5, "packet_loss": 0.01, "jitter": 1.5},
    },
    "pool.state": {
        "pool_id": OTHER,
        "pool_name": "upstream",
        "min_connections": 0,
        "max_connections": 1,
        "current_connections": 0,
        "in_use_connections": 0,
        "keepalive_timeout": 0,
        "enable_http2": False,
        "status": "draining",
    },
    "connection.state": {
        "connection_id": OTHER,
        "pool_id": THIRD,
        "endpoint": "10.0.0.2:443",
        "protocol": "websocket",
        "state": "closed",
        "requests_handled": 10,
        "bytes_sent": 2**40,
        "bytes_received": 0,
        "errors_count": 1,
        "last_used_at": 1748779200000,
        "closed_at": "2025-06-01T14:00:00+02:00",
    },
    "compression.stats": {
        "algorithm": "none",
        "messages_compressed": 10,
        "original_bytes": 1000,
        "compressed_bytes": 1000,
        "compression_time_ms": 0,
        "decompression_time_ms": 3,
        "period_start": TS,
        "period_end": TS,
    },
    "optimization.params": {
        "param_set_name": "aggressive",
        "batch_size": 1,
        "compression_algorithm": "lz4",
        "connection_pool_size": 16,
        "retry_strategy": "adaptive",
        "max_retries": 0,
        "circuit_breaker_threshold": 0.5,
        "adaptive_learning_enabled": True,
        "metadata": {"by": "tuner"},
        "active_since": 1748779200000,
    },
    "batch.config": {
        "config_id": OTHER,
        "max_batch_size": 500,
        "max_wait_time_ms": 0,
        "priority_threshold": 0.75,
        "adaptive_sizing": True,
    },
    "batch.stats": {
        "config_id": OTHER,
        "total_batches": 40,
        "total_messages": 2000,
        "priority_bypasses": 0,
        "queue_overflows": 1,
        "average_batch_size": 50,
        "period_start": 1748779140000,
        "period_end": 1748779200000,
    },
    "metric": {
        "metric_type": "net",
        "metric_name": "net.rx_bytes",
        "metric_value": -1e300,
        "unit": "bytes",
        "tags": {"iface": "eth0", "nested": {"a": [1, 2]}},
    },
    "event": {
        "event_type": "link",
        "event_name": "link.down",
        "severity": "critical",
        "description": "peer vanished",
        "metadata": {"peer": OTHER},
    },
    "dns.record": {
        "hostname": "svc.mesh.local",
        "ip_addresses": ["10.0.0.7", "fd00::7"],
        "record_type": "AAAA",
        "ttl": 0,
    },
    "service.register": {
        "service_id": OTHER,
        "service_name": "api",
        "service_type": "http",
        "endpoints": ["http://10.0.0.7:8080", "http://10.0.0.8:8080"],
        "health_check_url": "http://10.0.0.7:8080/healthz",
        "metadata": {"version": "1.2.3"},
        "health_status": "healthy",
    },
}


def payload(kind: str, fields: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body = MINIMAL[kind] if fields is None else fields
    return {"kind": kind, "node_id": NODE, "ts": TS, **body, **extra}


def validate(kind: str, data: dict[str, Any]) -> EventBase:
    return MODEL_BY_KIND[kind].model_validate(data)


def error_locations(exc: ValidationError) -> list[str]:
    return [".".join(str(part) for part in error["loc"]) for error in exc.errors()]


# --------------------------------------------------------------------------------------------
# Kinds, defaults, union


def test_there_is_one_model_per_spec_kind() -> None:
    assert KINDS == SPEC_KINDS
    assert set(VALIDATORS) == set(SPEC_KINDS)
    assert all(issubclass(model, EventBase) for model in MODEL_BY_KIND.values())


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_minimal_event_validates_and_gets_the_spec_defaults(kind: str) -> None:
    event = validate(kind, payload(kind))

    assert event.kind == kind  # type: ignore[attr-defined]
    assert event.node_id == UUID(NODE)
    assert event.ts == TS_UTC
    assert event.v == 1
    assert event.event_id is None
    for name, expected in DEFAULTS[kind].items():
        assert getattr(event, name) == expected, name


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_full_event_keeps_every_field(kind: str) -> None:
    data = payload(kind, FULL[kind], v=1, event_id=THIRD)
    event = validate(kind, data)

    assert event.event_id == UUID(THIRD)
    assert set(FULL[kind]) <= set(type(event).model_fields)
    for name, sent in FULL[kind].items():
        assert getattr(event, name) is not None, name
        if isinstance(sent, str) and name not in {"closed_at", "period_start", "period_end"}:
            assert str(getattr(event, name)) == sent, name


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_union_adapter_picks_the_model_named_by_kind(kind: str) -> None:
    event = EVENT_ADAPTER.validate_python(payload(kind))
    assert type(event) is MODEL_BY_KIND[kind]
    assert type(VALIDATORS[kind](payload(kind))) is MODEL_BY_KIND[kind]


def test_union_adapter_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python({**payload("metric"), "kind": "metrics"})


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_unknown_extra_fields_are_ignored(kind: str) -> None:
    event = validate(kind, payload(kind, future_field={"x": 1}, another=[1, 2]))
    assert "future_field" not in event.model_dump()
    assert not hasattr(event, "future_field")


def test_events_are_immutable() -> None:
    event = validate("metric", payload("metric"))
    with pytest.raises(ValidationError):
        event.ts = TS_UTC  # type: ignore[misc]


def test_events_can_be_built_in_python_without_repeating_the_kind() -> None:
    in_paris = TS_UTC.astimezone(timezone(timedelta(hours=2)))
    event = Metric(
        node_id=UUID(NODE), ts=in_paris, metric_type="cpu", metric_name="cpu", metric_value=1.0
    )
    assert event.kind == "metric"
    assert event.ts == TS_UTC
    assert event.ts.tzinfo is UTC
    with pytest.raises(ValidationError):
        Metric(
            node_id=UUID(NODE),
            ts=datetime(2025, 6, 1),
            metric_type="cpu",
            metric_name="cpu",
            metric_value=1.0,
        )


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_events_round_trip_through_their_json_form(kind: str) -> None:
    # The simulator publishes and dead-letter replay re-reads what model_dump_json writes.
    event = validate(kind, payload(kind, FULL[kind], event_id=THIRD))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = event.model_dump_json()
        as_json = event.model_dump(mode="json")
    assert validate(kind, orjson.loads(text)) == event
    assert validate(kind, as_json) == event
    assert as_json["ts"] == "2025-06-01T12:00:00Z"


def test_stats_kinds_live_by_period_start_and_others_by_ts() -> None:
    stats = validate("compression.stats", payload("compression.stats"))
    assert stats.event_time() == datetime(2025, 6, 1, 11, 59, tzinfo=UTC)
    batch = validate("batch.stats", payload("batch.stats"))
    assert batch.event_time() == datetime(2025, 6, 1, 11, 59, tzinfo=UTC)
    assert validate("metric", payload("metric")).event_time() == TS_UTC


# --------------------------------------------------------------------------------------------
# Common fields


@pytest.mark.parametrize("field", ["kind", "node_id", "ts"], ids=lambda name: f"missing-{name}")
def test_common_required_fields_are_required(field: str) -> None:
    data = payload("metric")
    del data[field]
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python(data)


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_every_required_field_of_a_kind_is_required(kind: str) -> None:
    for name in MINIMAL[kind]:
        data = payload(kind)
        del data[name]
        with pytest.raises(ValidationError) as caught:
            validate(kind, data)
        assert error_locations(caught.value) == [name]
        assert caught.value.errors()[0]["type"] == "missing"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("node_id", "not-a-uuid"),
        ("node_id", 12345),
        ("event_id", "nope"),
        ("v", 2),
        ("v", 0),
        ("v", "1"),
        ("v", True),
        ("v", 1.5),
    ],
)
def test_common_field_rules(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        validate("metric", payload("metric", **{field: value}))
    assert error_locations(caught.value) == [field]


def test_v_may_be_given_as_a_whole_float() -> None:
    assert validate("metric", payload("metric", v=1.0)).v == 1


def test_uuid_fields_accept_any_standard_text_form() -> None:
    event = validate("metric", payload("metric", node_id=NODE.upper().replace("-", "")))
    assert event.node_id == UUID(NODE)


# --------------------------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2025-06-01T12:00:00Z", TS_UTC),
        ("2025-06-01T14:00:00+02:00", TS_UTC),
        ("2025-06-01T07:30:00-04:30", TS_UTC),
        ("2025-06-01T12:00:00.123456Z", TS_UTC.replace(microsecond=123456)),
        ("2025-06-01T12:00:00.123456789Z", TS_UTC.replace(microsecond=123456)),
        ("2025-06-01t12:00:00z", TS_UTC),
        ("2025-06-01 12:00:00+00:00", TS_UTC),
        (1748779200000, TS_UTC),
        (1748779200123, TS_UTC.replace(microsecond=123000)),
        (1748779200000.0, TS_UTC),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (-1, datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
        (253402300799999, datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_ts_accepts_rfc3339_with_offset_or_epoch_ms_and_normalises_to_utc(
    sent: Any, expected: datetime
) -> None:
    event = validate("metric", payload("metric", ts=sent))
    assert event.ts == expected
    assert event.ts.tzinfo is UTC


@pytest.mark.parametrize(
    "sent",
    [
        "2025-06-01T12:00:00",  # naive
        "2025-06-01T12:00:00.5",  # naive with a fraction
        "2025-06-01",  # a date
        "2025-06-01T12:00Z",  # no seconds
        "20250601T120000Z",  # ISO 8601 basic format
        "2025-W22-7T12:00:00Z",  # week date
        "2025-13-01T12:00:00Z",  # no such month
        "2025-06-01T12:00:60Z",  # leap second
        "2025-06-01T12:00:00+24:00",  # no such offset
        "2025-06-01T12:00:00Z trailing",
        "1748779200000",  # a numeric string
        "",
        True,
        False,
        None,
        1748779200000.5,  # fractional milliseconds
        float("nan"),
        10**20,  # beyond the year 9999
        -(10**15),  # before the year 1
        "9999-12-31T23:59:59-01:00",  # beyond the year 9999 once in UTC
        [TS],
        {"ts": TS},
    ],
)
def test_ts_refuses_anything_but_the_two_forms(sent: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        validate("metric", payload("metric", ts=sent))
    assert error_locations(caught.value) == ["ts"]


def test_naive_ts_is_refused_with_a_message_about_the_offset() -> None:
    with pytest.raises(ValidationError) as caught:
        validate("metric", payload("metric", ts="2025-06-01T12:00:00"))
    assert "offset" in caught.value.errors()[0]["msg"]


def test_epoch_ms_conversion_is_exact_across_the_whole_range() -> None:
    # The common range takes a float shortcut; it must agree with exact integer arithmetic.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = random.Random(3)
    samples = [rng.randrange(0, 2**32 * 1000) for _ in range(20_000)]
    samples += [2**32 * 1000 - 1, 2**32 * 1000, 4_102_444_800_000, 1, 999]
    for ms in samples:
        assert parse_timestamp(ms) == epoch + timedelta(milliseconds=ms), ms


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("compression.stats", "period_start"),
        ("compression.stats", "period_end"),
        ("batch.stats", "period_start"),
        ("batch.stats", "period_end"),
        ("connection.state", "last_used_at"),
        ("connection.state", "closed_at"),
        ("optimization.params", "active_since"),
    ],
)
def test_other_timestamp_fields_take_both_forms_and_refuse_naive(kind: str, field: str) -> None:
    # Equal bounds keep period_end >= period_start whichever field is under test.
    base = payload(kind)
    if "period_start" in base:
        base["period_start"] = base["period_end"] = TS
    for sent in ("2025-06-01T14:00:00+02:00", 1748779200000):
        event = validate(kind, {**base, field: sent})
        assert getattr(event, field) == TS_UTC
        assert getattr(event, field).tzinfo is UTC
    for refused in ("2025-06-01T12:00:00", "1748779200000", True, 1.5):
        with pytest.raises(ValidationError) as caught:
            validate(kind, {**base, field: refused})
        assert field in error_locations(caught.value)


# --------------------------------------------------------------------------------------------
# Numbers


@pytest.mark.parametrize(("sent", "stored"), [(7946, 7946), (7946.0, 7946)])
def test_int_field_accepts_a_whole_json_number(sent: Any, stored: int) -> None:
    event = validate("node.announce", payload("node.announce", port=sent))
    assert event.port == stored  # type: ignore[attr-defined]
    assert type(event.port) is int  # type: ignore[attr-defined]


@pytest.mark.parametrize("sent", ["7946", True, 7946.5, None, [7946], float("inf")])
def test_int_field_refuses_strings_booleans_and_fractions(sent: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        validate("node.announce", payload("node.announce", port=sent))
    assert error_locations(caught.value) == ["port"]


@pytest.mark.parametrize(("sent", "stored"), [(5, 5.0), (5.5, 5.5), (-0.0, 0.0), (2**60, 2.0**60)])
def test_number_field_accepts_ints_and_floats(sent: Any, stored: float) -> None:
    event = validate("metric", payload("metric", metric_value=sent))
    assert event.metric_value == stored  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "sent", ["5", "5.5", True, False, None, float("nan"), float("inf"), float("-inf"), [5]]
)
def test_number_field_refuses_strings_booleans_and_non_finite(sent: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        validate("metric", payload("metric", metric_value=sent))
    assert error_locations(caught.value) == ["metric_value"]


def test_ints_beyond_64_bits_are_refused() -> None:
    # orjson hands integers beyond 64 bits over as floats; both forms must be refused.
    for sent in (2**63, 1.8446744073709552e19):
        with pytest.raises(ValidationError):
            validate("connection.state", payload("connection.state", bytes_sent=sent))
    event = validate("connection.state", payload("connection.state", bytes_sent=2**63 - 1))
    assert event.bytes_sent == 2**63 - 1  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Value rules, kind by kind: (kind, location of the error, field to set, value sent)

LONG = "x" * 256


def _rule(kind: str, field: str, value: Any, location: str | None = None) -> Any:
    return pytest.param(kind, field, value, location or field, id=f"{kind}:{field}={value!r:.20}")


RULES = [
    _rule("node.announce", "node_name", ""),
    _rule("node.announce", "node_name", LONG),
    _rule("node.announce", "node_type", "Peer"),
    _rule("node.announce", "node_type", "router"),
    _rule("node.announce", "role", "Super_peer"),
    _rule("node.announce", "address", ""),
    _rule("node.announce", "port", 0),
    _rule("node.announce", "port", 65536),
    _rule("node.announce", "public_key", 5),
    _rule("node.announce", "capabilities", ["relay"]),
    _rule("node.announce", "metadata", "rack=r1"),
    _rule("node.announce", "status", "ACTIVE"),
    _rule("node.announce", "status", None),
    _rule("node.heartbeat", "status", "gone"),
    _rule("topology.config", "topology_id", "x"),
    _rule("topology.config", "mesh_name", ""),
    _rule("topology.config", "topology_type", "Full_Mesh"),
    _rule("topology.config", "configuration", [1]),
    _rule("topology.config", "optimization_enabled", "true"),
    _rule("topology.config", "optimization_enabled", 1),
    _rule("topology.config", "learning_rate", "0.1"),
    _rule("topology.config", "connectivity_threshold", 1.0001),
    _rule("topology.config", "connectivity_threshold", -0.0001),
    _rule("topology.config", "max_connections_per_node", 0),
    _rule("topology.config", "status", 3),
    _rule("link.probe", "remote_node_id", NODE),
    _rule("link.probe", "remote_node_id", NODE.upper()),
    _rule("link.probe", "link_state", "Active"),
    _rule("link.probe", "quality", 1.5),
    _rule("link.probe", "quality", -0.1),
    _rule("link.probe", "latency_ms", -1),
    _rule("link.probe", "bandwidth_mbps", -0.5),
    _rule("link.probe", "packet_loss", 1.01),
    _rule("link.probe", "jitter_ms", -2),
    _rule("link.probe", "weight", "1"),
    _rule("link.probe", "metadata", 5),
    _rule("route.advert", "destination_id", None),
    _rule("route.advert", "next_hop_id", "direct"),
    _rule("route.advert", "sequence_number", -1),
    _rule("route.advert", "sequence_number", 1.5),
    _rule("route.advert", "quality", 2),
    _rule("route.advert", "quality", None),
    _rule("route.advert", "hop_count", -1),
    _rule("route.advert", "flags", 0.5),
    _rule("route.advert", "metrics", [1, 2]),
    _rule("route.advert", "metrics", {"latency": "5"}, "metrics.latency"),
    _rule("route.advert", "metrics", {"bandwidth": -1}, "metrics.bandwidth"),
    _rule("route.advert", "metrics", {"packet_loss": 1.5}, "metrics.packet_loss"),
    _rule("route.advert", "metrics", {"jitter": True}, "metrics.jitter"),
    _rule("pool.state", "pool_name", ""),
    _rule("pool.state", "min_connections", -1),
    _rule("pool.state", "max_connections", 0),
    _rule("pool.state", "current_connections", -1),
    _rule("pool.state", "in_use_connections", -1),
    _rule("pool.state", "keepalive_timeout", -1),
    _rule("pool.state", "enable_http2", "yes"),
    _rule("pool.state", "status", "Stopped"),
    _rule("connection.state", "pool_id", "pool-1"),
    _rule("connection.state", "endpoint", ""),
    _rule("connection.state", "protocol", "HTTP/2"),
    _rule("connection.state", "protocol", "http2"),
    _rule("connection.state", "state", "open"),
    _rule("connection.state", "requests_handled", -1),
    _rule("connection.state", "bytes_sent", "10"),
    _rule("connection.state", "bytes_received", -1),
    _rule("connection.state", "errors_count", 0.5),
    _rule("compression.stats", "algorithm", "LZ4"),
    _rule("compression.stats", "algorithm", None),
    _rule("compression.stats", "messages_compressed", -1),
    _rule("compression.stats", "original_bytes", -1),
    _rule("compression.stats", "compressed_bytes", -1),
    _rule("compression.stats", "compression_time_ms", -1),
    _rule("compression.stats", "decompression_time_ms", 1.5),
    _rule("compression.stats", "period_end", "2025-06-01T11:58:59Z"),
    _rule("optimization.params", "param_set_name", ""),
    _rule("optimization.params", "batch_size", 0),
    _rule("optimization.params", "compression_algorithm", "xz"),
    _rule("optimization.params", "connection_pool_size", 0),
    _rule("optimization.params", "retry_strategy", "random"),
    _rule("optimization.params", "max_retries", -1),
    _rule("optimization.params", "circuit_breaker_threshold", 1.1),
    _rule("optimization.params", "adaptive_learning_enabled", 0),
    _rule("optimization.params", "metadata", []),
    _rule("batch.config", "max_batch_size", 0),
    _rule("batch.config", "max_wait_time_ms", -1),
    _rule("batch.config", "priority_threshold", -0.5),
    _rule("batch.config", "adaptive_sizing", "false"),
    _rule("batch.stats", "total_batches", -1),
    _rule("batch.stats", "total_messages", -1),
    _rule("batch.stats", "priority_bypasses", -1),
    _rule("batch.stats", "queue_overflows", -1),
    _rule("batch.stats", "average_batch_size", -0.1),
    _rule("batch.stats", "period_end", "2025-06-01T11:00:00Z"),
    _rule("metric", "metric_type", ""),
    _rule("metric", "metric_type", "t" * 101),
    _rule("metric", "metric_name", ""),
    _rule("metric", "metric_name", LONG),
    _rule("metric", "metric_value", "42"),
    _rule("metric", "metric_value", float("nan")),
    _rule("metric", "unit", "u" * 51),
    _rule("metric", "tags", ["a"]),
    _rule("metric", "tags", "a=b"),
    _rule("event", "event_type", ""),
    _rule("event", "event_name", ""),
    _rule("event", "severity", "INFO"),
    _rule("event", "severity", "fatal"),
    _rule("event", "description", 5),
    _rule("event", "metadata", "m"),
    _rule("dns.record", "hostname", ""),
    _rule("dns.record", "ip_addresses", []),
    _rule("dns.record", "ip_addresses", "10.0.0.7"),
    _rule("dns.record", "ip_addresses", ["999.0.0.1"], "ip_addresses.0"),
    _rule("dns.record", "ip_addresses", ["10.0.0.7", "host"], "ip_addresses.1"),
    _rule("dns.record", "ip_addresses", ["10.0.0.0/8"], "ip_addresses.0"),
    _rule("dns.record", "ip_addresses", ["fe80::1%eth0"], "ip_addresses.0"),
    _rule("dns.record", "ip_addresses", [167772167], "ip_addresses.0"),
    _rule("dns.record", "record_type", "aaaa"),
    _rule("dns.record", "ttl", -1),
    _rule("dns.record", "ttl", 2**31),
    _rule("service.register", "service_name", ""),
    _rule("service.register", "service_type", ""),
    _rule("service.register", "endpoints", []),
    _rule("service.register", "endpoints", "http://a"),
    _rule("service.register", "endpoints", [""], "endpoints.0"),
    _rule("service.register", "health_check_url", 5),
    _rule("service.register", "health_status", "Healthy"),
]


@pytest.mark.parametrize(("kind", "field", "value", "location"), RULES)
def test_value_rule_is_enforced(kind: str, field: str, value: Any, location: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(kind, payload(kind, **{field: value}))
    assert error_locations(caught.value) == [location]


def test_every_kind_has_its_value_rules_tested() -> None:
    assert {param.values[0] for param in RULES} == set(SPEC_KINDS)


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("link.probe", "quality", 0),
        ("link.probe", "quality", 1),
        ("link.probe", "packet_loss", 1.0),
        ("route.advert", "quality", 0.0),
        ("topology.config", "connectivity_threshold", 1),
        ("optimization.params", "circuit_breaker_threshold", 0),
        ("batch.config", "priority_threshold", 1),
        ("node.announce", "port", 1),
        ("node.announce", "port", 65535),
        ("node.announce", "node_name", "n" * 255),
        ("metric", "metric_type", "t" * 100),
        ("metric", "unit", "u" * 50),
        ("metric", "unit", ""),
        ("dns.record", "ttl", 0),
        ("route.advert", "next_hop_id", None),
        ("route.advert", "metrics", {}),
        ("route.advert", "metrics", {"latency": 3, "unknown": "ignored"}),
        ("compression.stats", "period_end", "2025-06-01T11:59:00Z"),
    ],
)
def test_values_on_the_edge_of_a_rule_are_accepted(kind: str, field: str, value: Any) -> None:
    validate(kind, payload(kind, **{field: value}))


def test_several_failing_fields_are_all_reported() -> None:
    with pytest.raises(ValidationError) as caught:
        validate("node.announce", payload("node.announce", port=0, node_type="x", node_name=""))
    assert sorted(error_locations(caught.value)) == ["node_name", "node_type", "port"]


def test_ip_addresses_are_kept_as_canonical_text() -> None:
    sent = ["10.0.0.7", "2001:DB8:0:0::1", "::ffff:10.0.0.1"]
    event = validate("dns.record", payload("dns.record", ip_addresses=sent))
    assert event.ip_addresses == ["10.0.0.7", "2001:db8::1", "::ffff:a00:1"]  # type: ignore[attr-defined]


def test_null_means_absent_for_an_optional_field_without_default() -> None:
    event = validate("link.probe", payload("link.probe", quality=None, metadata=None))
    assert event.quality is None  # type: ignore[attr-defined]


def test_route_advert_metrics_keep_only_the_given_keys() -> None:
    event = validate("route.advert", payload("route.advert", metrics={"latency": 4}))
    assert event.metrics.latency == 4.0  # type: ignore[attr-defined]
    assert event.metrics.model_fields_set == {"latency"}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# JSON Schema


def test_checked_in_json_schema_matches_the_models() -> None:
    on_disk = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert on_disk == export_json_schema(), (
        f"{SCHEMA_PATH.name} is out of date; regenerate it with\n"
        "    .venv/bin/python -c 'import ingest.events.jsonschema as s; s.write_json_schema()'"
    )
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_json_schema()


def test_json_schema_describes_an_event_or_an_array_of_events() -> None:
    schema = export_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["$id"] and schema["title"] and schema["description"]
    assert schema["anyOf"] == [
        {"$ref": "#/$defs/Event"},
        {"type": "array", "items": {"$ref": "#/$defs/Event"}},
    ]
    mapping = schema["$defs"]["Event"]["discriminator"]["mapping"]
    assert set(mapping) == set(SPEC_KINDS)


@pytest.mark.parametrize("kind", SPEC_KINDS)
def test_json_schema_requires_kind_node_id_and_ts(kind: str) -> None:
    schema = export_json_schema()
    name = MODEL_BY_KIND[kind].__name__
    definition = schema["$defs"][name]
    assert definition["required"][:3] == ["kind", "node_id", "ts"]
    assert definition["properties"]["kind"]["const"] == kind
    assert set(MINIMAL[kind]) <= set(definition["required"])


def test_json_schema_spells_out_the_number_rules() -> None:
    defs = export_json_schema()["$defs"]
    assert defs["NodeAnnounce"]["properties"]["port"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "title": "Port",
    }
    assert defs["Metric"]["properties"]["v"]["const"] == 1
    quality = defs["RouteAdvert"]["properties"]["quality"]
    assert (quality["type"], quality["minimum"], quality["maximum"]) == ("number", 0, 1)
