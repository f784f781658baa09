"""Exactly once under crashes, rebalances, database outages and shutdown signals.

Each test runs real ``ingest run`` processes against the real broker and database and checks
the data at the end: every record's rows are there once, and the stored offsets equal the end
offsets of every partition.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from pipeline import make_settings, new_id, prepare_topics, produce, spawn_worker, worker_env

from ingest.migrate import apply_migrations
from ingest.settings import KafkaSettings, Settings
from ingest.source import end_offsets as source_end_offsets
from ingest.status import collect_status

pytestmark = pytest.mark.slow


def backlog(n: int, nodes: int = 50, start: int = 0) -> list[bytes]:
    """``n`` metric values 0..n-1 (each a unique value), a tenth of them in arrays of 5."""
    ids = [new_id() for _ in range(nodes)]
    base = datetime.now(UTC) - timedelta(minutes=5)
    out: list[bytes] = []
    i = start
    while i < start + n:
        if i % 50 == 0 and i + 5 <= start + n:
            out.append(orjson.dumps([_metric(ids[(i + j) % nodes], base, i + j) for j in range(5)]))
            i += 5
        else:
            out.append(orjson.dumps(_metric(ids[i % nodes], base, i)))
            i += 1
    return out


def _metric(node: str, base: datetime, i: int) -> dict[str, Any]:
    return {
        "kind": "metric",
        "node_id": node,
        "ts": (base + timedelta(milliseconds=i)).isoformat(),
        "metric_type": "seq",
        "metric_name": "i",
        "metric_value": i,
    }


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    ends = await source_end_offsets(KafkaSettings(bootstrap_servers=bootstrap), topics)
    assert len(ends) == 3 * len(topics), "every test topic has three partitions"
    return ends


async def stored_offsets(dsn: str, group: str) -> dict[tuple[str, int], int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT topic, partition, next_offset FROM ingest.consumer_offsets WHERE group_id = $1",
            group,
        )
    finally:
        await conn.close()
    return {(r["topic"], r["partition"]): int(r["next_offset"]) for r in rows}


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def caught_up(settings: Settings) -> bool:
    ends = await end_offsets(settings.kafka.bootstrap_servers, settings.topics)
    stored = await stored_offsets(settings.database.dsn, settings.group_id)
    return all(stored.get(tp, 0) >= end for tp, end in ends.items())


async def assert_exact(dsn: str, expected: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        total, distinct = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT metric_value) FROM network.metrics"
        )
        dead = await conn.fetchval("SELECT count(*) FROM ingest.dead_letters")
    finally:
        await conn.close()
    assert (total, distinct, dead) == (expected, expected, 0)


async def assert_offsets_at_end(settings: Settings) -> None:
    ends = await end_offsets(settings.kafka.bootstrap_servers, settings.topics)
    stored = await stored_offsets(settings.database.dsn, settings.group_id)
    assert {tp: stored.get(tp, 0) for tp in ends} == ends


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 60
) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout_s)


@pytest.fixture
async def settings(migrated_database_url: str, kafka_bootstrap: str, topic_prefix: str) -> Settings:
    s = make_settings(migrated_database_url, kafka_bootstrap, topic_prefix)
    await prepare_topics(s)
    return s


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return worker_env(
        settings.database.dsn,
        settings.kafka.bootstrap_servers,
        settings.topic_prefix,
        **{"INGEST_BATCH_MAX_ROWS": "2000", **extra},
    )


async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    settings: Settings,
) -> None:
    total = 120_000
    await produce(
        settings.kafka.bootstrap_servers, settings.topic_prefix + "metrics", backlog(total)
    )
    rng = random.Random(20261203)
    env = _env(settings)
    kills = 0
    for _ in range(4):
        proc = spawn_worker(env)
        # Let it join the group and get some flushes done, then kill it without warning.
        await asyncio.sleep(rng.uniform(3.0, 6.0))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
    assert kills >= 2, "the worker finished before it could be killed; raise the backlog"
    final = spawn_worker(env, "--burst")
    assert final.wait(timeout=300) == 0
    await assert_exact(settings.database.dsn, total)
    await assert_offsets_at_end(settings)


async def test_a_worker_leaving_and_rejoining_the_group_mid_run_keeps_counts_exact(
    settings: Settings,
) -> None:
    total = 90_000
    env = _env(settings, INGEST_KAFKA_SESSION_TIMEOUT_MS="6000")
    first = spawn_worker(env)
    second = spawn_worker(env)
    producer = asyncio.create_task(_produce_slowly(settings, total, chunks=30, pause_s=0.3))
    try:
        await asyncio.sleep(4.0)
        assert stop_process(second) == 0
        await asyncio.sleep(2.0)
        second = spawn_worker(env)
        await producer
        await wait_until(lambda: caught_up(settings), 240, "both workers to catch up")
    finally:
        for proc in (first, second):
            stop_process(proc)
    await assert_exact(settings.database.dsn, total)
    await assert_offsets_at_end(settings)


async def _produce_slowly(settings: Settings, total: int, chunks: int, pause_s: float) -> None:
    per = total // chunks
    for c in range(chunks):
        await produce(
            settings.kafka.bootstrap_servers,
            settings.topic_prefix + "metrics",
            backlog(per, start=c * per),
        )
        await asyncio.sleep(pause_s)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_a_database_outage_mid_run_is_waited_out_and_counts_stay_exact(
    local_postgres_factory: Callable[..., Any],
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    server = local_postgres_factory()
    dsn = server.url
    await apply_migrations(dsn)
    settings = make_settings(dsn, kafka_bootstrap, topic_prefix)
    await prepare_topics(settings)
    port = _free_port()
    env = _env(
        settings,
        INGEST_HTTP_ENABLED="true",
        INGEST_HTTP_PORT=str(port),
        INGEST_HTTP_HOST="127.0.0.1",
    )
    half = 40_000
    await produce(kafka_bootstrap, topic_prefix + "metrics", backlog(half))
    proc = spawn_worker(env)
    try:
        await wait_until(lambda: caught_up(settings), 120, "the first half")

        async def ready() -> bool:
            return _http(port, "/readyz")[0] == 200

        await wait_until(ready, 30, "/readyz to say ready")
        server.stop()
        await produce(kafka_bootstrap, topic_prefix + "metrics", backlog(half, start=half))

        async def not_ready() -> bool:
            return _http(port, "/readyz")[0] == 503

        await wait_until(not_ready, 30, "/readyz to report the outage")
        await asyncio.sleep(3.0)
        assert proc.poll() is None, "the worker must wait for the database, not exit"
        server.start()
        await wait_until(lambda: caught_up(settings), 180, "recovery after the outage")
        await wait_until(ready, 30, "/readyz to recover")
    finally:
        code = stop_process(proc)
    assert code == 0
    await assert_exact(dsn, 2 * half)
    await assert_offsets_at_end(settings)


async def test_sigterm_drains_commits_and_exits_zero_and_metrics_are_exposed(
    settings: Settings,
) -> None:
    port = _free_port()
    env = _env(
        settings,
        INGEST_HTTP_ENABLED="true",
        INGEST_HTTP_PORT=str(port),
        INGEST_HTTP_HOST="127.0.0.1",
        INGEST_BATCH_MAX_AGE_MS="60000",
        INGEST_BATCH_MIN_AGE_MS="60000",
        INGEST_BATCH_MAX_ROWS="1000000",
        INGEST_SHUTDOWN_GRACE_S="20",
    )
    proc = spawn_worker(env)
    try:

        async def ready() -> bool:
            return _http(port, "/readyz")[0] == 200

        await wait_until(ready, 60, "/readyz")
        assert _http(port, "/healthz")[0] == 200
        # ingest status sees the one member of the group and every partition it holds.
        members = (await collect_status(settings))["members"]
        assert [len(parts) for parts in members.values()] == [3 * len(settings.topics)]
        # The age limit is a minute and the row limit huge: nothing flushes until SIGTERM.
        records = backlog(500)
        await produce(settings.kafka.bootstrap_servers, settings.topic_prefix + "metrics", records)
        await asyncio.sleep(3.0)
        status, body = _http(port, "/metrics")
        assert status == 200
        for name in (
            "ingest_records_consumed_total",
            "ingest_rows_written_total",
            "ingest_dead_letters_total",
            "ingest_flush_duration_seconds_bucket",
            "ingest_flush_rows_bucket",
            "ingest_flush_failures_total",
            "ingest_flush_retries_total",
            "ingest_consumer_lag",
            "ingest_end_to_end_latency_seconds_bucket",
            "ingest_buffer_fill_ratio",
            "ingest_assigned_partitions",
        ):
            assert name in body, name
        assert (
            f'ingest_records_consumed_total{{topic="{settings.topic_prefix}metrics"}} '
            f"{float(len(records))}" in body
        )
        assert await stored_offsets(
            settings.database.dsn, settings.group_id
        ) and not await caught_up(settings)
        started = time.monotonic()
        code = stop_process(proc, signal.SIGTERM, timeout_s=30)
        assert code == 0
        assert time.monotonic() - started < 20
    finally:
        if proc.poll() is None:
            proc.kill()
    await assert_exact(settings.database.dsn, 500)
    await assert_offsets_at_end(settings)


async def test_an_idle_database_gets_rows_after_the_minimum_age_not_the_maximum(
    settings: Settings,
) -> None:
    # Group commit: with no flush in flight, a buffer only min_age_ms old is written, so the
    # minute-long age limit never comes into it.
    env = _env(settings, INGEST_BATCH_MAX_AGE_MS="60000", INGEST_BATCH_MIN_AGE_MS="100")
    proc = spawn_worker(env)
    try:
        for wave in range(3):
            await wait_until(lambda: _assigned(settings), 60, "partitions assigned")
            await produce(
                settings.kafka.bootstrap_servers,
                settings.topic_prefix + "metrics",
                backlog(200, start=wave * 200),
            )
            started = time.monotonic()
            await wait_until(lambda: caught_up(settings), 20, f"wave {wave} stored")
            assert time.monotonic() - started < 20
        assert proc.poll() is None
    finally:
        stop_process(proc)
    await assert_exact(settings.database.dsn, 600)


async def _assigned(settings: Settings) -> bool:
    return bool(await stored_offsets(settings.database.dsn, settings.group_id))


def test_worker_refuses_to_start_with_a_bad_setting() -> None:
    env = {**os.environ, "INGEST_BATCH_MAX_AGE_MS": "soon"}
    out = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "INGEST_BATCH_MAX_AGE_MS" in out.stderr
