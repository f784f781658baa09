"""The scheduler: intervals, leadership, run records, metrics. See docs/scheduler.md.

Each job has its own loop: every ``poll_interval_s`` (with jitter, capped at the job's
interval) it tries to claim the job's lease; the claim succeeds only on one replica, only
when the job is due (see :mod:`ingest.scheduler.leases`). A claimed run is recorded in
``ingest.job_runs`` (start, end, outcome, details, error) and in the metrics. A failing job is
logged, recorded and counted, then waits for its next interval; it never stops the other jobs
or the worker.

Three ways a job runs:

* ``schedule``: the loops above, inside ``ingest run`` or ``ingest schedule``;
* ``manual``: ``ingest schedule --once JOB`` claims the lease whether or not the job is due
  (never while another replica holds it: then the run is recorded as ``skipped``);
* ``startup``: the partitions job once before consuming, outside leadership, because every
  replica must have its partitions before its first flush; the work is idempotent and
  serialised per table by the partitions module. It does not move the job's schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from prometheus_client import REGISTRY, CollectorRegistry

from ingest import errors
from ingest.db import Conn
from ingest.observability import HttpServer, Metrics
from ingest.scheduler import dns, leases, nodes, partitions, retention, routes, snapshots
from ingest.scheduler.announce import KafkaAnnouncer
from ingest.scheduler.context import JobContext, Trigger
from ingest.settings import Settings

log = structlog.get_logger("ingest.scheduler")

JobFn = Callable[[JobContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval_s: float
    run: JobFn


def build_jobs(settings: Settings) -> dict[str, Job]:
    s = settings.scheduler
    jobs = [
        Job("partitions", s.partitions_interval_s, partitions.run),
        Job("retention", s.retention_interval_s, retention.run),
        Job("snapshots", s.snapshots_interval_s, snapshots.run),
        Job("routes", s.routes_interval_s, routes.run),
        Job("stale_nodes", s.stale_nodes_interval_s, nodes.run),
        Job("dns_cleanup", s.dns_interval_s, dns.run),
    ]
    return {job.name: job for job in jobs}


JOB_NAMES: tuple[str, ...] = (
    "partitions",
    "retention",
    "snapshots",
    "routes",
    "stale_nodes",
    "dns_cleanup",
)


def resolve_job(name: str) -> str | None:
    """``dns-cleanup``, ``DNS_CLEANUP`` and ``dns`` all mean ``dns_cleanup``."""
    key = name.strip().lower().replace("-", "_")
    aliases = {"dns": "dns_cleanup", "stale": "stale_nodes", "nodes": "stale_nodes"}
    key = aliases.get(key, key)
    return key if key in JOB_NAMES else None


class Scheduler:
    """Runs the jobs of ``settings`` against ``pool``; builds nothing until asked to run."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, metrics: Metrics) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.jobs = build_jobs(settings)
        self.replica = settings.replica_id
        self.announcer = KafkaAnnouncer(settings)

    # -- one run --------------------------------------------------------------------------

    async def execute(
        self,
        job: Job,
        *,
        lease: leases.Lease | None,
        trigger: Trigger,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Run ``job`` once and record it; never raises for a failure of the job itself."""
        started = time.monotonic()
        head = {"trigger": trigger, **({"epoch": lease.epoch} if lease else {})}
        try:
            async with self.pool.acquire() as conn:
                run_id = await leases.record_start(
                    conn, job.name, self.replica, lease.acquired_at if lease else None, head
                )
        except BaseException:
            # Not started, so not recorded: give the lease back rather than sit on it.
            if lease is not None:
                with contextlib.suppress(Exception):
                    async with self.pool.acquire(timeout=5.0) as conn:
                        await leases.settle(conn, lease)
            raise
        ctx = JobContext(
            job=job.name,
            settings=self.settings,
            pool=self.pool,
            metrics=self.metrics,
            run_id=run_id,
            lease=lease,
            trigger=trigger,
            dry_run=dry_run,
            announcer=self.announcer,
        )
        outcome, error = "ok", None
        details: dict[str, Any] = {}
        try:
            details = await job.run(ctx)
            if lease is not None and not ctx.settled and not dry_run:
                async with self.pool.acquire() as conn:
                    await leases.settle(conn, lease)
                    ctx.settled = True
        except asyncio.CancelledError:
            outcome, error, details = "failed", "cancelled: the scheduler is stopping", ctx.extra
            await self._after_failure(ctx)
            await self._finish(job, run_id, outcome, details, error, started)
            raise
        except Exception as exc:
            outcome, error, details = "failed", errors.describe(exc), ctx.extra
            log.error("job_failed", job=job.name, run_id=run_id, error=error)
            await self._after_failure(ctx)
        await self._finish(job, run_id, outcome, details, error, started)
        return {
            "job": job.name,
            "run_id": run_id,
            "outcome": outcome,
            "details": details,
            "error": error,
        }

    async def _after_failure(self, ctx: JobContext) -> None:
        """Settle the lease of a failed run, so the job waits for its next interval rather
        than being retried by every replica at once; a lost lease is someone else's now."""
        if ctx.lease is None or ctx.settled:
            return
        with contextlib.suppress(Exception):
            async with self.pool.acquire(timeout=5.0) as conn:
                await leases.settle(conn, ctx.lease)

    async def _finish(
        self,
        job: Job,
        run_id: int,
        outcome: str,
        details: dict[str, Any],
        error: str | None,
        started: float,
    ) -> None:
        elapsed = time.monotonic() - started
        self.metrics.job_runs.labels(job.name, outcome).inc()
        self.metrics.job_duration.labels(job.name).observe(elapsed)
        if outcome == "ok":
            self.metrics.job_last_success.labels(job.name).set(time.time())
            log.info("job_done", job=job.name, run_id=run_id, seconds=round(elapsed, 3))
        try:
            async with self.pool.acquire(timeout=5.0) as conn:
                await leases.record_finish(conn, run_id, outcome, details, error)
        except Exception as exc:
            # The work is done (or rolled back); only its record is missing.
            log.warning(
                "job_record_failed", job=job.name, run_id=run_id, error=errors.describe(exc)
            )

    async def _skip(self, job: Job, reason: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        async with self.pool.acquire() as conn:
            run_id = await leases.record_start(
                conn, job.name, self.replica, None, {"trigger": "manual"}
            )
        details = {"reason": "lease held by another replica", **reason}
        await self._finish(job, run_id, "skipped", details, None, started)
        return {
            "job": job.name,
            "run_id": run_id,
            "outcome": "skipped",
            "details": details,
            "error": None,
        }

    # -- entry points ---------------------------------------------------------------------

    async def run_once(self, name: str, *, dry_run: bool = False) -> dict[str, Any]:
        """One manual run of job ``name`` (``ingest schedule --once``)."""
        key = resolve_job(name)
        if key is None:
            return {
                "job": name,
                "outcome": "failed",
                "error": f"unknown job {name!r}; one of: {', '.join(JOB_NAMES)}",
            }
        job = self.jobs[key]
        if dry_run:
            # Changes nothing, so it needs no leadership and does not move the schedule.
            return await self.execute(job, lease=None, trigger="manual", dry_run=True)
        async with self.pool.acquire() as conn:
            lease = await self._claim(conn, job, force=True)
            holder = None if lease else await leases.holder_of(conn, job.name)
        if lease is None:
            return await self._skip(job, holder or {})
        return await self.execute(job, lease=lease, trigger="manual")

    async def run_startup(self) -> None:
        """The partitions job once, before consuming; a failure is recorded, not raised
        (the sink creates a missing partition itself)."""
        try:
            await self.execute(self.jobs["partitions"], lease=None, trigger="startup")
        except Exception as exc:
            log.error("startup_partitions_failed", error=errors.describe(exc))

    async def run(self, stop: asyncio.Event) -> None:
        """Every job's loop until ``stop`` is set; a run in progress is finished first."""
        try:
            async with asyncio.TaskGroup() as group:
                for job in self.jobs.values():
                    group.create_task(self._loop(job, stop), name=f"job-{job.name}")
        finally:
            await self.close()

    async def close(self) -> None:
        await self.announcer.close()

    async def _claim(self, conn: Conn, job: Job, *, force: bool = False) -> leases.Lease | None:
        return await leases.claim(
            conn,
            job.name,
            self.replica,
            interval_s=job.interval_s,
            ttl_s=self.settings.scheduler.lease_ttl_s,
            force=force,
        )

    async def _loop(self, job: Job, stop: asyncio.Event) -> None:
        poll = min(job.interval_s, self.settings.scheduler.poll_interval_s)
        # Replicas started together should not all ask at the same instant.
        await _wait(stop, random.uniform(0, poll))
        while not stop.is_set():
            try:
                async with self.pool.acquire() as conn:
                    lease = await self._claim(conn, job)
                if lease is not None:
                    await self.execute(job, lease=lease, trigger="schedule")
            except Exception as exc:
                # The bookkeeping itself failed (database unreachable): try again later.
                log.warning("job_claim_failed", job=job.name, error=errors.describe(exc))
            await _wait(stop, poll * random.uniform(0.8, 1.2))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


# -- the CLI's entry points ----------------------------------------------------------------


async def run_once(settings: Settings, job_name: str, *, dry_run: bool = False) -> dict[str, Any]:
    """``ingest schedule --once JOB``: run one job once; the result has ``outcome``."""
    from ingest.app import create_pool

    pool = await create_pool(settings)
    scheduler = Scheduler(settings, pool, Metrics(CollectorRegistry()))
    try:
        return await scheduler.run_once(job_name, dry_run=dry_run)
    finally:
        await scheduler.close()
        await pool.close()


async def run_scheduler(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """``ingest schedule``: the scheduler alone until SIGTERM/SIGINT; returns the exit code."""
    from ingest.app import create_pool, install_signal_handlers

    stop = stop or asyncio.Event()
    install_signal_handlers(stop)
    metrics = Metrics(REGISTRY)
    pool = await create_pool(settings, stop)
    http: HttpServer | None = None
    try:
        if settings.http.enabled:
            http = HttpServer(
                metrics.registry,
                lambda: (True, {"scheduler": True}),
                settings.http.host,
                settings.http.port,
            )
            await http.start()
            log.info("http_listening", port=http.port)
        scheduler = Scheduler(settings, pool, metrics)
        await scheduler.run_startup()
        await scheduler.run(stop)
        return 0
    finally:
        if http is not None:
            await http.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), timeout=5.0)
