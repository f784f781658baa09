"""The simulated mesh: nodes, topologies with their links, pools, services, metric series.

Built once from the seed, independently of the start time, count and rate, so that two runs
with the same seed, node count and topology count describe the same mesh (the same node ids
and names): a second run upserts the nodes of the first instead of colliding with them.
Everything here is mutable state that the generator evolves as simulated time passes.
"""

from __future__ import annotations

import base64
import ipaddress
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from ingest.simulate.graphs import Adjacency, barabasi_albert, edges, watts_strogatz

# Share of each node type; the rest are peers. At least one bootstrap node: a mesh needs a
# rendezvous point.
TYPE_SHARES: Final = (("bootstrap", 0.03), ("gateway", 0.05), ("relay", 0.12))
REGIONS: Final = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")
REGION_WEIGHTS: Final = (0.3, 0.2, 0.25, 0.15, 0.1)
# Round-trip base latency (ms) between regions: same region is a few ms, an ocean is ~80+.
_REGION_RTT: Final = {
    frozenset({"eu-west", "eu-central"}): 14.0,
    frozenset({"eu-west", "us-east"}): 75.0,
    frozenset({"eu-central", "us-east"}): 90.0,
    frozenset({"us-east", "us-west"}): 62.0,
    frozenset({"eu-west", "us-west"}): 140.0,
    frozenset({"eu-central", "us-west"}): 150.0,
    frozenset({"ap-south", "eu-west"}): 120.0,
    frozenset({"ap-south", "eu-central"}): 110.0,
    frozenset({"ap-south", "us-east"}): 200.0,
    frozenset({"ap-south", "us-west"}): 220.0,
}
# Diurnal peak hour (UTC) of each region's load, for metric curves.
REGION_PEAK_HOUR: Final = {
    "eu-west": 19.0,
    "eu-central": 18.0,
    "us-east": 0.0,
    "us-west": 3.0,
    "ap-south": 14.0,
}
FIRMWARE: Final = ("2.3.7", "2.4.1", "2.4.2", "3.0.0")


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (uuid4() would read the OS entropy pool)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(slots=True)
class Node:
    index: int
    id: str
    key: bytes
    name: str
    node_type: str
    role: str
    region: str
    address: str
    address6: str
    port: int
    public_key: str
    firmware: str
    epoch_ms: bool
    """Publishes ``ts`` as epoch milliseconds rather than RFC 3339 (older firmware)."""
    explicit_v: bool
    """Sends ``"v": 1`` explicitly (newer firmware); others rely on the default."""
    status: str = "active"
    load: float = 1.0
    """Traffic scale: gateways and relays carry more than peers."""

    def announce_fields(self) -> dict[str, Any]:
        return {
            "node_name": self.name,
            "node_type": self.node_type,
            "role": self.role,
            "address": self.address,
            "port": self.port,
            "public_key": self.public_key,
            "capabilities": {
                "relay": self.node_type in ("relay", "gateway"),
                "nat_traversal": self.node_type != "bootstrap",
                "ipv6": True,
                "protocols": ["batman-v", "wireguard", "quic"],
                "max_bandwidth_mbps": 100 * round(self.load * 10),
            },
            "metadata": {
                "region": self.region,
                "firmware": self.firmware,
                "address6": self.address6,
                "hardware": "x86_64" if self.node_type != "peer" else "arm64",
            },
            "status": self.status,
        }


@dataclass(slots=True)
class Link:
    """One physical link, shared by both directions: they see the same medium."""

    a: int
    b: int
    base_latency_ms: float
    capacity_mbps: float
    baseline_quality: float
    quality: float
    state: str = "establishing"
    probed: set[int] = field(default_factory=set)
    """Ends that have probed at least once; an end's first probe says ``establishing``."""


@dataclass(slots=True)
class Topology:
    id: str
    name: str
    topology_type: str
    generator: dict[str, Any]
    adj: Adjacency
    links: dict[tuple[int, int], Link]
    status: str = "active"
    learning_rate: float = 0.01


@dataclass(slots=True)
class Connection:
    id: str
    endpoint: str
    protocol: str
    state: str = "idle"
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    errors: int = 0
    last_used_us: int | None = None
    closed_us: int | None = None


@dataclass(slots=True)
class Pool:
    id: str
    node: int
    name: str
    min_connections: int
    max_connections: int
    keepalive_s: int
    http2: bool
    connections: list[Connection]
    status: str = "active"


@dataclass(slots=True)
class Service:
    id: str
    node: int
    name: str
    service_type: str
    endpoints: list[str]
    health_check_url: str
    health: str = "unknown"


@dataclass(slots=True)
class Series:
    """One metric time series of one node: a mean-reverting random walk."""

    node: int
    metric_type: str
    name: str
    unit: str
    mean: float
    sigma: float
    low: float
    high: float
    diurnal: float
    """Amplitude of the daily load curve as a share of the mean (0 for flat series)."""
    tags: dict[str, str]
    value: float


