"""Configuration, read once from the environment and validated before anything starts.

Every setting is an environment variable with the ``INGEST_`` prefix. Settings are grouped
(database, kafka, batch, decode, http, scheduler, partitions); each group has its own prefix so
that the names ops scripts already use stay fixed: ``INGEST_DATABASE_URL``,
``INGEST_KAFKA_BOOTSTRAP_SERVERS``, ``INGEST_GROUP_ID``, ``INGEST_TOPIC_PREFIX``,
``INGEST_HTTP_PORT``, ``INGEST_LOG_FORMAT``. Units are part of the names (``_ms``, ``_s``,
``_bytes``, ``_days``).

The settings object is passed down explicitly; nothing in the package reads the environment on
its own, which keeps tests free to build settings for a throw-away database and topic prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The topics nodes publish to, by convention, without the configurable prefix.
TOPIC_NAMES: tuple[str, ...] = (
    "nodes",
    "links",
    "routing",
    "pools",
    "compression",
    "batching",
    "metrics",
    "events",
    "discovery",
)

#: The range-partitioned time-series tables and their partition key.
PARTITIONED_TABLES: dict[str, str] = {
    "metrics": "recorded_at",
    "events": "occurred_at",
    "routing_metrics": "recorded_at",
    "compression_stats": "period_start",
    "batch_metrics": "period_start",
    "performance_snapshots": "snapshot_time",
}

PartitionInterval = Literal["day", "week", "month"]


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable and what is allowed."""


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced, so that it can be logged or printed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _group(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", case_sensitive=False)


class DatabaseSettings(BaseSettings):
    model_config = _group("INGEST_DATABASE_")

    url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@localhost:5432/postgres"),
        validation_alias=AliasChoices(
            "INGEST_DATABASE_URL", "DATABASE_URL", "NETWORK_DATABASE_URL"
        ),
        description="PostgreSQL URL; DATABASE_URL and NETWORK_DATABASE_URL are also accepted.",
    )
    pool_min_size: int = Field(default=1, ge=0, description="Connections kept open.")
    pool_max_size: int = Field(default=6, ge=1, description="Connections at most.")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Per connection attempt.")
    statement_timeout_ms: int = Field(
        default=120_000, ge=0, description="Server-side limit per statement (0 = none)."
    )
    retry_initial_backoff_ms: int = Field(
        default=200, ge=1, description="First wait after a lost connection."
    )
    retry_max_backoff_ms: int = Field(
        default=10_000, ge=1, description="Cap of the exponential backoff."
    )

    @model_validator(mode="after")
    def _check(self) -> DatabaseSettings:
        scheme = urlsplit(self.url.get_secret_value()).scheme
        if scheme not in ("postgres", "postgresql"):
            raise ValueError(
                f"url: must start with postgresql:// (got {scheme or 'no scheme'}://); "
                "set INGEST_DATABASE_URL, DATABASE_URL or NETWORK_DATABASE_URL"
            )
        if self.pool_max_size < self.pool_min_size:
            raise ValueError("pool_max_size: must be >= INGEST_DATABASE_POOL_MIN_SIZE")
        return self

    @property
    def dsn(self) -> str:
        return self.url.get_secret_value()

    @property
    def redacted_url(self) -> str:
        return redact_url(self.dsn)


