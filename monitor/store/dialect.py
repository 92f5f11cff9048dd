"""What the shared SQL needs from a backend: the connection it runs on and the few words that differ.

Every query is written once (sql.py and the sql_*.py query modules) in SQL both SQLite and PostgreSQL
accept: the `end` column always double-quoted (a reserved word in PostgreSQL, a plain identifier quoted
in SQLite), `INSERT ... RETURNING id` for a new row's id (SQLite >= 3.35), `ON CONFLICT` upserts. What
still differs between the two is named here, once, and put into the statements explicitly when they are
built (never found and replaced in SQL text): the parameter mark, the statement that starts a write
transaction, and the name of the two-argument maximum. Schemas differ more (types, triggers): each
backend has its own migrations (migrations.py for SQLite, migrations_pg.py for PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


class Connection(Protocol):
    """The part of a DB-API connection the queries use (sqlite3.Connection has it; postgres.PGConnection too)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    param: str  # the parameter mark: "?" (sqlite3's qmark style) or "%s" (psycopg's format style)
    begin: str  # a write transaction: SQLite takes the write lock up front, so a busy database fails at BEGIN
    greatest: str  # the larger of two values: SQLite's two-argument MAX, PostgreSQL's GREATEST

    def marks(self, count: int) -> str:
        """`count` parameter marks, comma-separated (for VALUES and IN lists)."""
        return ", ".join([self.param] * count)


SQLITE = Dialect(name="sqlite", param="?", begin="BEGIN IMMEDIATE", greatest="MAX")
POSTGRESQL = Dialect(name="postgresql", param="%s", begin="BEGIN", greatest="GREATEST")


class Executor(Protocol):
    """Where a query class runs its jobs: the store's writer thread (`write`, a transaction each) or its
    reader connection (`read`), in the store's dialect."""

    @property
    def dialect(self) -> Dialect: ...
    async def write(self, job: Callable[[Connection], T]) -> T: ...
    async def read(self, job: Callable[[Connection], T]) -> T: ...