# (type, name, unit, mean, sigma per sample, low, high, diurnal amplitude, scales with load)
_SERIES: Final = (
    ("cpu", "cpu.usage_percent", "percent", 32.0, 3.0, 0.0, 100.0, 0.35, True),
    ("cpu", "cpu.load_1m", "load", 1.1, 0.08, 0.0, 64.0, 0.35, True),
    ("memory", "memory.used_percent", "percent", 55.0, 0.6, 0.0, 100.0, 0.05, False),
    ("memory", "memory.rss_bytes", "bytes", 4.2e8, 4e6, 0.0, 3.4e10, 0.05, True),
    ("throughput", "net.tx_mbps", "Mbit/s", 35.0, 3.5, 0.0, 10_000.0, 0.5, True),
    ("throughput", "net.rx_mbps", "Mbit/s", 48.0, 4.5, 0.0, 10_000.0, 0.5, True),
    ("throughput", "mesh.messages_per_s", "msg/s", 850.0, 60.0, 0.0, 1e7, 0.5, True),
    ("latency", "mesh.rtt_p50_ms", "ms", 18.0, 1.2, 0.1, 5_000.0, 0.2, False),
    ("latency", "mesh.rtt_p99_ms", "ms", 74.0, 6.0, 0.1, 20_000.0, 0.3, False),
    ("latency", "rpc.handler_p95_ms", "ms", 11.0, 1.0, 0.05, 10_000.0, 0.25, False),
    ("queue", "ingress.queue_depth", "messages", 12.0, 3.0, 0.0, 1e6, 0.6, True),
    ("disk", "disk.used_percent", "percent", 41.0, 0.02, 0.0, 100.0, 0.0, False),
)

_POOL_NAMES: Final = ("mesh-control", "telemetry-export", "upstream-http", "peer-rpc")
_SERVICES: Final = {
    "bootstrap": (("bootstrap-directory", "grpc", 7400, "/healthz"),),
    "gateway": (("api-gateway", "http", 8443, "/health"), ("dns-resolver", "dns", 53, None)),
    "relay": (("relay-forwarder", "quic", 7500, "/healthz"),),
    "peer": (("telemetry-agent", "metrics", 9100, "/metrics"),),
}


@dataclass(slots=True)
class World:
    nodes: list[Node]
    topologies: list[Topology]
    union_adj: Adjacency
    """Neighbours across every topology: routing runs over all of a node's links."""
    union_links: dict[tuple[int, int], Link]
    pools: list[Pool]
    pools_by_node: list[list[Pool]]
    services: list[Service]
    series: list[Series]
    batch_config_ids: list[str]
    algorithms: list[str]
    dns_names: list[tuple[str, str, list[str], int]]
    """(hostname, record type, addresses, ttl) of every name the mesh resolves."""


def _node_types(n: int) -> list[str]:
    counts = {name: round(share * n) for name, share in TYPE_SHARES}
    counts["bootstrap"] = max(1, counts["bootstrap"])
    types = [name for name, _ in TYPE_SHARES for _ in range(counts[name])][: n - 1]
    # Infrastructure first: it comes up first, and becomes the hubs of scale-free graphs.
    return types + ["peer"] * (n - len(types))


def _role(node_type: str, rng: random.Random) -> str:
    if node_type == "peer":
        r = rng.random()
        return "super_peer" if r < 0.08 else "witness" if r < 0.12 else "peer"
    if node_type == "relay":
        return "coordinator" if rng.random() < 0.15 else "relay"
    return node_type


