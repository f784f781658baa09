"""Typing for database handles: a plain connection or one borrowed from the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from asyncpg.connection import Connection

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = Connection[Any] | PoolConnectionProxy[Any]
else:  # asyncpg's classes are not subscriptable at run time
    Conn = Connection
