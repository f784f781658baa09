"""Forward-only SQL migrations from ``schema/``, applied by ``ingest migrate``.

Files are named ``NNNN_description.sql`` and applied in number order. The whole run is one
transaction holding a transaction-level advisory lock, so replicas that start together queue
behind each other and the later ones find nothing left to do; a failed migration leaves the
database as it was. Each applied file's SHA-256 is recorded, and a run refuses to proceed when
an applied file has changed since (the fix is a new migration, never an edit).

After the SQL, the partitions covering now (and ``premake`` intervals ahead) are created, so a
freshly migrated database accepts rows at once; the scheduler keeps them ahead from then on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from ingest.db import Conn
from ingest.partitions import ensure_partitions_around
from ingest.settings import PartitionSettings

#: Fixed key of the migration lock (an arbitrary constant: "mesh" "migr" in ASCII).
MIGRATION_LOCK_KEY = 0x6D657368_6D696772

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "schema"


class MigrationError(Exception):
    """The migrations cannot be applied as they are (edited file, bad name, failed SQL)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str
    checksum: str


def discover(directory: Path | None = None) -> list[Migration]:
    """The migration files of ``directory`` in the order they apply."""
    directory = directory or DEFAULT_MIGRATIONS_DIR
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(
                f"{path.name}: migration files must be named NNNN_lower_case_name.sql"
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"{path.name}: version {version} is also used by {found[version].path.name}"
            )
        data = path.read_bytes()
        found[version] = Migration(
            version=version,
            name=path.stem,
            path=path,
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
    if not found:
        raise MigrationError(f"no migrations found in {directory}")
    return [found[v] for v in sorted(found)]


_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS ingest;
CREATE TABLE IF NOT EXISTS ingest.schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms double precision NOT NULL
);
"""


async def _apply_sql(conn: Conn, migrations: list[Migration]) -> list[str]:
    applied_now: list[str] = []
    async with conn.transaction():
        # Held until commit: concurrent runs wait here, then see everything applied.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_BOOKKEEPING)
        rows = await conn.fetch("SELECT version, name, checksum FROM ingest.schema_migrations")
        applied = {int(r["version"]): (str(r["name"]), str(r["checksum"])) for r in rows}
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded is None:
                continue
            if recorded[1] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.path.name} was changed after it was applied "
                    f"(recorded sha256 {recorded[1][:12]}, file {migration.checksum[:12]}); "
                    "applied migrations are never edited: restore the file and put the "
                    "change in a new migration"
                )
        for migration in migrations:
            if migration.version in applied:
                continue
            started = datetime.now()
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
            elapsed_ms = (datetime.now() - started).total_seconds() * 1000.0
            await conn.execute(
                "INSERT INTO ingest.schema_migrations (version, name, checksum, duration_ms)"
                " VALUES ($1, $2, $3, $4)",
                migration.version,
                migration.name,
                migration.checksum,
                elapsed_ms,
            )
            applied_now.append(migration.name)
    return applied_now


async def apply_migrations(
    dsn: str,
    migrations_dir: Path | None = None,
    *,
    partitions: PartitionSettings | None = None,
    premake: int = 3,
    now: datetime | None = None,
) -> list[str]:
    """Apply every pending migration and the partitions around ``now``; return what was applied.

    Safe to run from several processes at once and again on an up-to-date database.
    """
    migrations = discover(migrations_dir)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET TIME ZONE 'UTC'")
        applied = await _apply_sql(conn, migrations)
        await ensure_partitions_around(
            conn, partitions or PartitionSettings(), premake=premake, now=now
        )
    finally:
        await conn.close()
    return applied


async def pending_migrations(dsn: str, migrations_dir: Path | None = None) -> list[str]:
    """Names of the migrations not yet applied (for ``ingest status``)."""
    migrations = discover(migrations_dir)
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('ingest.schema_migrations') IS NOT NULL")
        if not exists:
            return [m.name for m in migrations]
        rows = await conn.fetch("SELECT version FROM ingest.schema_migrations")
        done = {int(r["version"]) for r in rows}
        return [m.name for m in migrations if m.version not in done]
    finally:
        await conn.close()