class KafkaSettings(BaseSettings):
    model_config = _group("INGEST_KAFKA_")

    bootstrap_servers: str = Field(
        default="localhost:9092", min_length=1, description="Comma-separated host:port list."
    )
    client_id: str = Field(
        default="mesh-ingest", min_length=1, description="Client id prefix (replica appended)."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (never logged)."
    )
    ssl_cafile: str | None = Field(default=None, description="CA bundle for TLS.")
    ssl_certfile: str | None = Field(default=None, description="Client certificate (mTLS).")
    ssl_keyfile: str | None = Field(default=None, description="Client key (mTLS).")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a partition with no stored offset starts."
    )
    fetch_max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Most bytes one fetch returns."
    )
    max_partition_fetch_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Most bytes per partition per fetch."
    )
    # Small on purpose: the loop yields to the in-flight flush once per poll, so a poll is
    # also how long the flush can wait for its next step (docs/operations.md, "Batching,
    # latency and throughput").
    max_poll_records: int = Field(
        default=500, ge=1, description="Records per poll at most (the loop yields after each)."
    )
    session_timeout_ms: int = Field(default=30_000, ge=1000, description="Group session timeout.")
    heartbeat_interval_ms: int = Field(
        default=3_000, ge=100, description="Group heartbeat interval."
    )
    max_poll_interval_ms: int = Field(
        default=300_000, ge=1000, description="Longest gap between polls before eviction."
    )
    dead_letter_publish: bool = Field(
        default=False, description="Also publish each dead letter to the dead-letter topic."
    )

    @model_validator(mode="after")
    def _check(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ValueError(
                    "sasl_mechanism: required when INGEST_KAFKA_SECURITY_PROTOCOL is "
                    f"{self.security_protocol} (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError(
                    "sasl_username: INGEST_KAFKA_SASL_USERNAME and INGEST_KAFKA_SASL_PASSWORD "
                    "are required with SASL"
                )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{name}: file not found: {path}")
        return self


class BatchSettings(BaseSettings):
    model_config = _group("INGEST_BATCH_")

    # Sized so that the loop rarely waits for the flush in flight under a backlog (measured,
    # bench/README.md "Batch size"); a steady stream flushes by age long before either limit.
    max_rows: int = Field(
        default=100_000,
        ge=1,
        description="Flush when this many rows wait (a metric is two: its row and its node's).",
    )
    max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Flush when the buffers hold this much."
    )
    max_age_ms: int = Field(default=500, ge=1, description="Flush at most this long after a row.")
    min_age_ms: int = Field(
        default=100,
        ge=0,
        description=(
            "With no flush in flight, flush once the oldest row is this old (under load"
            " batches grow by themselves)."
        ),
    )
    max_pending_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Pause fetching while more than this waits to be written.",
    )


class DecodeSettings(BaseSettings):
    model_config = _group("INGEST_")

    max_message_bytes: int = Field(
        default=1_048_576, ge=64, description="Larger values become dead letters too_large."
    )
    max_clock_skew_s: float = Field(
        default=300.0, ge=0, description="Events further in the future are dead letters."
    )
    native_lane: bool = Field(
        default=True,
        description="Encode plain metric records with the native lane (ingest._native) "
        "when it is built; off, they take the Python lane. Same rows either way.",
    )


class HttpSettings(BaseSettings):
    model_config = _group("INGEST_HTTP_")

    enabled: bool = Field(default=True, description="Serve /metrics, /healthz and /readyz.")
    host: str = Field(default="0.0.0.0", description="Address the HTTP endpoints listen on.")
    port: int = Field(
        default=9464, ge=0, le=65535, description="Port of /metrics /healthz /readyz."
    )


