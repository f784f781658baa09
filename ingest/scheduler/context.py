"""What a job gets to work with: settings, the pool, metrics, its lease, and its transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from ingest.db import Conn
from ingest.observability import Metrics
from ingest.scheduler import leases
from ingest.settings import Settings

if TYPE_CHECKING:
    from ingest.scheduler.announce import KafkaAnnouncer

Trigger = Literal["schedule", "manual", "startup"]


@dataclass
class JobContext:
    """One run of one job.

    ``lease`` is None for runs outside leadership (dry runs, the start-up partitions run).
    ``settled`` becomes True once the job's transaction committed the fence, so the runner
    does not settle the lease a second time.
    """

    job: str
    settings: Settings
    pool: asyncpg.Pool
    metrics: Metrics
    run_id: int
    lease: leases.Lease | None
    trigger: Trigger
    dry_run: bool = False
    announcer: KafkaAnnouncer | None = None
    settled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """The job's one transaction, fenced by its lease as the last statement.

        A dry run rolls it back instead, so every single-transaction job gets a faithful
        "what would change" for free. A lost lease rolls it back and raises ``LeaseLost``.
        """
        async with self.pool.acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            try:
                yield conn
                if self.dry_run:
                    await tr.rollback()
                    return
                if self.lease is not None:
                    await leases.settle(conn, self.lease)
            except BaseException:
                await tr.rollback()
                raise
            await tr.commit()
            self.settled = self.lease is not None

    async def check_lease(self, conn: Conn) -> None:
        """Before each destructive step of a multi-transaction job: still the leader?"""
        if self.lease is not None:
            await leases.check(conn, self.lease)
