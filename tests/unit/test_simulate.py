"""The simulator's generator (pure): valid output, intended dead letters, determinism, realism."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
import pytest

from ingest.decode import REASONS, Decoded, DecodeLimits, decode
from ingest.events import KINDS, parse_timestamp
from ingest.settings import TOPIC_NAMES, PartitionSettings
from ingest.simulate import KIND_TOPIC, REASON_CYCLE, SimRecord, SimulationOptions, Simulator
from ingest.simulate.graphs import barabasi_albert, hop_distances, watts_strogatz
from ingest.tables import KIND_TIME_SERIES

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@cache
def _retention_days() -> dict[str, int]:
    p = PartitionSettings()
    return {kind: p.retention_days(table) for kind, table in KIND_TIME_SERIES.items()}


def limits_at(now: datetime) -> DecodeLimits:
    """What the worker applies at ``now``: default size and skew, each table's retention."""
    return DecodeLimits(
        oldest_allowed={k: now - timedelta(days=d) for k, d in _retention_days().items()}
    )


def decode_as_published(record: SimRecord) -> Decoded:
    # The worker decodes a record at some wall time at or after its publication, and
    # run_simulation never publishes a record before its simulated time: decoding at the
    # record's own time is the strictest clock any worker applies to it.
    return decode(record.value, record.at, limits_at(record.at))


def generate(**options: Any) -> tuple[Simulator, list[SimRecord]]:
    sim = Simulator(SimulationOptions(**options), START)
    return sim, list(sim.records())


def elements(record: SimRecord) -> list[dict[str, Any]]:
    doc = orjson.loads(record.value)
    return doc if isinstance(doc, list) else [doc]


def all_events(records: list[SimRecord]) -> list[dict[str, Any]]:
    return [e for r in records for e in elements(r)]


# -- validity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"count": 30_000, "nodes": 40},
        {"count": 30_000, "nodes": 60, "topologies": 3, "batch": 25},
        {"count": 5_000, "nodes": 7, "rate": 0},
        {"count": 5_000, "nodes": 2},
    ],
    ids=["single", "batched-3-topologies", "flat-out", "two-nodes"],
)
def test_clean_output_decodes_entirely(options: dict[str, Any]) -> None:
    sim, records = generate(**options)
    assert sum(len(r.kinds) for r in records) == sim.events == options["count"]
    for record in records:
        decoded = decode_as_published(record)
        assert decoded.dead == [], (record, decoded.dead)
        assert tuple(e.kind for _, e in decoded.events) == record.kinds
        assert record.intended_reason is None
        assert record.topic == KIND_TOPIC[record.kinds[0]]
        assert all(KIND_TOPIC[k] == record.topic for k in record.kinds)
        assert record.key == str(decoded.events[0][1].node_id).encode()


def test_clean_output_also_decodes_at_the_end_of_the_run() -> None:
    sim, records = generate(count=20_000, nodes=30, batch=10)
    now = sim.now
    assert now == records[-1].at
    assert all(decode(r.value, now, limits_at(now)).dead == [] for r in records)


def test_event_times_never_lead_the_record_and_follow_the_simulated_clock() -> None:
    sim, records = generate(count=5_000, rate=500.0, batch=8)
    # 5000 events at 500/s: the last one is ~10 s after the start, whatever the wall clock.
    assert sim.now == START + timedelta(seconds=4_999 / 500)
    previous = START
    for record in records:
        assert record.at >= previous
        previous = record.at
        for _, event in decode_as_published(record).events:
            assert START - timedelta(minutes=2) <= event.event_time() <= event.ts <= record.at


def test_duration_bounds_simulated_time() -> None:
    sim, _ = generate(duration_s=2.0, rate=1000.0)
    assert sim.events == 2000
    assert sim.now < START + timedelta(seconds=2)


def test_positive_skew_within_tolerance_stays_valid_and_beyond_it_is_future() -> None:
    _, records = generate(count=3_000, skew_s=120.0)
    assert all(decode_as_published(r).dead == [] for r in records)
    _, records = generate(count=3_000, skew_s=900.0)
    reasons = Counter(d.reason for r in records for d in decode_as_published(r).dead)
    assert reasons == {"timestamp_in_future": 3_000}