class SchedulerSettings(BaseSettings):
    model_config = _group("INGEST_SCHEDULER_")

    enabled: bool = Field(default=True, description="Run the scheduler inside `ingest run`.")
    partitions_interval_s: float = Field(default=3600.0, gt=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    snapshots_interval_s: float = Field(default=300.0, gt=0)
    routes_interval_s: float = Field(default=10.0, gt=0)
    routes_sweep_interval_s: float = Field(default=600.0, gt=0)
    stale_nodes_interval_s: float = Field(default=60.0, gt=0)
    dns_interval_s: float = Field(default=300.0, gt=0)
    route_ttl_s: float = Field(default=180.0, gt=0, description="Entries seen within are fresh.")
    route_purge_s: float = Field(default=3600.0, gt=0, description="Older entries are deleted.")
    stale_node_timeout_s: float = Field(default=300.0, gt=0)
    premake: int = Field(default=3, ge=1, le=60, description="Partitions kept ahead.")
    route_updates_topic: str = Field(
        default="route-updates", description="Suffix after INGEST_TOPIC_PREFIX."
    )
    route_updates_kafka: bool = Field(
        default=True, description="Also publish changed best routes to the route-updates topic."
    )
    route_updates_channel: str = Field(
        default="mesh_route_updates",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="NOTIFY channel for changed best routes.",
    )
    poll_interval_s: float = Field(
        default=5.0, gt=0, description="How often each job checks whether it is due."
    )
    lease_ttl_s: float = Field(
        default=600.0,
        gt=0,
        description="A job's lease; keep above its longest run (a longer run is fenced off).",
    )
    job_runs_retention_days: int = Field(
        default=30, ge=1, description="Job run records older than this are deleted."
    )


class PartitionSettings(BaseSettings):
    """Partition interval and retention per time-series table."""

    model_config = _group("INGEST_PARTITION_")

    metrics_interval: PartitionInterval = "month"
    metrics_retention_days: int = Field(default=90, ge=1)
    events_interval: PartitionInterval = "month"
    events_retention_days: int = Field(default=365, ge=1)
    routing_metrics_interval: PartitionInterval = "month"
    routing_metrics_retention_days: int = Field(default=30, ge=1)
    compression_stats_interval: PartitionInterval = "month"
    compression_stats_retention_days: int = Field(default=180, ge=1)
    batch_metrics_interval: PartitionInterval = "month"
    batch_metrics_retention_days: int = Field(default=180, ge=1)
    performance_snapshots_interval: PartitionInterval = "month"
    performance_snapshots_retention_days: int = Field(default=730, ge=1)

    def interval(self, table: str) -> PartitionInterval:
        value: PartitionInterval = getattr(self, f"{table}_interval")
        return value

    def retention_days(self, table: str) -> int:
        value: int = getattr(self, f"{table}_retention_days")
        return value


class Settings(BaseSettings):
    model_config = _group("INGEST_")

    group_id: str = Field(default="mesh-ingest", min_length=1, description="Consumer group.")
    topic_prefix: str = Field(default="mesh.", description="Prefix of every topic name.")
    extra_topics: list[str] = Field(
        default_factory=list, description="More topics to consume (JSON list)."
    )
    log_format: Literal["json", "console"] = Field(
        default="json", description="json (one object per line) or console."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="debug, info, warning or error."
    )
    shutdown_grace_s: float = Field(
        default=25.0, gt=0, description="Drain deadline after SIGTERM; keep below the pod's."
    )
    replica_id: str = Field(
        default_factory=lambda: os.environ.get("HOSTNAME", "") or f"pid-{os.getpid()}",
        description="Name of this replica in job runs and logs.",
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    decode: DecodeSettings = Field(default_factory=DecodeSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    partitions: PartitionSettings = Field(default_factory=PartitionSettings)

    @property
    def topics(self) -> list[str]:
        return [self.topic_prefix + name for name in TOPIC_NAMES] + list(self.extra_topics)

    @property
    def dead_letter_topic(self) -> str:
        return self.topic_prefix + "dead-letter"

    @property
    def route_updates_topic(self) -> str:
        return self.topic_prefix + self.scheduler.route_updates_topic


#: Group field name -> the settings class, for naming variables in error messages.
GROUPS: dict[str, type[BaseSettings]] = {
    "database": DatabaseSettings,
    "kafka": KafkaSettings,
    "batch": BatchSettings,
    "decode": DecodeSettings,
    "http": HttpSettings,
    "scheduler": SchedulerSettings,
    "partitions": PartitionSettings,
}


def env_name(model: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``model``."""
    info = model.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        first = info.validation_alias.choices[0]
        if isinstance(first, str):
            return first
    prefix = str(model.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def _describe(model: type[BaseSettings], error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        message = item["msg"]
        field = loc[0] if loc else ""
        if not field or field not in model.model_fields:
            # A model-level check: by convention its message starts with "field: ...".
            text = message.removeprefix("Value error, ")
            head, sep, rest = text.partition(": ")
            if sep and head in model.model_fields:
                field, message = head, rest
            else:
                message = text
        name = env_name(model, field) if field else model.__name__
        lines.append(f"{name}: {message}")
    return "; ".join(lines)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment (or ``environ``), raising :class:`SettingsError`.

    ``overrides`` replace whole groups or top-level values (used by tests and the CLI).
    The error message is one line per bad variable and never contains a secret value.
    """
    saved: dict[str, str] | None = None
    if environ is not None:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(environ)
    try:
        groups: dict[str, Any] = {}
        for name, model in GROUPS.items():
            if name in overrides:
                continue
            try:
                groups[name] = model()
            except ValidationError as exc:
                raise SettingsError(_describe(model, exc)) from None
        try:
            return Settings(**groups, **overrides)
        except ValidationError as exc:
            raise SettingsError(_describe(Settings, exc)) from None
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)


class SettingsDoc(BaseModel):
    """One row of the configuration table in the README."""

    variable: str
    default: str
    description: str


def settings_table() -> list[SettingsDoc]:
    """Every environment variable the worker reads, for the generated docs."""
    rows: list[SettingsDoc] = []
    models: list[type[BaseSettings]] = [Settings, *GROUPS.values()]
    for model in models:
        for field, info in model.model_fields.items():
            if field in GROUPS:
                continue
            if info.default_factory is not None:
                default = "(computed)" if field == "replica_id" else "[]"
            elif isinstance(info.default, SecretStr):
                default = redact_url(info.default.get_secret_value())
            else:
                default = "" if info.default is None else str(info.default)
            rows.append(
                SettingsDoc(
                    variable=env_name(model, field),
                    default=default,
                    description=info.description or "",
                )
            )
    return rows
