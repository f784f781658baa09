"""Throughput of the decode stage (bytes -> validated events), one core, no I/O.

Run: ``.venv/bin/python bench/bench_decode.py [--records N] [--repeat R]``

Prints one table of events/s per scenario: best of R runs, each over N pre-serialised record
values, in CPU time of this process so that other work on a shared machine skews it less.
Then the validator comparison that picked decode's dispatch: the discriminated union versus a
dict lookup of per-kind validators, on the same parsed dicts.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ingest.decode import DecodeLimits, decode
from ingest.events import EVENT_ADAPTER, VALIDATORS

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = DecodeLimits(
    oldest_allowed={kind: NOW - timedelta(days=90) for kind in ("metric", "event")}
)


class Mesh:
    """A small synthetic mesh whose nodes emit plausible events of every kind."""

    def __init__(self, rng: random.Random, nodes: int = 50) -> None:
        self.rng = rng
        self.nodes = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(nodes)]
        self.topology = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.pools = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(10)]
        self.configs = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5)]
        self.seq = 0

    def _ts(self, as_string: bool = False) -> Any:
        moment = NOW - timedelta(seconds=self.rng.uniform(0, 60))
        if as_string:
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return int(moment.timestamp() * 1000)

    def _common(self, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "node_id": self.rng.choice(self.nodes),
            # Publishers mix both timestamp forms; a third use strings.
            "ts": self._ts(as_string=self.rng.random() < 0.33),
        }

    def metric(self) -> dict[str, Any]:
        name = self.rng.choice(["cpu.usage", "mem.rss", "net.rx_bytes", "net.tx_bytes", "q.depth"])
        return {
            **self._common("metric"),
            "metric_type": name.split(".")[0],
            "metric_name": name,
            "metric_value": round(self.rng.uniform(0, 1000), 3),
            "unit": self.rng.choice(["%", "bytes", "count"]),
            "tags": {"region": self.rng.choice(["eu-west", "us-east"]), "core": 3},
        }

    def link_probe(self) -> dict[str, Any]:
        local, remote = self.rng.sample(self.nodes, 2)
        return {
            **self._common("link.probe"),
            "node_id": local,
            "topology_id": self.topology,
            "remote_node_id": remote,
            "link_state": "active",
            "quality": round(self.rng.random(), 4),
            "latency_ms": round(self.rng.uniform(1, 80), 2),
            "bandwidth_mbps": round(self.rng.uniform(10, 1000), 1),
            "packet_loss": round(self.rng.random() * 0.05, 4),
            "jitter_ms": round(self.rng.uniform(0, 5), 2),
        }

    def route_advert(self) -> dict[str, Any]:
        self.seq += 1
        node, destination, hop = self.rng.sample(self.nodes, 3)
        return {
            **self._common("route.advert"),
            "node_id": node,
            "destination_id": destination,
            "next_hop_id": hop if self.rng.random() < 0.8 else None,
            "sequence_number": self.seq,
            "quality": round(self.rng.random(), 4),
            "hop_count": self.rng.randint(1, 6),
            "metrics": {"latency": round(self.rng.uniform(1, 90), 2), "packet_loss": 0.01},
        }

    def heartbeat(self) -> dict[str, Any]:
        return {**self._common("node.heartbeat"), "status": "active"}

    def event(self) -> dict[str, Any]:
        return {
            **self._common("event"),
            "event_type": "link",
            "event_name": self.rng.choice(["link.up", "link.down", "route.changed"]),
            "severity": self.rng.choice(["info", "warning"]),
            "description": "observed by the probe loop",
        }

    def pool_state(self) -> dict[str, Any]:
        return {
            **self._common("pool.state"),
            "pool_id": self.rng.choice(self.pools),
            "pool_name": "upstream",
            "min_connections": 2,
            "max_connections": 32,
            "current_connections": self.rng.randint(2, 32),
            "in_use_connections": self.rng.randint(0, 2),
            "keepalive_timeout": 60,
            "enable_http2": True,
        }

    def connection_state(self) -> dict[str, Any]:
        return {
            **self._common("connection.state"),
            "connection_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "pool_id": self.rng.choice(self.pools),
            "endpoint": "10.0.0.7:443",
            "protocol": "http/2",
            "state": "active",
            "requests_handled": self.rng.randint(0, 10_000),
            "bytes_sent": self.rng.randint(0, 10**9),
            "bytes_received": self.rng.randint(0, 10**9),
            "last_used_at": self._ts(),
        }

    def compression_stats(self) -> dict[str, Any]:
        end = self._ts()
        return {
            **self._common("compression.stats"),
            "algorithm": "zstd",
            "messages_compressed": 1200,
            "original_bytes": 4_800_000,
            "compressed_bytes": 1_300_000,
            "compression_time_ms": 85,
            "period_start": end - 60_000,
            "period_end": end,
        }

    def batch_stats(self) -> dict[str, Any]:
        end = self._ts()
        return {
            **self._common("batch.stats"),
            "config_id": self.rng.choice(self.configs),
            "total_batches": 40,
            "total_messages": 2000,
            "average_batch_size": 50.0,
            "period_start": end - 60_000,
            "period_end": end,
        }

    def announce(self) -> dict[str, Any]:
        return {
            **self._common("node.announce"),
            "node_name": f"node-{self.rng.randint(0, 10_000)}",
            "node_type": "relay",
            "address": "10.0.0.7",
            "port": 7946,
            "capabilities": {"relay": True, "max_peers": 64},
        }

    def dns_record(self) -> dict[str, Any]:
        return {
            **self._common("dns.record"),
            "hostname": "svc.mesh.local",
            "ip_addresses": ["10.0.0.7", "fd00::7"],
            "record_type": "A",
            "ttl": 300,
        }

    def mixed(self) -> Iterator[dict[str, Any]]:
        """Kinds in the proportions a busy mesh produces: metrics dominate, then probes and
        adverts; configuration kinds are rare."""
        makers: list[tuple[Callable[[], dict[str, Any]], int]] = [
            (self.metric, 55),
            (self.link_probe, 12),
            (self.route_advert, 12),
            (self.heartbeat, 8),
            (self.event, 4),
            (self.pool_state, 2),
            (self.connection_state, 3),
            (self.compression_stats, 1),
            (self.batch_stats, 1),
            (self.announce, 1),
            (self.dns_record, 1),
        ]
        functions = [maker for maker, _ in makers]
        weights = [weight for _, weight in makers]
        while True:
            yield self.rng.choices(functions, weights)[0]()


def malformed(rng: random.Random, good: dict[str, Any]) -> Any:
    """One of the ways a real publisher gets an element wrong."""
    choice = rng.randrange(5)
    if choice == 0:
        return {**good, "metric_value": "12.5"}  # numeric string
    if choice == 1:
        return {**good, "ts": "2025-06-01T12:00:00"}  # naive timestamp
    if choice == 2:
        return {key: value for key, value in good.items() if key != "kind"}  # no kind
    if choice == 3:
        return {**good, "kind": "metrics"}  # unknown kind
    return {**good, "ts": int((NOW + timedelta(hours=2)).timestamp() * 1000)}  # future


def scenarios(records: int, rng: random.Random) -> dict[str, list[bytes]]:
    mesh = Mesh(rng)
    mix = mesh.mixed()
    bad_every = 50  # 2 %
    with_bad: list[bytes] = []
    for index in range(records):
        event = mesh.metric()
        with_bad.append(orjson.dumps(malformed(rng, event) if index % bad_every == 0 else event))
    return {
        "(a) single metric objects": [orjson.dumps(mesh.metric()) for _ in range(records)],
        "(b) arrays of 50 metrics": [
            orjson.dumps([mesh.metric() for _ in range(50)]) for _ in range(max(1, records // 50))
        ],
        "(c) realistic mix of kinds": [orjson.dumps(next(mix)) for _ in range(records)],
        "(d) metrics, 2% malformed": with_bad,
    }


def time_decode(values: list[bytes], repeat: int) -> tuple[float, int, int]:
    """Best wall time over ``repeat`` runs, with the event and dead-letter counts of one run."""
    best = float("inf")
    events = dead = 0
    for _ in range(repeat):
        events = dead = 0
        started = time.process_time()
        for value in values:
            decoded = decode(value, NOW, LIMITS)
            events += len(decoded.events)
            dead += len(decoded.dead)
        best = min(best, time.process_time() - started)
    return best, events, dead


def time_calls(function: Callable[[Any], object], items: list[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for item in items:
            function(item)
        best = min(best, time.process_time() - started)
    return best


def compare_dispatch(records: int, repeat: int, rng: random.Random) -> list[tuple[str, float]]:
    """Per-element cost of the steps decode is made of, on the realistic mix."""
    mix = Mesh(rng).mixed()
    raw = [orjson.dumps(next(mix)) for _ in range(records)]
    dicts = [orjson.loads(value) for value in raw]
    union = EVENT_ADAPTER.validator.validate_python
    validators = VALIDATORS
    adapter = EVENT_ADAPTER.validate_python

    def per_kind(item: dict[str, Any]) -> object:
        return validators[item["kind"]](item)

    rows = [
        ("orjson.loads only", time_calls(orjson.loads, raw, repeat)),
        ("TypeAdapter(Event).validate_python", time_calls(adapter, dicts, repeat)),
        ("union core validator", time_calls(union, dicts, repeat)),
        ("per-kind validator by dict lookup", time_calls(per_kind, dicts, repeat)),
        ("decode() end to end", time_decode(raw, repeat)[0]),
    ]
    return [(name, seconds / records * 1e6) for name, seconds in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000, help="record values per scenario")
    parser.add_argument("--repeat", type=int, default=9, help="runs per scenario; best is kept")
    args = parser.parse_args()

    print(f"decode throughput, one core, CPU time, best of {args.repeat}")
    header = ("scenario", "records", "events", "dead", "events/s", "us/event")
    print("{:<30} {:>8} {:>8} {:>6} {:>11} {:>9}".format(*header))
    for name, values in scenarios(args.records, random.Random(42)).items():
        seconds, events, dead = time_decode(values, args.repeat)
        handled = events + dead
        print(
            f"{name:<30} {len(values):>8} {events:>8} {dead:>6} "
            f"{handled / seconds:>11,.0f} {seconds / handled * 1e6:>9.2f}"
        )
    print()
    print("per-element cost on the realistic mix (us)")
    for name, micros in compare_dispatch(args.records, args.repeat, random.Random(7)):
        print(f"{name:<40} {micros:>7.2f}")


if __name__ == "__main__":
    main()
