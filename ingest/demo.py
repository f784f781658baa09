"""``ingest demo``: everything on this machine with no set-up, until Ctrl-C.

Starts PostgreSQL and Kafka from nothing (see :mod:`ingest.devservices`) unless told where
they are, migrates, runs the worker with its scheduler and the simulator in this process, and
shows live figures. On Ctrl-C the simulator stops, the worker drains and commits, a last look
at ``network.realtime_status`` is printed, the services stop, and the data directory stays
behind with the commands to query it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import asyncpg
from prometheus_client import CollectorRegistry

from ingest.settings import Settings, load_settings

_REFRESH_S = 1.0


def demo_data_dir() -> Path:
    """Where the demo keeps its database: readable by the server user even when run as root."""
    if os.geteuid() == 0:
        return Path("/var/tmp/mesh-ingest-demo")
    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return base / "mesh-ingest" / "demo"


@dataclass(slots=True)
class DemoOptions:
    nodes: int = 40
    rate: float = 2000.0
    duration_s: float | None = None
    database_url: str | None = None
    kafka_bootstrap: str | None = None
    topic_prefix: str = "mesh."
    http_port: int = 9464
    out: TextIO = field(default_factory=lambda: sys.stdout)


def _sum(registry: CollectorRegistry, name: str, label: str | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name != name:
                continue
            key = sample.labels.get(label, "") if label else ""
            out[key] = out.get(key, 0.0) + sample.value
    return out


class Dashboard:
    """Live figures from the worker's own metrics and a few queries."""

    def __init__(self, registry: CollectorRegistry, out: TextIO) -> None:
        self.registry = registry
        self.out = out
        self.tty = out.isatty()
        self._last: tuple[float, float, float] | None = None
        self.snapshot: str = "none yet"
        self.stored_total = 0.0

    def render(self, sent: int) -> None:
        now = time.monotonic()
        consumed = sum(_sum(self.registry, "ingest_records_consumed_total", "topic").values())
        per_table = _sum(self.registry, "ingest_rows_written_total", "table")
        stored = sum(per_table.values())
        self.stored_total = stored
        dead = _sum(self.registry, "ingest_dead_letters_total", "reason")
        lag = sum(_sum(self.registry, "ingest_consumer_lag").values())
        rate_in = rate_out = 0.0
        if self._last is not None:
            t0, c0, s0 = self._last
            dt = max(1e-6, now - t0)
            rate_in, rate_out = (consumed - c0) / dt, (stored - s0) / dt
        self._last = (now, consumed, stored)
        lines = [
            "mesh-ingest demo — Ctrl-C to stop",
            f"  sent by simulator   {sent:>12,}",
            f"  records in          {consumed:>12,.0f}   {rate_in:>10,.0f}/s",
            f"  rows stored         {stored:>12,.0f}   {rate_out:>10,.0f}/s",
            f"  consumer lag        {lag:>12,.0f}",
            "  rows per table      "
            + ", ".join(f"{t}={n:,.0f}" for t, n in sorted(per_table.items()) if n),
            "  dead letters        "
            + (", ".join(f"{r}={n:,.0f}" for r, n in sorted(dead.items()) if n) or "none"),
            f"  last snapshot       {self.snapshot}",
        ]
        if self.tty:
            self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        else:
            self.out.write(" | ".join(line.strip() for line in lines[1:]) + "\n")
        self.out.flush()


async def _last_snapshot(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT total_nodes, total_links, network_diameter, clustering_coefficient, "
            "snapshot_time FROM network.performance_snapshots ORDER BY snapshot_time DESC LIMIT 1"
        )
    finally:
        await conn.close()
    if row is None:
        return "none yet"
    cc = row["clustering_coefficient"]
    return (
        f"{row['total_nodes']} nodes, {row['total_links']} links, diameter "
        f"{row['network_diameter']}, clustering {cc if cc is None else round(cc, 3)} "
        f"at {row['snapshot_time']:%H:%M:%S}"
    )


async def _status_table(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT node_name, status, active_links, round(mean_link_quality::numeric, 3) AS q, "
            "best_routes FROM network.realtime_status WHERE node_name IS NOT NULL "
            "ORDER BY node_name LIMIT 10"
        )
    finally:
        await conn.close()
    return [
        f"  {r['node_name']:<24} {r['status']:<13} links={r['active_links']:<3} "
        f"quality={r['q']} best_routes={r['best_routes']}"
        for r in rows
    ]


