"""Engine, sessions and the declarative base shared by every domain's models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import JSON, CursorResult, DateTime, MetaData, Result, Table, create_engine, event
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations name the same thing on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps the zone; SQLite stores text without one and hands back naive values. Every
    datetime prefloop stores is UTC, so naive values read back are marked UTC here, once, instead of
    in each service that compares or serializes them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict: JSON, list: JSON}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={getattr(self, 'id', '?')}>"


class CreatedAtMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def table_of(model: type[Base]) -> Table:
    """The table a model maps, for statements that skip the ORM's bookkeeping. (`model.__table__` is typed
    as any FromClause, since a class may map a join or a select; every model here maps a table.)"""
    return Base.metadata.tables[model.__tablename__]


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE matched. Session.execute is typed to return a Result whatever the
    statement; for these it returns a CursorResult, which carries the count."""
    return cast(CursorResult[*tuple[Any, ...]], result).rowcount


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers proceed while a writer commits; busy_timeout queues writers instead of
    # failing with "database is locked" (the error Label Studio users hit under load).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


def _create_private_sqlite_file(url: str) -> None:
    """Create a missing SQLite database file owner-only (0600) before SQLite creates it world-readable
    (0644 under the usual umask); SQLite gives its -wal and -shm files the database file's mode."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent.is_dir():
        with suppress(FileExistsError):
            path.touch(mode=0o600, exist_ok=False)


def make_engine(url: str) -> Engine:
    # hide_parameters: bound values (token hashes, webhook secrets, passwords' hashes) stay out of the
    # exceptions and logs SQLAlchemy writes for a failed statement.
    if url.startswith("sqlite"):
        _create_private_sqlite_file(url)
        engine = create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; issuing it ourselves lets a unit of
        # work ask for "BEGIN IMMEDIATE" (execution option sqlite_begin) to take the write lock
        # up front, as the annotation queue does, instead of failing on lock upgrade.
        event.listen(engine, "connect", lambda conn, _rec: setattr(conn, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=10, max_overflow=20)


# Session.info key set on a write_session's session: a caller that must write can tell whether this unit
# of work may (see app/api/deps.py).
WRITES = "prefloop.writes"


class Database:
    """One engine and its session factory; owned by the app (app.state.db) or a CLI command."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on any error, always close."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A unit of work that writes. On SQLite it takes the write lock before its first read: a
        transaction that read first fails to write ("database is locked") if another connection
        committed in between, and busy_timeout only helps a transaction that asks up front."""
        with self.session() as session:
            session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
            session.info[WRITES] = True
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
