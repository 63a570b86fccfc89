"""The ``sql`` series: one set per row of a query on an SQLite file or an SQLAlchemy database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing
from importlib.util import find_spec
from typing import Any, ClassVar

from ..components.base import RunContext, Series
from ..errors import InvalidConfig
from ..paths import OwnerFiles
from .files import existing_file

SQLITE_HEADER = b"SQLite format 3\x00"
FILE_DIALECTS = ("sqlite", "duckdb")
"""SQLAlchemy dialects whose "database" is a local file, held to the owner's files."""
FILE_OPTIONS = frozenset(
    {
        "local_infile",  # MySQL's LOAD DATA LOCAL: the database server asks for any file
        "allow_local_infile",
        "allow_local_infile_in_path",
        "read_default_file",  # option files, with passwords
        "read_default_group",
        "passfile",  # libpq: the password file, a service file, certificates and keys
        "service",
        "sslkey",
        "sslcert",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "ssl_key",
        "ssl_cert",
        "ssl_ca",
        "ssl_capath",
    }
)
"""Driver options that make the client read a file of the server's, whatever their value."""
NO_SQLALCHEMY = (
    "url: SQLAlchemy is not installed where the task runs; install it (pip install sqlalchemy "
    "and the database's driver) or use database for an SQLite file"
)


def _rows(names: list[str], rows: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Rows as dicts; a repeated column name would silently lose a value, so it is refused."""
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidConfig(
            f"query: the columns {duplicates} appear twice; rename them with AS", field="query"
        )
    for row in rows:
        yield dict(zip(names, row, strict=True))


def _no_attach(action: int, *_: Any) -> int:
    """An SQLite authorizer refusing ATTACH, the one way a query could open another file."""
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK


def local_url(text: str, files: OwnerFiles) -> Any:
    """The SQLAlchemy URL of ``text``, any local file it names held to the owner's files.

    A file database (SQLite, DuckDB) must lie under the owner's root and outside the
    planner's folders; its path is returned resolved.  Query options that name files
    (``read_default_file``, ``sslrootcert``, a socket ``host``) or let the database server
    ask for one (``local_infile``) are refused for any dialect (``FILE_OPTIONS``).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        raise InvalidConfig(
            "url: not a database URL; write e.g. postgresql://user:password@host/db", field="url"
        ) from None
    for name, value in url.query.items():
        values = value if isinstance(value, tuple) else (value,)
        if name.lower() in FILE_OPTIONS or any("/" in item or "\\" in item for item in values):
            raise InvalidConfig(
                f"url: the option {name[:80]!r} names a file or path, or makes the driver read "
                "one, which a task may not do; remove it",
                field="url",
            )
    database = url.database
    if (
        url.get_backend_name() not in FILE_DIALECTS
        or database is None
        or database in ("", ":memory:")
    ):
        return url
    if database.startswith("file:"):
        raise InvalidConfig(
            "url: SQLite URI file names are not supported; give the file's path", field="url"
        )
    return url.set(database=str(files.resolve(database, "url", shown=database)))


class SqlSeries(Series):
    """One set per row of a query; the column names are the keys."""

    type_name: ClassVar[str] = "sql"
    title: ClassVar[str] = "SQL query"
    description: ClassVar[str] = (
        "One set per row of a query on an SQLite file under your root folder (opened read-only), "
        "or on any database SQLAlchemy can reach when it is installed."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["query"],
        "properties": {
            "database": {
                "x-path": "file",
                "type": "string",
                "minLength": 1,
                "title": "SQLite file",
                "description": "Relative to your root folder. Leave empty when using a URL.",
            },
            "url": {
                "x-path": "url",
                "type": "string",
                "minLength": 1,
                "writeOnly": True,
                "title": "Database URL",
                "description": "An SQLAlchemy URL such as postgresql://user:password@host/db "
                "(kept secret: it often holds a password). Needs SQLAlchemy and the driver.",
            },
            "query": {
                "type": "string",
                "minLength": 1,
                "title": "Query",
                "description": "A SELECT; each row becomes one set.",
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if ("database" in config) == ("url" in config):
            raise InvalidConfig(
                "database: give either database (an SQLite file under your root folder) or url "
                "(an SQLAlchemy database URL)",
                field="database",
            )
        if "url" in config and find_spec("sqlalchemy") is None:
            raise InvalidConfig(NO_SQLALCHEMY, field="url")

    @classmethod
    def check_paths(cls, config: dict[str, Any], files: OwnerFiles, *, template: bool) -> None:
        super().check_paths(config, files, template=template)
        if "url" in config and find_spec("sqlalchemy") is not None:
            local_url(config["url"], files)

    def sets(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        if "url" in self.config:
            yield from self._sqlalchemy_rows(ctx)
        else:
            yield from self._sqlite_rows(ctx)

    def _sqlite_rows(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        name = self.config["database"]
        path = existing_file(ctx, name, "database")
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        # An empty file is a valid empty database to SQLite.
        if header and header != SQLITE_HEADER:
            raise InvalidConfig(f"database: {name!r} is not an SQLite database", field="database")
        # mode=ro: a series reads; a query that writes fails instead of changing user data.
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
            connection.set_authorizer(_no_attach)
            try:
                cursor = connection.execute(self.config["query"])
                if cursor.description is None:
                    raise InvalidConfig("query: returns no rows; write a SELECT", field="query")
                yield from _rows([column[0] for column in cursor.description], cursor)
            except sqlite3.DatabaseError as exc:
                raise InvalidConfig(f"query: failed on {name!r}: {exc}", field="query") from None

    def _sqlalchemy_rows(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        try:
            import sqlalchemy
        except ImportError:
            raise InvalidConfig(NO_SQLALCHEMY, field="url") from None
        url = local_url(self.config["url"], ctx.files)
        try:
            engine = sqlalchemy.create_engine(url)
        except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
            raise InvalidConfig(f"url: cannot use this database URL: {exc}", field="url") from None
        if url.get_backend_name() == "sqlite":
            sqlalchemy.event.listen(
                engine, "connect", lambda connection, _: connection.set_authorizer(_no_attach)
            )
        try:
            try:
                connection = engine.connect()
            except sqlalchemy.exc.SQLAlchemyError as exc:
                raise InvalidConfig(f"url: cannot connect: {exc}", field="url") from None
            with connection:
                try:
                    # Raw SQL: a ':' in the query is not taken for a bound parameter.
                    result = connection.exec_driver_sql(self.config["query"])
                    if not result.returns_rows:
                        raise InvalidConfig("query: returns no rows; write a SELECT", field="query")
                    yield from _rows(list(result.keys()), result)
                except sqlalchemy.exc.SQLAlchemyError as exc:
                    raise InvalidConfig(f"query: failed: {exc}", field="query") from None
        finally:
            engine.dispose()