def test_negative_skew_moves_every_time_back() -> None:
    _, plain = generate(count=2_000)
    _, lagging = generate(count=2_000, skew_s=-60.0)
    for a, b in zip(all_events(plain), all_events(lagging), strict=True):
        assert parse_timestamp(a["ts"]) - parse_timestamp(b["ts"]) == timedelta(seconds=60)


# -- malformed records ---------------------------------------------------------------------


def test_reason_cycle_is_every_reason_decode_emits() -> None:
    assert REASONS[:8] == REASON_CYCLE


@pytest.mark.parametrize("batch", [1, 12])
def test_malformed_records_produce_exactly_the_intended_reasons(batch: int) -> None:
    _, records = generate(count=40_000, nodes=30, batch=batch, malformed=0.05)
    intended: Counter[str] = Counter()
    for record in records:
        decoded = decode_as_published(record)
        assert tuple(e.kind for _, e in decoded.events) == record.kinds, record
        if record.intended_reason is None:
            assert decoded.dead == [], (record, decoded.dead)
            continue
        intended[record.intended_reason] += 1
        assert [d.reason for d in decoded.dead] == [record.intended_reason], (
            record,
            decoded.dead,
        )
        assert decoded.dead[0].element_index == record.bad_index
        if record.intended_reason in ("invalid_json", "too_large"):
            assert record.kinds == ()
    assert set(intended) == set(REASON_CYCLE)
    # Cycled in turn: no reason more than one ahead of another.
    assert max(intended.values()) - min(intended.values()) <= 1
    bad = sum(intended.values())
    assert bad == pytest.approx(0.05 * len(records), rel=0.05)


def test_every_record_bad_when_asked_except_those_that_cannot_carry_the_reason() -> None:
    _, records = generate(count=3_000, nodes=10, malformed=1.0)
    retained = set(KIND_TIME_SERIES)
    for record in records:
        if record.intended_reason is None:
            # An announcement is never damaged; a record waiting for timestamp_too_old has
            # no kind with a retention to be too old for.
            assert {"node.announce", "topology.config"} & set(record.kinds) or not (
                retained & set(record.kinds)
            )
    clean = sum(r.intended_reason is None for r in records)
    assert clean < 0.1 * len(records)


# -- determinism ---------------------------------------------------------------------------


def _bytes(records: list[SimRecord]) -> list[tuple[str, bytes, bytes]]:
    return [(r.topic, r.key, r.value) for r in records]


def test_same_seed_gives_byte_identical_records() -> None:
    options = {"count": 8_000, "batch": 5, "malformed": 0.03, "topologies": 2}
    assert _bytes(generate(**options)[1]) == _bytes(generate(**options)[1])


def test_different_seed_gives_different_records_and_node_names() -> None:
    _, one = generate(count=2_000, seed=1)
    _, two = generate(count=2_000, seed=2)
    assert _bytes(one) != _bytes(two)
    names = [
        {e["node_name"] for e in all_events(rs) if e["kind"] == "node.announce"}
        for rs in (one, two)
    ]
    assert names[0].isdisjoint(names[1])  # two meshes can share a database without conflicts


def test_the_mesh_depends_on_the_seed_not_on_start_or_volume() -> None:
    a = Simulator(SimulationOptions(count=10), START)
    b = Simulator(SimulationOptions(count=10_000, rate=5.0), START + timedelta(days=3))
    assert [n.id for n in a.world.nodes] == [n.id for n in b.world.nodes]
    assert [t.id for t in a.world.topologies] == [t.id for t in b.world.topologies]


# -- shape and realism ---------------------------------------------------------------------


