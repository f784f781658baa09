"""Benchmark for ``ingest.graph``: time per snapshot metric on seeded 10k-node / 50k-link graphs.

    .venv/bin/python bench/bench_graph.py                      # all shapes, 3 repeats
    .venv/bin/python bench/bench_graph.py --shape scale_free   # the headline case
    .venv/bin/python bench/bench_graph.py --networkx           # also time networkx, if importable
    .venv/bin/python bench/bench_graph.py --stress             # plus the adversarial shapes

Shapes (all seeded, all exactly ``--links`` distinct undirected edges, records emitted in a
random direction):

* ``scale_free``: Holme-Kim preferential attachment with triad closure: hubs plus clustering,
  the shape of a grown mesh;
* ``small_world``: Watts-Strogatz ring lattice (k = 2 * links / nodes) with 10 % rewiring;
* ``geometric``: random geometric graph, 2-D unit square, the ``links`` shortest pairs: a
  radio mesh, long diameter, high clustering, usually several components.

``--stress`` adds shapes that are hard for eccentricity-bound diameter algorithms (their link
count follows from the shape): ``grid``, ``torus`` (every node has the same eccentricity)
and ``ring_with_chords``.

networkx is not a project dependency and the project never imports it; ``--networkx`` loads it
dynamically only to compare timings and cross-check values (install it outside the project
venv, e.g. ``pip install --target /tmp/nx networkx`` and ``PYTHONPATH=/tmp/nx``).
"""

from __future__ import annotations

import argparse
import importlib
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Path set up above so the script runs from a plain checkout.
from ingest.graph import (
    average_clustering,
    compute_metrics,
    connected_components,
    cut_structure,
    exact_diameter,
    index_graph,
    jain_index,
)

Link = tuple[str, str, float | None]
Edge = tuple[int, int]


def scale_free(n: int, m_target: int, rng: random.Random) -> set[Edge]:
    per_node = max(1, round(m_target / n))
    edges: set[Edge] = set()
    adjacency: list[list[int]] = [[] for _ in range(n)]
    ends: list[int] = []  # every edge end once: uniform choice here = preferential attachment

    def add(a: int, b: int) -> bool:
        e = (a, b) if a < b else (b, a)
        if a == b or e in edges:
            return False
        edges.add(e)
        adjacency[a].append(b)
        adjacency[b].append(a)
        ends.extend(e)
        return True

    seed_size = per_node + 1
    for a in range(seed_size):
        for b in range(a + 1, seed_size):
            add(a, b)
    for v in range(seed_size, n):
        added = 0
        last = -1
        while added < per_node:
            if last >= 0 and adjacency[last] and rng.random() < 0.3:
                target = rng.choice(adjacency[last])  # triad closure
            else:
                target = rng.choice(ends)
            if add(v, target):
                added += 1
                last = target
    while len(edges) < m_target:
        add(rng.choice(ends), rng.choice(ends))
    while len(edges) > m_target:
        edges.pop()
    return edges