def build_world(n: int, topologies: int, rng: random.Random) -> World:
    nodes = []
    for index, node_type in enumerate(_node_types(n)):
        node_id = new_uuid(rng)
        region = rng.choices(REGIONS, REGION_WEIGHTS)[0]
        firmware = rng.choice(FIRMWARE)
        nodes.append(
            Node(
                index=index,
                id=node_id,
                key=node_id.encode(),
                # The id's first block makes names unique per seed: another seed's mesh in
                # the same database must not collide on nodes.node_name (a conflict).
                name=f"{node_type}-{region}-{index:04d}-{node_id[:6]}",
                node_type=node_type,
                role=_role(node_type, rng),
                region=region,
                address=str(ipaddress.IPv4Address(0x0A00_0001 + index)),  # 10.0.0.1 up
                address6=f"fd00:6d65:7368::{index + 1:x}",
                port=4305 if node_type != "bootstrap" else 4300,
                public_key=base64.b64encode(rng.randbytes(32)).decode(),
                firmware=firmware,
                epoch_ms=firmware < "2.4",
                explicit_v=firmware >= "3",
                load={"gateway": 6.0, "relay": 3.0, "bootstrap": 1.5}.get(node_type, 1.0)
                * rng.uniform(0.7, 1.3),
            )
        )

    topos = [_topology(t, nodes, rng) for t in range(topologies)]
    union_adj: Adjacency = [set() for _ in nodes]
    union_links: dict[tuple[int, int], Link] = {}
    for topo in topos:
        for i, neighbours in enumerate(topo.adj):
            union_adj[i] |= neighbours
        for pair, link in topo.links.items():
            union_links.setdefault(pair, link)

    pools: list[Pool] = []
    pools_by_node: list[list[Pool]] = []
    for node in nodes:
        own = []
        for p in range(1 if node.node_type == "peer" else 2):
            max_c = rng.choice((8, 16, 32, 64)) * (2 if node.node_type == "gateway" else 1)
            http2 = rng.random() < 0.6
            conns = [
                new_connection(nodes, rng, http2) for _ in range(rng.randint(2, min(6, max_c)))
            ]
            own.append(
                Pool(
                    id=new_uuid(rng),
                    node=node.index,
                    name=f"{_POOL_NAMES[(node.index + p) % len(_POOL_NAMES)]}-{p}",
                    min_connections=rng.randint(1, 4),
                    max_connections=max_c,
                    keepalive_s=rng.choice((30, 60, 90, 120)),
                    http2=http2,
                    connections=conns,
                )
            )
        pools_by_node.append(own)
        pools += own

    services = []
    for node in nodes:
        for name, stype, port, health_path in _SERVICES[node.node_type]:
            scheme = {"http": "https", "grpc": "grpc", "quic": "quic"}.get(stype, stype)
            services.append(
                Service(
                    id=new_uuid(rng),
                    node=node.index,
                    name=name,
                    service_type=stype,
                    endpoints=[f"{scheme}://{node.address}:{port}"],
                    health_check_url=(
                        f"http://{node.address}:{port}{health_path}" if health_path else ""
                    ),
                )
            )

    series = []
    for node in nodes:
        base_tags = {"region": node.region, "node_type": node.node_type, "host": node.name}
        for mtype, name, unit, mean, sigma, low, high, diurnal, scales in _SERIES:
            m = mean * (node.load if scales else 1.0) * rng.uniform(0.8, 1.2)
            m = min(m, high * 0.9)
            tags = dict(base_tags)
            if mtype == "throughput":
                tags["iface"] = "bat0"
            series.append(
                Series(
                    node.index,
                    mtype,
                    name,
                    unit,
                    m,
                    sigma * (m / mean),
                    low,
                    high,
                    diurnal,
                    tags,
                    m,
                )
            )

    algorithms = [
        rng.choices(("zstd", "lz4", "gzip", "snappy", "brotli", "none"), (5, 4, 2, 2, 1, 1))[0]
        for _ in nodes
    ]
    dns_names: list[tuple[str, str, list[str], int]] = []
    for node in nodes:
        host = f"{node.name}.mesh.internal"
        dns_names.append((host, "A", [node.address], rng.choice((60, 300, 600))))
        dns_names.append((host, "AAAA", [node.address6], rng.choice((60, 300, 600))))
    for service_name in sorted({s.name for s in services}):
        addresses = sorted({nodes[s.node].address for s in services if s.name == service_name})
        dns_names.append((f"_{service_name}._tcp.mesh.internal", "SRV", addresses[:8], 30))
    return World(
        nodes=nodes,
        topologies=topos,
        union_adj=union_adj,
        union_links=union_links,
        pools=pools,
        pools_by_node=pools_by_node,
        services=services,
        series=series,
        batch_config_ids=[new_uuid(rng) for _ in nodes],
        algorithms=algorithms,
        dns_names=dns_names,
    )


def _topology(t: int, nodes: list[Node], rng: random.Random) -> Topology:
    n = len(nodes)
    names = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
    # Alternate the two graph families so a multi-topology run shows both.
    if t % 2 == 0:
        k, beta = (6 if n > 200 else 4), 0.12
        adj = watts_strogatz(n, k, beta, rng)
        kind, generator = "small_world", {"model": "watts_strogatz", "k": k, "beta": beta}
    else:
        m = 2
        adj = barabasi_albert(n, m, rng)
        kind, generator = "scale_free", {"model": "barabasi_albert", "m": m}
    links = {}
    for a, b in edges(adj):
        rtt = _REGION_RTT.get(frozenset({nodes[a].region, nodes[b].region}), 6.0)
        baseline = rng.betavariate(8, 1.6)  # most links good, a long tail of poor ones
        links[(a, b)] = Link(
            a=a,
            b=b,
            base_latency_ms=rtt * rng.uniform(0.5, 1.0) + rng.uniform(0.5, 3.0),
            capacity_mbps=rng.choice((54.0, 100.0, 300.0, 867.0, 1000.0)),
            baseline_quality=baseline,
            quality=baseline,
        )
    suffix = names[t % len(names)] + (f"-{t // len(names)}" if t >= len(names) else "")
    return Topology(
        id=new_uuid(rng),
        name=f"mesh-{suffix}",
        topology_type=kind,
        generator=generator,
        adj=adj,
        links=links,
    )


def new_connection(nodes: list[Node], rng: random.Random, http2: bool) -> Connection:
    peer = rng.choice(nodes)
    protocol = rng.choice(("http/2", "http/3")) if http2 else rng.choice(("http/1.1", "websocket"))
    scheme = "wss" if protocol == "websocket" else "https"
    return Connection(
        id=new_uuid(rng), endpoint=f"{scheme}://{peer.address}:8443", protocol=protocol
    )