def test_arrays_when_batching_and_single_objects_otherwise() -> None:
    _, single = generate(count=2_000)
    assert all(r.value.startswith(b"{") for r in single)
    sim, batched = generate(count=20_000, nodes=10, batch=16)
    sizes = [len(elements(r)) for r in batched]
    assert all(r.value.startswith(b"[") for r in batched)
    assert max(sizes) == 16 and min(sizes) >= 1
    assert sum(sizes) == sim.events
    # Each array is one node's buffer for one topic.
    for record in batched:
        assert {e["node_id"].encode() for e in elements(record)} == {record.key}


def test_stopping_early_then_draining_loses_no_buffered_event() -> None:
    sim = Simulator(SimulationOptions(batch=50, nodes=20), START)
    taken = list(itertools.islice(sim.records(), 300))
    rest = list(sim.drain())
    assert sum(len(r.kinds) for r in taken + rest) == sim.events


def test_mix_is_dominated_by_metrics_and_every_kind_appears() -> None:
    _, records = generate(count=100_000, nodes=50)
    kinds = Counter(k for r in records for k in r.kinds)
    assert set(kinds) == set(KINDS)
    assert kinds["metric"] / 100_000 >= 0.8
    for rare in ("link.probe", "route.advert", "node.heartbeat"):
        assert kinds[rare] / 100_000 >= 0.01


def test_nodes_are_announced_first_with_plausible_types_and_roles() -> None:
    n = 200
    _, records = generate(count=n + 10, nodes=n)
    first = all_events(records[:n])
    assert [e["kind"] for e in first] == ["node.announce"] * n
    types = Counter(e["node_type"] for e in first)
    assert types["peer"] > n / 2 > types["relay"] > types["gateway"] >= types["bootstrap"] >= 1
    roles = Counter(e["role"] for e in first)
    assert roles["peer"] > roles["super_peer"] > 0 and roles["relay"] > 0
    assert len({e["node_name"] for e in first}) == n
    forms = Counter(type(e["ts"]) for e in first)
    assert forms[str] > 0 and forms[int] > 0  # both wire timestamp forms, per firmware


