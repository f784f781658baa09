"""One benchmark run: every contender on the same PostgreSQL server and Kafka broker.

Contenders (see bench/README.md for the method of each):

* ``raw COPY``: psql ``\\copy`` of the backlog's final rows from pre-encoded text files;
  only the psql run is timed. The ceiling.
* ``worker``: ``ingest run --burst`` draining a preloaded backlog; a second run with 2 %
  malformed records; a run with 2 replicas in one group; the latency run at half load; and,
  on request, a big backlog for the RSS bound.
* ``naive``: per-message INSERT and commit (bench/naive.py), on a sample.
* ``quix``: Quix Streams' PostgreSQLSink on the metrics topic (bench/quix_sink.py), in its
  own virtualenv.

Every contender writes into a database of its own (created from nothing and migrated), so no
run sees another's rows or indexes; all share the one server, as they would share a machine.

Rates exclude process start-up and the consumer-group join: a drain's window runs from the
first observed progress to the last (polled every 0.25 s), and the records counted are the
ones committed inside that window.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from bench import kafka_io
from bench.workload import (
    COUNTED_TABLES,
    Record,
    Workload,
    backlog_clock,
    final_rows,
    with_malformed,
    write_copy_script,
)
from ingest.settings import TOPIC_NAMES

REPO = Path(__file__).resolve().parent.parent
QUIX_VENV = REPO / "bench" / ".venv-quix"
POLL_S = 0.25


@dataclass
class BenchConfig:
    events: int = 200_000
    """Records in the main backlog (raw COPY, worker, malformed, replicas)."""
    naive_events: int = 5_000
    """Records the naive consumer gets (it is slow; a sample gives its rate)."""
    naive_time_limit_s: float = 60.0
    quix: bool = True
    quix_time_limit_s: float = 300.0
    malformed: float = 0.02
    replicas: bool = True
    latency_s: float = 15.0
    """Length of the half-load latency run (0 skips it)."""
    steady_rates: tuple[float, ...] = ()
    """Further latency runs, as long, at these fixed rates (records/s): latency below the
    saturation that the half-load run sits close to on a small machine."""
    big_events: int = 0
    """Also drain a backlog this large for the RSS bound (0 skips it)."""
    partitions: int = 6
    seed: int = 1
    out_dir: Path | None = REPO / "bench" / "results"
    worker_env: dict[str, str] = field(default_factory=dict)
    """Extra INGEST_* settings for every worker run."""
    worker_timeout_s: float = 900.0
    keep_databases: bool = False
    profile: bool = False
    """Record a py-spy profile of the clean worker run (needs py-spy and ptrace rights)."""
    pairs: int = 1
    """Run raw COPY and the clean worker this many times, in turn, and report the median of
    each: on a shared machine one pair can land in a slow minute for one contender only."""


@dataclass
class Result:
    name: str
    records: int
    rows: int
    seconds: float
    peak_rss_mib: float | None
    series: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since first progress, records/s) for the plot."""
    note: str = ""
    exit_codes: list[int] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Latency:
    rate: float
    records: int
    p50_s: float
    p99_s: float
    max_s: float
    hist_p50_s: float | None
    hist_p99_s: float | None
    achieved_rate: float


@dataclass
class BenchReport:
    config: BenchConfig
    results: list[Result]
    latency: Latency | None
    machine: dict[str, str]
    checks: list[str]
    started: datetime
    profile_path: Path | None = None
    steady: list[Latency] = field(default_factory=list)

    def get(self, name: str) -> Result | None:
        return next((r for r in self.results if r.name == name), None)


# -- services and databases -----------------------------------------------------------------


def _url_for(url: str, dbname: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{dbname}", p.query, p.fragment))


class Databases:
    """Creates one migrated database per contender on the admin URL's server."""

    def __init__(self, admin_url: str, run_id: str) -> None:
        self.admin_url = admin_url
        self.run_id = run_id
        self.created: list[str] = []

    async def new(self, name: str, migrate: bool = True) -> str:
        from ingest.migrate import apply_migrations

        db = f"bench_{self.run_id}_{name}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{db}"')
        finally:
            await conn.close()
        self.created.append(db)
        url = _url_for(self.admin_url, db)
        if migrate:
            await apply_migrations(url)
        return url

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            for db in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await conn.close()


async def count_rows(url: str, tables: Sequence[str] = COUNTED_TABLES) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in tables}
    finally:
        await conn.close()


