"""The pure, deterministic event generator underneath ``ingest simulate``.

Time is simulated: event ``n`` happens at ``start + n / rate``, whatever the wall clock does,
so a seed and a start time give byte-identical records on every run and machine. The mix is
chosen per event by weighted draw (metrics dominate, as in real telemetry), but what each event
says comes from evolving state: link qualities random-walk, connections move through their
lifecycle, metric series revert to a diurnal mean, routes follow the link graph.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Final

import orjson

from ingest.simulate.graphs import hop_distances
from ingest.simulate.malformed import REASON_CYCLE, damage, eligible_index
from ingest.simulate.options import KIND_TOPIC, SimRecord, SimulationOptions
from ingest.simulate.world import (
    REGION_PEAK_HOUR,
    Connection,
    Link,
    Node,
    Pool,
    Series,
    Service,
    Topology,
    build_world,
    new_connection,
    new_uuid,
)

# Actions and their weights. A route round emits about REPORTERS x NEXT_HOPS adverts, so its
# weight is small; the weights were tuned so metrics are ~84% of events.
_ACTIONS: Final = (
    ("metric", 0.84),
    ("link.probe", 0.045),
    ("route.round", 0.003),
    ("node.heartbeat", 0.022),
    ("connection.state", 0.016),
    ("pool.state", 0.005),
    ("event", 0.006),
    ("compression.stats", 0.004),
    ("batch.stats", 0.004),
    ("dns.record", 0.004),
    ("service.register", 0.002),
    ("batch.config", 0.0004),
    ("optimization.params", 0.0004),
    ("node.announce", 0.0003),
    ("topology.config", 0.0002),
)
_ACTION_NAMES: Final = tuple(name for name, _ in _ACTIONS)
_ACTION_CUMULATIVE: Final = tuple(accumulate(weight for _, weight in _ACTIONS))

REPORTERS: Final = 6
"""Nodes that report their routes to one originator per round (its OGM reaching them)."""
NEXT_HOPS: Final = 3
"""Routes per (node, destination): BATMAN keeps a candidate per neighbour, best first."""
HOP_DECAY: Final = 0.8
"""Route quality kept per extra hop (BATMAN's hop penalty, steeper for visibility)."""
# batman-adv OGM flags.
FLAG_NOT_BEST_NEXT_HOP: Final = 0x01
FLAG_DIRECTLINK: Final = 0x04

LINGER_US: Final = 1_000_000
"""With batch > 1, a node flushes a partial array once its oldest element is this old."""
_SWEEP_US: Final = 100_000
_DIST_CACHE: Final = 1024
_US: Final = 1_000_000

_SEVERITIES: Final = ("debug", "info", "warning", "error", "critical")
# (event_type, event_name, severity weights debug..critical, description)
_EVENT_CATALOG: Final = (
    ("peer", "peer.connected", (1, 20, 0, 0, 0), "a peer completed its handshake"),
    ("peer", "peer.disconnected", (0, 10, 4, 0, 0), "a peer went away"),
    ("config", "config.reloaded", (0, 8, 0, 0, 0), "configuration reloaded from disk"),
    ("security", "handshake.failed", (0, 0, 6, 1, 0), "a noise handshake was refused"),
    ("routing", "route.flap_detected", (0, 0, 4, 1, 0), "best next hop changed repeatedly"),
    ("system", "gc.pause", (10, 2, 0, 0, 0), "runtime paused for garbage collection"),
    ("system", "disk.pressure", (0, 0, 3, 1, 0), "disk usage above the warning threshold"),
    ("system", "process.restarted", (0, 1, 0, 2, 0), "the mesh daemon restarted"),
    ("security", "certificate.expiring", (0, 0, 2, 0, 0), "TLS certificate expires within 14 days"),
    ("system", "oom.kill", (0, 0, 0, 0, 1), "the kernel killed a worker process"),
)
_EVENT_WEIGHTS: Final = tuple(accumulate(sum(w) for _, _, w, _ in _EVENT_CATALOG))
_COMPRESSION_RATIO: Final = {
    "zstd": 0.28,
    "brotli": 0.26,
    "gzip": 0.33,
    "lz4": 0.48,
    "snappy": 0.52,
    "none": 1.0,
}

Pending = tuple[str, Node, dict[str, Any]]


def to_us(moment: datetime) -> int:
    """Epoch microseconds of an aware datetime (a naive one is taken as UTC), exactly."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


class _Buffer:
    __slots__ = ("elements", "first_us", "kinds", "node")

    def __init__(self, node: Node, first_us: int) -> None:
        self.node = node
        self.first_us = first_us
        self.elements: list[dict[str, Any]] = []
        self.kinds: list[str] = []


class Simulator:
    """Deterministic records for one simulated mesh.

    ``records()`` generates until ``opts.count`` events or ``opts.duration_s`` of simulated
    time (forever if neither is set), then flushes partial arrays. A consumer that stops early
    calls ``drain()`` for the elements still waiting in partial arrays.
    """

    def __init__(self, opts: SimulationOptions, start: datetime) -> None:
        self.opts = opts
        self.start_us = to_us(start)
        # Two streams: the mesh itself depends only on the seed and its size, the traffic also
        # on how much of it is asked for.
        self.world = build_world(
            opts.nodes, opts.topologies, random.Random(f"mesh-ingest/world/{opts.seed}")
        )
        self._rng = random.Random(f"mesh-ingest/stream/{opts.seed}")
        self._step_us = _US / opts.clock_rate
        self._skew_us = round(opts.skew_s * _US)
        self._as_array = opts.batch > 1
        self.events = 0
        """Events generated so far (including the ones deliberately damaged)."""
        self.clock_us = self.start_us
        self._pending: deque[Pending] = deque()
        self._out: deque[SimRecord] = deque()
        self._buffers: dict[tuple[int, str], _Buffer] = {}
        self._next_sweep_us = self.start_us + _SWEEP_US
        self._bad_credit = 0.0
        self._reason_index = 0
        self._rfc_second = -1
        self._rfc_prefix = ""

        world = self.world
        n = len(world.nodes)
        rng = self._rng
        self._metric_i = 0
        self._heartbeat_i = 0
        self._window_i = 0
        self._probe_i = 0
        self._probes: list[tuple[Topology, Link, Node, Node, dict[str, str]]] = []
        for topo in world.topologies:
            for link in topo.links.values():
                for local, remote in ((link.a, link.b), (link.b, link.a)):
                    meta = {"interface": "mesh0" if topo is world.topologies[0] else "wg0"}
                    self._probes.append((topo, link, world.nodes[local], world.nodes[remote], meta))
        rng.shuffle(self._probes)
        self._dest_order = list(range(n))
        rng.shuffle(self._dest_order)
        self._dest_i = 0
        self._dist: dict[int, list[int]] = {}
        # BATMAN sequence numbers start from the simulated time (in tenths of a second), so a
        # later run of the same mesh advertises above the routes an earlier run left stored.
        self._seq = [self.start_us // 100_000] * n
        all_links = [link for topo in world.topologies for link in topo.links.values()]
        self._mean_hop_ms = sum(link.base_latency_ms for link in all_links) / max(1, len(all_links))
        window_start = [self.start_us - rng.randint(30, 60) * _US for _ in range(n)]
        self._compression_from = list(window_start)
        self._batch_from = list(window_start)
        self._params = [self._initial_params(node) for node in world.nodes]
        self._batch_size = [rng.choice((50, 100, 200, 500)) for _ in range(n)]
        self._bootstrap()

    # -- public ----------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The simulated clock: the time of the latest event generated."""
        return SimRecord("", b"", b"", (), None, self.clock_us).at

    def records(self) -> Iterator[SimRecord]:
        count = self.opts.count
        end_us = (
            None
            if self.opts.duration_s is None
            else self.start_us + round(self.opts.duration_s * _US)
        )
        out = self._out
        step = self._step
        while True:
            while out:
                yield out.popleft()
            if count is not None and self.events >= count:
                break
            if end_us is not None and self._time_of(self.events) >= end_us:
                break
            step()
        yield from self.drain()

    def drain(self) -> Iterator[SimRecord]:
        """Flush every partial array (a node's shutdown flush) and yield what is left."""
        for buffer_key in list(self._buffers):
            self._flush(buffer_key)
        while self._out:
            yield self._out.popleft()

    # -- the event loop --------------------------------------------------------------------

    def _time_of(self, n: int) -> int:
        return self.start_us + int(n * self._step_us)

    def _step(self) -> None:
        if not self._pending:
            self._act()
            if not self._pending:
                return
        kind, node, event = self._pending.popleft()
        now = self.clock_us = self._time_of(self.events)
        self.events += 1
        event["ts"] = self._fmt(node, now + self._skew_us)
        topic = KIND_TOPIC[kind]
        if not self._as_array:
            self._emit(node, topic, [event], [kind], now)
            return
        buffer_key = (node.index, topic)
        buffer = self._buffers.get(buffer_key)
        if buffer is None:
            buffer = self._buffers[buffer_key] = _Buffer(node, now)
        buffer.elements.append(event)
        buffer.kinds.append(kind)
        if len(buffer.elements) >= self.opts.batch:
            self._flush(buffer_key)
        if now >= self._next_sweep_us:
            self._next_sweep_us = now + _SWEEP_US
            oldest = now - LINGER_US
            for stale in [k for k, b in self._buffers.items() if b.first_us <= oldest]:
                self._flush(stale)

    def _flush(self, buffer_key: tuple[int, str]) -> None:
        buffer = self._buffers.pop(buffer_key)
        self._emit(buffer.node, buffer_key[1], buffer.elements, buffer.kinds, self.clock_us)

    def _emit(
        self, node: Node, topic: str, elements: list[dict[str, Any]], kinds: list[str], at: int
    ) -> None:
        malformed = self.opts.malformed
        if malformed > 0.0:
            # Error diffusion rather than a coin flip: exactly the asked fraction, evenly
            # spread. Credit owed while records cannot carry the reason waits (capped).
            self._bad_credit = min(self._bad_credit + malformed, 1.0 + malformed)
            if self._bad_credit >= 1.0:
                reason = REASON_CYCLE[self._reason_index % len(REASON_CYCLE)]
                index = eligible_index(reason, elements, self._rng)
                if index is not None:
                    self._bad_credit -= 1.0
                    self._reason_index += 1
                    future_at = at + max(self._skew_us, 0)
                    value = damage(
                        reason,
                        elements,
                        index,
                        self._as_array,
                        self._rng,
                        future_at,
                        lambda us: self._fmt(node, us),
                    )
                    left: tuple[str, ...] = ()
                    bad_index: int | None = None
                    if index >= 0:
                        left = tuple(k for i, k in enumerate(kinds) if i != index)
                        bad_index = index if self._as_array else None
                    self._out.append(SimRecord(topic, node.key, value, left, reason, at, bad_index))
                    return
        value = orjson.dumps(elements if self._as_array else elements[0])
        self._out.append(SimRecord(topic, node.key, value, tuple(kinds), None, at))

    def _fmt(self, node: Node, us: int) -> Any:
        """A time as this node writes it: epoch milliseconds or RFC 3339 with microseconds."""
        if node.epoch_ms:
            return us // 1000
        second, micro = divmod(us, _US)
        if second != self._rfc_second:
            self._rfc_second = second
            self._rfc_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._rfc_prefix}.{micro:06d}Z"

    def _at(self, node: Node, us: int) -> Any:
        """A reported time other than ``ts``: skewed like ``ts``, as the node's clock is."""
        return self._fmt(node, us + self._skew_us)

    def _push(self, kind: str, node: Node, **fields: Any) -> None:
        event: dict[str, Any] = {"kind": kind, "node_id": node.id, "ts": None}
        if node.explicit_v:
            event["v"] = 1
        # Nodes tag their rarer, stateful events for tracing; metrics go untagged (volume).
        event["event_id"] = new_uuid(self._rng)
        event.update(fields)
        self._pending.append((kind, node, event))

    def _act(self) -> None:
        choice = bisect.bisect_right(
            _ACTION_CUMULATIVE, self._rng.random() * _ACTION_CUMULATIVE[-1]
        )
        name = _ACTION_NAMES[min(choice, len(_ACTION_NAMES) - 1)]
        if name == "metric":
            self._metric()
        else:
            self._handlers[name](self)

    # -- bootstrap -------------------------------------------------------------------------

    def _bootstrap(self) -> None:
        """Announce everything a node knows at start-up, parents before their children."""
        world = self.world
        for node in world.nodes:
            self._push("node.announce", node, **node.announce_fields())
        for topo in world.topologies:
            self._topology_config(topo)
        for node in world.nodes:
            for pool in world.pools_by_node[node.index]:
                self._pool(pool)
            self._batch_config(node)
            self._optimization(node)
        for service in world.services:
            self._service(service)

    # -- metrics ---------------------------------------------------------------------------

    def _metric(self) -> None:
        # Series are visited in turn, a node's series together: a node scrapes and sends
        # all of its gauges at once, every series sampled at the same cadence.
        series = self.world.series
        s: Series = series[self._metric_i % len(series)]
        self._metric_i += 1
        node = self.world.nodes[s.node]
        target = s.mean
        if s.diurnal:
            hour = (self.clock_us / 3.6e9) % 24.0
            peak = REGION_PEAK_HOUR[node.region]
            target *= 1.0 + s.diurnal * math.cos((hour - peak) * (math.pi / 12.0))
        value = s.value + 0.1 * (target - s.value) + self._rng.gauss(0.0, s.sigma)
        s.value = value = min(s.high, max(s.low, value))
        event = {
            "kind": "metric",
            "node_id": node.id,
            "ts": None,
            "metric_type": s.metric_type,
            "metric_name": s.name,
            "metric_value": round(value) if s.unit == "bytes" else round(value, 3),
            "unit": s.unit,
            "tags": s.tags,
        }
        self._pending.append(("metric", node, event))

    # -- links and routes ------------------------------------------------------------------

    def _link_probe(self) -> None:
        topo, link, local, remote, meta = self._probes[self._probe_i % len(self._probes)]
        self._probe_i += 1
        rng = self._rng
        q = link.quality + 0.08 * (link.baseline_quality - link.quality) + rng.gauss(0.0, 0.03)
        if rng.random() < 0.004:
            q -= rng.uniform(0.3, 0.6)  # interference, a moved antenna, a saturated uplink
        link.quality = q = min(1.0, max(0.02, q))
        state = (
            "active"
            if q >= 0.75
            else "degraded"
            if q >= 0.55
            else "congested"
            if q >= 0.35
            else "failing"
        )
        previous = link.state
        if previous != state:
            link.state = state
            if previous != "establishing" and "failing" in (state, previous):
                severity = "info" if state != "failing" else "error"
                self._push(
                    "event",
                    local,
                    event_type="link",
                    event_name="link.state_changed",
                    severity=severity,
                    description=f"link to {remote.name} went from {previous} to {state}",
                    metadata={"remote_node_id": remote.id, "topology_id": topo.id},
                )
        first = local.index not in link.probed
        link.probed.add(local.index)
        latency = link.base_latency_ms * (1.0 + 1.5 * (1.0 - q)) * rng.lognormvariate(0.0, 0.08)
        self._push(
            "link.probe",
            local,
            topology_id=topo.id,
            remote_node_id=remote.id,
            link_state="establishing" if first else state,
            quality=round(q, 4),
            latency_ms=round(latency, 3),
            bandwidth_mbps=round(link.capacity_mbps * (0.25 + 0.75 * q) * rng.uniform(0.9, 1.0), 2),
            packet_loss=round(min(1.0, (1.0 - q) ** 2 * 0.25 + abs(rng.gauss(0.0, 0.002))), 5),
            jitter_ms=round(latency * (0.04 + 0.25 * (1.0 - q)), 3),
            weight=round(latency / max(q, 0.05), 3),
            metadata=meta,
        )

    def _distances(self, destination: int) -> list[int]:
        dist = self._dist.get(destination)
        if dist is None:
            if len(self._dist) >= _DIST_CACHE:
                del self._dist[next(iter(self._dist))]
            dist = self._dist[destination] = hop_distances(self.world.union_adj, destination)
        return dist

    def _route_round(self) -> None:
        """One originator's OGM reaches a few nodes; each reports its best next hops to it."""
        world = self.world
        n = len(world.nodes)
        d = self._dest_order[self._dest_i % n]
        self._dest_i += 1
        dist = self._distances(d)
        seq = self._seq[d] = max(self._seq[d] + 1, self.clock_us // 100_000)
        destination = world.nodes[d]
        reporters = [x for x in self._rng.sample(range(n), min(n, REPORTERS + 1)) if x != d]
        for x in reporters[:REPORTERS]:
            candidates = []
            for nb in world.union_adj[x]:
                hops = 1 if nb == d else 1 + dist[nb]
                if nb == d or dist[nb] >= 0:
                    link = world.union_links[(x, nb) if x < nb else (nb, x)]
                    candidates.append((hops, -link.quality, nb, link))
            candidates.sort(key=lambda c: (c[0], c[1], c[2]))
            node = world.nodes[x]
            for rank, (hops, _, nb, link) in enumerate(candidates[:NEXT_HOPS]):
                q = link.quality
                direct = nb == d
                flags = (FLAG_DIRECTLINK if direct else 0) | (FLAG_NOT_BEST_NEXT_HOP if rank else 0)
                hop_latency = link.base_latency_ms * (1.0 + 1.5 * (1.0 - q))
                self._push(
                    "route.advert",
                    node,
                    destination_id=destination.id,
                    next_hop_id=None if direct else world.nodes[nb].id,
                    sequence_number=seq,
                    # Falls strictly with hop count: the link term spans less than one decay
                    # step (0.85..1 against 0.8), so link quality orders routes of equal length.
                    quality=round(HOP_DECAY ** (hops - 1) * (0.85 + 0.15 * q), 6),
                    hop_count=hops,
                    flags=flags,
                    metrics={
                        "latency": round(hop_latency + (hops - 1) * self._mean_hop_ms, 3),
                        "bandwidth": round(link.capacity_mbps * (0.25 + 0.75 * q) / hops, 2),
                        "packet_loss": round(
                            1.0 - (1.0 - (1.0 - q) ** 2 * 0.25) * 0.995 ** (hops - 1), 5
                        ),
                        "jitter": round(hop_latency * 0.1 * math.sqrt(hops), 3),
                    },
                )

    def _topology_config(self, topo: Topology | None = None) -> None:
        if topo is None:
            topo = self._rng.choice(self.world.topologies)
            # The optimiser tunes itself: the learning rate decays while it converges.
            topo.learning_rate = round(
                max(0.001, topo.learning_rate * self._rng.uniform(0.9, 1.02)), 5
            )
            topo.status = "optimizing" if self._rng.random() < 0.2 else "active"
        coordinator = next(
            (n for n in self.world.nodes if n.role == "coordinator"), self.world.nodes[0]
        )
        degrees = [len(neighbours) for neighbours in topo.adj]
        self._push(
            "topology.config",
            coordinator,
            topology_id=topo.id,
            mesh_name=topo.name,
            topology_type=topo.topology_type,
            configuration={
                **topo.generator,
                "nodes": len(topo.adj),
                "links": len(topo.links),
                "ogm_interval_ms": 1000,
                "probe_interval_ms": 2000,
            },
            optimization_enabled=True,
            learning_rate=topo.learning_rate,
            connectivity_threshold=0.6,
            max_connections_per_node=max(degrees) + 2,
            status=topo.status,
        )

    # -- nodes -----------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        nodes = self.world.nodes
        node = nodes[self._heartbeat_i % len(nodes)]
        self._heartbeat_i += 1
        status: str | None = None
        if node.status != "active":
            node.status = status = "active"  # the reconnect finished
        elif self._rng.random() < 0.004:
            node.status = status = "connecting"
            self._push(
                "event",
                node,
                event_type="peer",
                event_name="node.reconnecting",
                severity="warning",
                description="lost the bootstrap session, reconnecting",
            )
        elif self._rng.random() < 0.1:
            status = "active"  # firmware that confirms its status now and then
        if status is None:
            self._push("node.heartbeat", node)
        else:
            self._push("node.heartbeat", node, status=status)

    def _announce(self) -> None:
        node = self._rng.choice(self.world.nodes)
        self._push("node.announce", node, **node.announce_fields())

    def _event(self) -> None:
        rng = self._rng
        node = rng.choice(self.world.nodes)
        pick = bisect.bisect_right(_EVENT_WEIGHTS, rng.random() * _EVENT_WEIGHTS[-1])
        etype, name, weights, description = _EVENT_CATALOG[min(pick, len(_EVENT_CATALOG) - 1)]
        severity = rng.choices(_SEVERITIES, weights)[0]
        self._push(
            "event",
            node,
            event_type=etype,
            event_name=name,
            severity=severity,
            description=description,
            metadata={"firmware": node.firmware, "region": node.region},
        )

    # -- pools and connections -------------------------------------------------------------

    def _pool(self, pool: Pool | None = None) -> None:
        rng = self._rng
        if pool is None:
            pool = rng.choice(self.world.pools)
            if pool.status == "active" and rng.random() < 0.01:
                pool.status = "draining"  # a rolling restart of the upstream
            elif pool.status == "draining" and rng.random() < 0.3:
                pool.status = "active"
        live = [c for c in pool.connections if c.state != "closed"]
        self._push(
            "pool.state",
            self.world.nodes[pool.node],
            pool_id=pool.id,
            pool_name=pool.name,
            min_connections=pool.min_connections,
            max_connections=pool.max_connections,
            current_connections=len(live),
            in_use_connections=sum(1 for c in live if c.state == "active"),
            keepalive_timeout=pool.keepalive_s,
            enable_http2=pool.http2,
            status=pool.status,
        )

    def _connection(self) -> None:
        rng = self._rng
        pool = rng.choice(self.world.pools)
        slot = rng.randrange(len(pool.connections))
        conn = pool.connections[slot]
        now = self.clock_us
        if conn.state == "closed":
            # The pool replaces a closed connection with a fresh one.
            conn = pool.connections[slot] = new_connection(self.world.nodes, rng, pool.http2)
        elif conn.state == "closing":
            conn.state, conn.closed_us = "closed", now
        elif conn.state == "idle":
            r = rng.random()
            conn.state = "active" if r < 0.55 else "closing" if r < 0.6 else "idle"
        else:
            conn.state = "idle" if rng.random() < 0.5 else "active"
        if conn.state == "active":
            self._work(conn, now, self.world.nodes[pool.node].load)
        node = self.world.nodes[pool.node]
        self._push(
            "connection.state",
            node,
            connection_id=conn.id,
            pool_id=pool.id,
            endpoint=conn.endpoint,
            protocol=conn.protocol,
            state=conn.state,
            requests_handled=conn.requests,
            bytes_sent=conn.bytes_sent,
            bytes_received=conn.bytes_received,
            errors_count=conn.errors,
            last_used_at=None if conn.last_used_us is None else self._at(node, conn.last_used_us),
            closed_at=None if conn.closed_us is None else self._at(node, conn.closed_us),
        )

    def _work(self, conn: Connection, now: int, load: float) -> None:
        rng = self._rng
        requests = max(1, int(rng.randint(5, 400) * load))
        conn.requests += requests
        conn.bytes_sent += requests * rng.randint(300, 2500)
        conn.bytes_received += requests * rng.randint(800, 9000)
        if rng.random() < 0.03:
            conn.errors += rng.randint(1, 3)
        conn.last_used_us = now

    # -- windows ---------------------------------------------------------------------------

    def _window_node(self) -> Node:
        nodes = self.world.nodes
        node = nodes[self._window_i % len(nodes)]
        self._window_i += 1
        return node

    def _compression(self) -> None:
        node = self._window_node()
        rng = self._rng
        start, end = self._compression_from[node.index], self.clock_us
        self._compression_from[node.index] = end  # windows tile time: next starts here
        seconds = max(0.001, (end - start) / _US)
        messages = max(1, int(seconds * 40 * node.load * rng.uniform(0.7, 1.3)))
        original = messages * rng.randint(350, 900)
        algorithm = self.world.algorithms[node.index]
        compressed = int(original * _COMPRESSION_RATIO[algorithm] * rng.uniform(0.9, 1.1))
        if algorithm == "none":
            compressed = original
        speed = {"lz4": 500.0, "snappy": 450.0, "zstd": 250.0, "gzip": 60.0, "brotli": 30.0}
        mb = original / 1e6
        self._push(
            "compression.stats",
            node,
            algorithm=algorithm,
            messages_compressed=messages,
            original_bytes=original,
            compressed_bytes=compressed,
            compression_time_ms=round(1000 * mb / speed.get(algorithm, 1e9)),
            decompression_time_ms=round(1000 * mb / (3 * speed.get(algorithm, 1e9))),
            period_start=self._at(node, start),
            period_end=self._at(node, end),
        )

    def _batch_stats(self) -> None:
        node = self._window_node()
        rng = self._rng
        start, end = self._batch_from[node.index], self.clock_us
        self._batch_from[node.index] = end
        seconds = max(0.001, (end - start) / _US)
        messages = max(1, int(seconds * 40 * node.load * rng.uniform(0.7, 1.3)))
        size = self._batch_size[node.index]
        batches = max(1, math.ceil(messages / (size * rng.uniform(0.2, 0.9))))
        self._push(
            "batch.stats",
            node,
            config_id=self.world.batch_config_ids[node.index],
            total_batches=batches,
            total_messages=messages,
            average_batch_size=round(messages / batches, 2),
            priority_bypasses=int(messages * rng.uniform(0.0, 0.02)),
            queue_overflows=rng.randint(1, 5) if rng.random() < 0.02 else 0,
            period_start=self._at(node, start),
            period_end=self._at(node, end),
        )

    def _batch_config(self, node: Node | None = None) -> None:
        if node is None:
            node = self._rng.choice(self.world.nodes)
            # Adaptive sizing moved the batch size.
            size = self._batch_size[node.index]
            self._batch_size[node.index] = max(
                10, min(2000, int(size * self._rng.uniform(0.7, 1.4)))
            )
        self._push(
            "batch.config",
            node,
            config_id=self.world.batch_config_ids[node.index],
            max_batch_size=self._batch_size[node.index],
            max_wait_time_ms=50 if node.node_type == "gateway" else 200,
            priority_threshold=0.8,
            adaptive_sizing=True,
        )

    def _initial_params(self, node: Node) -> dict[str, Any]:
        rng = self._rng
        return {
            "param_set_name": "default",
            "batch_size": rng.choice((64, 128, 256)),
            "connection_pool_size": rng.choice((4, 8, 16)),
            "retry_strategy": rng.choice(("exponential", "exponential", "adaptive", "linear")),
            "max_retries": rng.choice((3, 5, 8)),
            "circuit_breaker_threshold": rng.choice((0.5, 0.6, 0.75)),
            "adaptive_learning_enabled": node.node_type != "peer",
            "active_since_us": self.start_us,
        }

    def _optimization(self, node: Node | None = None) -> None:
        rng = self._rng
        if node is None:
            node = rng.choice(self.world.nodes)
            params = self._params[node.index]
            params["batch_size"] = max(1, int(params["batch_size"] * rng.uniform(0.75, 1.5)))
            params["max_retries"] = rng.choice((3, 5, 8))
            params["active_since_us"] = self.clock_us
        params = self._params[node.index]
        fields = {k: v for k, v in params.items() if k != "active_since_us"}
        self._push(
            "optimization.params",
            node,
            **fields,
            compression_algorithm=self.world.algorithms[node.index],
            metadata={"tuned_by": "adaptive-optimizer", "firmware": node.firmware},
            active_since=self._at(node, params["active_since_us"]),
        )

    # -- discovery -------------------------------------------------------------------------

    def _dns(self) -> None:
        rng = self._rng
        hostname, record_type, addresses, ttl = rng.choice(self.world.dns_names)
        resolver = rng.choice(self.world.nodes)
        self._push(
            "dns.record",
            resolver,
            hostname=hostname,
            ip_addresses=addresses,
            record_type=record_type,
            ttl=ttl,
        )

    def _service(self, service: Service | None = None) -> None:
        rng = self._rng
        if service is None:
            service = rng.choice(self.world.services)
            r = rng.random()
            before = service.health
            service.health = {
                "unknown": "healthy",
                "healthy": "degraded" if r < 0.03 else "unhealthy" if r < 0.04 else "healthy",
                "degraded": "healthy" if r < 0.5 else "unhealthy" if r < 0.6 else "degraded",
                "unhealthy": "healthy" if r < 0.3 else "degraded" if r < 0.6 else "unhealthy",
            }[before]
            if service.health == "unhealthy" and before != "unhealthy":
                self._push(
                    "event",
                    self.world.nodes[service.node],
                    event_type="service",
                    event_name="service.unhealthy",
                    severity="error",
                    description=f"{service.name} failed its health check",
                    metadata={"service_id": service.id},
                )
        node = self.world.nodes[service.node]
        self._push(
            "service.register",
            node,
            service_id=service.id,
            service_name=service.name,
            service_type=service.service_type,
            endpoints=service.endpoints,
            health_check_url=service.health_check_url or None,
            metadata={"version": node.firmware, "region": node.region},
            health_status=service.health,
        )

    _handlers: Final[dict[str, Callable[[Simulator], None]]] = {
        "link.probe": _link_probe,
        "route.round": _route_round,
        "node.heartbeat": _heartbeat,
        "connection.state": _connection,
        "pool.state": lambda self: self._pool(),
        "event": _event,
        "compression.stats": _compression,
        "batch.stats": _batch_stats,
        "dns.record": _dns,
        "service.register": lambda self: self._service(),
        "batch.config": lambda self: self._batch_config(),
        "optimization.params": lambda self: self._optimization(),
        "node.announce": _announce,
        "topology.config": lambda self: self._topology_config(),
    }
