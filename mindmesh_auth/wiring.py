"""Choosing a store from one URL, at wiring time only."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from .core.errors import ConfigurationError
from .core.ports import Store

__all__ = ["store_from_url"]

# scheme -> (driver module, extra that installs it)
_DRIVERS: dict[str, tuple[str, str]] = {
    "sqlite": ("peewee", "peewee"),
    "postgres": ("psycopg2", "postgres"),
    "postgresql": ("psycopg2", "postgres"),
    "mysql": ("pymysql", "mysql"),
    "mariadb": ("pymysql", "mysql"),
    "mongodb": ("pymongo", "mongo"),
    "mongodb+srv": ("pymongo", "mongo"),
    "mongomock": ("pymongo", "mongo"),  # the Mongo adapter itself imports pymongo
}


def require_driver(scheme: str, module: str, extra: str) -> None:
    """Import what ``scheme`` needs now: a missing package names the extra to install."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"{scheme}:// URLs need the {module} package: pip install 'mindmesh-auth[{extra}]'",
            variable="AUTH_DATABASE_URL",
        ) from exc


def store_from_url(url: str) -> Store:
    """``memory://``, ``sqlite:///path.db``, ``postgresql://...``, ``mysql://...``, ``mongodb://...``.

    A missing driver is a ``ConfigurationError`` naming the extra to install
    (``[peewee]``, ``[postgres]``, ``[mysql]`` or ``[mongo]``).
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError("The database URL must look like scheme://...", variable="AUTH_DATABASE_URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from .adapters.memory import MemoryStore

        return MemoryStore()
    if scheme in ("sqlite", "postgres", "postgresql", "mysql", "mariadb"):
        module, extra = _DRIVERS[scheme]
        require_driver(scheme, "peewee", extra)
        require_driver(scheme, module, extra)
        from .adapters.peewee import PeeweeStore

        return PeeweeStore.from_url(url)
    if scheme in ("mongodb", "mongodb+srv", "mongomock"):
        module, extra = _DRIVERS[scheme]
        require_driver(scheme, module, extra)
        from .adapters.mongo import MongoStore

        return MongoStore.from_url(url)
    raise ConfigurationError(f"Unsupported database URL scheme {scheme!r}.", variable="AUTH_DATABASE_URL")
