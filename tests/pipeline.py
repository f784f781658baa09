"""Helpers for pipeline tests: settings for a test's own database and topics, producing
events, draining them with a real worker, and building valid events of every kind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from harness import create_topics
from prometheus_client import CollectorRegistry

from ingest.app import run_worker
from ingest.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def worker_env(db_url: str, bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {
        "INGEST_DATABASE_URL": db_url,
        "INGEST_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "INGEST_TOPIC_PREFIX": prefix,
        "INGEST_GROUP_ID": f"g-{prefix.rstrip('.')}",
        "INGEST_HTTP_ENABLED": "false",
        "INGEST_SCHEDULER_ENABLED": "false",
        "INGEST_LOG_FORMAT": "json",
        "INGEST_LOG_LEVEL": "warning",
        "INGEST_KAFKA_SESSION_TIMEOUT_MS": "10000",
        "INGEST_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "INGEST_BATCH_MAX_AGE_MS": "100",
        "INGEST_DATABASE_RETRY_MAX_BACKOFF_MS": "1000",
    }
    env.update(extra)
    return env


def make_settings(db_url: str, bootstrap: str, prefix: str, **extra: str) -> Settings:
    return load_settings(worker_env(db_url, bootstrap, prefix, **extra))


async def prepare_topics(settings: Settings, partitions: int = 3) -> None:
    await create_topics(settings.kafka.bootstrap_servers, settings.topics, partitions)


def encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return orjson.dumps(value)


async def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[Any],
    *,
    key: bytes | None = None,
    keys: Iterable[bytes | None] | None = None,
) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    n = 0
    try:
        key_list = list(keys) if keys is not None else None
        for i, value in enumerate(values):
            k = key_list[i] if key_list is not None else key
            await producer.send(topic, encode(value), key=k)
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


async def drain(settings: Settings, timeout_s: float = 90.0) -> int:
    """Run a real worker until every partition is caught up; return its exit code."""
    return await asyncio.wait_for(
        run_worker(settings, burst=True, with_scheduler=False, registry=CollectorRegistry()),
        timeout=timeout_s,
    )


def spawn_worker(
    env: Mapping[str, str], *args: str, stdout: Any = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """``ingest run`` in a subprocess of its own (for crash, rebalance and signal tests)."""
    full = {**os.environ, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", "run", *args],
        env=full,
        cwd=str(REPO),
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not subprocess.DEVNULL else subprocess.DEVNULL,
    )


# -- events ----------------------------------------------------------------------------------


def ts(moment: datetime | None = None, *, seconds: float = 0) -> str:
    return ((moment or datetime.now(UTC)) + timedelta(seconds=seconds)).isoformat()


def new_id() -> str:
    return str(uuid.uuid4())


def announce(node: str, name: str, at: str, **kw: Any) -> dict[str, Any]:
    return {
        "kind": "node.announce",
        "node_id": node,
        "ts": at,
        "node_name": name,
        "address": "10.0.0.1",
        "port": 4000,
        **kw,
    }


def metric(node: str, at: str | int, value: float = 1.0, **kw: Any) -> dict[str, Any]:
    return {
        "kind": "metric",
        "node_id": node,
        "ts": at,
        "metric_type": "cpu",
        "metric_name": "load",
        "metric_value": value,
        **kw,
    }


def scheduler_settings(db_url: str, **extra: str) -> Settings:
    """Settings for scheduler tests: no HTTP, no Kafka announcements unless asked for."""
    return load_settings(
        {
            "INGEST_DATABASE_URL": db_url,
            "INGEST_HTTP_ENABLED": "false",
            "INGEST_SCHEDULER_ROUTE_UPDATES_KAFKA": "false",
            **extra,
        }
    )
