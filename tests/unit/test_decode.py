"""decode(): record value bytes -> events and dead letters, one per bad element, never raising."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from test_events import FULL, payload

from ingest import decode as decode_module
from ingest.decode import (
    MAX_DETAIL_CHARS,
    REASONS,
    DeadLetter,
    Decoded,
    DecodeLimits,
    decode,
)
from ingest.events import KINDS, CompressionStats, Metric

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
NODE = "5f0c6a4e-8a43-4c1b-9d59-0d2f8e1c7a01"
EVENT_ID = "0b8f7c55-3d0e-4a53-8c1a-7a4b2d9e6f10"
LIMITS = DecodeLimits()


def metric(**fields: Any) -> dict[str, Any]:
    return {
        "kind": "metric",
        "node_id": NODE,
        "ts": NOW_MS,
        "metric_type": "cpu",
        "metric_name": "cpu.usage",
        "metric_value": 12.5,
        **fields,
    }


def compression(**fields: Any) -> dict[str, Any]:
    return {
        "kind": "compression.stats",
        "node_id": NODE,
        "ts": NOW_MS,
        "algorithm": "zstd",
        "period_start": NOW_MS - 60_000,
        "period_end": NOW_MS,
        **fields,
    }


def run(value: Any, limits: DecodeLimits = LIMITS, now: datetime = NOW) -> Decoded:
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return decode(raw, now, limits)


def only_dead(decoded: Decoded) -> DeadLetter:
    assert decoded.events == []
    assert len(decoded.dead) == 1
    return decoded.dead[0]


# --------------------------------------------------------------------------------------------
# Good values


def test_single_object_becomes_one_event_with_no_index() -> None:
    decoded = run(metric())
    assert decoded.dead == []
    [(index, event)] = decoded.events
    assert index is None
    assert isinstance(event, Metric)
    assert event.ts == NOW


def test_array_elements_become_events_carrying_their_index() -> None:
    decoded = run([metric(metric_value=i) for i in range(5)])
    assert decoded.dead == []
    assert [index for index, _ in decoded.events] == [0, 1, 2, 3, 4]
    assert [event.metric_value for _, event in decoded.events] == [0, 1, 2, 3, 4]  # type: ignore[union-attr]


def test_empty_array_yields_no_events_and_no_dead_letters() -> None:
    assert run(b"[]") == Decoded([], [])
    assert run(b" [ ] ") == Decoded([], [])


def test_array_of_every_kind_decodes() -> None:
    elements = [payload(kind, ts=NOW_MS) for kind in KINDS]
    decoded = run(elements)
    assert decoded.dead == []
    assert [event.kind for _, event in decoded.events] == list(KINDS)


def test_extra_fields_are_ignored_at_every_level_of_decode() -> None:
    decoded = run(metric(added_in_v1_7={"x": [1, 2]}, other="y"))
    assert decoded.dead == []
    assert len(decoded.events) == 1


def test_naive_now_is_taken_as_utc() -> None:
    decoded = run(metric(ts=NOW_MS + 1000), now=NOW.replace(tzinfo=None))
    assert len(decoded.events) == 1


# --------------------------------------------------------------------------------------------
# One test per dead-letter reason decode emits


@pytest.mark.parametrize(
    "value",
    [
        b"{",
        b'{"kind": "metric",}',
        b"not json",
        b"\xff\xfe{}",  # not UTF-8
        b'"\xc3\x28"',  # invalid UTF-8 inside a string
        b"\xef\xbb\xbf{}",  # a byte-order mark
        b"   ",
        b"NaN",
        b"[1e400]",
        b'["\\ud800"]',  # a lone surrogate
        b"{} {}",
        None,  # a tombstone
        b"",
    ],
)
def test_invalid_json_is_one_dead_letter_for_the_whole_value(value: bytes | None) -> None:
    dead = only_dead(run(value))
    assert dead.reason == "invalid_json"
    assert dead.element_index is None
    assert dead.detail


@pytest.mark.parametrize(
    ("value", "index"),
    [
        (b"42", None),
        (b'"metric"', None),
        (b"null", None),
        (b"true", None),
        (b"[42]", 0),
        (b'[["nested"]]', 0),
        (b"[null]", 0),
        (b'{"node_id": "x"}', None),  # no kind
        (b'[{"kind": 5}]', 0),  # kind not a string
        (b'{"kind": null}', None),
        (b'{"kind": ["metric"]}', None),
    ],
)
def test_invalid_envelope_for_a_non_object_or_an_object_without_string_kind(
    value: bytes, index: int | None
) -> None:
    dead = only_dead(run(value))
    assert dead.reason == "invalid_envelope"
    assert dead.element_index == index
    assert dead.kind is None


@pytest.mark.parametrize("kind", ["metrics", "Metric", "METRIC", "", "node.Announce"])
def test_unknown_kind_is_case_sensitive_and_echoes_the_kind(kind: str) -> None:
    dead = only_dead(run(metric(kind=kind, event_id=EVENT_ID)))
    assert dead.reason == "unknown_kind"
    assert dead.kind == kind
    assert dead.event_id == EVENT_ID


@pytest.mark.parametrize("version", [2, 0, -1, 2.0, 1e30])
def test_another_major_version_is_unsupported_version(version: Any) -> None:
    dead = only_dead(run(metric(v=version, metric_value="this would fail v1 validation")))
    assert dead.reason == "unsupported_version"
    assert dead.kind == "metric"


@pytest.mark.parametrize("version", ["1", "2", True, None, 1.5, [1]])
def test_a_version_that_is_not_a_whole_number_is_validation_failed(version: Any) -> None:
    dead = only_dead(run(metric(v=version)))
    assert dead.reason == "validation_failed"
    assert dead.detail.startswith("v: ")


def test_version_one_may_be_explicit_or_absent() -> None:
    assert len(run([metric(v=1), metric(v=1.0), metric()]).events) == 3


def test_validation_failed_names_each_failing_field_and_why() -> None:
    dead = only_dead(run(metric(metric_value="5", metric_name="", ts="2025-06-01T12:00:00")))
    assert dead.reason == "validation_failed"
    assert dead.kind == "metric"
    assert dead.detail.startswith("ts: ")
    assert "metric_name: String should have at least 1 character" in dead.detail
    assert "metric_value: Input should be a valid number" in dead.detail
    assert dead.detail.count("; ") == 2


def test_validation_failed_locates_nested_fields() -> None:
    advert = {
        "kind": "route.advert",
        "node_id": NODE,
        "ts": NOW_MS,
        "destination_id": EVENT_ID,
        "sequence_number": 1,
        "quality": 0.5,
        "metrics": {"latency": -3},
    }
    dead = only_dead(run(advert))
    assert dead.detail == "metrics.latency: Input should be greater than or equal to 0"


def test_validation_failed_detail_is_bounded() -> None:
    addresses = [f"not-an-ip-{i}" * 20 for i in range(500)]
    record = {
        "kind": "dns.record",
        "node_id": NODE,
        "ts": NOW_MS,
        "hostname": "h",
        "ip_addresses": addresses,
    }
    dead = only_dead(run(record))
    assert dead.reason == "validation_failed"
    assert len(dead.detail) <= MAX_DETAIL_CHARS
    assert dead.detail.startswith("ip_addresses.0: ")


def test_ts_beyond_the_allowed_skew_is_timestamp_in_future() -> None:
    limits = DecodeLimits(max_future_skew_s=300)
    skew_ms = 300_000
    decoded = run([metric(ts=NOW_MS + skew_ms), metric(ts=NOW_MS + skew_ms + 1)], limits)
    assert [index for index, _ in decoded.events] == [0]
    [dead] = decoded.dead
    assert (dead.reason, dead.element_index, dead.kind) == ("timestamp_in_future", 1, "metric")
    assert "ts 2025-06-01T12:05:00.001000Z" in dead.detail


def test_a_stats_period_starting_in_the_future_is_timestamp_in_future() -> None:
    ahead = NOW_MS + 3_600_000
    dead = only_dead(run(compression(period_start=ahead, period_end=ahead)))
    assert dead.reason == "timestamp_in_future"
    assert dead.detail.startswith("period_start ")


def test_ts_older_than_the_kind_retention_is_timestamp_too_old() -> None:
    horizon = NOW - timedelta(days=30)
    limits = DecodeLimits(oldest_allowed={"metric": horizon})
    old_ms = int(horizon.timestamp() * 1000) - 1
    decoded = run([metric(ts=old_ms), metric(ts=old_ms + 1)], limits)
    assert [index for index, _ in decoded.events] == [1]
    [dead] = decoded.dead
    assert (dead.reason, dead.element_index) == ("timestamp_too_old", 0)


def test_kinds_without_a_retention_horizon_have_no_age_limit() -> None:
    limits = DecodeLimits(oldest_allowed={"event": NOW})
    assert len(run(metric(ts=0), limits).events) == 1


def test_stats_kinds_are_aged_by_period_start() -> None:
    horizon = NOW - timedelta(days=1)
    limits = DecodeLimits(oldest_allowed={"compression.stats": horizon})
    start = int(horizon.timestamp() * 1000) - 1
    dead = only_dead(run(compression(period_start=start), limits))
    assert dead.reason == "timestamp_too_old"
    assert dead.detail.startswith("period_start ")
    # A fresh period reported with an old ts is still stored: rows live by period_start.
    decoded = run(compression(ts=0), limits)
    assert isinstance(decoded.events[0][1], CompressionStats)


def test_a_value_over_the_byte_limit_is_too_large_before_any_parsing() -> None:
    limits = DecodeLimits(max_bytes=100)
    assert only_dead(run(b"{" * 101, limits)).reason == "too_large"
    # Exactly at the limit it is parsed (and here found to be invalid JSON).
    assert only_dead(run(b"{" * 100, limits)).reason == "invalid_json"
    dead = only_dead(run(b"[" + b" " * 200 + b"]", limits))
    assert (dead.reason, dead.element_index) == ("too_large", None)


def test_default_byte_limit_is_one_mebibyte() -> None:
    assert DecodeLimits().max_bytes == 1_048_576
    assert DecodeLimits().max_future_skew_s == 300.0


def test_reason_codes_are_those_of_the_spec() -> None:
    assert REASONS == (
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


# --------------------------------------------------------------------------------------------
# Arrays with good and bad elements


def test_good_elements_survive_their_bad_neighbours_with_correct_indexes() -> None:
    elements: list[Any] = [
        metric(),  # 0 good
        7,  # 1 invalid_envelope
        metric(kind="nope"),  # 2 unknown_kind
        metric(),  # 3 good
        metric(v=2),  # 4 unsupported_version
        metric(metric_value="x"),  # 5 validation_failed
        {"node_id": NODE},  # 6 invalid_envelope
        metric(ts=NOW_MS + 86_400_000),  # 7 timestamp_in_future
        metric(),  # 8 good
    ]
    decoded = run(elements)
    assert [index for index, _ in decoded.events] == [0, 3, 8]
    assert [(dead.element_index, dead.reason) for dead in decoded.dead] == [
        (1, "invalid_envelope"),
        (2, "unknown_kind"),
        (4, "unsupported_version"),
        (5, "validation_failed"),
        (6, "invalid_envelope"),
        (7, "timestamp_in_future"),
    ]


def test_event_id_and_kind_are_echoed_into_the_dead_letter() -> None:
    dead = only_dead(run(metric(metric_value=None, event_id=EVENT_ID)))
    assert (dead.kind, dead.event_id) == ("metric", EVENT_ID)


@pytest.mark.parametrize("event_id", ["not-a-uuid", 12, None, "x" * 1000, {"id": EVENT_ID}])
def test_an_event_id_that_is_not_a_uuid_is_not_echoed(event_id: Any) -> None:
    dead = only_dead(run(metric(metric_value=None, event_id=event_id)))
    assert dead.event_id is None


def test_an_overlong_unknown_kind_is_echoed_truncated() -> None:
    dead = only_dead(run(metric(kind="k" * 10_000)))
    assert dead.reason == "unknown_kind"
    assert dead.kind is not None and len(dead.kind) == 100
    assert len(dead.detail) <= MAX_DETAIL_CHARS


# --------------------------------------------------------------------------------------------
# Strings PostgreSQL cannot store


def test_nul_in_a_stored_string_is_validation_failed_naming_its_path() -> None:
    decoded = run([metric(tags={"host": {"name": "a\u0000b"}}), metric(metric_name="x\u0000")])
    assert [dead.detail.split(":")[0] for dead in decoded.dead] == [
        "tags.host.name",
        "metric_name",
    ]
    assert {dead.reason for dead in decoded.dead} == {"validation_failed"}


def test_nul_in_an_object_key_is_validation_failed() -> None:
    dead = only_dead(run(metric(tags={"a\u0000": 1})))
    assert dead.reason == "validation_failed"


def test_nul_in_an_ignored_extra_field_is_harmless() -> None:
    assert len(run(metric(debug="\u0000")).events) == 1


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    decoded = run(metric(metric_name="C:\\u0000dir"))
    assert decoded.dead == []


def test_nul_search_survives_nesting_deeper_than_the_recursion_limit() -> None:
    # orjson parses 1000 levels but will not write them, so the bytes are built by hand.
    head = orjson.dumps(metric(tags="HOLE")).split(b'"HOLE"')
    deep = b"[" * 1000 + b'"\\u0000"' + b"]" * 1000
    dead = only_dead(run(head[0] + b'{"deep":' + deep + b"}" + head[1]))
    assert dead.reason == "validation_failed"
    assert dead.detail.startswith("tags.deep.0.0.0.")
    assert len(dead.detail) <= MAX_DETAIL_CHARS


# --------------------------------------------------------------------------------------------
# Never raises


def test_a_decoder_bug_is_contained_to_its_element(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(item: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setitem(decode_module._VALIDATORS, "event", broken)
    decoded = run([metric(), {"kind": "event", "event_id": EVENT_ID}, metric()])
    assert [index for index, _ in decoded.events] == [0, 2]
    [dead] = decoded.dead
    assert dead.reason == "validation_failed"
    assert dead.detail == "internal decoder error: RuntimeError: boom"
    assert (dead.element_index, dead.kind, dead.event_id) == (1, "event", EVENT_ID)


def test_a_decoder_bug_outside_any_element_is_one_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(value: bytes) -> Any:
        raise MemoryError("parser exhausted")

    monkeypatch.setattr(orjson, "loads", broken)
    dead = only_dead(run(b"{}"))
    assert dead.reason == "validation_failed"
    assert dead.detail.startswith("internal decoder error: MemoryError")


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 4 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.randint(-(2**63), 2**64 - 1)  # what orjson can write
    if choice == 3:
        return rng.uniform(-1e300, 1e300)
    if choice == 4:
        return "".join(rng.choices(string.printable + "\u0000\u00e9\U0001f600", k=rng.randrange(8)))
    if choice == 5:
        return rng.choice(["2025-06-01T12:00:00Z", NODE, "metric", "", "A", "10.0.0.1"])
    if choice == 6:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["kind", "node_id", "ts", "v", "event_id", "metric_value", "port", "tags", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(6))}


def _mutated_event(rng: random.Random) -> Any:
    kind = rng.choice(KINDS)
    event = payload(kind, FULL[kind], ts=NOW_MS)
    for _ in range(rng.randrange(1, 4)):
        field = rng.choice(list(event))
        if rng.random() < 0.3:
            del event[field]
        else:
            event[field] = _random_json(rng, depth=2)
    return event


def _account_for_every_element(value: bytes, decoded: Decoded) -> None:
    assert isinstance(decoded, Decoded)
    assert {dead.reason for dead in decoded.dead} <= set(REASONS[:8])
    assert all(len(dead.detail) <= MAX_DETAIL_CHARS for dead in decoded.dead)
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return
    indexes = sorted(
        [index for index, _ in decoded.events] + [dead.element_index for dead in decoded.dead],
        key=lambda index: -1 if index is None else index,
    )
    if isinstance(document, list):
        assert indexes == list(range(len(document)))
    else:
        assert indexes == [None]


def test_decode_never_raises_on_random_bytes() -> None:
    rng = random.Random(20250601)
    for _ in range(3000):
        value = rng.randbytes(rng.randrange(0, 64))
        _account_for_every_element(value, decode(value, NOW, LIMITS))


def test_decode_never_raises_on_random_json_structures() -> None:
    rng = random.Random(42)
    for _ in range(3000):
        value = orjson.dumps(_random_json(rng))
        _account_for_every_element(value, decode(value, NOW, LIMITS))


def test_decode_never_raises_on_mutated_events_and_accounts_for_each_element() -> None:
    rng = random.Random(7)
    limits = DecodeLimits(oldest_allowed={kind: NOW - timedelta(days=1) for kind in KINDS})
    for _ in range(1500):
        elements = [_mutated_event(rng) for _ in range(rng.randrange(1, 6))]
        value = orjson.dumps(elements if rng.random() < 0.7 else elements[0])
        decoded = decode(value, NOW, limits)
        _account_for_every_element(value, decoded)
        # Truncating a valid value anywhere gives invalid JSON, never an exception.
        cut = value[: rng.randrange(1, len(value))]
        assert all(dead.reason == "invalid_json" for dead in decode(cut, NOW, limits).dead)
