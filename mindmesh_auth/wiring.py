"""Choosing a store from one URL, at wiring time only.

The URL's scheme picks the store: first the built-in schemes (memory, SQL
through Peewee, MongoDB), then the *store plugins*: installed distributions
that register a factory under the ``mindmesh_auth.stores`` entry-point group,
named after the scheme they serve (``docs/plugins.md``). A factory is a
callable ``factory(url: str) -> Store`` that receives the whole URL.

A plugin never replaces a built-in scheme (the built-in store is used and a
warning names the plugin), two plugins claiming one scheme are an error, and
anything a plugin raises other than a mindmesh-auth error is reported as a
``ConfigurationError`` naming the plugin. Installed plugins are looked up at
each call (a few milliseconds, once per store), never cached.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from urllib.parse import unquote, urlsplit

from .core.errors import AuthError, ConfigurationError
from .core.ports import Store

__all__ = ["ENTRY_POINT_GROUP", "SQL_SCHEMES", "StoreFactory", "builtin_schemes", "redact_url", "store_from_url", "url_scheme"]

ENTRY_POINT_GROUP = "mindmesh_auth.stores"
"""The entry-point group of store plugins: name = URL scheme, value = ``module:factory``."""

StoreFactory = Callable[[str], Store]
"""What a store plugin's entry point names: called with the whole URL, returns a new store."""

_SQL = ("sqlite", "postgres", "postgresql", "mysql", "mariadb")
_MONGO = ("mongodb", "mongodb+srv", "mongomock")

SQL_SCHEMES = frozenset(_SQL)
"""The built-in schemes served by the Peewee store."""

_VARIABLE = "AUTH_DATABASE_URL"
_PLUGINS_DOC = "docs/plugins.md"

log = logging.getLogger("mindmesh_auth")

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
            f"{scheme}:// URLs need the {module} package: pip install 'mindmesh-auth[{extra}]'"
            + (" (or [postgres-binary] for the prebuilt driver, development only)" if extra == "postgres" else ""),
            variable=_VARIABLE,
        ) from exc


# -- the built-in schemes -----------------------------------------------------


def _memory_store(url: str) -> Store:
    from .adapters.memory import MemoryStore

    return MemoryStore()


def _sql_store(url: str) -> Store:
    scheme = urlsplit(url).scheme.lower()
    module, extra = _DRIVERS[scheme]
    require_driver(scheme, "peewee", extra)
    require_driver(scheme, module, extra)
    from .adapters.peewee import PeeweeStore

    return PeeweeStore.from_url(url)


def _mongo_store(url: str) -> Store:
    scheme = urlsplit(url).scheme.lower()
    module, extra = _DRIVERS[scheme]
    require_driver(scheme, module, extra)
    from .adapters.mongo import MongoStore

    return MongoStore.from_url(url)


_BUILTIN: dict[str, StoreFactory] = {
    "memory": _memory_store,
    **dict.fromkeys(_SQL, _sql_store),
    **dict.fromkeys(_MONGO, _mongo_store),
}


def builtin_schemes() -> tuple[str, ...]:
    """The schemes served without any plugin, in the order they are documented."""
    return tuple(_BUILTIN)


# -- store plugins ------------------------------------------------------------


def _origin(ep: EntryPoint) -> str:
    """``entry point 'acme = acme_store:from_url' of acme-store 1.0``, for messages."""
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "an unnamed distribution"
    return f"entry point '{ep.name} = {ep.value}' of {where}"


def _installed_plugins() -> dict[str, list[EntryPoint]]:
    """The store plugins by scheme (lowercase); one distribution is listed once per scheme."""
    found: dict[str, list[EntryPoint]] = {}
    seen: set[tuple[str, str, str]] = set()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        scheme = ep.name.strip().lower()
        key = (scheme, ep.dist.name if ep.dist is not None else "", ep.value)
        if key not in seen:
            seen.add(key)
            found.setdefault(scheme, []).append(ep)
    return found


def _scan() -> dict[str, list[EntryPoint]]:
    try:
        return _installed_plugins()
    except Exception as exc:  # unreadable metadata of some installed distribution
        raise ConfigurationError(
            f"Cannot read the installed store plugins (entry-point group {ENTRY_POINT_GROUP}): {type(exc).__name__}.",
            variable=_VARIABLE,
        ) from exc


def _warn_if_shadowed(scheme: str) -> None:
    """A plugin claiming a built-in scheme is ignored, loudly."""
    try:
        claims = _installed_plugins().get(scheme, [])
    except Exception:  # the built-in stores never depend on other distributions' metadata
        return
    for ep in claims:
        log.warning(
            "The store plugin %s is ignored: %s:// is a built-in scheme, served by mindmesh-auth itself (see %s).",
            _origin(ep),
            scheme,
            _PLUGINS_DOC,
        )


