"""Reaching the test database servers (PostgreSQL, MariaDB/MySQL).

URLs come from ``MINDMESH_TEST_POSTGRES_URL`` / ``MINDMESH_TEST_MYSQL_URL``; the defaults use a
database named ``mindmesh_test`` (not ``test``, which other software on a shared server may use).
The probe creates the URL's database when the server answers but the database is missing.
An unreachable server skips the tests, or fails them under CI (``CI=1``, ``CI=true``..., see ``_ci.py``).
"""

from __future__ import annotations

import functools
import os
import uuid
from urllib.parse import unquote, urlsplit

from _ci import skip_or_fail

SERVERS = {
    "postgres": ("PostgreSQL", "MINDMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/mindmesh_test"),
    "mysql": ("MariaDB/MySQL", "MINDMESH_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mindmesh_test"),
}


def _quote_identifier(kind: str, name: str) -> str:
    quote = '"' if kind == "postgres" else "`"
    return quote + name.replace(quote, quote * 2) + quote


def ensure_database(kind: str, url: str) -> None:
    """Create the database ``url`` names if the server lacks it, connecting to the server's
    default database (PostgreSQL ``postgres``, MariaDB/MySQL none). An unreachable server raises;
    a database another process created meanwhile is fine."""
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        return
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if kind == "postgres":
        import psycopg2

        conn = psycopg2.connect(
            dbname="postgres", user=user, password=password, host=parts.hostname, port=parts.port or 5432, connect_timeout=5
        )
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    try:
                        cur.execute(f"CREATE DATABASE {_quote_identifier(kind, name)}")
                    except psycopg2.errors.DuplicateDatabase:
                        pass  # created by a parallel test process
        finally:
            conn.close()
    else:
        import pymysql

        conn = pymysql.connect(
            user=user or "root", password=password or "", host=parts.hostname, port=parts.port or 3306, connect_timeout=5
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS {_quote_identifier(kind, name)}")
        finally:
            conn.close()


@functools.cache
def _probe(kind: str) -> tuple[str, str | None]:
    """(url, error) for ``kind``; ``error`` is None when the server answers."""
    _label, env, default = SERVERS[kind]
    url = os.environ.get(env, default)
    try:
        ensure_database(kind, url)
    except Exception:
        pass  # no right to create it, or no server: the connection below says which
    from mindmesh_auth.adapters.peewee import PeeweeStore

    store = PeeweeStore.from_url(url)
    try:
        store.database.connect(reuse_if_open=True)
        store.database.execute_sql("SELECT 1").fetchone()
    except Exception as exc:
        return url, f"{type(exc).__name__}"
    finally:
        try:
            store.database.close()
        except Exception:
            pass
    return url, None


def server_url(kind: str) -> str:
    """The server URL, or skip (fail under CI) if it does not answer."""
    label, env, _default = SERVERS[kind]
    url, error = _probe(kind)
    if error is not None:
        skip_or_fail(f"{label} not reachable at {url} ({error}); set {env} to run")
    return url


def unique_prefix() -> str:
    """A table prefix no other test (or test process) uses."""
    return f"mmt_{uuid.uuid4().hex[:10]}_"