def find_psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), reverse=True):
        return str(candidate)
    raise FileNotFoundError("psql not found on PATH or in /usr/lib/postgresql/*/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- process monitoring ---------------------------------------------------------------------


def rss_mib(pid: int) -> float | None:
    """Peak resident set (VmHWM) of ``pid`` so far, in MiB; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else None


class Monitor:
    """Polls a progress counter and the peak RSS of some processes until stopped."""

    def __init__(self, probe: Callable[[], Awaitable[int]], pids: Sequence[int]) -> None:
        self.probe = probe
        self.pids = list(pids)
        self.samples: list[tuple[float, int]] = []
        self.peak: dict[int, float] = {}
        self._stop = asyncio.Event()

    async def run(self, interval: float = POLL_S) -> None:
        while True:
            for pid in self.pids:
                got = rss_mib(pid)
                if got is not None:
                    self.peak[pid] = max(self.peak.get(pid, 0.0), got)
            with contextlib.suppress(Exception):  # a probe failing once is not a result
                self.samples.append((time.time(), await self.probe()))
            if self._stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)

    def stop(self) -> None:
        self._stop.set()

    def window(self, baseline: int = 0) -> tuple[float, int, float, float]:
        """(seconds, counted, first time, last time) between the first and last progress."""
        moving = [(t, v) for t, v in self.samples if v > baseline]
        if not moving:
            return 0.0, 0, 0.0, 0.0
        final = moving[-1][1]
        t0, v0 = moving[0]
        t1 = next(t for t, v in moving if v == final)
        if t1 == t0:
            # Everything landed between two polls (a small backlog, one flush): count it all
            # from the last idle poll, an upper bound on the drain time.
            idle = [t for t, v in self.samples if v <= baseline and t < t0]
            if not idle:
                return 0.0, 0, 0.0, 0.0
            return t1 - idle[-1], final - baseline, idle[-1], t1
        return t1 - t0, final - v0, t0, t1

    def series(self, scale: float = 1.0, smooth_s: float = 1.0) -> list[tuple[float, float]]:
        """Throughput over time: records/s over windows of ``smooth_s``."""
        seconds, _, t0, t1 = self.window()
        if seconds <= 0:
            return []
        pts = [(t, v) for t, v in self.samples if t0 <= t <= t1]
        out: list[tuple[float, float]] = []
        j = 0
        for i in range(1, len(pts)):
            while pts[i][0] - pts[j][0] > smooth_s and j < i - 1:
                j += 1
            dt = pts[i][0] - pts[j][0]
            if dt > 0:
                out.append((pts[i][0] - t0, (pts[i][1] - pts[j][1]) / dt * scale))
        return out


def _offsets_probe(
    url: str, group: str
) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]:
    conn_box: list[asyncpg.Connection] = []

    async def probe() -> int:
        if not conn_box:
            conn_box.append(await asyncpg.connect(url))
        value = await conn_box[0].fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM ingest.consumer_offsets WHERE group_id = $1",
            group,
        )
        return int(value)

    async def close() -> None:
        for conn in conn_box:
            await conn.close()

    return probe, close


def _count_probe(
    url: str, table: str
) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[None]]]:
    conn_box: list[asyncpg.Connection] = []

    async def probe() -> int:
        if not conn_box:
            conn_box.append(await asyncpg.connect(url))
        return int(await conn_box[0].fetchval(f"SELECT count(*) FROM {table}"))

    async def close() -> None:
        for conn in conn_box:
            await conn.close()

    return probe, close


# -- the worker ------------------------------------------------------------------------------


def worker_env(
    db_url: str, bootstrap: str, prefix: str, group: str, extra: dict[str, str]
) -> dict[str, str]:
    env = {
        **os.environ,
        "INGEST_DATABASE_URL": db_url,
        "INGEST_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "INGEST_TOPIC_PREFIX": prefix,
        "INGEST_GROUP_ID": group,
        "INGEST_HTTP_ENABLED": "false",
        "INGEST_SCHEDULER_ENABLED": "false",
        "INGEST_LOG_FORMAT": "json",
        "INGEST_LOG_LEVEL": "warning",
    }
    env.update(extra)
    return env


def spawn_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ingest.cli", "run", "--no-scheduler", *args],
            env=env,
            cwd=str(REPO),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _wait_all(procs: Sequence[subprocess.Popen[bytes]], limit_s: float) -> list[int]:
    deadline = time.monotonic() + limit_s
    while any(p.poll() is None for p in procs):
        if time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            raise TimeoutError(f"worker did not finish within {limit_s:.0f} s")
        await asyncio.sleep(0.05)
    return [int(p.returncode) for p in procs]


async def drain_with_workers(
    name: str,
    db_url: str,
    bootstrap: str,
    prefix: str,
    expected: int,
    cfg: BenchConfig,
    workdir: Path,
    *,
    replicas: int = 1,
    profile_to: Path | None = None,
) -> Result:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    env = worker_env(db_url, bootstrap, prefix, group, cfg.worker_env)
    log = workdir / f"{name.replace(' ', '_')}.log"
    procs = [spawn_worker(env, log, "--burst") for _ in range(replicas)]
    probe, close = _offsets_probe(db_url, group)
    monitor = Monitor(probe, [p.pid for p in procs])
    task = asyncio.create_task(monitor.run())
    spy: subprocess.Popen[bytes] | None = None
    if profile_to is not None and shutil.which("py-spy", path=str(Path(sys.executable).parent)):
        # Popen only forks; it returns at once, so it does not block the loop.
        spy = subprocess.Popen(  # noqa: ASYNC220
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(procs[0].pid),
                "--rate",
                "97",
                "--format",
                "raw",
                "--output",
                str(profile_to),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        codes = await _wait_all(procs, cfg.worker_timeout_s)
    finally:
        monitor.stop()
        await task
        await close()
    if spy is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(30)
    seconds, counted, _, _ = monitor.window()
    final = monitor.samples[-1][1] if monitor.samples else 0
    counts = await count_rows(db_url)
    rows_total = sum(counts.values())
    note = ""
    if final != expected:
        note = f"stored offsets {final} != {expected} records"
    if any(codes):
        note = (note + "; " if note else "") + f"exit codes {codes}, see {log}"
    if 0 < seconds < 2:
        # A handful of flushes between 0.25 s polls: the window is mostly rounding.
        note = (note + "; " if note else "") + "window < 2 s, rate unreliable (use more events)"
    rows_in_window = round(rows_total * counted / expected) if expected else 0
    peak = max(monitor.peak.values()) if monitor.peak else None
    return Result(name, counted, rows_in_window, seconds, peak, monitor.series(), note, codes)


# -- contenders -----------------------------------------------------------------------------


async def raw_copy(loads_dir: Path, db_url: str, records: int) -> tuple[Result, dict[str, int]]:
    script = loads_dir / "load.sql"
    psql = find_psql()
    started = time.time()
    # A plain Popen (it returns at once) so that its pid can be polled for RSS while it runs.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [psql, "-X", "-q", "-f", str(script), db_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, rss_mib(proc.pid) or 0.0)
        await asyncio.sleep(0.01)
    seconds = time.time() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"psql \\copy failed: {err.strip()}")
    counts = await count_rows(db_url)
    rows = sum(counts.values())
    rate = records / seconds if seconds else 0.0
    result = Result(
        "raw COPY",
        records,
        rows,
        seconds,
        peak or None,
        [(0.0, rate), (seconds, rate)],
        "psql client RSS; only the \\copy is timed",
    )
    return result, counts


async def naive(
    bootstrap: str,
    prefix: str,
    db_url: str,
    cfg: BenchConfig,
    rows_per_record: float,
    metric_share: float,
) -> Result:
    group = f"bench-naive-{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.naive",
        "--bootstrap",
        bootstrap,
        "--prefix",
        prefix,
        "--database-url",
        db_url,
        "--group",
        group,
        "--limit",
        str(cfg.naive_events),
        "--time-limit",
        str(cfg.naive_time_limit_s),
        cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE,
    )
    probe, close = _count_probe(db_url, "network.metrics")
    monitor = Monitor(probe, [proc.pid])
    task = asyncio.create_task(monitor.run())
    out, _ = await proc.communicate()
    monitor.stop()
    await task
    await close()
    if proc.returncode != 0:
        raise RuntimeError(f"naive consumer failed with exit code {proc.returncode}")
    got = orjson.loads(out.decode().strip().splitlines()[-1])
    seconds = float(got["last"]) - float(got["first"])
    records = int(got["records"]) - 1  # the first message opens the window
    peak = max(monitor.peak.values()) if monitor.peak else None
    return Result(
        "naive",
        records,
        round(records * rows_per_record),
        seconds,
        peak,
        monitor.series(scale=1 / metric_share if metric_share else 1.0),
        f"sample of {cfg.naive_events} records (time limit {cfg.naive_time_limit_s:.0f} s)",
    )


def quix_python() -> Path | None:
    python = QUIX_VENV / "bin" / "python"
    return python if python.exists() else None


def ensure_quix_venv() -> Path | None:
    """The Quix virtualenv, created on first use (quixstreams pins an older pydantic)."""
    python = quix_python()
    if python is not None:
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run(
            [
                str(QUIX_VENV / "bin" / "pip"),
                "install",
                "-q",
                "quixstreams>=3.0",
                "psycopg2-binary>=2.9",
            ],
            check=True,
        )
    except (subprocess.CalledProcessError, OSError):
        return None
    return quix_python()


async def quix(
    bootstrap: str,
    prefix: str,
    db_url: str,
    metric_records: int,
    cfg: BenchConfig,
    workdir: Path,
) -> Result:
    python = ensure_quix_venv()
    if python is None:
        return Result("quix", 0, 0, 0.0, None, note="quixstreams could not be installed")
    group = f"bench-quix-{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(REPO / "bench" / "quix_sink.py"),
        "--bootstrap",
        bootstrap,
        "--topic",
        prefix + "metrics",
        "--database-url",
        db_url,
        "--group",
        group,
        "--count",
        str(metric_records),
        "--state-dir",
        str(workdir / "quix-state"),
        "--timeout",
        "15",
        cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE,
        stderr=(workdir / "quix.log").open("wb"),
    )

    async def probe() -> int:
        return 0

    monitor = Monitor(probe, [proc.pid])
    count_probe, close = _count_probe(db_url, "public.quix_metrics")
    monitor.probe = count_probe
    task = asyncio.create_task(monitor.run())
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), cfg.quix_time_limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        out = b""
    finally:
        monitor.stop()
        await task
        await close()
    peak = max(monitor.peak.values()) if monitor.peak else None
    if proc.returncode != 0 or not out.strip():
        return Result("quix", 0, 0, 0.0, peak, note=f"failed, see {workdir / 'quix.log'}")
    got = orjson.loads(out.decode().strip().splitlines()[-1])
    seconds = float(got["last"]) - float(got["first"])
    stored = (await count_rows(db_url, ["public.quix_metrics"]))["public.quix_metrics"]
    return Result(
        "quix",
        int(got["records"]),
        stored,
        seconds,
        peak,
        monitor.series(),
        "metrics topic only; first record to end of last flush",
    )


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except OSError as exc:
        code = getattr(exc, "code", 0)
        return int(code or 0), ""


def histogram_quantile(text: str, metric: str, q: float) -> float | None:
    """Prometheus' histogram_quantile over every label set of ``metric``, summed."""
    buckets: dict[float, float] = {}
    for m in re.finditer(rf"^{metric}_bucket{{(.*?)}} ([0-9.e+-]+)$", text, re.M):
        le = re.search(r'le="([^"]+)"', m.group(1))
        if le is None:
            continue
        bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
        buckets[bound] = buckets.get(bound, 0.0) + float(m.group(2))
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        if buckets[b] >= rank:
            if b == float("inf"):
                return prev_bound
            span = buckets[b] - prev_count
            frac = (rank - prev_count) / span if span else 1.0
            return prev_bound + (b - prev_bound) * frac
        prev_bound, prev_count = b, buckets[b]
    return prev_bound


async def latency_run(
    db_url: str, bootstrap: str, prefix: str, rate: float, cfg: BenchConfig, workdir: Path
) -> Latency:
    """Steady production at ``rate`` records/s; latency = event ts -> its offsets committed."""
    await kafka_io.create_topics(bootstrap, [prefix + t for t in TOPIC_NAMES], cfg.partitions)
    group = f"bench-lat-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = worker_env(
        db_url,
        bootstrap,
        prefix,
        group,
        {
            **cfg.worker_env,
            "INGEST_HTTP_ENABLED": "true",
            "INGEST_HTTP_PORT": str(port),
            "INGEST_HTTP_HOST": "127.0.0.1",
        },
    )
    proc = spawn_worker(env, workdir / "latency.log")
    try:
        deadline = time.monotonic() + 60
        while _http_get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"latency worker never became ready, see {workdir}")
            await asyncio.sleep(0.2)
        count = max(1, int(rate * cfg.latency_s))
        # Event ts must equal the send time, but encoding costs more than the sending; so the
        # records are encoded ahead for a schedule (record i at t0 + i/rate) and sent on it.
        # A send that falls behind schedule only makes latency look worse, never better.
        w = Workload(cfg.seed + 7)
        t0 = time.time() + 2.0 + count * 50e-6
        t0_ms = int(t0 * 1000)
        step_ms = 1000.0 / rate
        planned = list(w.records(count, start_ms=t0_ms, step_ms=step_ms))
        sent_at = [(t0_ms + i * step_ms) / 1000 for i in range(count)]
        delivered: list[tuple[str, int, int, float]] = []
        stop_poll = asyncio.Event()
        polls: list[tuple[float, dict[tuple[str, int], int]]] = []

        async def poll_offsets() -> None:
            conn = await asyncpg.connect(db_url)
            try:
                while not stop_poll.is_set():
                    rows = await conn.fetch(
                        "SELECT topic, partition, next_offset FROM ingest.consumer_offsets "
                        "WHERE group_id = $1",
                        group,
                    )
                    polls.append(
                        (
                            time.time(),
                            {(r["topic"], r["partition"]): r["next_offset"] for r in rows},
                        )
                    )
                    await asyncio.sleep(0.05)
            finally:
                await conn.close()

        def produce() -> float:
            producer = kafka_io.PacedProducer(
                bootstrap, lambda t, p, o, s: delivered.append((t, p, o, s))
            )
            while time.time() < t0:
                time.sleep(0.001)
            for i, rec in enumerate(planned):
                due = sent_at[i]
                delay = due - time.time()
                if delay > 0.002:
                    time.sleep(delay)
                producer.send(prefix + rec.topic, rec.key, rec.value, due)
                if i % 200 == 0:
                    producer.poll()
            producer.flush()
            return time.time() - t0

        poller = asyncio.create_task(poll_offsets())
        elapsed = await asyncio.to_thread(produce)
        # Wait for the worker to commit everything produced.
        end: dict[tuple[str, int], int] = {}
        for t, p, o, _ in delivered:
            end[(t, p)] = max(end.get((t, p), 0), o + 1)
        deadline = time.monotonic() + 60
        while True:
            last = polls[-1][1] if polls else {}
            if all(last.get(tp, 0) >= off for tp, off in end.items()):
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        stop_poll.set()
        await poller
        _, metrics_text = _http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()
    lat = _latencies(delivered, polls)
    metric = "ingest_end_to_end_latency_seconds"
    return Latency(
        rate=rate,
        records=len(lat),
        p50_s=_pct(lat, 0.50),
        p99_s=_pct(lat, 0.99),
        max_s=max(lat) if lat else float("nan"),
        hist_p50_s=histogram_quantile(metrics_text, metric, 0.50),
        hist_p99_s=histogram_quantile(metrics_text, metric, 0.99),
        achieved_rate=len(delivered) / elapsed if elapsed > 0 else 0.0,
    )