_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` for messages and logs, whatever its scheme (a store plugin's too).

    The password of ``user:password@host`` and the values of query parameters
    whose name suggests a secret (``password=``, ``secret_key=``, ``token=``...)
    become ``***``; the rest of the URL is kept as written.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<invalid URL>"
    redacted = url
    if password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        redacted = redacted.replace(parts.netloc, f"{userinfo.split(':', 1)[0]}:***@{host}", 1)
    if parts.query:
        params = [
            f"{name}=***" if sep and _SECRET_PARAM.search(name) else f"{name}{sep}{value}"
            for name, sep, value in (param.partition("=") for param in parts.query.split("&"))
        ]
        redacted = redacted.replace(f"?{parts.query}", "?" + "&".join(params), 1)
    return redacted


def _without_secrets(text: str, url: str) -> str:
    """``text`` with the URL's secrets masked (a plugin's error may quote its URL)."""
    text = text.replace(url, redact_url(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    if password:
        for form in {password, unquote(password)}:
            text = text.replace(form, "***")
    return text


def _cause(exc: BaseException, url: str) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    text = _without_secrets(text, url)
    return text if len(text) <= 300 else text[:297] + "..."


def _build(ep: EntryPoint, scheme: str, url: str) -> Store:
    origin = _origin(ep)
    try:
        factory = ep.load()
    except AuthError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"The store plugin for {scheme}:// URLs cannot be loaded ({origin}): {_cause(exc, url)}",
            variable=_VARIABLE,
        ) from exc
    if not callable(factory):
        raise ConfigurationError(
            f"The store plugin for {scheme}:// URLs names a {type(factory).__name__}, "
            f"not a factory callable with the URL ({origin}). See {_PLUGINS_DOC}.",
            variable=_VARIABLE,
        )
    try:
        store = factory(url)
    except AuthError:  # the plugin's own ConfigurationError, StorageUnavailable...: already clear
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"The store plugin for {scheme}:// URLs failed to build a store ({origin}): {_cause(exc, url)}",
            variable=_VARIABLE,
        ) from exc
    if not isinstance(store, Store):
        raise ConfigurationError(
            f"The store plugin for {scheme}:// URLs returned a {type(store).__qualname__}, "
            f"not a mindmesh_auth.core.ports.Store ({origin}). See {_PLUGINS_DOC}.",
            variable=_VARIABLE,
        )
    return store


def _unknown(scheme: str, plugins: dict[str, list[EntryPoint]]) -> ConfigurationError:
    installed = [
        f"{name} ({', '.join(ep.dist.name if ep.dist is not None else '?' for ep in claims)})"
        for name, claims in sorted(plugins.items())
        if name not in _BUILTIN
    ]
    return ConfigurationError(
        f"Unsupported database URL scheme {scheme!r}. Built-in schemes: {', '.join(_BUILTIN)}. "
        f"Installed store plugins: {', '.join(installed) or 'none'}. "
        f"Other stores are added by installing a plugin (entry-point group {ENTRY_POINT_GROUP}; see {_PLUGINS_DOC}).",
        variable=_VARIABLE,
    )


# -- the one entry ------------------------------------------------------------


def url_scheme(url: str) -> str:
    """The lowercase scheme of a database URL; ``ConfigurationError`` when there is none."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError("The database URL must look like scheme://...", variable=_VARIABLE)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        raise ConfigurationError("The database URL is not a valid URL.", variable=_VARIABLE) from None
    if not scheme:
        raise ConfigurationError(
            "The database URL must look like scheme://... "
            "(a scheme is letters, digits, '+', '-' and '.', starting with a letter).",
            variable=_VARIABLE,
        )
    return scheme


def store_from_url(url: str) -> Store:
    """A new store for ``url``: a built-in scheme, else the store plugin registered for it.

    Built in: ``memory://``, ``sqlite:///path.db``, ``postgresql://...``
    (``postgres://``), ``mysql://...`` (``mariadb://``), ``mongodb://...``
    (``mongodb+srv://``, ``mongomock://``); a missing driver is a
    ``ConfigurationError`` naming the extra to install (``[peewee]``,
    ``[postgres]``, ``[mysql]`` or ``[mongo]``).

    Any other scheme is looked up in the ``mindmesh_auth.stores`` entry-point
    group and its factory is called with the whole URL (``docs/plugins.md``).
    An unknown scheme, two plugins for one scheme, and a plugin that cannot be
    imported, raises something other than an ``AuthError`` or returns
    something other than a ``Store`` are each a ``ConfigurationError``.
    """
    scheme = url_scheme(url)
    builtin = _BUILTIN.get(scheme)
    if builtin is not None:
        _warn_if_shadowed(scheme)
        return builtin(url)
    plugins = _scan()
    claims = plugins.get(scheme, [])
    if not claims:
        raise _unknown(scheme, plugins)
    if len(claims) > 1:
        raise ConfigurationError(
            f"The database URL scheme {scheme!r} is claimed by more than one store plugin: "
            f"{'; '.join(_origin(ep) for ep in claims)}. Uninstall all but one (see {_PLUGINS_DOC}).",
            variable=_VARIABLE,
        )
    return _build(claims[0], scheme, url)
