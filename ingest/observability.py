"""Every Prometheus metric, the HTTP endpoints, and the logging set-up.

The metrics are defined once, in :class:`Metrics`, against a registry the caller owns (the
process-wide default in production, a private one in tests). Names follow Prometheus
conventions: ``_total`` counters, ``_seconds`` and ``_bytes`` units, a ``stage`` label where a
figure belongs to one stage of the pipeline.

HTTP is a deliberately small asyncio server (three GET routes) so the worker needs no web
framework: ``/metrics`` (text exposition format), ``/healthz`` (the process is alive and its
loop answers), ``/readyz`` (partitions assigned and the database reachable).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
_FLUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_ROWS_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10_000, 20_000, 50_000, 100_000, 200_000)
_BYTES_BUCKETS = (1024, 16_384, 131_072, 524_288, 1_048_576, 4_194_304, 8_388_608, 33_554_432)


class Metrics:
    """All metrics of the worker and the scheduler."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        # -- source
        self.records_consumed = Counter(
            "ingest_records_consumed_total", "Kafka records consumed.", ["topic"], registry=r
        )
        self.consumed_bytes = Counter(
            "ingest_consumed_bytes_total", "Bytes of record values consumed.", registry=r
        )
        self.assigned_partitions = Gauge(
            "ingest_assigned_partitions", "Partitions assigned to this worker.", registry=r
        )
        self.consumer_lag = Gauge(
            "ingest_consumer_lag",
            "Records between the stored offset and the end of the partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.fetch_paused = Gauge(
            "ingest_fetch_paused", "1 while fetching is paused for backpressure.", registry=r
        )
        self.rebalances = Counter(
            "ingest_rebalances_total", "Partition assignments received.", registry=r
        )
        # -- decode
        self.events_decoded = Counter(
            "ingest_events_decoded_total", "Valid events decoded.", ["kind"], registry=r
        )
        self.dead_letters = Counter(
            "ingest_dead_letters_total", "Dead letters written.", ["reason"], registry=r
        )
        # -- buffer
        self.buffer_fill = Gauge(
            "ingest_buffer_fill_ratio",
            "Buffer fill against each flush limit (1 = flush due).",
            ["limit"],
            registry=r,
        )
        self.buffer_rows = Gauge("ingest_buffer_rows", "Rows waiting in the buffer.", registry=r)
        # -- sink
        self.rows_written = Counter(
            "ingest_rows_written_total", "Rows written per table.", ["table"], registry=r
        )
        self.flushes = Counter("ingest_flushes_total", "Flushes committed.", registry=r)
        self.flush_duration = Histogram(
            "ingest_flush_duration_seconds",
            "Time from the start of a flush to its commit, retries included.",
            buckets=_FLUSH_BUCKETS,
            registry=r,
        )
        self.flush_rows = Histogram(
            "ingest_flush_rows", "Rows per committed flush.", buckets=_ROWS_BUCKETS, registry=r
        )
        self.flush_bytes = Histogram(
            "ingest_flush_bytes",
            "Record bytes per committed flush.",
            buckets=_BYTES_BUCKETS,
            registry=r,
        )
        self.flush_failures = Counter(
            "ingest_flush_failures_total",
            "Flush attempts that failed, by kind.",
            ["kind"],
            registry=r,
        )
        self.flush_retries = Counter(
            "ingest_flush_retries_total",
            "Flush attempts retried after a database error.",
            ["error"],
            registry=r,
        )
        self.fenced = Counter(
            "ingest_fenced_total",
            "Flushes abandoned because another consumer moved the stored offsets.",
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "ingest_end_to_end_latency_seconds",
            "From the event's ts to the commit of its rows.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.last_flush = Gauge(
            "ingest_last_flush_timestamp_seconds", "Unix time of the last commit.", registry=r
        )
        self.database_up = Gauge(
            "ingest_database_up", "1 when the last database operation succeeded.", registry=r
        )
        self.partitions_created = Counter(
            "ingest_partitions_created_total",
            "Partitions created by the worker or the scheduler.",
            ["table"],
            registry=r,
        )
        # -- scheduler
        self.job_runs = Counter(
            "ingest_job_runs_total", "Scheduler job runs.", ["scheduler_job", "outcome"], registry=r
        )
        self.job_duration = Histogram(
            "ingest_job_duration_seconds",
            "Scheduler job run time.",
            ["scheduler_job"],
            buckets=_FLUSH_BUCKETS,
            registry=r,
        )
        self.job_last_success = Gauge(
            "ingest_job_last_success_timestamp_seconds",
            "Unix time of each job's last successful run.",
            ["scheduler_job"],
            registry=r,
        )
        self.partitions_ahead = Gauge(
            "ingest_partitions_ahead",
            "Whole partition intervals that exist ahead of the current one.",
            ["table"],
            registry=r,
        )
        self.route_changes = Counter(
            "ingest_best_route_changes_total", "Best routes that changed.", registry=r
        )


# -- HTTP ----------------------------------------------------------------------------------


class HttpServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one port."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Callable[[], tuple[bool, dict[str, Any]]],
        host: str = "0.0.0.0",
        port: int = 9464,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            line = request.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            method, path = (parts[0], parts[1].split("?", 1)[0]) if len(parts) >= 2 else ("", "")
            status, ctype, body = self._route(method, path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass
        finally:
            writer.close()

    def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == "/healthz":
            return "200 OK", "application/json", b'{"status":"ok"}'
        if path == "/readyz":
            ready, detail = self.readiness()
            body = orjson.dumps({"ready": ready, **detail})
            return ("200 OK" if ready else "503 Service Unavailable"), "application/json", body
        return "404 Not Found", "text/plain", b"not found\n"


# -- logging -------------------------------------------------------------------------------


def _orjson_dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    """structlog for the package, and the standard library's loggers (aiokafka) through it.

    One line per event; JSON by default. Nothing here logs payloads or secrets: callers pass
    positions (topic/partition/offset) and counts, never record values or URLs with passwords.
    """
    lvl = getattr(logging, level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    # aiokafka is chatty at INFO about every coordinator change; keep its warnings.
    logging.getLogger("aiokafka").setLevel(max(lvl, logging.WARNING))
