"""Topology metrics for the ``snapshots`` job (SPEC section 5), in pure Python.

Input is the set of *active* links of one topology; output is one row of
``network.performance_snapshots``. The formulas are written down in
``docs/snapshot-metrics.md``; this module is the reference implementation of that page.

The graph is treated as undirected and simple: ``a->b`` and ``b->a`` are one edge, repeated
records collapse, self loops are dropped. Node ids are mapped to ``0..n-1`` once and every
algorithm below works on integer adjacency lists, because list indexing is several times
cheaper than dict lookups on UUIDs in CPython's inner loops.

Cost on ``n`` nodes and ``m`` edges (all exact, no sampling):

* components, articulation points, bridges, load balance: ``O(n + m)``;
* clustering: ``O(sum over edges of min(deg u, deg v))`` set intersections done in C;
* diameter: iFUB (Crescenzi et al., 2013) seeded by a 4-sweep, fringe nodes pruned with
  Takes-Kosters eccentricity bounds or settled together by a bit-parallel multi-source BFS.
  A few BFS-equivalents on real meshes; sparse symmetric graphs with a long diameter (a torus)
  tend to ``O(n m)``, slow but still exact.

Nothing here touches the database or the event loop: the caller fetches links, runs
:func:`compute_metrics` (off the event loop if the topology is large) and stores ``as_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

__all__ = [
    "CutStructure",
    "DiameterResult",
    "IndexedGraph",
    "TopologyMetrics",
    "average_clustering",
    "compute_metrics",
    "connected_components",
    "cut_structure",
    "exact_diameter",
    "index_graph",
    "jain_index",
]

Adjacency = Sequence[Sequence[int]]
"""``adj[v]`` lists the neighbours of node ``v``; symmetric, no self loops, no repeats."""


@dataclass(frozen=True, slots=True)
class TopologyMetrics:
    """One ``performance_snapshots`` row, minus its key, topology and time."""

    total_nodes: int
    total_links: int
    average_latency: float | None
    network_diameter: int | None
    clustering_coefficient: float | None
    connectivity_ratio: float | None
    fault_tolerance_score: float | None
    load_balance_index: float | None
    partition_resilience: float | None
    # No sound definition exists for a classical mesh, and SPEC section 5 says such a score
    # stays NULL, so the type admits nothing else.
    quantum_coherence: None = None

    def as_dict(self) -> dict[str, int | float | None]:
        """Column name -> value, ready to bind to an INSERT into ``performance_snapshots``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class IndexedGraph:
    """A simple undirected graph on ``0..n-1`` plus the latency figures of its link records."""

    ids: list[Hashable]
    """``ids[i]`` is the caller's node id for index ``i`` (order of first appearance)."""
    adj: list[list[int]]
    edge_count: int
    latency_sum: float
    latency_records: int


class DiameterResult(NamedTuple):
    diameter: int
    bfs_runs: int
    """Single-source BFS the computation ran (4-sweep plus iFUB fringe nodes)."""
    batched_sources: int = 0
    """Fringe nodes whose eccentricities were settled by the bit-parallel multi-source BFS."""


class CutStructure(NamedTuple):
    articulation: list[bool]
    """``articulation[v]``: removing ``v`` splits its connected component."""
    bridges: list[tuple[int, int]]
    """Edges ``(parent, child)`` of the DFS tree whose removal splits their component."""


