"""Scheduler leadership, run records and failure isolation against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry

from ingest.app import create_pool
from ingest.observability import Metrics
from ingest.scheduler import leases
from ingest.scheduler.context import JobContext
from ingest.scheduler.runner import JOB_NAMES, Job, Scheduler, build_jobs
from ingest.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
INTERVAL_S = 1.0


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return {
        "INGEST_DATABASE_URL": db_url,
        "INGEST_HTTP_ENABLED": "false",
        "INGEST_SCHEDULER_ROUTE_UPDATES_KAFKA": "false",
        "INGEST_LOG_LEVEL": "warning",
        **extra,
    }


def _settings(db_url: str, **extra: str) -> Settings:
    return load_settings(_env(db_url, **extra))


@pytest.fixture
async def make_scheduler(migrated_database_url: str) -> AsyncIterator[Any]:
    made: list[tuple[Scheduler, asyncpg.Pool]] = []

    async def make(replica: str, **extra: str) -> Scheduler:
        settings = _settings(migrated_database_url, INGEST_REPLICA_ID=replica, **extra)
        pool = await create_pool(settings)
        s = Scheduler(settings, pool, Metrics(CollectorRegistry()))
        made.append((s, pool))
        return s

    yield make
    for s, pool in made:
        await s.close()
        await pool.close()


async def _expired_dns(conn: asyncpg.Connection, n: int) -> None:
    await conn.execute(
        "INSERT INTO network.dns_cache (hostname, ip_addresses, cached_at, expires_at) "
        "SELECT 'h' || i, ARRAY['10.0.0.1'::inet], now() - interval '1 hour', "
        "now() - interval '1 minute' FROM generate_series(1, $1) AS i",
        n,
    )


async def test_a_job_is_claimed_only_when_its_lease_is_free_and_it_is_due(
    conn: asyncpg.Connection,
) -> None:
    first = await leases.claim(conn, "dns_cleanup", "a", interval_s=3600, ttl_s=60)
    assert first is not None and first.epoch == 1
    # Held: nobody else gets it, forced or not.
    assert await leases.claim(conn, "dns_cleanup", "b", interval_s=3600, ttl_s=60) is None
    assert (
        await leases.claim(conn, "dns_cleanup", "b", interval_s=3600, ttl_s=60, force=True) is None
    )
    await leases.settle(conn, first)
    # Released but not due for an hour; a manual (forced) run may go.
    assert await leases.claim(conn, "dns_cleanup", "b", interval_s=3600, ttl_s=60) is None
    forced = await leases.claim(conn, "dns_cleanup", "b", interval_s=3600, ttl_s=60, force=True)
    assert forced is not None and forced.epoch == 2
    row = await conn.fetchrow("SELECT * FROM ingest.job_leases WHERE job = 'dns_cleanup'")
    assert row["holder"] == "b"
    assert row["last_run_at"] == first.acquired_at


async def test_a_run_whose_lease_was_taken_over_is_rolled_back(
    conn: asyncpg.Connection, make_scheduler: Any
) -> None:
    await _expired_dns(conn, 3)
    slow = await make_scheduler("slow")
    lease_a = await leases.claim(conn, "dns_cleanup", "slow", interval_s=60, ttl_s=60)
    assert lease_a is not None
    # The lease runs out while "slow" is still working; another replica takes over.
    await conn.execute("UPDATE ingest.job_leases SET expires_at = now() - interval '1 second'")
    lease_b = await leases.claim(conn, "dns_cleanup", "fast", interval_s=60, ttl_s=60, force=True)
    assert lease_b is not None and lease_b.epoch == lease_a.epoch + 1

    result = await slow.execute(slow.jobs["dns_cleanup"], lease=lease_a, trigger="schedule")

    assert result["outcome"] == "failed"
    assert "taken over" in result["error"]
    assert await conn.fetchval("SELECT count(*) FROM network.dns_cache") == 3
    lease_row = await conn.fetchrow("SELECT * FROM ingest.job_leases")
    assert (lease_row["holder"], lease_row["epoch"]) == ("fast", lease_b.epoch)
    run = await conn.fetchrow("SELECT * FROM ingest.job_runs WHERE run_id = $1", result["run_id"])
    assert run["outcome"] == "failed" and run["finished_at"] is not None


async def test_every_run_is_recorded_with_what_it_did(
    conn: asyncpg.Connection, make_scheduler: Any
) -> None:
    await _expired_dns(conn, 2)
    s = await make_scheduler("r1")
    result = await s.run_once("dns-cleanup")
    run = await conn.fetchrow("SELECT * FROM ingest.job_runs WHERE run_id = $1", result["run_id"])
    assert (run["job"], run["replica"], run["outcome"], run["error"]) == (
        "dns_cleanup",
        "r1",
        "ok",
        None,
    )
    assert run["finished_at"] >= run["started_at"]
    details = orjson.loads(run["details"])
    assert details["trigger"] == "manual"
    assert details["deleted"] == 2
    assert (
        s.metrics.registry.get_sample_value(
            "ingest_job_runs_total", {"scheduler_job": "dns_cleanup", "outcome": "ok"}
        )
        == 1.0
    )
    assert (
        s.metrics.registry.get_sample_value(
            "ingest_job_last_success_timestamp_seconds", {"scheduler_job": "dns_cleanup"}
        )
        > 0
    )


async def test_a_manual_run_is_skipped_while_another_replica_holds_the_lease(
    conn: asyncpg.Connection, make_scheduler: Any
) -> None:
    await _expired_dns(conn, 1)
    held = await leases.claim(conn, "dns_cleanup", "other", interval_s=60, ttl_s=600)
    assert held is not None
    s = await make_scheduler("me")
    result = await s.run_once("dns_cleanup")
    assert result["outcome"] == "skipped"
    assert result["details"]["holder"] == "other"
    assert await conn.fetchval("SELECT count(*) FROM network.dns_cache") == 1
    assert (
        await conn.fetchval(
            "SELECT outcome FROM ingest.job_runs WHERE run_id = $1", result["run_id"]
        )
        == "skipped"
    )


async def test_an_unknown_job_fails_with_the_list_of_jobs(make_scheduler: Any) -> None:
    s = await make_scheduler("me")
    result = await s.run_once("nope")
    assert result["outcome"] == "failed"
    assert all(name in result["error"] for name in JOB_NAMES)


async def test_a_failing_job_is_counted_and_never_stops_the_others(
    conn: asyncpg.Connection, make_scheduler: Any
) -> None:
    s = await make_scheduler("r1", INGEST_SCHEDULER_POLL_INTERVAL_S="0.05")

    async def boom(ctx: JobContext) -> dict[str, Any]:
        raise RuntimeError("kaput")

    s.jobs = {
        "boom": Job("boom", 0.2, boom),
        "dns_cleanup": Job("dns_cleanup", 0.2, build_jobs(s.settings)["dns_cleanup"].run),
    }
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    counts: dict[str, int] = {}
    async with asyncio.timeout(60):
        while counts.get("boom/failed", 0) < 3 or counts.get("dns_cleanup/ok", 0) < 3:
            await asyncio.sleep(0.1)
            rows = await conn.fetch(
                "SELECT job || '/' || outcome AS k, count(*) AS n FROM ingest.job_runs "
                "WHERE outcome <> 'running' GROUP BY 1"
            )
            counts = {r["k"]: r["n"] for r in rows}
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert not task.exception()
    errors = await conn.fetch("SELECT DISTINCT error FROM ingest.job_runs WHERE job = 'boom'")
    assert [r["error"] for r in errors] == ["RuntimeError: kaput"]
    failed = s.metrics.registry.get_sample_value(
        "ingest_job_runs_total", {"scheduler_job": "boom", "outcome": "failed"}
    )
    assert failed is not None and failed >= 3


def _spawn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", "schedule"],
        env={**os.environ, **env},
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_two_scheduler_processes_run_each_job_once_per_interval(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    intervals = {
        f"INGEST_SCHEDULER_{name}_INTERVAL_S": str(INTERVAL_S)
        for name in ("PARTITIONS", "RETENTION", "SNAPSHOTS", "ROUTES", "STALE_NODES", "DNS")
    }
    env = _env(migrated_database_url, INGEST_SCHEDULER_POLL_INTERVAL_S="0.05", **intervals)
    procs = [_spawn({**env, "INGEST_REPLICA_ID": name}) for name in ("alpha", "beta")]
    try:
        async with asyncio.timeout(90):
            while True:
                counts = await conn.fetch(
                    "SELECT job, count(*) AS n FROM ingest.job_runs "
                    "WHERE details->>'trigger' = 'schedule' AND outcome <> 'running' "
                    "GROUP BY job"
                )
                if len(counts) == len(JOB_NAMES) and all(r["n"] >= 3 for r in counts):
                    break
                assert all(p.poll() is None for p in procs), "a scheduler exited early"
                await asyncio.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [await asyncio.to_thread(p.wait, 30) for p in procs]
    assert codes == [0, 0], [p.stderr.read() if p.stderr else b"" for p in procs]

    runs = await conn.fetch(
        "SELECT job, replica, started_at, outcome FROM ingest.job_runs "
        "WHERE details->>'trigger' = 'schedule' ORDER BY job, started_at"
    )
    by_job: dict[str, list[Any]] = {}
    for r in runs:
        by_job.setdefault(r["job"], []).append(r)
    assert set(by_job) == set(JOB_NAMES)
    for job, rows in by_job.items():
        assert [r["outcome"] for r in rows] == ["ok"] * len(rows), job
        starts = [r["started_at"] for r in rows]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        # Claims are spaced by the database clock: never two runs within one interval.
        assert all(g >= timedelta(seconds=INTERVAL_S) for g in gaps), (job, gaps)
    # Both processes were up and competing (each recorded its start-up partitions run).
    startup = await conn.fetch(
        "SELECT DISTINCT replica FROM ingest.job_runs WHERE details->>'trigger' = 'startup'"
    )
    assert sorted(r["replica"] for r in startup) == ["alpha", "beta"]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", "schedule", *args],
        env={**os.environ, **env},
        cwd=str(REPO),
        capture_output=True,
        timeout=120,
        check=False,
    )


async def test_schedule_once_runs_one_job_and_exits_with_its_outcome(
    migrated_database_url: str, conn: asyncpg.Connection
) -> None:
    await _expired_dns(conn, 2)
    env = _env(migrated_database_url)

    dry = await asyncio.to_thread(_cli, env, "--once", "retention", "--dry-run")
    done = await asyncio.to_thread(_cli, env, "--once", "dns_cleanup")
    unknown = await asyncio.to_thread(_cli, env, "--once", "nope")

    assert dry.returncode == 0, dry.stderr
    assert orjson.loads(dry.stdout)["details"]["dry_run"] is True
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["details"]["deleted"] == 2
    assert unknown.returncode == 1
    assert await conn.fetchval("SELECT count(*) FROM network.dns_cache") == 0