def test_topologies_are_small_world_and_scale_free_and_connected() -> None:
    sim = Simulator(SimulationOptions(nodes=300, topologies=2), START)
    small, scale = sim.world.topologies
    assert (small.topology_type, scale.topology_type) == ("small_world", "scale_free")
    for topo in (small, scale):
        assert min(hop_distances(topo.adj, 0)) == 0  # reachable from node 0: connected
        assert -1 not in hop_distances(topo.adj, 0)
    degrees = sorted(len(a) for a in scale.adj)
    assert degrees[-1] >= 5 * degrees[len(degrees) // 2]  # hubs
    assert max(len(a) for a in small.adj) <= 12  # a lattice with a few rewired links


@pytest.mark.parametrize("model", ["watts_strogatz", "barabasi_albert"])
def test_graph_generators_are_deterministic_and_simple(model: str) -> None:
    def make(seed: int) -> list[set[int]]:
        rng = random.Random(seed)
        if model == "watts_strogatz":
            return watts_strogatz(100, 4, 0.2, rng)
        return barabasi_albert(100, 2, rng)

    a, b = make(5), make(5)
    assert a == b
    assert a != make(6)
    assert all(i not in neighbours for i, neighbours in enumerate(a))  # no self loops
    assert all(i in a[j] for i, neighbours in enumerate(a) for j in neighbours)  # undirected
    assert -1 not in hop_distances(a, 0)  # connected


def test_link_probes_drift_within_bounds() -> None:
    _, records = generate(count=60_000, nodes=12)
    series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in all_events(records):
        if e["kind"] == "link.probe":
            series[(e["node_id"], e["remote_node_id"])].append(e)
    assert series
    drifted = 0
    for probes in series.values():
        assert probes[0]["link_state"] == "establishing"
        qualities = [p["quality"] for p in probes]
        assert all(0.0 <= q <= 1.0 for q in qualities)
        assert all(p["latency_ms"] > 0 and 0 <= p["packet_loss"] <= 1 for p in probes)
        drifted += len(set(qualities)) > 1
    assert drifted >= len(series) * 0.9


def test_route_adverts_are_batman_like() -> None:
    sim, records = generate(count=60_000, nodes=40, topologies=2)
    world = sim.world
    index = {n.id: n.index for n in world.nodes}
    adverts = [e for e in all_events(records) if e["kind"] == "route.advert"]
    assert len(adverts) > 1_000
    last_by_entry: dict[tuple[str, str, str | None], int] = {}
    last_by_originator: dict[str, int] = {}
    rounds: dict[tuple[str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for e in adverts:
        node, dest, hop, seq = (
            e["node_id"],
            e["destination_id"],
            e["next_hop_id"],
            e["sequence_number"],
        )
        # Sequence numbers belong to the originator (the destination) and only grow.
        assert seq > last_by_entry.get((node, dest, hop), -1)
        assert seq >= last_by_originator.get(dest, -1)
        last_by_entry[(node, dest, hop)] = seq
        last_by_originator[dest] = seq
        dist = hop_distances(world.union_adj, index[dest])
        if hop is None:
            # The direct route: only to a neighbour, one hop.
            assert e["hop_count"] == 1 and index[dest] in world.union_adj[index[node]]
        else:
            assert index[hop] in world.union_adj[index[node]]
            assert e["hop_count"] == 1 + dist[index[hop]] >= 2
        rounds[(node, dest, seq)].append((e["hop_count"], e["quality"]))
    several = [r for r in rounds.values() if len(r) > 1]
    assert len(several) > len(rounds) / 2  # several next hops per destination
    for routes in rounds.values():
        routes.sort()
        for (h1, q1), (h2, q2) in itertools.pairwise(routes):
            if h2 > h1:
                assert q2 < q1  # quality falls with hop count
    by_hops: dict[int, list[float]] = defaultdict(list)
    for routes in rounds.values():
        for hops, quality in routes:
            by_hops[hops].append(quality)
    means = [sum(v) / len(v) for _, v in sorted(by_hops.items())]
    assert means == sorted(means, reverse=True)


def test_metrics_carry_units_and_tags_and_stay_in_range() -> None:
    _, records = generate(count=20_000, nodes=10)
    metrics = [e for e in all_events(records) if e["kind"] == "metric"]
    types = {m["metric_type"] for m in metrics}
    assert {"cpu", "memory", "throughput", "latency"} <= types
    for m in metrics:
        assert m["unit"] and m["tags"]["host"]
        if m["unit"] == "percent":
            assert 0 <= m["metric_value"] <= 100


def test_stats_windows_tile_time_per_node() -> None:
    _, records = generate(count=100_000, nodes=10)
    last_end: dict[tuple[str, str], Any] = {}
    for e in all_events(records):
        if e["kind"] in ("compression.stats", "batch.stats"):
            start, end = parse_timestamp(e["period_start"]), parse_timestamp(e["period_end"])
            assert start <= end
            previous = last_end.get((e["kind"], e["node_id"]))
            if previous is not None:
                assert start == previous
            last_end[(e["kind"], e["node_id"])] = end
    assert len(last_end) == 20


def test_connections_move_through_their_lifecycle() -> None:
    _, records = generate(count=100_000, nodes=20)
    states: dict[str, list[str]] = defaultdict(list)
    for e in all_events(records):
        if e["kind"] == "connection.state":
            states[e["connection_id"]].append(e["state"])
    seen = {s for history in states.values() for s in history}
    assert seen == {"idle", "active", "closing", "closed"}
    for history in states.values():
        if "closed" in history:
            assert history[history.index("closed") - 1] in ("closing", "closed")


def test_kind_topics_are_the_conventional_ones() -> None:
    assert set(KIND_TOPIC) == set(KINDS)
    assert set(KIND_TOPIC.values()) == set(TOPIC_NAMES)


@pytest.mark.parametrize(
    "bad",
    [
        {"nodes": 1},
        {"rate": -1.0},
        {"batch": 0},
        {"malformed": 1.5},
        {"count": -1},
        {"duration_s": 0.0},
        {"topologies": 0},
        {"skew_s": float("nan")},
    ],
)
def test_options_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulationOptions(**bad)
