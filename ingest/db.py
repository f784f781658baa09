"""Database handles: their typing, and the codec every connection of the worker uses.

``timestamptz`` values are encoded by :func:`encode_timestamptz` rather than asyncpg's own
codec. asyncpg's compares each value with two infinity sentinels (aware against naive, so
``utcoffset`` calls), converts it to UTC and builds a ``timedelta``: 0.7-1 µs of the worker's
CPU per timestamp, the most expensive column of a ``metrics`` row's COPY by far (measured:
1.0-1.5 µs a row with it, 0.3 without the column). The replacement takes an aware datetime
(one subtraction and a floor division, ~0.4 µs less) or, for the fast lane, the binary value
itself: microseconds since 2000-01-01 UTC, PostgreSQL's own representation, which is written
as it is. Decoding gives the same aware UTC datetimes (and infinities) asyncpg gives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from asyncpg.connection import Connection

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = Connection[Any] | PoolConnectionProxy[Any]
else:  # asyncpg's classes are not subscriptable at run time
    Conn = Connection

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
# PostgreSQL's 'infinity' and '-infinity', and what asyncpg decodes them to.
_PG_INFINITY: Final = 2**63 - 1
_PG_NEGATIVE_INFINITY: Final = -(2**63)
#: 1970-01-01 UTC as :func:`pg_micros`: epoch milliseconds ``ms`` are ``ms * 1000`` + this.
UNIX_EPOCH_PG_MICROS: Final = -946_684_800_000_000


def pg_micros(moment: datetime) -> int:
    """An aware datetime as PostgreSQL stores it: whole microseconds since 2000-01-01 UTC."""
    return (moment - PG_EPOCH) // _MICROSECOND


def as_datetime(value: datetime | int) -> datetime:
    """A timestamp held either way (a datetime, or :func:`pg_micros`) as an aware datetime."""
    if type(value) is int:
        return _from_pg_micros(value)
    assert isinstance(value, datetime)
    return value


def _from_pg_micros(value: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=value)


def unix_seconds(pg_value: int) -> float:
    """The inverse of :func:`pg_micros`, as Unix time (for latency figures, not storage)."""
    return (pg_value - UNIX_EPOCH_PG_MICROS) / 1_000_000


def encode_timestamptz(value: datetime | int) -> tuple[int]:
    """A query or COPY value for a ``timestamptz``: an aware datetime, or :func:`pg_micros`."""
    if type(value) is int:
        return (value,)
    if isinstance(value, datetime) and value.utcoffset() is not None:
        # pg_micros inline: this runs for every timestamp of every general-path row.
        return ((value - PG_EPOCH) // _MICROSECOND,)
    # asyncpg would take a naive datetime (or a date) as the client's local time; the worker
    # never means that, so it is a bug to be told about, not a value to guess at.
    raise TypeError(f"a timestamptz needs an aware datetime, not {value!r}")


def decode_timestamptz(value: tuple[int]) -> datetime:
    (micros,) = value
    if micros == _PG_INFINITY:
        return datetime.max
    if micros == _PG_NEGATIVE_INFINITY:
        return datetime.min
    return _from_pg_micros(micros)


async def install_codecs(conn: Conn) -> None:
    """Use this module's ``timestamptz`` codec on ``conn`` (once per connection)."""
    await conn.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        encoder=encode_timestamptz,
        decoder=decode_timestamptz,
        format="tuple",
    )