def _demo_settings(opts: DemoOptions, dsn: str, bootstrap: str) -> Settings:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INGEST_")},
        "INGEST_DATABASE_URL": dsn,
        "INGEST_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "INGEST_TOPIC_PREFIX": opts.topic_prefix,
        "INGEST_GROUP_ID": "mesh-ingest-demo",
        "INGEST_HTTP_PORT": str(opts.http_port),
        "INGEST_HTTP_HOST": "127.0.0.1",
        "INGEST_LOG_LEVEL": "warning",
        "INGEST_LOG_FORMAT": "console",
        # Short intervals so the demo shows every job at work within a minute.
        "INGEST_SCHEDULER_SNAPSHOTS_INTERVAL_S": "10",
        "INGEST_SCHEDULER_ROUTES_INTERVAL_S": "3",
        "INGEST_SCHEDULER_STALE_NODES_INTERVAL_S": "15",
        "INGEST_SCHEDULER_DNS_INTERVAL_S": "30",
    }
    return load_settings(env)


@contextlib.contextmanager
def _services(opts: DemoOptions) -> Iterator[tuple[str, str, Any]]:
    if opts.database_url and opts.kafka_bootstrap:
        yield opts.database_url, opts.kafka_bootstrap, None
        return
    from ingest.devservices import start_local_services

    data = demo_data_dir()
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True, exist_ok=True)
    print(f"starting local PostgreSQL and Kafka (data in {data}) ...", file=opts.out, flush=True)
    with start_local_services(
        postgres_data_dir=data / "pgdata", kafka_log_dir=data / "kafka"
    ) as services:
        yield (
            opts.database_url or services.database_url,
            opts.kafka_bootstrap or services.kafka_bootstrap,
            services.postgres,
        )


async def _run(opts: DemoOptions, dsn: str, bootstrap: str, stop: asyncio.Event) -> float:
    from ingest.app import install_signal_handlers, run_worker
    from ingest.migrate import apply_migrations
    from ingest.simulate import SimulationOptions, run_simulation
    from ingest.source import create_topics

    settings = _demo_settings(opts, dsn, bootstrap)
    print("migrating ...", file=opts.out, flush=True)
    await apply_migrations(dsn, partitions=settings.partitions)
    await create_topics(settings.kafka, settings.topics, partitions=3)
    install_signal_handlers(stop)
    registry = CollectorRegistry()
    dash = Dashboard(registry, opts.out)
    sim_stop = asyncio.Event()
    report: dict[str, Any] = {}
    progress = {"sent": 0}

    async def simulate() -> None:
        sim = SimulationOptions(nodes=opts.nodes, rate=opts.rate, seed=int(time.time()))
        report.update(await run_simulation(settings, sim, stop=sim_stop, progress=progress))

    worker = asyncio.create_task(run_worker(settings, stop=stop, registry=registry))
    simulator = asyncio.create_task(simulate())
    started = time.monotonic()
    ticks = 0
    while not stop.is_set() and not worker.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=_REFRESH_S)
        ticks += 1
        if ticks % 5 == 0:
            with contextlib.suppress(Exception):
                dash.snapshot = await _last_snapshot(dsn)
        dash.render(progress["sent"])
        if opts.duration_s is not None and time.monotonic() - started >= opts.duration_s:
            stop.set()
    sim_stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(simulator, timeout=10)
    stop.set()
    code = await worker
    print(f"\nstopped (worker exit {code}); {dash.stored_total:,.0f} rows stored", file=opts.out)
    with contextlib.suppress(Exception):
        for line in await _status_table(dsn):
            print(line, file=opts.out)
    return dash.stored_total


def _how_to_query(out: TextIO, postgres: Any) -> None:
    if postgres is None:
        return
    port, data = postgres.port, postgres.data_dir
    as_user = "runuser -u postgres -- " if os.geteuid() == 0 else ""
    print(
        f"\nThe data stays in {data}. To query it again:\n"
        f"  {as_user}{postgres.bin_dir}/pg_ctl -D {data} -o "
        f"'-p {port} -k {data} -c listen_addresses=127.0.0.1' -l {data}/restart.log start\n"
        f"  psql -h 127.0.0.1 -p {port} -U postgres -c "
        '"SELECT node_name, status, active_links, best_routes FROM network.realtime_status '
        'ORDER BY node_name LIMIT 10"',
        file=out,
    )


def run_demo(opts: DemoOptions | None = None) -> int:
    opts = opts or DemoOptions()
    stop = asyncio.Event()
    try:
        with _services(opts) as (dsn, bootstrap, postgres):
            stored = asyncio.run(_run(opts, dsn, bootstrap, stop))
            _how_to_query(opts.out, postgres)
    except KeyboardInterrupt:
        return 130
    return 0 if stored > 0 else 1
