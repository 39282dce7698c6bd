"""Choosing a store from one URL, at wiring time only."""

from __future__ import annotations

from urllib.parse import urlsplit

from .core.errors import ConfigurationError
from .core.ports import Store

__all__ = ["store_from_url"]


def store_from_url(url: str) -> Store:
    """``memory://``, ``sqlite:///path.db``, ``postgresql://...``, ``mysql://...``, ``mongodb://...``."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError("The database URL must look like scheme://...", variable="AUTH_DATABASE_URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from .adapters.memory import MemoryStore

        return MemoryStore()
    if scheme in ("sqlite", "postgres", "postgresql", "mysql", "mariadb"):
        try:
            from .adapters.peewee import PeeweeStore
        except ImportError as exc:  # pragma: no cover - depends on extras
            raise ConfigurationError(
                "SQL storage needs the extra: pip install 'mindmesh-auth[peewee]'", variable="AUTH_DATABASE_URL"
            ) from exc
        return PeeweeStore.from_url(url)
    if scheme in ("mongodb", "mongodb+srv", "mongomock"):
        try:
            from .adapters.mongo import MongoStore
        except ImportError as exc:  # pragma: no cover - depends on extras
            raise ConfigurationError(
                "MongoDB storage needs the extra: pip install 'mindmesh-auth[mongo]'", variable="AUTH_DATABASE_URL"
            ) from exc
        return MongoStore.from_url(url)
    raise ConfigurationError(f"Unsupported database URL scheme {scheme!r}.", variable="AUTH_DATABASE_URL")
