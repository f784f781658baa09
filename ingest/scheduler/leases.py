"""Job leadership by a lease row with an epoch, and the run records in ``ingest.job_runs``.

Why a lease row and not a session-level advisory lock: session locks stack when taken twice,
survive a rollback, break behind a transaction-mode pooler (the session is not ours), and when
the holder's connection dies the lock is freed while the old holder may still be working. A
row in ``ingest.job_leases`` has none of these problems and also remembers when the job last
ran, which is what makes "once per interval across all replicas" possible.

* **claim**: one ``INSERT .. ON CONFLICT DO UPDATE .. WHERE .. RETURNING``. It succeeds only
  when the lease has expired *and* the job is due (``last_run_at + interval <= now()``), and
  bumps the epoch. Concurrent claimers serialise on the row: the loser re-evaluates the WHERE
  against the winner's row and gets nothing back.
* **settle** (the fence): ``UPDATE .. WHERE holder = me AND epoch = mine`` that records
  ``last_run_at`` and releases the lease. Single-transaction jobs run it as the last statement
  of their own transaction, so a replica whose lease was taken over rolls its changes back;
  the row lock it takes also makes a concurrent claim wait for the commit and then see the job
  as not due.
* Times are the database's ``now()``, one clock for every replica.
* ``last_run_at`` is the claim time (``acquired_at``), so runs start one interval apart
  whatever they take, and never overlap (the lease is held until settled).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ingest.db import Conn


class LeaseLost(Exception):
    """Another replica took the job's lease over while this run was working."""


@dataclass(frozen=True, slots=True)
class Lease:
    job: str
    holder: str
    epoch: int
    acquired_at: datetime


_CLAIM_SQL = """
INSERT INTO ingest.job_leases AS l (job, holder, epoch, acquired_at, expires_at)
VALUES ($1, $2, 1, now(), now() + make_interval(secs => $3))
ON CONFLICT (job) DO UPDATE
SET holder = EXCLUDED.holder,
    epoch = l.epoch + 1,
    acquired_at = EXCLUDED.acquired_at,
    expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= now()
  AND ($5 OR l.last_run_at IS NULL OR l.last_run_at + make_interval(secs => $4) <= now())
RETURNING l.epoch, l.acquired_at
"""


async def claim(
    conn: Conn, job: str, holder: str, *, interval_s: float, ttl_s: float, force: bool = False
) -> Lease | None:
    """Take the job's lease if it is free and the job is due (``force``: due or not)."""
    row = await conn.fetchrow(_CLAIM_SQL, job, holder, float(ttl_s), float(interval_s), force)
    if row is None:
        return None
    return Lease(job, holder, int(row["epoch"]), row["acquired_at"])


async def settle(conn: Conn, lease: Lease) -> None:
    """Record the run (``last_run_at``) and release the lease, if it is still ours.

    Raises :class:`LeaseLost` otherwise; run it inside the job's transaction to fence it.
    """
    done = await conn.fetchval(
        "UPDATE ingest.job_leases SET last_run_at = acquired_at, expires_at = now() "
        "WHERE job = $1 AND holder = $2 AND epoch = $3 RETURNING true",
        lease.job,
        lease.holder,
        lease.epoch,
    )
    if not done:
        raise LeaseLost(f"lease of job {lease.job} (epoch {lease.epoch}) was taken over")


async def check(conn: Conn, lease: Lease) -> None:
    """Raise :class:`LeaseLost` unless the lease is still ours and unexpired.

    For jobs made of several transactions: call before each destructive step.
    """
    ok = await conn.fetchval(
        "SELECT true FROM ingest.job_leases "
        "WHERE job = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()",
        lease.job,
        lease.holder,
        lease.epoch,
    )
    if not ok:
        raise LeaseLost(f"lease of job {lease.job} (epoch {lease.epoch}) expired or was taken")


async def holder_of(conn: Conn, job: str) -> dict[str, Any] | None:
    """Who holds the job's lease now (for the ``skipped`` record of a manual run)."""
    row = await conn.fetchrow(
        "SELECT holder, epoch, expires_at FROM ingest.job_leases "
        "WHERE job = $1 AND expires_at > now()",
        job,
    )
    return dict(row) if row is not None else None


def _json(details: dict[str, Any]) -> str:
    # str() for anything orjson does not know (Decimal, ...): details are for people.
    return orjson.dumps(details, default=str).decode()


async def record_start(
    conn: Conn, job: str, replica: str, started_at: datetime | None, details: dict[str, Any]
) -> int:
    run_id = await conn.fetchval(
        "INSERT INTO ingest.job_runs (job, replica, started_at, details) "
        "VALUES ($1, $2, COALESCE($3, now()), $4::jsonb) RETURNING run_id",
        job,
        replica,
        started_at,
        _json(details),
    )
    return int(run_id)


async def record_finish(
    conn: Conn, run_id: int, outcome: str, details: dict[str, Any], error: str | None
) -> None:
    await conn.execute(
        "UPDATE ingest.job_runs SET finished_at = clock_timestamp(), outcome = $2, "
        "details = details || $3::jsonb, error = $4 WHERE run_id = $1",
        run_id,
        outcome,
        _json(details),
        error,
    )
