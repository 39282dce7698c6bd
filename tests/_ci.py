"""No skip holes under CI: what a local run may skip, a CI run must fail.

* :func:`in_ci` is true when ``CI`` holds a true value (``1``, ``true``, ``yes``,
  ``on``..., case-insensitive; anything non-empty except ``0/false/no/off``).
* :func:`require` imports a module the tests need and returns it; a missing one
  skips the test (or the whole module, at module level) locally and fails it under CI.
* :func:`skip_or_fail` does the same for a missing tool or server.

Import it as ``from _ci import require`` (``tests/`` on ``sys.path``, as for ``_servers``).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["in_ci", "require", "skip_or_fail"]

_FALSE = frozenset({"", "0", "false", "no", "off"})

# module -> what to install for it (the extras of pyproject.toml; all are in ``.[dev]``)
_INSTALL = {
    "fastapi": "mindmesh-auth[fastapi]",
    "flask": "mindmesh-auth[flask]",
    "peewee": "mindmesh-auth[peewee]",
    "playhouse": "mindmesh-auth[peewee]",
    "psycopg2": "mindmesh-auth[postgres]",
    "redis": "mindmesh-auth[redis]",
    "pymysql": "mindmesh-auth[mysql]",
    "pymongo": "mindmesh-auth[mongo]",
    "emails": "mindmesh-auth[smtp]",
    "click": "mindmesh-auth[cli]",
    "httpx": "httpx (in mindmesh-auth[dev])",
    "mongomock": "mongomock (in mindmesh-auth[dev])",
    "aiosmtpd": "aiosmtpd (in mindmesh-auth[dev])",
    "openapi_spec_validator": "openapi-spec-validator (in mindmesh-auth[dev])",
    "schemathesis": "schemathesis (in mindmesh-auth[dev])",
    "playwright": "playwright (in mindmesh-auth[dev]; the browser is Debian's chromium)",
    "uvicorn": "uvicorn (in mindmesh-auth[dev])",
    "hypothesis": "mindmesh-auth[testing]",
}


def in_ci() -> bool:
    """True when the ``CI`` environment variable holds a true value."""
    return os.environ.get("CI", "").strip().lower() not in _FALSE


def skip_or_fail(message: str) -> NoReturn:
    """Skip with ``message`` locally; fail with it under CI (works at module level too)."""
    __tracebackhide__ = True  # report the caller, not this helper
    if in_ci():
        pytest.fail(f"{message} (CI is set: a skip here would hide untested code)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require(module_name: str, reason: str = "") -> ModuleType:
    """Import and return ``module_name``; skip locally, fail under CI, when it is missing."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # an installed module that fails to import is a plain error
        error = str(exc)
    # Outside the except block: the report shows this message, not a chained traceback.
    top = module_name.partition(".")[0]
    install = _INSTALL.get(top, f"the package providing {top!r}")
    message = f"module {module_name!r} is not installed ({error}); install {install}, e.g. pip install -e '.[dev]'"
    if reason:
        message = f"{message}: {reason}"
    skip_or_fail(message)
