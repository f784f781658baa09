"""Link graphs of simulated topologies, and hop distances over them.

Adjacency is a list of sets of node indices. Every generator returns a connected graph: a mesh
that falls apart into islands is a fault scenario, not a baseline, and BATMAN-like routing over
islands would have nothing to say about unreachable destinations.
"""

from __future__ import annotations

import itertools
import random
from collections import deque

Adjacency = list[set[int]]


def complete(n: int) -> Adjacency:
    return [set(range(n)) - {i} for i in range(n)]


def watts_strogatz(n: int, k: int, beta: float, rng: random.Random) -> Adjacency:
    """Small world: a ring lattice where each node links to its ``k`` nearest neighbours (k
    even), then every lattice edge is rewired to a random far node with probability ``beta``.
    Short average paths with high clustering, like a mesh of neighbourhood radios with a few
    long-haul links."""
    k = min(k, n - 1)
    k -= k % 2
    if k < 2 or n <= 3:
        return complete(n)
    adj: Adjacency = [set() for _ in range(n)]
    for i in range(n):
        for step in range(1, k // 2 + 1):
            j = (i + step) % n
            adj[i].add(j)
            adj[j].add(i)
    for i in range(n):
        for step in range(1, k // 2 + 1):
            j = (i + step) % n
            if j not in adj[i] or rng.random() >= beta:
                continue
            target = rng.randrange(n)
            if target == i or target in adj[i]:
                continue  # as in the original algorithm: no self loops, no multi-edges
            adj[i].discard(j)
            adj[j].discard(i)
            adj[i].add(target)
            adj[target].add(i)
    connect(adj, rng)
    return adj


def barabasi_albert(n: int, m: int, rng: random.Random) -> Adjacency:
    """Scale free: nodes join one by one and link to ``m`` existing nodes chosen with
    probability proportional to their degree, so early nodes become hubs. The caller orders
    nodes infrastructure first, which makes bootstrap nodes and gateways the hubs."""
    m = max(1, min(m, n - 1))
    if n <= m + 1:
        return complete(n)
    adj = complete(m + 1) + [set() for _ in range(n - m - 1)]
    # Each node appears once per edge end: a uniform pick from this list is a pick by degree.
    ends = [i for i in range(m + 1) for _ in range(m)]
    for v in range(m + 1, n):
        targets: set[int] = set()
        while len(targets) < m:
            targets.add(ends[rng.randrange(len(ends))])
        for t in sorted(targets):
            adj[v].add(t)
            adj[t].add(v)
            ends += (v, t)
    return adj


def connect(adj: Adjacency, rng: random.Random) -> None:
    """Join the components of ``adj`` in place with one random edge between consecutive ones."""
    seen = [False] * len(adj)
    components: list[list[int]] = []
    for root in range(len(adj)):
        if seen[root]:
            continue
        seen[root] = True
        members = [root]
        queue = deque([root])
        while queue:
            for nxt in adj[queue.popleft()]:
                if not seen[nxt]:
                    seen[nxt] = True
                    members.append(nxt)
                    queue.append(nxt)
        components.append(members)
    for left, right in itertools.pairwise(components):
        a, b = rng.choice(left), rng.choice(right)
        adj[a].add(b)
        adj[b].add(a)


def hop_distances(adj: Adjacency, source: int) -> list[int]:
    """BFS hop count from ``source`` to every node (-1 where unreachable)."""
    dist = [-1] * len(adj)
    dist[source] = 0
    queue = deque([source])
    while queue:
        here = queue.popleft()
        step = dist[here] + 1
        for nxt in adj[here]:
            if dist[nxt] < 0:
                dist[nxt] = step
                queue.append(nxt)
    return dist


def edges(adj: Adjacency) -> list[tuple[int, int]]:
    """Each undirected edge once, as (low, high), in a deterministic order."""
    return [(a, b) for a in range(len(adj)) for b in sorted(adj[a]) if a < b]
