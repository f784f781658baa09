"""Topology metrics (ingest.graph): exact values on known graphs, brute-force cross-checks.

The oracles here are deliberately naive (all-pairs BFS, remove-a-node-and-count) so that they
are obviously right; networkx is not used.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from decimal import Decimal
from fractions import Fraction

import pytest

from ingest import graph
from ingest.graph import (
    TopologyMetrics,
    average_clustering,
    compute_metrics,
    connected_components,
    cut_structure,
    exact_diameter,
    index_graph,
    jain_index,
)

Link = tuple[Hashable, Hashable, float | None]


def edges_to_links(edges: Sequence[tuple[Hashable, Hashable]]) -> list[Link]:
    return [(a, b, None) for a, b in edges]


def ring(n: int) -> list[Link]:
    return edges_to_links([(i, (i + 1) % n) for i in range(n)])


def path(n: int) -> list[Link]:
    return edges_to_links([(i, i + 1) for i in range(n - 1)])


def star(leaves: int) -> list[Link]:
    return edges_to_links([("hub", i) for i in range(leaves)])


def complete(n: int) -> list[Link]:
    return edges_to_links(list(itertools.combinations(range(n), 2)))


# --- brute-force oracles -------------------------------------------------------------------


def bfs_distances(adj: Sequence[Sequence[int]], source: int, removed: int = -1) -> dict[int, int]:
    dist = {source: 0}
    queue = deque([source])
    while queue:
        u = queue.popleft()
        for v in adj[u]:
            if v != removed and v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def brute_diameter(adj: Sequence[Sequence[int]], component: Sequence[int]) -> int:
    return max(max(bfs_distances(adj, s).values()) for s in component)


def count_components(adj: Sequence[Sequence[int]], removed: int = -1) -> int:
    seen: set[int] = set()
    count = 0
    for s in range(len(adj)):
        if s != removed and s not in seen:
            count += 1
            seen.update(bfs_distances(adj, s, removed))
    return count


def brute_articulation_points(adj: Sequence[Sequence[int]]) -> set[int]:
    base = count_components(adj)
    # Removing an isolated node lowers the count by one; that is not a split.
    return {
        v
        for v in range(len(adj))
        if count_components(adj, removed=v) > base - (1 if not adj[v] else 0)
    }


def brute_bridges(adj: Sequence[Sequence[int]]) -> set[frozenset[int]]:
    base = count_components(adj)
    found: set[frozenset[int]] = set()
    for u in range(len(adj)):
        for v in adj[u]:
            if u < v:
                without = [[w for w in adj[x] if {x, w} != {u, v}] for x in range(len(adj))]
                if count_components(without) > base:
                    found.add(frozenset((u, v)))
    return found


def brute_clustering(adj: Sequence[Sequence[int]]) -> Fraction:
    total = Fraction(0)
    for neighbours in adj:
        d = len(neighbours)
        if d >= 2:
            closed = sum(1 for a, b in itertools.combinations(neighbours, 2) if b in adj[a])
            total += Fraction(closed, d * (d - 1) // 2)
    return total / len(adj)


def random_links(rng: random.Random, n: int, p: float) -> list[Link]:
    """G(n, p) as link records, with reverse duplicates and self loops mixed in."""
    links: list[Link] = []
    for a, b in itertools.combinations(range(n), 2):
        if rng.random() < p:
            links.append((a, b, rng.uniform(1, 50)) if rng.random() < 0.5 else (b, a, None))
            if rng.random() < 0.2:
                links.append((b, a, None))
    if n and rng.random() < 0.3:
        v = rng.randrange(n)
        links.append((v, v, 1.0))
    rng.shuffle(links)
    return links


def random_graphs(seed: int, count: int) -> Iterator[tuple[list[Link], list[int]]]:
    rng = random.Random(seed)
    for _ in range(count):
        n = rng.randint(1, 28)
        # Sparse graphs give long paths and trees, dense ones the wide-fringe case.
        p = rng.choice([0.05, 0.1, 0.15, 0.25, 0.4, 0.7])
        yield random_links(rng, n, p), list(range(n))


# --- known graphs: every field pinned --------------------------------------------------------


def test_ring_of_six_is_regular_triangle_free_and_two_connected() -> None:
    assert compute_metrics(ring(6)) == TopologyMetrics(
        total_nodes=6,
        total_links=6,
        average_latency=None,
        network_diameter=3,
        clustering_coefficient=0.0,
        connectivity_ratio=1.0,
        fault_tolerance_score=1.0,
        load_balance_index=1.0,
        partition_resilience=1.0,
    )


def test_star_of_five_hinges_on_its_hub_and_every_link_is_a_bridge() -> None:
    m = compute_metrics(star(4))
    assert m == TopologyMetrics(
        total_nodes=5,
        total_links=4,
        average_latency=None,
        network_diameter=2,
        clustering_coefficient=0.0,
        connectivity_ratio=1.0,
        fault_tolerance_score=4 / 5,
        load_balance_index=64 / 100,  # degrees 4,1,1,1,1: 8^2 / (5 * 20)
        partition_resilience=0.0,
    )


def test_complete_k5_has_diameter_one_and_full_clustering() -> None:
    assert compute_metrics(complete(5)) == TopologyMetrics(
        total_nodes=5,
        total_links=10,
        average_latency=None,
        network_diameter=1,
        clustering_coefficient=1.0,
        connectivity_ratio=1.0,
        fault_tolerance_score=1.0,
        load_balance_index=1.0,
        partition_resilience=1.0,
    )


def test_path_of_five_has_three_cut_vertices_and_only_bridges() -> None:
    assert compute_metrics(path(5)) == TopologyMetrics(
        total_nodes=5,
        total_links=4,
        average_latency=None,
        network_diameter=4,
        clustering_coefficient=0.0,
        connectivity_ratio=1.0,
        fault_tolerance_score=2 / 5,
        load_balance_index=64 / 70,  # degrees 1,2,2,2,1
        partition_resilience=0.0,
    )


def test_triangle_plus_path_measures_diameter_in_the_component_with_more_edges() -> None:
    links = edges_to_links([("a", "b"), ("b", "c"), ("c", "a"), ("x", "y"), ("y", "z")])
    assert compute_metrics(links) == TopologyMetrics(
        total_nodes=6,
        total_links=5,
        average_latency=None,
        # Both components have 3 nodes; the triangle has 3 edges to the path's 2.
        network_diameter=1,
        clustering_coefficient=3 / 6,  # the triangle's nodes score 1, the path's 0
        connectivity_ratio=3 / 6,
        fault_tolerance_score=5 / 6,  # only y is a cut vertex
        load_balance_index=100 / 108,  # degrees 2,2,2,1,2,1
        partition_resilience=3 / 5,  # x-y and y-z are bridges
    )


def test_single_edge_has_no_cut_vertex_but_is_a_bridge() -> None:
    assert compute_metrics([("a", "b", 7.5)]) == TopologyMetrics(
        total_nodes=2,
        total_links=1,
        average_latency=7.5,
        network_diameter=1,
        clustering_coefficient=0.0,
        connectivity_ratio=1.0,
        fault_tolerance_score=1.0,
        load_balance_index=1.0,
        partition_resilience=0.0,
    )


def test_empty_topology_has_zero_counts_and_no_scores() -> None:
    m = compute_metrics([])
    assert m == TopologyMetrics(
        total_nodes=0,
        total_links=0,
        average_latency=None,
        network_diameter=None,
        clustering_coefficient=None,
        connectivity_ratio=None,
        fault_tolerance_score=None,
        load_balance_index=None,
        partition_resilience=None,
    )
    assert m.quantum_coherence is None


def test_isolated_nodes_only_have_diameter_zero_and_no_link_scores() -> None:
    assert compute_metrics([], nodes=["a", "b", "c"]) == TopologyMetrics(
        total_nodes=3,
        total_links=0,
        average_latency=None,
        network_diameter=0,
        clustering_coefficient=0.0,
        connectivity_ratio=1 / 3,
        fault_tolerance_score=1.0,
        load_balance_index=None,  # 0/0: no load to balance
        partition_resilience=None,  # no link whose loss could partition anything
    )


def test_isolated_nodes_count_toward_connectivity_and_load_balance() -> None:
    m = compute_metrics(ring(6), nodes=[0, 1, "spare-1", "spare-2"])
    assert m.total_nodes == 8  # nodes already on a link are not counted twice
    assert m.total_links == 6
    assert m.network_diameter == 3
    assert m.connectivity_ratio == 6 / 8
    assert m.load_balance_index == 12**2 / (8 * 24)
    assert m.clustering_coefficient == 0.0


def test_reverse_and_duplicate_records_are_one_edge_but_each_latency_sample_counts() -> None:
    links: list[Link] = [("a", "b", 10.0), ("b", "a", 20.0), ("a", "b", 60.0), ("b", "c", None)]
    m = compute_metrics(links)
    assert m.total_nodes == 3
    assert m.total_links == 2
    assert m.average_latency == 30.0  # per directed record: (10 + 20 + 60) / 3
    assert m.network_diameter == 2


def test_self_loop_adds_its_node_but_no_edge_and_no_latency_sample() -> None:
    m = compute_metrics([("a", "a", 500.0), ("a", "b", 4.0)])
    assert (m.total_nodes, m.total_links, m.average_latency) == (2, 1, 4.0)
    lonely = compute_metrics([("a", "a", 500.0)])
    assert (lonely.total_nodes, lonely.total_links, lonely.average_latency) == (1, 0, None)
    assert lonely.network_diameter == 0


def test_latency_mean_skips_missing_and_non_finite_values_and_accepts_decimal() -> None:
    links: list[Link] = [
        ("a", "b", None),
        ("b", "c", math.nan),
        ("c", "d", math.inf),
        ("d", "e", Decimal("2.5")),  # type: ignore[list-item]  # what asyncpg gives for numeric
        ("e", "f", 7.5),
    ]
    assert compute_metrics(links).average_latency == 5.0
    assert compute_metrics([("a", "b", None)]).average_latency is None


def test_equal_size_and_edge_ties_report_the_widest_component_whatever_the_order() -> None:
    p4 = [("p0", "p1"), ("p1", "p2"), ("p2", "p3")]  # 4 nodes, 3 edges, diameter 3
    k13 = [("s", "s1"), ("s", "s2"), ("s", "s3")]  # 4 nodes, 3 edges, diameter 2
    assert compute_metrics(edges_to_links(p4 + k13)).network_diameter == 3
    assert compute_metrics(edges_to_links(k13 + p4)).network_diameter == 3


def test_as_dict_names_the_performance_snapshots_columns() -> None:
    row = compute_metrics(path(3)).as_dict()
    assert list(row) == [
        "total_nodes",
        "total_links",
        "average_latency",
        "network_diameter",
        "clustering_coefficient",
        "connectivity_ratio",
        "fault_tolerance_score",
        "load_balance_index",
        "partition_resilience",
        "quantum_coherence",
    ]
    assert row["quantum_coherence"] is None
    assert row["network_diameter"] == 2


def test_metrics_do_not_depend_on_record_order_or_direction() -> None:
    rng = random.Random(7)
    for links, nodes in random_graphs(seed=11, count=60):
        expected = compute_metrics(links, nodes)
        shuffled = [(b, a, lat) if rng.random() < 0.5 else (a, b, lat) for a, b, lat in links]
        rng.shuffle(shuffled)
        assert compute_metrics(shuffled, reversed(nodes)) == expected


# --- building blocks -----------------------------------------------------------------------


def test_index_graph_numbers_nodes_in_order_of_first_appearance() -> None:
    g = index_graph([("x", "y", 1.0), ("y", "x", 3.0)], nodes=["z", "x"])
    assert g.ids == ["x", "y", "z"]
    assert g.adj == [[1], [0], []]
    assert (g.edge_count, g.latency_sum, g.latency_records) == (1, 4.0, 2)


def test_jain_index_is_one_for_equal_loads_and_undefined_for_no_load() -> None:
    assert jain_index([3, 3, 3]) == 1.0
    assert jain_index([1, 0, 0, 0]) == 1 / 4  # one node carries everything: 1/n
    assert jain_index([0, 0]) is None
    assert jain_index([]) is None


def test_rings_of_any_length_have_diameter_half_their_length() -> None:
    for n in range(3, 40):
        g = index_graph(ring(n))
        assert exact_diameter(g.adj, range(n)).diameter == n // 2 == brute_diameter(g.adj, range(n))


def test_long_path_needs_no_recursion() -> None:
    # A recursive Tarjan DFS would exceed CPython's default recursion limit here.
    m = compute_metrics(path(20_000))
    assert m.network_diameter == 19_999
    assert m.fault_tolerance_score == 2 / 20_000
    assert m.partition_resilience == 0.0


# --- randomised cross-checks against brute force --------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "single-source only", "bit-parallel only"])
def test_fast_diameter_matches_all_pairs_bfs_on_random_graphs(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pin both exact paths for the fringe, not just the one the cost model picks on small
    # graphs; a tiny batch size also exercises the chunking of the bit-parallel pass.
    if mode == "single-source only":
        monkeypatch.setattr(graph, "_batch_is_cheaper", lambda sources, rounds: False)
    elif mode == "bit-parallel only":
        monkeypatch.setattr(graph, "_batch_is_cheaper", lambda sources, rounds: True)
        monkeypatch.setattr(graph, "_BATCH", 3)
    checked = 0
    for links, nodes in random_graphs(seed=20240601, count=400):
        g = index_graph(links, nodes)
        for component in connected_components(g.adj):
            assert exact_diameter(g.adj, component).diameter == brute_diameter(g.adj, component)
            checked += 1
    assert checked > 1000


def test_reported_diameter_is_that_of_the_largest_component_by_the_tie_rules() -> None:
    for links, nodes in random_graphs(seed=5, count=200):
        adj = index_graph(links, nodes).adj
        ranked = [((len(c), sum(len(adj[v]) for v in c)), c) for c in connected_components(adj)]
        best = max(rank for rank, _ in ranked)
        expected = max(brute_diameter(adj, c) for rank, c in ranked if rank == best)
        assert compute_metrics(links, nodes).network_diameter == expected


def test_articulation_points_and_bridges_match_removal_brute_force() -> None:
    for links, nodes in random_graphs(seed=99, count=300):
        g = index_graph(links, nodes)
        cuts = cut_structure(g.adj)
        found = {v for v, is_cut in enumerate(cuts.articulation) if is_cut}
        assert found == brute_articulation_points(g.adj)
        assert {frozenset(e) for e in cuts.bridges} == brute_bridges(g.adj)
        assert len(cuts.bridges) == len(brute_bridges(g.adj))  # each reported once


def test_average_clustering_matches_counting_closed_neighbour_pairs() -> None:
    for links, nodes in random_graphs(seed=3, count=200):
        g = index_graph(links, nodes)
        assert average_clustering(g.adj) == pytest.approx(float(brute_clustering(g.adj)))


def test_every_score_stays_within_zero_and_one() -> None:
    for links, nodes in random_graphs(seed=42, count=200):
        row = compute_metrics(links, nodes).as_dict()
        for name in (
            "clustering_coefficient",
            "connectivity_ratio",
            "fault_tolerance_score",
            "load_balance_index",
            "partition_resilience",
        ):
            value = row[name]
            assert value is None or 0.0 <= value <= 1.0, (name, value)
