"""Announcing changed best routes: a ``NOTIFY`` payload and Kafka messages.

One change is one (node, destination) pair whose best entry is now a different one (or none):

    {"node_id": "<uuid>", "destination_id": "<uuid>",
     "best": {"entry_id": "<uuid>", "next_hop_id": "<uuid>" | null, "quality": 0.93,
              "hop_count": 2, "sequence_number": 17, "last_seen": "<RFC 3339>"} | null,
     "previous": {"entry_id": "<uuid>", "next_hop_id": "<uuid>" | null,
                  "quality": 0.71, "hop_count": 3} | null}

``best`` null: the pair has no fresh route any more (withdrawn). ``previous`` null: the pair
had no best route before. A null ``next_hop_id`` is a direct route.

* ``NOTIFY <channel>`` (default ``mesh_route_updates``), sent inside the job's transaction so
  listeners hear of it exactly when it commits, with
  ``{"v": 1, "run_id": N, "mode": "triggered"|"sweep", "changed_at": "<RFC 3339>",
  "changed": N, "truncated": false, "routes": [change, ...]}``. PostgreSQL caps a payload
  below 8000 bytes; when the changes do not fit, ``routes`` is ``[]`` and ``truncated`` true
  (a summary with the count): read ``network.best_routes`` then.
* Kafka topic ``<prefix>route-updates``: one message per change, key = the node's UUID as
  text (so each node reads its changes in order), value = the change plus ``"v": 1``,
  ``"run_id"`` and ``"changed_at"``. Sent after the commit, so a message never announces a
  change that was rolled back; if the broker is unreachable the run is recorded as failed and
  the changes are not sent again (at most once; the database and NOTIFY are authoritative).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaProducer

from ingest.settings import Settings
from ingest.source import build_producer

log = structlog.get_logger("ingest.scheduler.routes")

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; keep a margin.
MAX_NOTIFY_BYTES = 7900


@dataclass(frozen=True, slots=True)
class RouteChange:
    node_id: str
    destination_id: str
    best: dict[str, Any] | None
    previous: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "destination_id": self.destination_id,
            "best": self.best,
            "previous": self.previous,
        }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def change_from_row(row: Any) -> RouteChange:
    """A change from a row of the routes job's before/after join."""
    best = None
    if row["entry_id"] is not None:
        best = {
            "entry_id": str(row["entry_id"]),
            "next_hop_id": _text(row["next_hop_id"]),
            "quality": row["quality"],
            "hop_count": row["hop_count"],
            "sequence_number": row["sequence_number"],
            "last_seen": row["last_seen"].isoformat(),
        }
    previous = None
    if row["prev_entry_id"] is not None:
        previous = {
            "entry_id": str(row["prev_entry_id"]),
            "next_hop_id": _text(row["prev_next_hop_id"]),
            "quality": row["prev_quality"],
            "hop_count": row["prev_hop_count"],
        }
    return RouteChange(str(row["node_id"]), str(row["destination_id"]), best, previous)


def notify_payload(
    changes: list[RouteChange], *, run_id: int, mode: str, changed_at: datetime
) -> tuple[str, bool]:
    """The NOTIFY payload, and whether it is truncated: every change if it fits, else a
    summary with the count."""
    head: dict[str, Any] = {
        "v": 1,
        "run_id": run_id,
        "mode": mode,
        "changed_at": changed_at.isoformat(),
        "changed": len(changes),
    }
    full = orjson.dumps({**head, "truncated": False, "routes": [c.as_dict() for c in changes]})
    if len(full) < MAX_NOTIFY_BYTES:
        return full.decode(), False
    return orjson.dumps({**head, "truncated": True, "routes": []}).decode(), True


def kafka_value(change: RouteChange, *, run_id: int, changed_at: datetime) -> bytes:
    return orjson.dumps(
        {"v": 1, "run_id": run_id, "changed_at": changed_at.isoformat(), **change.as_dict()}
    )


class KafkaAnnouncer:
    """Publishes changes to the route-updates topic; the producer is started on first use
    and kept for the scheduler's lifetime (a constructor that connects would make every
    scheduler, even one with nothing to announce, depend on the broker)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None

    @property
    def topic(self) -> str:
        return self._settings.route_updates_topic

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = build_producer(self._settings)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def publish(
        self, changes: list[RouteChange], *, run_id: int, changed_at: datetime
    ) -> int:
        if not changes:
            return 0
        producer = await self._ensure()
        try:
            for change in changes:
                await producer.send(
                    self.topic,
                    kafka_value(change, run_id=run_id, changed_at=changed_at),
                    key=change.node_id.encode(),
                )
            await producer.flush()
        except BaseException:
            # A producer that failed mid-batch is not trusted again; the next run makes one.
            await self.close()
            raise
        return len(changes)

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except Exception as exc:
                log.warning("route_announcer_stop_failed", error=str(exc))