def index_graph(
    links: Iterable[tuple[Hashable, Hashable, float | None]],
    nodes: Iterable[Hashable] = (),
) -> IndexedGraph:
    """Map node ids to integers and collapse the link records into a simple graph.

    Latency is averaged per *record*, i.e. per direction measured: a pair probed both ways
    contributes two samples, which is what the links table holds. Self-loop records are not
    links between two nodes, so they add their node but neither an edge nor a latency sample.
    Non-finite latencies (NaN from a ``numeric`` column, inf) are treated as missing.
    """
    index: dict[Hashable, int] = {}
    ids: list[Hashable] = []
    neighbours: list[set[int]] = []

    def intern(node: Hashable) -> int:
        i = index.get(node)
        if i is None:
            i = len(ids)
            index[node] = i
            ids.append(node)
            neighbours.append(set())
        return i

    latencies: list[float] = []
    for local, remote, latency in links:
        a = intern(local)
        b = intern(remote)
        if a == b:
            continue
        # Sets collapse duplicates and the reverse direction in one step.
        neighbours[a].add(b)
        neighbours[b].add(a)
        if latency is not None:
            # float() also accepts the Decimal that asyncpg returns for numeric columns.
            value = float(latency)
            if math.isfinite(value):
                latencies.append(value)
    for node in nodes:
        intern(node)

    adj = [list(s) for s in neighbours]
    edge_count = sum(len(s) for s in adj) // 2
    # fsum: the mean must not depend on the order the database returned the rows in.
    return IndexedGraph(ids, adj, edge_count, math.fsum(latencies), len(latencies))


def connected_components(adj: Adjacency) -> list[list[int]]:
    """Connected components, each listed in BFS order, components in order of lowest index."""
    n = len(adj)
    seen = [False] * n
    components: list[list[int]] = []
    for root in range(n):
        if seen[root]:
            continue
        seen[root] = True
        component = [root]
        # The component list doubles as the BFS queue: iterating a list while appending to
        # it visits the appended items, and avoids a deque.
        for u in component:
            for v in adj[u]:
                if not seen[v]:
                    seen[v] = True
                    component.append(v)
        components.append(component)
    return components


def _bfs(adj: Adjacency, source: int, n: int) -> tuple[list[int], list[list[int]]]:
    """Distances from ``source`` (-1 = unreachable) and the BFS levels (``levels[d]``)."""
    dist = [-1] * n
    dist[source] = 0
    frontier = [source]
    levels = [frontier]
    d = 0
    while True:
        d += 1
        nxt: list[int] = []
        for u in frontier:
            for v in adj[u]:
                if dist[v] < 0:
                    dist[v] = d
                    nxt.append(v)
        if not nxt:
            return dist, levels
        levels.append(nxt)
        frontier = nxt