def small_world(n: int, m_target: int, rng: random.Random) -> set[Edge]:
    half_k = max(1, m_target // n)
    edges: set[Edge] = set()
    for v in range(n):
        for j in range(1, half_k + 1):
            a, b = v, (v + j) % n
            if rng.random() < 0.1:
                b = rng.randrange(n)
            if a != b:
                edges.add((min(a, b), max(a, b)))
    while len(edges) < m_target:
        a, b = rng.randrange(n), rng.randrange(n)
        if a != b:
            edges.add((min(a, b), max(a, b)))
    while len(edges) > m_target:
        edges.pop()
    return edges


def geometric(n: int, m_target: int, rng: random.Random) -> set[Edge]:
    points = [(rng.random(), rng.random()) for _ in range(n)]
    # Radius giving ~1.3x the target pairs in expectation; keep the m_target shortest.
    radius = math.sqrt(1.3 * 2 * m_target / (math.pi * n * n))
    cells: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(points):
        cells.setdefault((int(x / radius), int(y / radius)), []).append(i)
    pairs: list[tuple[float, int, int]] = []
    for (cx, cy), members in cells.items():
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for j in cells.get((cx + dx, cy + dy), ()):
                    for i in members:
                        if i < j:
                            d = math.dist(points[i], points[j])
                            if d <= radius:
                                pairs.append((d, i, j))
    pairs.sort()
    return {(i, j) for _, i, j in pairs[:m_target]}


def torus(n: int, m_target: int, rng: random.Random) -> set[Edge]:
    """Stress case, ignores ``m_target``: vertex-transitive, so no eccentricity bound prunes."""
    side = math.isqrt(n)
    edges: set[Edge] = set()
    for x in range(side):
        for y in range(side):
            v = x * side + y
            for w in (((x + 1) % side) * side + y, x * side + (y + 1) % side):
                edges.add((min(v, w), max(v, w)))
    return edges


def grid(n: int, m_target: int, rng: random.Random) -> set[Edge]:
    """Stress case, ignores ``m_target``: planar mesh, diameter ~ 2 sqrt(n)."""
    side = math.isqrt(n)
    edges: set[Edge] = set()
    for x in range(side):
        for y in range(side):
            v = x * side + y
            if x + 1 < side:
                edges.add((v, v + side))
            if y + 1 < side:
                edges.add((v, v + 1))
    return edges


def ring_with_chords(n: int, m_target: int, rng: random.Random) -> set[Edge]:
    """Stress case, ignores ``m_target``: a ring plus 20 random chords (bare rings are O(n))."""
    edges = {(v, v + 1) for v in range(n - 1)} | {(0, n - 1)}
    while len(edges) < n + 20:
        a, b = sorted(rng.sample(range(n), 2))
        edges.add((a, b))
    return edges


SHAPES: dict[str, Callable[[int, int, random.Random], set[Edge]]] = {
    "scale_free": scale_free,
    "small_world": small_world,
    "geometric": geometric,
}
STRESS: dict[str, Callable[[int, int, random.Random], set[Edge]]] = {
    "grid": grid,
    "torus": torus,
    "ring_with_chords": ring_with_chords,
}


def as_links(edges: set[Edge], rng: random.Random) -> list[Link]:
    links: list[Link] = []
    for a, b in sorted(edges):
        if rng.random() < 0.5:
            a, b = b, a
        latency = None if rng.random() < 0.05 else rng.uniform(1.0, 80.0)
        links.append((f"node-{a:05d}", f"node-{b:05d}", latency))
    rng.shuffle(links)
    return links


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` runs, and the last result."""
    samples = []
    result: Any = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def bench_shape(
    name: str, links: list[Link], nodes: list[str], repeats: int
) -> dict[str, tuple[float, str]]:
    rows: dict[str, tuple[float, str]] = {}
    t, graph = timed(lambda: index_graph(links, nodes), repeats)
    rows["index (ids -> 0..n-1, dedupe)"] = (t, f"n={len(graph.ids)} m={graph.edge_count}")
    adj = graph.adj
    t, comps = timed(lambda: connected_components(adj), repeats)
    biggest = max(comps, key=len)
    rows["components / connectivity"] = (t, f"{len(comps)} comp, largest {len(biggest)}")
    t, diam = timed(lambda: exact_diameter(adj, biggest), repeats)
    rows["diameter (iFUB)"] = (
        t,
        f"D={diam.diameter}, {diam.bfs_runs} BFS + {diam.batched_sources} bit-parallel",
    )
    t, clustering = timed(lambda: average_clustering(adj), repeats)
    rows["clustering coefficient"] = (t, f"{clustering:.4f}")
    t, cuts = timed(lambda: cut_structure(adj), repeats)
    rows["articulation pts + bridges"] = (
        t,
        f"{sum(cuts.articulation)} AP, {len(cuts.bridges)} bridges",
    )
    t, jain = timed(lambda: jain_index([len(a) for a in adj]), repeats)
    rows["load balance (Jain)"] = (t, f"{jain:.4f}" if jain is not None else "None")
    rows["sum of the above"] = (sum(v[0] for v in rows.values()), "")
    t, metrics = timed(lambda: compute_metrics(links, nodes), repeats)
    rows["compute_metrics() end to end"] = (t, "")
    print(f"\n## {name}: {len(links)} link records")
    print(f"{'step':34} {'seconds':>9}  result")
    for step, (seconds, note) in rows.items():
        print(f"{step:34} {seconds:9.3f}  {note}")
    print("metrics:", metrics.as_dict())
    return rows


def bench_networkx(links: list[Link], nodes: list[str], repeats: int) -> None:
    try:
        nx: Any = importlib.import_module("networkx")
    except ImportError:
        print("networkx not importable; skipped")
        return
    ours = compute_metrics(links, nodes)
    rows: list[tuple[str, float, str]] = []

    def build() -> Any:
        g = nx.Graph()
        g.add_nodes_from(nodes)
        g.add_edges_from((a, b) for a, b, _ in links)
        return g

    t, g = timed(build, repeats)
    rows.append(("build nx.Graph", t, ""))
    t, comps = timed(lambda: list(nx.connected_components(g)), repeats)
    rows.append(("connected_components", t, ""))
    biggest = g.subgraph(max(comps, key=len)).copy()  # a view would slow every lookup
    t, d = timed(lambda: nx.diameter(biggest, usebounds=True), repeats)
    rows.append(("diameter(usebounds=True)", t, f"D={d} (ours {ours.network_diameter})"))
    t, c = timed(lambda: nx.average_clustering(g), repeats)
    rows.append(("average_clustering", t, f"{c:.6f} (ours {ours.clustering_coefficient:.6f})"))
    t, ap = timed(lambda: sum(1 for _ in nx.articulation_points(g)), repeats)
    rows.append(("articulation_points", t, f"{ap} AP"))
    t, br = timed(lambda: sum(1 for _ in nx.bridges(g)), repeats)
    rows.append(("bridges", t, f"{br} bridges"))
    total = sum(r[1] for r in rows)
    print(f"networkx {nx.__version__} (comparison only)")
    print(f"{'step':34} {'seconds':>9}  result")
    for step, seconds, note in rows:
        print(f"{step:34} {seconds:9.3f}  {note}")
    print(f"{'total':34} {total:9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--links", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", choices=[*SHAPES, *STRESS, "all"], default="all")
    parser.add_argument("--stress", action="store_true", help="also run the stress shapes")
    parser.add_argument("--networkx", action="store_true", help="also time networkx")
    args = parser.parse_args()
    generators = SHAPES | STRESS
    shapes = list(SHAPES) if args.shape == "all" else [args.shape]
    if args.stress:
        shapes += [name for name in STRESS if name not in shapes]
    print(
        f"python {sys.version.split()[0]}, {args.nodes} nodes, {args.links} links, "
        f"seed {args.seed}, median of {args.repeats}"
    )
    for name in shapes:
        rng = random.Random(f"{args.seed}-{name}")
        links = as_links(generators[name](args.nodes, args.links, rng), rng)
        nodes = [f"node-{i:05d}" for i in range(args.nodes)]  # isolated ones count too
        bench_shape(name, links, nodes, args.repeats)
        if args.networkx:
            bench_networkx(links, nodes, args.repeats)


if __name__ == "__main__":
    main()
