"""Every failure at the edges, classified in one place.

* ``RETRYABLE`` — the database (or the way to it) is not there right now: lost connection,
  restart, too many clients, a deadlock or serialization failure, a lock or statement timeout.
  Nothing was written; the same flush is tried again after a backoff.
* ``MISSING_PARTITION`` — a row fell outside every partition: create it, try again.
* ``REJECTED`` — the database refuses some of the rows (data exception, constraint violation,
  a value the client cannot encode): find them, dead-letter them, write the rest.
* ``FATAL`` — a programming or deployment error (missing table: not migrated, permissions).
  Retrying cannot help; the worker stops with the message.
"""

from __future__ import annotations

import asyncio
import enum

import asyncpg


class Failure(enum.Enum):
    RETRYABLE = "retryable"
    MISSING_PARTITION = "missing_partition"
    REJECTED = "rejected"
    FATAL = "fatal"


_RETRYABLE_SQLSTATE_CLASSES = ("08", "53", "57", "40")
_RETRYABLE_SQLSTATES = {"55P03", "55006", "58030"}


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        if state == "23514" and "no partition of relation" in str(exc):
            return Failure.MISSING_PARTITION
        if state[:2] in ("22", "23"):
            return Failure.REJECTED
        if state[:2] in _RETRYABLE_SQLSTATE_CLASSES or state in _RETRYABLE_SQLSTATES:
            return Failure.RETRYABLE
        return Failure.FATAL
    if isinstance(exc, asyncpg.InterfaceError):
        # Client-side: "connection is closed", "cannot perform operation: another operation
        # is in progress" after a lost socket, pool closing mid-call.
        return Failure.RETRYABLE
    if isinstance(exc, (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError)):
        return Failure.RETRYABLE
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return Failure.RETRYABLE
    if isinstance(exc, (ValueError, TypeError, OverflowError)):
        # The binary encoder refusing a value (an int beyond int4, say) on COPY.
        return Failure.REJECTED
    return Failure.FATAL


def describe(exc: BaseException) -> str:
    """A one-line description for logs and dead letters (never contains a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    detail = getattr(exc, "detail", None)
    out = f"{type(exc).__name__}: {text}"
    if state:
        out += f" [{state}]"
    if detail:
        out += f" ({detail})"
    return out[:2000]