def _latencies(
    delivered: Sequence[tuple[str, int, int, float]],
    polls: Sequence[tuple[float, dict[tuple[str, int], int]]],
) -> list[float]:
    """For each record: the first poll that saw its offset committed, minus its event ts."""
    by_tp: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for t, offsets in polls:
        for tp, off in offsets.items():
            by_tp.setdefault(tp, []).append((t, off))
    out: list[float] = []
    for topic, part, offset, sent in delivered:
        seen = by_tp.get((topic, part), [])
        committed = [off for _, off in seen]
        i = bisect.bisect_right(committed, offset)  # first poll with next_offset > offset
        if i < len(seen):
            out.append(seen[i][0] - sent)
    return sorted(out)


def _pct(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# -- machine --------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    info = {"nproc": str(os.cpu_count() or "?"), "python": platform.python_version()}
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text()
        kb = int(re.search(r"MemTotal:\s+(\d+)", mem).group(1))  # type: ignore[union-attr]
        info["ram"] = f"{kb / 1024 / 1024:.1f} GiB"
    with contextlib.suppress(OSError, AttributeError):
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = re.search(r"model name\s*:\s*(.+)", cpu).group(1).strip()  # type: ignore[union-attr]
    info["kernel"] = platform.release()
    return info


# -- the run --------------------------------------------------------------------------------


def _median_of(runs: Sequence[Result]) -> Result:
    """The median run by records/s (the lower middle one of an even count), its note naming the
    spread of all of them."""
    ranked = sorted(runs, key=lambda r: r.records_per_s)
    median = ranked[(len(ranked) - 1) // 2]
    if len(ranked) > 1:
        spread = (
            f"median of {len(ranked)} runs "
            f"({ranked[0].records_per_s:,.0f}-{ranked[-1].records_per_s:,.0f} records/s)"
        )
        median.note = f"{median.note}; {spread}" if median.note else spread
    return median


def _big_backlog(count: int, seed: int) -> Iterator[Record]:
    """``count`` records cycling over 100 000 distinct ones: encoding 5 M fresh events would
    take minutes and measure the generator, and the worker's memory does not depend on
    whether two metric samples are equal."""
    pool_size = min(count, 100_000)
    start_ms, step_ms = backlog_clock(pool_size)
    pool = list(Workload(seed).records(pool_size, start_ms=start_ms, step_ms=step_ms))
    for i in range(count):
        yield pool[i % pool_size]


async def run(
    cfg: BenchConfig,
    admin_url: str,
    bootstrap: str,
    *,
    run_id: str | None = None,
    log: Callable[[str], None] = print,
) -> BenchReport:
    run_id = run_id or uuid.uuid4().hex[:8]
    started = datetime.now(UTC)
    dbs = Databases(admin_url, run_id)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-"))
    results: list[Result] = []
    checks: list[str] = []
    latency: Latency | None = None
    profile_path: Path | None = None
    try:
        log(f"generating {cfg.events} events (seed {cfg.seed})")
        start_ms, step_ms = backlog_clock(cfg.events)
        records = list(Workload(cfg.seed).records(cfg.events, start_ms=start_ms, step_ms=step_ms))
        metric_share = sum(1 for r in records if r.topic == "metrics") / max(1, len(records))
        clean, bad = f"bench{run_id}c.", f"bench{run_id}m."
        topics = [p + t for p in (clean, bad) for t in TOPIC_NAMES]
        await kafka_io.create_topics(bootstrap, topics, cfg.partitions)
        t = time.time()
        await asyncio.to_thread(kafka_io.produce_fast, bootstrap, clean, records)
        log(f"produced {len(records)} records in {time.time() - t:.1f} s")
        if cfg.malformed > 0:
            await asyncio.to_thread(
                kafka_io.produce_fast, bootstrap, bad, with_malformed(records, cfg.malformed)
            )

        log("raw COPY: encoding the final rows")
        loads = final_rows([r.value for r in records])
        write_copy_script(loads, workdir / "copy")
        raws: list[Result] = []
        workers: list[Result] = []
        diffs: dict[str, tuple[int, int]] = {}
        if cfg.profile:
            profile_path = workdir / "worker-profile.txt"
        for n in range(cfg.pairs):
            raw_url = await dbs.new(f"raw{n}")
            raw, raw_counts = await raw_copy(workdir / "copy", raw_url, len(records))
            raws.append(raw)
            log(f"raw COPY: {raw.records_per_s:,.0f} records/s")

            log("worker: draining the clean backlog")
            w_url = await dbs.new(f"worker{n}")
            worker = await drain_with_workers(
                "worker",
                w_url,
                bootstrap,
                clean,
                len(records),
                cfg,
                workdir,
                profile_to=profile_path if n == 0 else None,
            )
            workers.append(worker)
            log(
                f"worker: {worker.records_per_s:,.0f} records/s, peak RSS {worker.peak_rss_mib} MiB"
            )
            w_counts = await count_rows(w_url)
            diffs |= {
                t: (raw_counts[t], w_counts[t]) for t in raw_counts if raw_counts[t] != w_counts[t]
            }
        raw, worker = _median_of(raws), _median_of(workers)
        results += [raw, worker]
        rows_per_record = raw.rows / max(1, len(records))
        checks.append(
            "worker rows == raw COPY rows per table: " + ("yes" if not diffs else f"NO {diffs}")
        )

        if cfg.malformed > 0:
            log(f"worker: draining the backlog with {cfg.malformed:.0%} malformed records")
            m_url = await dbs.new("malformed")
            malformed = await drain_with_workers(
                f"worker, {cfg.malformed:.0%} malformed",
                m_url,
                bootstrap,
                bad,
                len(records),
                cfg,
                workdir,
            )
            conn = await asyncpg.connect(m_url)
            try:
                dead = int(await conn.fetchval("SELECT count(*) FROM ingest.dead_letters"))
            finally:
                await conn.close()
            malformed.note = (malformed.note + "; " if malformed.note else "") + (
                f"{dead} dead letters"
            )
            results.append(malformed)

        if cfg.replicas:
            log("worker: 2 replicas in one group")
            r_url = await dbs.new("replicas")
            two = await drain_with_workers(
                "worker x2 replicas",
                r_url,
                bootstrap,
                clean,
                len(records),
                cfg,
                workdir,
                replicas=2,
            )
            two.note = (two.note + "; " if two.note else "") + "peak RSS of the larger replica"
            results.append(two)

        log(f"naive consumer: {cfg.naive_events} records")
        n_url = await dbs.new("naive")
        results.append(await naive(bootstrap, clean, n_url, cfg, rows_per_record, metric_share))

        if cfg.quix:
            log("quix streams: PostgreSQLSink on the metrics topic")
            q_url = await dbs.new("quix", migrate=False)
            metric_records = sum(1 for r in records if r.topic == "metrics")
            results.append(await quix(bootstrap, clean, q_url, metric_records, cfg, workdir))

        latency_runs = cfg.latency_s > 0 and kafka_io.have_confluent()
        if latency_runs and worker.records_per_s > 0:
            rate = worker.records_per_s / 2
            log(f"latency: {rate:,.0f} records/s for {cfg.latency_s:.0f} s")
            l_url = await dbs.new("latency")
            latency = await latency_run(l_url, bootstrap, f"bench{run_id}l.", rate, cfg, workdir)
        steady: list[Latency] = []
        for n, rate in enumerate(cfg.steady_rates if latency_runs else ()):
            log(f"latency: a steady {rate:,.0f} records/s for {cfg.latency_s:.0f} s")
            s_url = await dbs.new(f"steady{n}")
            prefix = f"bench{run_id}s{n}."
            steady.append(await latency_run(s_url, bootstrap, prefix, rate, cfg, workdir))

        if cfg.big_events > 0:
            big = f"bench{run_id}b."
            await kafka_io.create_topics(bootstrap, [big + t for t in TOPIC_NAMES], cfg.partitions)
            log(f"big backlog: producing {cfg.big_events} records")
            t = time.time()
            await asyncio.to_thread(
                kafka_io.produce_fast, bootstrap, big, _big_backlog(cfg.big_events, cfg.seed)
            )
            log(f"big backlog produced in {time.time() - t:.0f} s; draining")
            b_url = await dbs.new("big")
            big_result = await drain_with_workers(
                f"worker, {cfg.big_events / 1e6:g} M backlog",
                b_url,
                bootstrap,
                big,
                cfg.big_events,
                cfg,
                workdir,
            )
            results.append(big_result)
    finally:
        if not cfg.keep_databases:
            with contextlib.suppress(Exception):
                await dbs.drop_all()
    return BenchReport(cfg, results, latency, machine_info(), checks, started, profile_path, steady)