def _path_middle(adj: Adjacency, dist_from_a: list[int], b: int) -> int:
    """The middle node of one shortest a-b path, walking back from ``b`` along ``dist``."""
    length = dist_from_a[b]
    current = b
    for d in range(length - 1, length // 2 - 1, -1):
        current = next(v for v in adj[current] if dist_from_a[v] == d)
    return current


# Sources per bit-parallel batch. Memory is about n * _BATCH / 8 bytes per bitset array;
# 4096 keeps a 100k-node graph near 50 MB while a 10k-node fringe still fits in 3 batches.
_BATCH = 4096


def _max_eccentricity(adj: Adjacency, sources: Sequence[int], cap: int) -> int:
    """``min(cap, max(ecc(s) for s in sources))`` by one BFS per batch of sources, bit-parallel.

    Bit ``j`` of ``reached[v]`` says source ``j`` has reached ``v``; a round ORs each node's
    new bits into its neighbours, so all sources advance one level at once and a round costs
    one pass over the edges with big-int ORs (done in C) instead of one BFS per source. The
    number of rounds until nothing new is reached is the largest eccentricity in the batch.
    """
    n = len(adj)
    best = 0
    for start in range(0, len(sources), _BATCH):
        chunk = sources[start : start + _BATCH]
        reached = [0] * n
        for j, s in enumerate(chunk):
            reached[s] |= 1 << j
        frontier = [(s, reached[s]) for s in chunk]
        rounds = 0
        while rounds < cap:
            incoming = [0] * n
            for v, bits in frontier:
                for w in adj[v]:
                    incoming[w] |= bits
            nxt: list[tuple[int, int]] = []
            for w, bits in enumerate(incoming):
                if bits:
                    old = reached[w]
                    bits |= old
                    if bits != old:
                        reached[w] = bits
                        nxt.append((w, bits ^ old))  # only the sources new at w
            if not nxt:
                break
            frontier = nxt
            rounds += 1
        if rounds > best:
            best = rounds
            if best >= cap:
                break
    return best


def _batch_is_cheaper(sources: int, rounds: int) -> bool:
    """Cost model, in units of one single-source BFS (measured on 10k/50k graphs, CPython 3.11).

    A bit-parallel round costs about two plain BFS passes plus the growth of the bitsets,
    roughly ``2 + sources / 700`` BFS. Both paths are exact; this only picks the faster one.
    """
    return sources > rounds * (2 + sources / 700)


def exact_diameter(adj: Adjacency, component: Sequence[int]) -> DiameterResult:
    """Exact diameter (in hops) of one connected component.

    iFUB (Crescenzi et al., 2013): BFS from a central node ``u`` gives levels ``F_0..F_e``.
    Two nodes both within distance ``i - 1`` of ``u`` are at most ``2(i - 1)`` apart, so once
    every node in ``F_e..F_i`` has eccentricity at most ``lb`` (a diameter lower bound), the
    diameter is at most ``max(lb, 2(i - 1))``; the search stops when ``lb`` reaches that. The
    argument is exact at every step; a good ``u`` (midpoint of a 4-sweep, which also seeds
    ``lb``) only makes it stop sooner.

    The fringe nodes' eccentricities come from one of two exact sources:

    * one BFS each, skipping nodes whose Takes-Kosters upper bound ``min_s(ecc(s) + d(s, x))``
      is already ``<= lb`` (they cannot raise ``lb``): cheap when fringes are narrow, as on
      long-diameter radio meshes;
    * when the fringes still to examine are wide (small-world and scale-free graphs have
      hundreds of nodes at the outermost levels), a bit-parallel multi-source BFS over all of
      them at once.

    Bare rings are answered directly (``k // 2``). The remaining bad cases are sparse, highly
    symmetric graphs with a long diameter (a ring lattice with several neighbours per side, a
    long torus): every node has the same eccentricity, so no bound prunes and the cost tends
    to ``O(n m)``. Slow, but still exact.
    """
    k = len(component)
    if k <= 1:
        return DiameterResult(0, 0)
    edges = sum(len(adj[v]) for v in component) // 2
    if edges == k * (k - 1) // 2:
        # Complete component (full mesh): iFUB would BFS every node to prove this.
        return DiameterResult(1, 0)
    if edges == k and all(len(adj[v]) == 2 for v in component):
        # Connected and 2-regular: a bare ring, the one common shape where iFUB degrades to
        # a BFS from half the nodes (every node has the same eccentricity).
        return DiameterResult(k // 2, 0)
    if k < len(adj):
        # Relabel to 0..k-1 so every BFS array below is sized by the component, not by the
        # graph: many small tied components must not cost O(n) per BFS each.
        local = {v: i for i, v in enumerate(component)}
        adj = [[local[w] for w in adj[v]] for v in component]
    n = k

    runs = 0
    ecc_upper = [n] * n

    def sweep(source: int) -> tuple[int, list[int], list[list[int]]]:
        nonlocal runs, ecc_upper
        runs += 1
        dist, levels = _bfs(adj, source, n)
        e = len(levels) - 1
        # A conditional expression in a comprehension is ~3x faster than min() per element.
        ecc_upper = [up if up <= e + d else e + d for up, d in zip(ecc_upper, dist, strict=True)]
        return e, dist, levels

    # 4-sweep: from the highest-degree node, two double sweeps, each re-centred on the
    # midpoint of the longest path found. On real graphs lb is usually already the diameter.
    r1 = max(range(n), key=lambda v: len(adj[v]))
    ecc_r1, _, levels_r1 = sweep(r1)
    ecc_a1, dist_a1, levels_a1 = sweep(levels_r1[-1][0])
    r2 = _path_middle(adj, dist_a1, levels_a1[-1][0])
    ecc_r2, _, levels_r2 = sweep(r2)
    ecc_a2, dist_a2, levels_a2 = sweep(levels_r2[-1][0])
    u = _path_middle(adj, dist_a2, levels_a2[-1][0])
    ecc_u, _, levels_u = sweep(u)
    lb = max(ecc_r1, ecc_a1, ecc_r2, ecc_a2, ecc_u)

    i = ecc_u
    while True:
        # Invariant: every node at BFS level > i from u has eccentricity <= lb, hence
        # diameter <= max(lb, 2i).
        if lb >= 2 * i:
            return DiameterResult(lb, runs)
        if i == 1:
            # diameter <= 2, and the component is not complete, so some pair is 2 apart.
            return DiameterResult(2, runs)
        # Unless lb rises, iFUB needs every level j with 2j > lb. If those fringes are wide,
        # settle them all in one bit-parallel pass: afterwards the bound is
        # max(lb', 2 * (lb // 2)) <= lb', so the answer is final.
        pending = [x for j in range(i, lb // 2, -1) for x in levels_u[j] if ecc_upper[x] > lb]
        if _batch_is_cheaper(len(pending), lb + 1):
            # No eccentricity can exceed the current upper bound 2i, so stop there.
            batch_max = _max_eccentricity(adj, pending, cap=2 * i)
            return DiameterResult(max(lb, batch_max), runs, len(pending))
        for x in levels_u[i]:
            if ecc_upper[x] <= lb:
                continue
            ecc_x, _, _ = sweep(x)
            if ecc_x > lb:
                lb = ecc_x
                if lb >= 2 * i:
                    return DiameterResult(lb, runs)
        i -= 1


def average_clustering(adj: Adjacency) -> float:
    """Mean local clustering coefficient over all nodes; degree < 2 counts 0 (as networkx).

    ``C(v) = 2 T(v) / (d(v) (d(v) - 1))`` with ``T(v)`` the triangles through ``v``. Each edge
    ``(u, v)`` lies in ``|N(u) & N(v)|`` triangles; summing that over the edges at ``v`` counts
    every triangle through ``v`` twice, so ``C(v) = twice_t[v] / (d (d - 1))``.
    """
    n = len(adj)
    if n == 0:
        raise ValueError("clustering of an empty graph is undefined")
    sets = [set(neighbours) for neighbours in adj]
    twice_t = [0] * n
    for u in range(n):
        su = sets[u]
        for v in adj[u]:
            if v > u:
                # The intersection loops over the smaller set in C: hubs stay cheap.
                common = len(su.intersection(sets[v]))
                if common:
                    twice_t[u] += common
                    twice_t[v] += common
    coefficients = [
        twice_t[v] / (d * (d - 1)) for v in range(n) if (d := len(adj[v])) >= 2 and twice_t[v]
    ]
    # fsum keeps the result independent of node order (i.e. of input order).
    return math.fsum(coefficients) / n


def cut_structure(adj: Adjacency) -> CutStructure:
    """Articulation points and bridges by Tarjan's low-link DFS, iterative.

    Iterative because a recursive DFS overflows CPython's stack on long chains (a 10k-node
    path needs a 10k-deep recursion). Skipping the tree edge back to the parent by *vertex*
    is only correct for simple graphs, which :func:`index_graph` guarantees.
    """
    n = len(adj)
    disc = [0] * n  # discovery time, 0 = not yet visited
    low = [0] * n
    parent = [-1] * n
    next_edge = [0] * n  # per node: index into adj[node] where the DFS resumes
    articulation = [False] * n
    bridges: list[tuple[int, int]] = []
    timer = 1
    for root in range(n):
        if disc[root]:
            continue
        disc[root] = low[root] = timer
        timer += 1
        root_children = 0
        stack = [root]
        while stack:
            u = stack[-1]
            neighbours = adj[u]
            degree = len(neighbours)
            pu = parent[u]
            i = next_edge[u]
            descended = False
            # Consume visited neighbours here rather than one per outer iteration: fewer
            # stack peeks, and the outer loop only runs once per tree edge each way.
            while i < degree:
                v = neighbours[i]
                i += 1
                dv = disc[v]
                if dv == 0:
                    parent[v] = u
                    disc[v] = low[v] = timer
                    timer += 1
                    stack.append(v)
                    descended = True
                    break
                if v != pu and dv < low[u]:
                    low[u] = dv
            next_edge[u] = i
            if descended:
                continue
            stack.pop()
            if pu < 0:
                continue
            lu = low[u]
            if lu < low[pu]:
                low[pu] = lu
            if lu > disc[pu]:
                bridges.append((pu, u))
            if pu == root:
                root_children += 1
            elif lu >= disc[pu]:
                articulation[pu] = True
        # The root is a cut vertex exactly when it has two or more DFS subtrees.
        if root_children >= 2:
            articulation[root] = True
    return CutStructure(articulation, bridges)


def jain_index(values: Sequence[int]) -> float | None:
    """Jain's fairness index ``(sum x)^2 / (n * sum x^2)``; None when undefined (all zero)."""
    squares = sum(x * x for x in values)
    if squares == 0:
        return None
    total = sum(values)
    # Integer numerator and denominator: one correctly rounded division, exact 1.0 when
    # all values are equal.
    return (total * total) / (len(values) * squares)


def compute_metrics(
    links: Iterable[tuple[Hashable, Hashable, float | None]],
    nodes: Iterable[Hashable] = (),
) -> TopologyMetrics:
    """All snapshot metrics for one topology; see ``docs/snapshot-metrics.md``.

    ``links``: the active links as ``(local_node_id, remote_node_id, latency_ms or None)``.
    ``nodes``: extra nodes of the topology that may have no active link (they count in
    ``total_nodes`` and lower connectivity). Ids must compare equal across both arguments
    (do not mix ``UUID`` and ``str``). The result does not depend on record order or direction.
    """
    graph = index_graph(links, nodes)
    n = len(graph.ids)
    m = graph.edge_count
    average_latency = graph.latency_sum / graph.latency_records if graph.latency_records else None
    if n == 0:
        return TopologyMetrics(
            total_nodes=0,
            total_links=0,
            average_latency=average_latency,
            network_diameter=None,
            clustering_coefficient=None,
            connectivity_ratio=None,
            fault_tolerance_score=None,
            load_balance_index=None,
            partition_resilience=None,
        )
    adj = graph.adj

    components = connected_components(adj)
    best_size = max(len(c) for c in components)
    largest = [c for c in components if len(c) == best_size]
    if len(largest) > 1:
        edges_in = [sum(len(adj[v]) for v in c) for c in largest]
        most = max(edges_in)
        largest = [c for c, e in zip(largest, edges_in, strict=True) if e == most]
    # Remaining ties: report the widest of the tied components, so that the figure does not
    # depend on the order the links arrived in.
    diameter = max(exact_diameter(adj, c).diameter for c in largest)

    cuts = cut_structure(adj)
    articulation_points = sum(cuts.articulation)

    return TopologyMetrics(
        total_nodes=n,
        total_links=m,
        average_latency=average_latency,
        network_diameter=diameter,
        clustering_coefficient=average_clustering(adj),
        connectivity_ratio=best_size / n,
        fault_tolerance_score=(n - articulation_points) / n,
        load_balance_index=jain_index([len(a) for a in adj]),
        partition_resilience=(m - len(cuts.bridges)) / m if m else None,
    )
