"""Reaching the test database servers (PostgreSQL, MariaDB/MySQL).

URLs come from ``MINDMESH_TEST_POSTGRES_URL`` / ``MINDMESH_TEST_MYSQL_URL``.
An unreachable server skips the tests, or fails them under CI (``CI=1``, ``CI=true``..., see ``_ci.py``).
"""

from __future__ import annotations

import functools
import os
import uuid

from _ci import skip_or_fail

SERVERS = {
    "postgres": ("PostgreSQL", "MINDMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": ("MariaDB/MySQL", "MINDMESH_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}


@functools.cache
def _probe(kind: str) -> tuple[str, str | None]:
    """(url, error) for ``kind``; ``error`` is None when the server answers."""
    _label, env, default = SERVERS[kind]
    url = os.environ.get(env, default)
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
